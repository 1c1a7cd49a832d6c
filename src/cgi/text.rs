//! Allocation-free number and address text for parameter values (REMOTE_PORT,
//! CONTENT_LENGTH, REMOTE_ADDR): formatting, not CGI rules.

use std::net::SocketAddr;

pub(crate) fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Decimal digits of `n`, written from the end of `buf` (20 digits fit any u64).
pub(crate) fn fmt_u64(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    buf.get(start..).unwrap_or_default()
}

/// Formats an IP address without allocating (IPv6 without brackets, as RFC 3875 wants).
pub(crate) struct AddrText {
    buf: [u8; 64],
    len: usize,
}

impl AddrText {
    pub(crate) fn new() -> AddrText {
        AddrText {
            buf: [0; 64],
            len: 0,
        }
    }

    pub(crate) fn ip(&mut self, addr: SocketAddr) -> &[u8] {
        use std::io::Write;
        let mut cursor = std::io::Cursor::new(self.buf.as_mut_slice());
        let _ = write!(cursor, "{}", addr.ip());
        self.len = cursor.position() as usize;
        self.buf.get(..self.len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_u64_works() {
        for n in [0u64, 7, 10, 65535, u64::MAX] {
            let mut b = itoa_buf();
            assert_eq!(fmt_u64(&mut b, n), n.to_string().as_bytes());
        }
    }
}
