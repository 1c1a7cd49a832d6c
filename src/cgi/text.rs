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
        self.len = match addr {
            // Every request formats two of these (SERVER_ADDR, REMOTE_ADDR); through
            // `Display` each took ~1 100 instructions of `fmt` machinery (callgrind,
            // BENCHMARKS.md issue 16), by hand ~60.
            SocketAddr::V4(v4) => write_ipv4(&mut self.buf, v4.ip().octets()),
            SocketAddr::V6(v6) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(self.buf.as_mut_slice());
                let _ = write!(cursor, "{}", v6.ip());
                cursor.position() as usize
            }
        };
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Dotted-quad text of `octets` at the start of `buf`; returns its length (at most 15).
fn write_ipv4(buf: &mut [u8; 64], octets: [u8; 4]) -> usize {
    let mut len = 0;
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            push(buf, &mut len, b'.');
        }
        if octet >= 100 {
            push(buf, &mut len, b'0' + octet / 100);
        }
        if octet >= 10 {
            push(buf, &mut len, b'0' + octet / 10 % 10);
        }
        push(buf, &mut len, b'0' + octet % 10);
    }
    len
}

fn push(buf: &mut [u8; 64], len: &mut usize, byte: u8) {
    if let Some(slot) = buf.get_mut(*len) {
        *slot = byte;
        *len += 1;
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

    #[test]
    fn ipv4_text_matches_display() {
        let mut a = AddrText::new();
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.99.100.9",
        ] {
            let addr: SocketAddr = format!("{ip}:80").parse().unwrap();
            assert_eq!(a.ip(addr), ip.as_bytes());
        }
        let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(a.ip(v6), b"2001:db8::1");
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:443".parse().unwrap();
        assert_eq!(a.ip(mapped), mapped.ip().to_string().as_bytes());
    }
}
