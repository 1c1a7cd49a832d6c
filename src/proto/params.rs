//! Name-value pairs (FastCGI 1.0 §3.4): lengths of 0..=127 take one byte, longer lengths
//! four bytes with the high bit set.

use bytes::{Bytes, BytesMut};

use super::ProtoError;

/// Largest length the four-byte form can carry (31 bits).
const MAX_PAIR_FIELD_LEN: usize = 0x7fff_ffff;

/// Bytes needed to encode one pair: both length prefixes plus name and value.
///
/// ```
/// use tower_fastcgi::proto::encoded_pair_len;
/// assert_eq!(encoded_pair_len(11, 2), 1 + 1 + 11 + 2);
/// assert_eq!(encoded_pair_len(127, 128), 1 + 4 + 127 + 128);
/// ```
pub const fn encoded_pair_len(name_len: usize, value_len: usize) -> usize {
    len_prefix_size(name_len) + len_prefix_size(value_len) + name_len + value_len
}

const fn len_prefix_size(len: usize) -> usize {
    if len <= 127 { 1 } else { 4 }
}

/// Whether `bytes` holds a NUL (which CGI forbids in names and values), eight bytes
/// at a time. Every encoder checks every pair: with `contains(&0)` (core's byte-wise
/// `memchr` for short slices) that was ~100 instructions a part, a sixth of a tiny
/// request's environment (callgrind, BENCHMARKS.md issue 16).
pub(crate) fn has_nul(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    if words
        .by_ref()
        .any(|word| word_has_nul(<[u8; 8]>::try_from(word).unwrap_or([1; 8])))
    {
        return true;
    }
    // The last 0..=7 bytes: within the last whole word when there is one (it overlaps
    // bytes already checked, which is harmless), else byte by byte. No copy into a
    // padded word: that was a `memcpy` call per part.
    if words.remainder().is_empty() {
        return false;
    }
    match bytes.last_chunk::<8>() {
        Some(last) => word_has_nul(*last),
        None => bytes.contains(&0),
    }
}

/// Non-zero exactly when some byte is zero: the borrow out of a zero byte sets its high
/// bit, and `!v` masks out bytes whose own high bit was set.
pub(crate) fn word_has_nul(word: [u8; 8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let v = u64::from_ne_bytes(word);
    v.wrapping_sub(ONES) & !v & HIGHS != 0
}

/// Writes a length in the one- or four-byte form. Callers keep `len` within 31 bits
/// (the encoder refuses pairs larger than a record long before that). The encoder uses
/// [`len_prefixes`]; this is the reference the tests hold it to.
#[cfg(test)]
pub(crate) fn put_len(dst: &mut BytesMut, len: usize) {
    use bytes::BufMut;
    if len <= 127 {
        dst.put_u8(len as u8);
    } else {
        let len = len.min(MAX_PAIR_FIELD_LEN) as u32;
        dst.put_u32(len | 0x8000_0000);
    }
}

/// The two length prefixes of a pair, in the one- or four-byte form each, and how many
/// of the eight bytes they fill: what two [`put_len`] calls would write.
pub(crate) fn len_prefixes(name_len: usize, value_len: usize) -> ([u8; 8], usize) {
    let mut out = [0; 8];
    let mut at = 0;
    for len in [name_len, value_len] {
        if len <= 127 {
            if let Some(b) = out.get_mut(at) {
                *b = len as u8;
            }
            at += 1;
        } else {
            let len = len.min(MAX_PAIR_FIELD_LEN) as u32 | 0x8000_0000;
            if let Some(slot) = out.get_mut(at..at + 4) {
                slot.copy_from_slice(&len.to_be_bytes());
            }
            at += 4;
        }
    }
    (out, at)
}

/// Total length of a name or value given in parts.
pub(crate) fn parts_len(parts: &[&[u8]]) -> usize {
    parts.iter().map(|p| p.len()).sum()
}

/// Reads one length prefix from the front of `input`.
fn take_len(input: &mut &[u8]) -> Result<usize, ProtoError> {
    let (&first, rest) = input.split_first().ok_or(ProtoError::TruncatedPair)?;
    if first & 0x80 == 0 {
        *input = rest;
        return Ok(first as usize);
    }
    let (bytes, rest) = input
        .split_first_chunk::<4>()
        .ok_or(ProtoError::TruncatedPair)?;
    *input = rest;
    Ok((u32::from_be_bytes(*bytes) & 0x7fff_ffff) as usize)
}

/// Iterates over the name-value pairs in one buffer (a PARAMS record's content, a
/// collected PARAMS stream, or a GET_VALUES record).
///
/// Yields `Err(ProtoError::TruncatedPair)` once, and then stops, if a pair runs past the
/// end of the buffer. Lengths are checked against the bytes present, so a hostile length
/// prefix never causes an allocation.
///
/// ```
/// use tower_fastcgi::proto::PairIter;
///
/// let content = b"\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42";
/// let pairs: Vec<_> = PairIter::new(content).collect::<Result<_, _>>().unwrap();
/// assert_eq!(pairs[0], (&b"SERVER_PORT"[..], &b"80"[..]));
/// assert_eq!(pairs[1], (&b"SERVER_ADDR"[..], &b"199.170.183.42"[..]));
/// ```
#[derive(Debug, Clone)]
pub struct PairIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> PairIter<'a> {
    /// Iterates over the pairs in `content`.
    pub fn new(content: &'a [u8]) -> PairIter<'a> {
        PairIter {
            rest: content,
            failed: false,
        }
    }

    fn next_pair(&mut self) -> Result<(&'a [u8], &'a [u8]), ProtoError> {
        let mut input = self.rest;
        let name_len = take_len(&mut input)?;
        let value_len = take_len(&mut input)?;
        let total = name_len
            .checked_add(value_len)
            .ok_or(ProtoError::TruncatedPair)?;
        if total > input.len() {
            return Err(ProtoError::TruncatedPair);
        }
        let (name, input) = input.split_at(name_len);
        let (value, input) = input.split_at(value_len);
        self.rest = input;
        Ok((name, value))
    }
}

impl<'a> Iterator for PairIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), ProtoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let item = self.next_pair();
        if item.is_err() {
            self.failed = true;
        }
        Some(item)
    }
}

/// Collects a PARAMS stream (the application side) up to a byte limit.
///
/// The specification lets a pair straddle two PARAMS records, so an application must join
/// the stream before parsing it (libfcgi and Go do this). The limit bounds memory against a
/// peer that never ends the stream.
///
/// ```
/// use tower_fastcgi::proto::ParamsCollector;
///
/// let mut params = ParamsCollector::new(64 * 1024);
/// params.push(b"\x0e\x03REQUEST_").unwrap();          // a pair split across records
/// params.push(b"METHODGET").unwrap();
/// let all = params.finish();
/// let pairs: Vec<_> = tower_fastcgi::proto::PairIter::new(&all).collect::<Result<_, _>>().unwrap();
/// assert_eq!(pairs, vec![(&b"REQUEST_METHOD"[..], &b"GET"[..])]);
/// ```
#[derive(Debug)]
pub struct ParamsCollector {
    buf: BytesMut,
    limit: usize,
}

impl ParamsCollector {
    /// A collector that refuses streams longer than `limit` bytes.
    pub fn new(limit: usize) -> ParamsCollector {
        ParamsCollector {
            buf: BytesMut::new(),
            limit,
        }
    }

    /// Appends one record's content.
    pub fn push(&mut self, content: &[u8]) -> Result<(), ProtoError> {
        if self.buf.len() + content.len() > self.limit {
            return Err(ProtoError::ParamsTooLarge { limit: self.limit });
        }
        self.buf.extend_from_slice(content);
        Ok(())
    }

    /// The joined stream, to be read with [`PairIter`].
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_nul_agrees_with_contains_at_every_position() {
        // Bytes around the borrow trick's edges: 0x01, 0x80, 0xff next to the NUL.
        for fill in [b'a', 0x01, 0x80, 0xff] {
            for len in 0..40 {
                let clean = vec![fill; len];
                assert!(!has_nul(&clean), "fill {fill:#x} len {len}");
                for at in 0..len {
                    let mut v = clean.clone();
                    v[at] = 0;
                    assert!(has_nul(&v), "fill {fill:#x} len {len} at {at}");
                }
            }
        }
    }

    fn encode_pair(name: &[u8], value: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        put_len(&mut buf, name.len());
        put_len(&mut buf, value.len());
        buf.extend_from_slice(name);
        buf.extend_from_slice(value);
        buf
    }

    #[test]
    fn len_prefixes_writes_what_put_len_writes() {
        let lens = [
            0,
            1,
            126,
            127,
            128,
            129,
            65_528,
            65_535,
            16 << 20,
            usize::MAX,
        ];
        for name in lens {
            for value in lens {
                let mut buf = BytesMut::new();
                put_len(&mut buf, name);
                put_len(&mut buf, value);
                let (prefix, n) = len_prefixes(name, value);
                assert_eq!(&prefix[..n], &buf[..], "{name} {value}");
            }
        }
    }

    #[test]
    fn length_forms_at_the_127_128_boundary() {
        // §3.4: 127 fits in one byte; 128 needs four with the high bit set.
        let mut buf = BytesMut::new();
        put_len(&mut buf, 127);
        assert_eq!(&buf[..], &[0x7f]);
        buf.clear();
        put_len(&mut buf, 128);
        assert_eq!(&buf[..], &[0x80, 0, 0, 0x80]);
        buf.clear();
        put_len(&mut buf, 16 << 20);
        assert_eq!(&buf[..], &[0x81, 0, 0, 0]);
    }

    #[test]
    fn all_four_prefix_combinations_decode() {
        // FCGI_NameValuePair11, 14, 41 and 44.
        for (n, v) in [(1usize, 1usize), (1, 200), (200, 1), (300, 70000)] {
            let name = vec![b'N'; n];
            let value = vec![b'V'; v];
            let buf = encode_pair(&name, &value);
            assert_eq!(buf.len(), encoded_pair_len(n, v));
            let pairs: Vec<_> = PairIter::new(&buf).map(|p| p.unwrap()).collect();
            assert_eq!(pairs, vec![(&name[..], &value[..])]);
        }
    }

    #[test]
    fn sixteen_mib_value_decodes() {
        let value = vec![b'z'; 16 << 20];
        let buf = encode_pair(b"BIG", &value);
        let mut it = PairIter::new(&buf);
        let (name, got) = it.next().unwrap().unwrap();
        assert_eq!(name, b"BIG");
        assert_eq!(got.len(), 16 << 20);
        assert!(it.next().is_none());
    }

    #[test]
    fn four_byte_length_ignores_only_the_high_bit() {
        // 0xff ff ff ff → 0x7fffffff: huge, must be reported as truncated, not allocated.
        let buf = [0xff, 0xff, 0xff, 0xff, 0x01, b'a'];
        let mut it = PairIter::new(&buf);
        assert_eq!(it.next(), Some(Err(ProtoError::TruncatedPair)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let full = encode_pair(&[b'n'; 130], b"value");
        for cut in 1..full.len() {
            let items: Vec<_> = PairIter::new(&full[..cut]).collect();
            assert_eq!(items, vec![Err(ProtoError::TruncatedPair)], "cut at {cut}");
        }
    }

    #[test]
    fn empty_names_and_values_are_allowed() {
        let buf = encode_pair(b"", b"");
        let pairs: Vec<_> = PairIter::new(&buf).map(|p| p.unwrap()).collect();
        assert_eq!(pairs, vec![(&b""[..], &b""[..])]);
    }

    #[test]
    fn collector_enforces_its_limit() {
        let mut c = ParamsCollector::new(10);
        c.push(b"0123456789").unwrap();
        assert_eq!(c.push(b"x"), Err(ProtoError::ParamsTooLarge { limit: 10 }));
    }
}
