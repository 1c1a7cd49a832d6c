//! Finding the blank line that ends a CGI response head.
//!
//! Every response is scanned for it before httparse sees the head, so the newline
//! search goes eight bytes at a time: byte by byte it was ~3 instructions a byte of
//! head (callgrind, the service bench's 45-byte head).

/// Index just past the blank line ending the head: a LF followed by LF or CR LF
/// (RFC 3875 §7.2: the newline is LF; CR LF is accepted). The block may also start with
/// the blank line (an empty head).
pub(super) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    if from == 0 {
        if buf.starts_with(b"\n") {
            return Some(1);
        }
        if buf.starts_with(b"\r\n") {
            return Some(2);
        }
    }
    let mut i = from;
    while i < buf.len() {
        let lf = find_lf(buf.get(i..)?)? + i;
        match buf.get(lf + 1..) {
            Some([b'\n', ..]) => return Some(lf + 2),
            Some([b'\r', b'\n', ..]) => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

/// Position of the first LF in `bytes`.
fn find_lf(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let word = <[u8; 8]>::try_from(word).unwrap_or([0; 8]);
        if word_has_lf(word) {
            return word.iter().position(|&b| b == b'\n').map(|p| at + p);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| at + p)
}

/// Whether some byte of `word` is LF: XOR with LF in every byte turns LF bytes into
/// zero, then the PARAMS encoder's exact zero-byte test.
fn word_has_lf(word: [u8; 8]) -> bool {
    const LFS: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    crate::proto::word_has_nul((u64::from_ne_bytes(word) ^ LFS).to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time search the word search replaced.
    fn reference(buf: &[u8], from: usize) -> Option<usize> {
        if from == 0 {
            if buf.starts_with(b"\n") {
                return Some(1);
            }
            if buf.starts_with(b"\r\n") {
                return Some(2);
            }
        }
        let mut i = from;
        while i < buf.len() {
            let lf = buf.get(i..)?.iter().position(|&b| b == b'\n')? + i;
            match buf.get(lf + 1..) {
                Some([b'\n', ..]) => return Some(lf + 2),
                Some([b'\r', b'\n', ..]) => return Some(lf + 3),
                _ => i = lf + 1,
            }
        }
        None
    }

    #[test]
    fn find_lf_agrees_with_position_at_every_offset() {
        for len in 0..40 {
            // Bytes that differ from LF by one bit, and 0x8a (LF with the high bit).
            let mut buf: Vec<u8> = (0..len).map(|i| [b'\x0b', b'\x08', 0x8a][i % 3]).collect();
            assert_eq!(find_lf(&buf), None, "{len}");
            for at in 0..len {
                buf[at] = b'\n';
                assert_eq!(find_lf(&buf), Some(at), "{len} {at}");
                buf[at] = b'a';
            }
        }
    }

    #[test]
    fn find_head_end_agrees_with_the_byte_search() {
        let heads: [&[u8]; 8] = [
            b"",
            b"\n",
            b"\r\nbody",
            b"Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!",
            b"A: b\nC: d\n\nrest",
            b"A: b\r\nC: d\r\n\r",
            b"A: b\n\rX\n\r\n",
            b"Status: 200\r\n\r\n\r\n\r\n",
        ];
        for head in heads {
            for from in 0..=head.len() {
                assert_eq!(
                    find_head_end(head, from),
                    reference(head, from),
                    "{head:?} {from}"
                );
            }
        }
    }
}
