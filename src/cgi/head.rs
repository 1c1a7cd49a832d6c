//! The CGI response head: reassembled from STDOUT records, parsed, and turned into an
//! HTTP status and header map (RFC 3875 §6).

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, ErrorKind};

use super::head_end::find_head_end;

/// Most header fields a CGI response head may carry (as hyper's default).
const MAX_HEADERS: usize = 128;

/// Slots tried first. Most heads carry a handful of fields, and setting up 128 empty
/// slots (4 KiB) for each was ~450 instructions of a tiny response (callgrind,
/// BENCHMARKS.md issue 16); a longer head is parsed again with `MAX_HEADERS`.
const FEW_HEADERS: usize = 16;

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
    /// The head had a `Status` field (an Authorizer must say 200 to allow).
    pub(crate) explicit_status: bool,
    /// An Authorizer's `Variable-NAME: value` fields, NAME exactly as the backend wrote
    /// it (`http` lowercases header names). Empty, and never looked for, in a Responder's
    /// head; in an Authorizer's they are kept out of `headers`.
    pub(crate) variables: Vec<(Bytes, Bytes)>,
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
    /// Collect `Variable-*` fields apart (the Authorizer role).
    variables: bool,
    dialect: Dialect,
}

/// What the bytes after the head are, which decides two rules of the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// FastCGI STDOUT: records frame the body, so a backend's Transfer-Encoding is
    /// dropped and the body passes through; a status line is not CGI and is refused.
    Records,
    /// A raw byte stream that ends at EOF (SCGI, uwsgi): the head may start with an
    /// `HTTP/1.x NNN reason` status line (uWSGI, NPH scripts), and Transfer-Encoding is
    /// refused, because the bytes that follow would be chunk framing nobody decodes.
    Stream,
}

impl HeadParser {
    pub(crate) fn new(limit: usize) -> HeadParser {
        HeadParser::with_dialect(limit, Dialect::Records)
    }

    pub(crate) fn with_dialect(limit: usize, dialect: Dialect) -> HeadParser {
        HeadParser {
            buf: BytesMut::new(),
            limit,
            dialect,
            variables: false,
        }
    }

    /// A parser for an Authorizer's head: `Variable-*` fields go to
    /// [`ResponseHead::variables`] with their names as written, not to the headers.
    pub(crate) fn authorizer(limit: usize) -> HeadParser {
        HeadParser {
            variables: true,
            ..HeadParser::new(limit)
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
                let head = parse_head(&block, self.dialect, self.variables)?;
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
                let head = parse_head(&block, self.dialect, self.variables)?;
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
fn parse_head(
    block: &Bytes,
    dialect: Dialect,
    keep_variables: bool,
) -> Result<ResponseHead, Error> {
    if dialect == Dialect::Stream && block.starts_with(b"HTTP/") {
        let (line_status, fields) = split_status_line(block)?;
        let mut head = parse_fields(&fields, Some(line_status), dialect, keep_variables)?;
        // An explicit status line is the application's final answer (a NPH response),
        // never an RFC 3875 local redirect, whatever its Location says.
        head.local_redirect = false;
        return Ok(head);
    }
    parse_fields(block, None, dialect, keep_variables)
}

/// `HTTP/1.0 200 OK` or `HTTP/1.1 404 Not Found` (then CR LF or LF): the status and
/// reason, by the same rules as a `Status:` field, and the header fields after it.
fn split_status_line(block: &Bytes) -> Result<((StatusCode, Bytes), Bytes), Error> {
    let lf = block
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| invalid("status line without a line end"))?;
    let line = block.get(..lf).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = match (
        line.strip_prefix(b"HTTP/1.1 "),
        line.strip_prefix(b"HTTP/1.0 "),
    ) {
        (Some(rest), _) | (_, Some(rest)) => rest,
        _ => {
            return Err(invalid(format!(
                "invalid status line {:?}",
                String::from_utf8_lossy(line)
            )));
        }
    };
    if rest.contains(&b'\r') {
        return Err(invalid("CR inside the status line"));
    }
    let (code, phrase) = parse_status(rest)?;
    let phrase = shared(block, phrase);
    Ok(((code, phrase), block.slice(lf + 1..)))
}

/// The header fields of a head; `line_status` is the status line's, if it had one.
/// The fields httparse found, or why the block is not a header block.
fn header_fields<'h, 'b>(
    parsed: httparse::Result<(usize, &'h [httparse::Header<'b>])>,
) -> Result<&'h [httparse::Header<'b>], Error> {
    match parsed {
        Ok(httparse::Status::Complete((_, fields))) => Ok(fields),
        Ok(httparse::Status::Partial) => Err(invalid("incomplete header block")),
        Err(err) => Err(invalid(format!("malformed header line: {err}"))),
    }
}

fn parse_fields(
    block: &Bytes,
    line_status: Option<(StatusCode, Bytes)>,
    dialect: Dialect,
    keep_variables: bool,
) -> Result<ResponseHead, Error> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let mut many;
    let parsed = match httparse::parse_headers(block, &mut few) {
        Err(httparse::Error::TooManyHeaders) => {
            many = [httparse::EMPTY_HEADER; MAX_HEADERS];
            header_fields(httparse::parse_headers(block, &mut many))?
        }
        first => header_fields(first)?,
    };

    let mut headers = HeaderMap::with_capacity(parsed.len());
    let mut status: Option<StatusCode> = None;
    let mut reason: Option<Bytes> = None;
    if let Some((code, phrase)) = line_status {
        status = Some(code);
        reason = Some(phrase).filter(|p| {
            !p.is_empty() && code.canonical_reason().map(str::as_bytes) != Some(p.as_ref())
        });
    }
    let mut location_local = false;
    let mut has_location = false;
    let mut content_length: Option<u64> = None;
    // The backend's own Content-Length value when it is already the canonical digits
    // of `content_length` (a slice of the head, no copy); otherwise it is rewritten.
    let mut canonical_length: Option<HeaderValue> = None;
    let mut transfer_encoding = false;
    let mut connection_tokens: Vec<HeaderName> = Vec::new();
    let mut variables = Vec::new();

    for field in parsed.iter() {
        let value = trim(field.value);
        if keep_variables && let Some(name) = variable_name(field.name) {
            variables.push((shared(block, name.as_bytes()), shared(block, value)));
            continue;
        }
        if field.name.eq_ignore_ascii_case("status") {
            if status.is_some() {
                return Err(invalid("more than one Status header (or a status line)"));
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
            if canonical_length.is_none() && is_canonical_decimal(value.as_bytes()) {
                canonical_length = Some(value);
            }
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
    if transfer_encoding && dialect == Dialect::Stream {
        return Err(invalid(
            "Transfer-Encoding from a stream backend (the body is not de-chunked)",
        ));
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

    let status_seen = status.is_some();
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
        // Formatting the number allocated a value per response (~400 instructions of a
        // tiny one, bench/profile_tiny.sh); the usual `Content-Length: 13` is reused.
        let value = canonical_length.unwrap_or_else(|| HeaderValue::from(n));
        headers.insert(header::CONTENT_LENGTH, value);
    }
    Ok(ResponseHead {
        status,
        headers,
        content_length,
        local_redirect,
        reason,
        explicit_status: status_seen,
        variables,
    })
}

/// `Variable-AUTH_USER` → `AUTH_USER` (the prefix in any case, as Apache and lighttpd
/// match it); `None` for every other field and for an empty name.
fn variable_name(field: &str) -> Option<&str> {
    const PREFIX: &str = "variable-";
    let prefix = field.get(..PREFIX.len())?;
    let name = field.get(PREFIX.len()..)?;
    (prefix.eq_ignore_ascii_case(PREFIX) && !name.is_empty()).then_some(name)
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

/// Digits only, without a leading zero (or just "0"): what `HeaderValue::from(u64)`
/// would write for the number, once `parse_content_length` accepted it.
fn is_canonical_decimal(value: &[u8]) -> bool {
    match value {
        [b'0'] => true,
        [first, ..] => *first != b'0' && value.iter().all(u8::is_ascii_digit),
        [] => false,
    }
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
#[path = "head_tests.rs"]
mod tests;
