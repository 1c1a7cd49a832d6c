//! The uwsgi protocol (uWSGI's, nginx `uwsgi_pass`): a 4-byte header (modifier1 = 0 for
//! a WSGI/CGI request, the size of the variables as u16 little-endian, modifier2 = 0),
//! then the variables as u16-length-prefixed name and value, then the body
//! (CONTENT_LENGTH bytes). The response is whatever the application server writes,
//! usually an `HTTP/1.1 200 OK` status line and headers, and ends when it closes.

use bytes::{BufMut, Bytes, BytesMut};

use super::Framing;
use crate::cgi::env::ParamSink;
use crate::cgi::text::{fmt_u64, itoa_buf};
use crate::error::{Error, ErrorKind};
use crate::proto::{ProtoError, has_nul};

/// The uwsgi protocol: a marker for [`StreamService`](super::StreamService).
#[derive(Debug, Clone, Copy, Default)]
pub struct Uwsgi;

/// The variables being built, behind room for the 4-byte header.
pub(crate) struct UwsgiHead {
    buf: BytesMut,
}

impl UwsgiHead {
    /// uWSGI reads the body by CONTENT_LENGTH, so it always goes (first, as for SCGI,
    /// which costs nothing and reads well in a capture).
    pub(crate) fn new(content_length: u64) -> UwsgiHead {
        let mut head = UwsgiHead {
            buf: BytesMut::with_capacity(1024),
        };
        head.buf.put_bytes(0, 4);
        let mut digits = itoa_buf();
        head.put(
            &[b"CONTENT_LENGTH"],
            &[fmt_u64(&mut digits, content_length)],
        );
        head
    }

    fn put(&mut self, name: &[&[u8]], value: &[&[u8]]) {
        for field in [name, value] {
            let len: usize = field.iter().map(|p| p.len()).sum();
            // Checked by the caller; CONTENT_LENGTH is always short.
            self.buf.put_u16_le(len.min(usize::from(u16::MAX)) as u16);
            for part in field {
                self.buf.extend_from_slice(part);
            }
        }
    }
}

impl ParamSink for UwsgiHead {
    fn pair(&mut self, name: &[&[u8]], value: &[&[u8]]) -> Result<(), ProtoError> {
        if matches!(name, [b"CONTENT_LENGTH"]) {
            return Ok(());
        }
        let name_len: usize = name.iter().map(|p| p.len()).sum();
        let value_len: usize = value.iter().map(|p| p.len()).sum();
        if name_len > usize::from(u16::MAX) || value_len > usize::from(u16::MAX) {
            return Err(ProtoError::PairTooLarge {
                len: name_len + value_len + 4,
            });
        }
        let start = self.buf.len();
        self.put(name, value);
        // NUL is refused as for SCGI (a C-string reader would cut the value short).
        // One search each over the copied name and value, not one per part; the length
        // fields in between may hold 0 bytes, so the pair is not searched whole.
        let name_at = start + 2;
        let value_at = name_at + name_len + 2;
        let name_bytes = self
            .buf
            .get(name_at..name_at + name_len)
            .unwrap_or_default();
        let value_bytes = self.buf.get(value_at..).unwrap_or_default();
        if has_nul(name_bytes) || has_nul(value_bytes) {
            self.buf.truncate(start);
            return Err(ProtoError::NulInParam);
        }
        Ok(())
    }
}

impl Framing for UwsgiHead {
    fn finish(mut self) -> Result<Bytes, Error> {
        let size = self.buf.len() - 4;
        // The size field is 16 bits: larger is refused as lighttpd does (431).
        let size = u16::try_from(size).map_err(|_| {
            Error::msg(
                ErrorKind::RequestHeadersTooLarge,
                format!("uwsgi variables take {size} bytes, more than the protocol's 65535"),
            )
        })?;
        if let Some(header) = self.buf.get_mut(..4) {
            let [lo, hi] = size.to_le_bytes();
            header.copy_from_slice(&[0, lo, hi, 0]);
        }
        Ok(self.buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_pairs() {
        let mut head = UwsgiHead::new(5);
        head.pair(&[b"REQUEST_METHOD"], &[b"PUT"]).unwrap();
        head.pair(&[b"CONTENT_LENGTH"], &[b"5"]).unwrap();
        let bytes = head.finish().unwrap();
        let vars = b"\x0e\x00CONTENT_LENGTH\x01\x005\x0e\x00REQUEST_METHOD\x03\x00PUT";
        assert_eq!(&bytes[..4], &[0, vars.len() as u8, 0, 0]);
        assert_eq!(&bytes[4..], &vars[..]);
    }

    #[test]
    fn nul_is_refused_and_leaves_nothing_behind() {
        let mut head = UwsgiHead::new(0);
        assert_eq!(head.pair(&[b"X"], &[b"a\0b"]), Err(ProtoError::NulInParam));
        assert_eq!(
            head.pair(&[b"X\0", b"Y"], &[b"v"]),
            Err(ProtoError::NulInParam)
        );
        head.pair(&[b"A"], &[b"b"]).unwrap();
        let bytes = head.finish().unwrap();
        assert!(bytes.ends_with(b"\x01\x00A\x01\x00b"));
        assert_eq!(bytes.len(), 4 + 2 + 14 + 2 + 1 + 6);
    }

    #[test]
    fn more_than_64_kib_of_variables_is_431() {
        let mut head = UwsgiHead::new(0);
        let value = vec![b'v'; 40_000];
        head.pair(&[b"A"], &[&value]).unwrap();
        head.pair(&[b"B"], &[&value]).unwrap();
        let err = head.finish().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RequestHeadersTooLarge);
        let mut head = UwsgiHead::new(0);
        let huge = vec![b'v'; 70_000];
        assert!(matches!(
            head.pair(&[b"A"], &[&huge]),
            Err(ProtoError::PairTooLarge { .. })
        ));
    }
}
