//! SCGI (Neil Schemenauer's protocol, 2008): the request head is one netstring,
//! `<len>:<name NUL value NUL …>,`, then exactly CONTENT_LENGTH body bytes; the response
//! is a CGI head (or a status line) and a body that ends when the server closes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::Framing;
use crate::cgi::env::ParamSink;
use crate::cgi::text::{fmt_u64, itoa_buf};
use crate::proto::{ProtoError, has_nul};

/// Room kept in front of the pairs for the netstring's `<len>:` (20 digits and the colon),
/// so the finished head is the same buffer, advanced, not a copy.
const PREFIX_ROOM: usize = 21;

/// The SCGI protocol: a marker for [`StreamService`](super::StreamService).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scgi;

/// The netstring being built. The spec wants CONTENT_LENGTH first (even "0") and
/// `SCGI=1`; both are written at creation, so the copies the CGI layer computes are
/// dropped, as is any user parameter of those names (the framing is ours to state).
pub(crate) struct ScgiHead {
    buf: BytesMut,
}

impl ScgiHead {
    pub(crate) fn new(content_length: u64) -> ScgiHead {
        let mut buf = BytesMut::with_capacity(1024);
        buf.put_bytes(0, PREFIX_ROOM);
        let mut digits = itoa_buf();
        buf.put_slice(b"CONTENT_LENGTH\0");
        buf.put_slice(fmt_u64(&mut digits, content_length));
        buf.put_slice(b"\0SCGI\x001\0");
        ScgiHead { buf }
    }
}

impl ParamSink for ScgiHead {
    fn pair(&mut self, name: &[&[u8]], value: &[&[u8]]) -> Result<(), ProtoError> {
        if matches!(name, [b"CONTENT_LENGTH"] | [b"SCGI"]) {
            return Ok(());
        }
        let start = self.buf.len();
        for part in name {
            self.buf.extend_from_slice(part);
        }
        self.buf.put_u8(0);
        let value_at = self.buf.len();
        for part in value {
            self.buf.extend_from_slice(part);
        }
        // NUL separates the fields: one inside a name or value would forge a pair. One
        // search each over the copied name and value, not one per part.
        let name_bytes = self.buf.get(start..value_at - 1).unwrap_or_default();
        let value_bytes = self.buf.get(value_at..).unwrap_or_default();
        if has_nul(name_bytes) || has_nul(value_bytes) {
            self.buf.truncate(start);
            return Err(ProtoError::NulInParam);
        }
        self.buf.put_u8(0);
        Ok(())
    }
}

impl Framing for ScgiHead {
    fn finish(mut self) -> Result<Bytes, crate::error::Error> {
        let len = self.buf.len() - PREFIX_ROOM;
        let mut digits = itoa_buf();
        let digits = fmt_u64(&mut digits, len as u64);
        let start = PREFIX_ROOM - digits.len() - 1;
        if let Some(room) = self.buf.get_mut(start..PREFIX_ROOM) {
            let (num, colon) = room.split_at_mut(digits.len());
            num.copy_from_slice(digits);
            colon.fill(b':');
        }
        self.buf.advance(start);
        self.buf.put_u8(b',');
        Ok(self.buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_first_then_scgi_then_the_rest() {
        let mut head = ScgiHead::new(27);
        head.pair(&[b"REQUEST_METHOD"], &[b"POST"]).unwrap();
        head.pair(&[b"CONTENT_LENGTH"], &[b"27"]).unwrap();
        head.pair(&[b"HTTP_", b"HOST"], &[b"a", b".b"]).unwrap();
        let bytes = head.finish().unwrap();
        let body = b"CONTENT_LENGTH\x0027\0SCGI\x001\0REQUEST_METHOD\0POST\0HTTP_HOST\0a.b\0";
        let mut want = format!("{}:", body.len()).into_bytes();
        want.extend_from_slice(body);
        want.push(b',');
        assert_eq!(&bytes[..], &want[..]);
    }

    #[test]
    fn nul_is_refused() {
        let mut head = ScgiHead::new(0);
        assert_eq!(head.pair(&[b"X"], &[b"a\0b"]), Err(ProtoError::NulInParam));
        assert_eq!(
            head.pair(&[b"X\0", b"Y"], &[b"v"]),
            Err(ProtoError::NulInParam)
        );
        // A refused pair leaves nothing behind.
        head.pair(&[b"A"], &[b"b"]).unwrap();
        let bytes = head.finish().unwrap();
        assert!(bytes.ends_with(b"SCGI\x001\0A\0b\0,"));
    }
}
