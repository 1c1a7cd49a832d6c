//! The CGI response head: reassembled from STDOUT records, parsed, and turned into an
//! HTTP status and header map (RFC 3875 §6).

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, ErrorKind};

/// Most header fields a CGI response head may carry (as hyper's default).
const MAX_HEADERS: usize = 128;

/// A parsed CGI response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// The backend's `Content-Length`, validated; the body must match it exactly.
    pub(crate) content_length: Option<u64>,
    /// `Location: /local/path` without a `Status`: an RFC 3875 local redirect.
    pub(crate) local_redirect: bool,
    /// The reason phrase of `Status: 299 Custom`, when it is not the standard one
    /// (`Status: 404 Not Found` needs nothing kept). Not validated here: the HTTP/1
    /// server decides what it can write.
    pub(crate) reason: Option<Bytes>,
}

/// Accumulates STDOUT bytes until the blank line that ends the CGI header block.
///
/// A header line may be split across STDOUT records at any byte, so the head is parsed
/// from the joined stream, never per record. The end of the block is found by an
/// incremental scan (linear in the head size whatever the record boundaries), and the
/// block is parsed once.
#[derive(Debug)]
pub(crate) struct HeadParser {
    buf: BytesMut,
    limit: usize,
}

impl HeadParser {
    pub(crate) fn new(limit: usize) -> HeadParser {
        HeadParser {
            buf: BytesMut::new(),
            limit,
        }
    }

    /// Adds STDOUT bytes. Returns the head and the body bytes that followed it, once the
    /// blank line has arrived.
    pub(crate) fn push(&mut self, data: Bytes) -> Result<Option<(ResponseHead, Bytes)>, Error> {
        if self.buf.is_empty() {
            // Common case: the whole head sits in the first record; parse it in place.
            if let Some(end) = find_head_end(&data, 0) {
                self.check_limit(end)?;
                let mut body = data;
                let block = body.split_to(end.min(body.len()));
                let head = parse_head(&block)?;
                return Ok(Some((head, body)));
            }
            self.check_limit(data.len())?;
            self.buf.extend_from_slice(&data);
            return Ok(None);
        }
        // Re-scan from a little before the old end so a terminator split across pushes is seen.
        let from = self.buf.len().saturating_sub(3);
        self.buf.extend_from_slice(&data);
        match find_head_end(&self.buf, from) {
            Some(end) => {
                self.check_limit(end)?;
                let block = self.buf.split_to(end.min(self.buf.len())).freeze();
                let head = parse_head(&block)?;
                let rest = self.buf.split().freeze();
                Ok(Some((head, rest)))
            }
            None => {
                self.check_limit(self.buf.len())?;
                Ok(None)
            }
        }
    }

    /// Bytes buffered so far (for diagnostics).
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn check_limit(&self, len: usize) -> Result<(), Error> {
        if len > self.limit {
            return Err(Error::msg(
                ErrorKind::ResponseHeadTooLarge,
                format!("more than {} bytes before the blank line", self.limit),
            ));
        }
        Ok(())
    }
}

/// Index just past the blank line ending the head: a LF followed by LF or CR LF
/// (RFC 3875 §7.2: the newline is LF; CR LF is accepted). The block may also start with
/// the blank line (an empty head).
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
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

fn invalid(message: impl Into<String>) -> Error {
    Error::msg(ErrorKind::InvalidResponseHead, message)
}

/// `part` (a subslice of `block`) as a zero-copy `Bytes`, or a copy if it is not one.
fn shared(block: &Bytes, part: &[u8]) -> Bytes {
    let offset = (part.as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
    match offset.checked_add(part.len()) {
        Some(end) if end <= block.len() => block.slice(offset..end),
        _ => Bytes::copy_from_slice(part),
    }
}

/// Parses a complete header block (ending with its blank line). Header values are
/// slices of the block, not copies.
fn parse_head(block: &Bytes) -> Result<ResponseHead, Error> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let parsed = match httparse::parse_headers(block, &mut slots) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        Ok(httparse::Status::Partial) => return Err(invalid("incomplete header block")),
        Err(err) => return Err(invalid(format!("malformed header line: {err}"))),
    };

    let mut headers = HeaderMap::with_capacity(parsed.len());
    let mut status: Option<StatusCode> = None;
    let mut reason: Option<Bytes> = None;
    let mut location_local = false;
    let mut has_location = false;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut connection_tokens: Vec<HeaderName> = Vec::new();

    for field in parsed.iter() {
        let value = trim(field.value);
        if field.name.eq_ignore_ascii_case("status") {
            if status.is_some() {
                return Err(invalid("more than one Status header"));
            }
            let (code, phrase) = parse_status(value)?;
            status = Some(code);
            reason = Some(phrase)
                .filter(|p| !p.is_empty() && code.canonical_reason().map(str::as_bytes) != Some(*p))
                .map(|p| shared(block, p));
            continue;
        }
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| invalid(format!("invalid header name {:?}", field.name)))?;
        let value = HeaderValue::from_maybe_shared(shared(block, value))
            .map_err(|_| invalid(format!("invalid value for header {name}")))?;
        if name == header::CONTENT_LENGTH {
            let n = parse_content_length(value.as_bytes())?;
            if content_length.is_some_and(|old| old != n) {
                return Err(invalid("conflicting Content-Length headers"));
            }
            content_length = Some(n);
            continue;
        }
        if name == header::TRANSFER_ENCODING {
            transfer_encoding = true;
            continue;
        }
        if name == header::CONNECTION {
            for token in value.as_bytes().split(|&b| b == b',') {
                if let Ok(n) = HeaderName::from_bytes(trim(token)) {
                    connection_tokens.push(n);
                }
            }
            continue;
        }
        if is_hop_by_hop(&name) {
            continue;
        }
        if name == header::LOCATION {
            has_location = true;
            location_local =
                value.as_bytes().starts_with(b"/") && !value.as_bytes().starts_with(b"//");
        }
        headers.append(name, value);
    }
    for token in connection_tokens {
        headers.remove(token);
    }
    if transfer_encoding {
        // The backend framed nothing: FastCGI records are the framing. Its
        // Transfer-Encoding (and any Content-Length next to it) cannot be trusted
        // (CVE-2024-24795 class); the body passes through unframed.
        tracing::warn!(
            "dropping Transfer-Encoding (and Content-Length) sent by the FastCGI backend"
        );
        content_length = None;
    }

    let status = match status {
        Some(status) => status,
        None if has_location => StatusCode::FOUND,
        None => StatusCode::OK,
    };
    let local_redirect = location_local && status == StatusCode::FOUND && has_location;
    if status == StatusCode::NO_CONTENT {
        content_length = None;
    }
    if let Some(n) = content_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(ResponseHead {
        status,
        headers,
        content_length,
        local_redirect,
        reason,
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// `Status: NNN [reason]`: three digits, a final status (200..=599), then nothing or
/// whitespace and a reason phrase (returned trimmed, possibly empty).
fn parse_status(value: &[u8]) -> Result<(StatusCode, &[u8]), Error> {
    let bad = || {
        invalid(format!(
            "invalid Status {:?}",
            String::from_utf8_lossy(value)
        ))
    };
    let digits = value.get(..3).ok_or_else(bad)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    if value.get(3).is_some_and(|b| *b != b' ' && *b != b'\t') {
        return Err(bad());
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    if !(200..=599).contains(&code) {
        return Err(bad());
    }
    let status = StatusCode::from_u16(code).map_err(|_| bad())?;
    Ok((status, trim(value.get(3..).unwrap_or_default())))
}

/// A Content-Length value: digits, or a list of identical digit strings ("42, 42").
fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    let mut result: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let part = trim(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(invalid("invalid Content-Length"));
        }
        let n = part
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        if result.is_some_and(|r| r != n) {
            return Err(invalid("conflicting Content-Length values"));
        }
        result = Some(n);
    }
    result.ok_or_else(|| invalid("empty Content-Length"))
}

/// Fields that describe the backend connection, not the response (RFC 9110 §7.6.1).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<(ResponseHead, Bytes), Error> {
        let mut p = HeadParser::new(64 * 1024);
        match p.push(Bytes::copy_from_slice(input))? {
            Some(done) => Ok(done),
            None => Err(invalid("incomplete")),
        }
    }

    #[test]
    fn php_fpm_style_head() {
        let (head, body) = parse_all(
            b"X-Powered-By: PHP/8.2.36\r\nStatus: 404 Not Found\r\nContent-type: text/html; charset=UTF-8\r\n\r\nFile not found.\n",
        )
        .unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(head.headers["content-type"], "text/html; charset=UTF-8");
        assert!(!head.headers.contains_key("status"));
        assert_eq!(&body[..], b"File not found.\n");
    }

    #[test]
    fn lf_only_and_mixed_line_endings() {
        let (head, body) = parse_all(b"Content-Type: text/plain\nX-A: 1\r\n\nbody").unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.headers["x-a"], "1");
        assert_eq!(&body[..], b"body");
        let (_, body) = parse_all(b"Content-Type: text/plain\n\r\n\r\nrest").unwrap();
        assert_eq!(
            &body[..],
            b"\r\nrest",
            "only the first blank line ends the head"
        );
    }

    #[test]
    fn empty_head() {
        let (head, body) = parse_all(b"\r\nhello").unwrap();
        assert_eq!(head.status, 200);
        assert!(head.headers.is_empty());
        assert_eq!(&body[..], b"hello");
    }

    #[test]
    fn head_split_at_every_byte() {
        let input: &[u8] =
            b"Status: 201 Created\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Type: text/plain\r\n\r\nbody bytes";
        for cut in 0..input.len() {
            let mut p = HeadParser::new(1024);
            let first = p.push(Bytes::copy_from_slice(&input[..cut])).unwrap();
            let (head, body) = match first {
                Some((head, rest)) => (head, [&rest[..], &input[cut..]].concat()),
                None => {
                    let (head, rest) = p
                        .push(Bytes::copy_from_slice(&input[cut..]))
                        .unwrap()
                        .expect("complete");
                    (head, rest.to_vec())
                }
            };
            assert_eq!(head.status, 201, "cut {cut}");
            let cookies: Vec<_> = head.headers.get_all("set-cookie").iter().collect();
            assert_eq!(cookies, ["a=1", "b=2"], "cut {cut}");
            assert_eq!(&body[..], b"body bytes", "cut {cut}");
        }
    }

    #[test]
    fn byte_by_byte_is_linear_and_correct() {
        let mut input = Vec::new();
        for i in 0..100 {
            input.extend_from_slice(format!("X-H{i}: v\n").as_bytes());
        }
        input.extend_from_slice(b"\nB");
        let mut p = HeadParser::new(64 * 1024);
        let mut done = None;
        for b in &input {
            if let Some(d) = p.push(Bytes::copy_from_slice(&[*b])).unwrap() {
                done = Some(d);
                break;
            }
        }
        let (head, _) = done.unwrap();
        assert_eq!(head.headers.len(), 100);
    }

    #[test]
    fn location_rules() {
        let (head, _) = parse_all(b"Location: https://example.com/x\r\n\r\n").unwrap();
        assert_eq!(head.status, 302);
        assert!(!head.local_redirect);
        let (head, _) = parse_all(b"Location: /local?q=1\r\n\r\n").unwrap();
        assert_eq!(head.status, 302);
        assert!(head.local_redirect);
        let (head, _) = parse_all(b"Location: //evil.example/\r\n\r\n").unwrap();
        assert!(
            !head.local_redirect,
            "a scheme-relative URI is not a local path"
        );
        let (head, _) = parse_all(b"Status: 301\r\nLocation: /moved\r\n\r\n").unwrap();
        assert_eq!(head.status, 301);
        assert!(!head.local_redirect);
    }

    #[test]
    fn status_validation() {
        for good in ["200", "404 Not Found", "503\tbusy", "299 custom", "201"] {
            let input = format!("Status: {good}\r\n\r\n");
            assert!(parse_all(input.as_bytes()).is_ok(), "{good}");
        }
        for bad in [
            "",
            "20",
            "2000",
            "abc",
            "100 Continue",
            "101",
            "600",
            "99",
            "-20",
            "20x",
        ] {
            let input = format!("Status: {bad}\r\n\r\n");
            let err = parse_all(input.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidResponseHead, "{bad}");
        }
        let err = parse_all(b"Status: 200\r\nstatus: 404\r\n\r\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponseHead);
    }

    #[test]
    fn custom_reason_phrases_are_kept() {
        for (input, reason) in [
            ("299 Custom", Some("Custom")),
            ("503\tbusy for now  ", Some("busy for now")),
            ("404 Not Found", None),
            ("404", None),
            ("404 ", None),
            ("200 ok", Some("ok")),
        ] {
            let head = format!("Status: {input}\r\n\r\n");
            let (head, _) = parse_all(head.as_bytes()).unwrap();
            assert_eq!(head.reason.as_deref(), reason.map(str::as_bytes), "{input}");
        }
    }

    #[test]
    fn malformed_lines_are_502() {
        for bad in [
            &b"No colon here\r\n\r\n"[..],
            b"Content-Type : text/plain\r\n\r\n",
            b"X-A: 1\r\n folded\r\n\r\n",
            b"X-A: a\rb\r\n\r\n",
            b"X-A: a\0b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"Bad Name: x\r\n\r\n",
        ] {
            let err = parse_all(bad).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidResponseHead,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn too_many_headers() {
        let mut input = Vec::new();
        for i in 0..=MAX_HEADERS {
            input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_all(&input).unwrap_err().kind(),
            ErrorKind::InvalidResponseHead
        );
    }

    #[test]
    fn size_limit() {
        let mut p = HeadParser::new(100);
        let long = vec![b'a'; 101];
        assert_eq!(
            p.push(Bytes::from(long)).unwrap_err().kind(),
            ErrorKind::ResponseHeadTooLarge
        );
        let mut p = HeadParser::new(100);
        p.push(Bytes::from_static(&[b'a'; 60])).unwrap();
        assert_eq!(
            p.push(Bytes::from_static(&[b'a'; 60])).unwrap_err().kind(),
            ErrorKind::ResponseHeadTooLarge
        );
        // A body after a small head may be large.
        let mut p = HeadParser::new(100);
        let mut input = b"X: y\r\n\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'b', 10_000));
        assert!(p.push(Bytes::from(input)).unwrap().is_some());
    }

    #[test]
    fn framing_and_hop_by_hop_headers() {
        let (head, _) = parse_all(
            b"Content-Length: 5\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nUpgrade: h2c\r\nTE: trailers\r\nTrailer: X\r\nX-Keep: k\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.content_length, Some(5));
        assert_eq!(head.headers["content-length"], "5");
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "upgrade",
            "te",
            "trailer",
        ] {
            assert!(!head.headers.contains_key(gone), "{gone}");
        }
        assert_eq!(head.headers["x-keep"], "k");

        let (head, _) =
            parse_all(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(head.content_length, None);
        assert!(!head.headers.contains_key("transfer-encoding"));
        assert!(!head.headers.contains_key("content-length"));

        let (head, _) = parse_all(b"Content-Length: 7, 7\r\n\r\n").unwrap();
        assert_eq!(head.content_length, Some(7));
        for bad in [
            &b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"Content-Length: 5, 6\r\n\r\n",
            b"Content-Length: -1\r\n\r\n",
            b"Content-Length: 0x10\r\n\r\n",
            b"Content-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert_eq!(
                parse_all(bad).unwrap_err().kind(),
                ErrorKind::InvalidResponseHead
            );
        }
    }

    #[test]
    fn raw_utf8_values_pass() {
        let (head, _) = parse_all("X-Name: Zoë\r\n\r\n".as_bytes()).unwrap();
        assert_eq!(head.headers["x-name"].as_bytes(), "Zoë".as_bytes());
    }
}
