//! Entry points for `benches/` into private layers (CGI environment, response head).
//! Not part of the public API: hidden from the docs and free to change in any release.

use bytes::{Bytes, BytesMut};
use http::request::Parts;

use crate::cgi::env::{self, RequestInfo};
use crate::cgi::head::{Dialect, HeadParser};
use crate::cgi::{self, CgiConfig, ConnectionInfo, Mount, Route};
use crate::proto::ParamsEncoder;

/// Encodes the PARAMS stream (terminator included) that an `FcgiService` in application
/// mode with default settings sends for `parts`. Returns the encoded length, or `None`
/// when the request cannot be mapped.
pub fn encode_request_params(
    parts: &Parts,
    content_length: Option<u64>,
    out: &mut BytesMut,
) -> Option<usize> {
    let cfg = default_config();
    let mount = Mount::of(parts);
    let Ok(Route::Script(target)) = cgi::route(cfg, mount) else {
        return None;
    };
    let start = out.len();
    let mut params = ParamsEncoder::new(out, 1);
    let info = RequestInfo {
        parts,
        target: &target,
        request_uri: mount.request_uri,
        content_length,
        connection: ConnectionInfo::from_extensions(&parts.extensions),
        role: crate::proto::Role::Responder,
        data: None,
    };
    env::write_params(&mut params, cfg, &info).ok()?;
    params.finish();
    Some(out.len() - start)
}

/// Parses a CGI response head from the first STDOUT record, as the service does, with
/// the default 64 KiB cap. Returns the number of headers and the body bytes that
/// followed the head, or `None` if the head is incomplete or invalid.
pub fn parse_response_head(stdout: Bytes) -> Option<(usize, usize)> {
    let mut parser = HeadParser::new(64 * 1024);
    match parser.push(stdout) {
        Ok(Some((head, rest))) => Some((head.headers.len(), rest.len())),
        _ => None,
    }
}

/// Parses a response head as the SCGI and uwsgi services do (status line allowed,
/// Transfer-Encoding refused, 64 KiB cap) from `chunks` pushed one by one. Returns the
/// status, the header count and the body bytes after the head; `Ok(None)` if the head
/// never completed; the error kind otherwise. For the `stream_head` fuzz target.
pub fn parse_stream_response_head(
    chunks: &[Bytes],
) -> Result<Option<(u16, usize, usize)>, crate::ErrorKind> {
    let mut parser = HeadParser::with_dialect(64 * 1024, Dialect::Stream);
    let mut result = None;
    for (i, chunk) in chunks.iter().enumerate() {
        match parser.push(chunk.clone()) {
            Ok(Some((head, rest))) => {
                // The body so far: what followed the head in its chunk, and every
                // chunk after it (the parser is not asked again once the head is done).
                let later: usize = chunks.iter().skip(i + 1).map(Bytes::len).sum();
                result = Some((head.status.as_u16(), head.headers.len(), rest.len() + later));
                break;
            }
            Ok(None) => {}
            Err(err) => return Err(err.kind()),
        }
    }
    Ok(result)
}

fn default_config() -> &'static CgiConfig {
    static CONFIG: std::sync::OnceLock<CgiConfig> = std::sync::OnceLock::new();
    CONFIG.get_or_init(CgiConfig::default)
}

/// What [`HeadParser`] made of a CGI response head, in a form fuzz targets can compare.
#[derive(Debug, PartialEq, Eq)]
pub struct HeadSummary {
    /// The HTTP status (`Status:`, or 302 for a client redirect, else 200).
    pub status: u16,
    /// Header names and values in the map's order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The backend's validated `Content-Length`.
    pub content_length: Option<u64>,
    /// `Location: /path` without `Status`: an RFC 3875 local redirect.
    pub local_redirect: bool,
    /// A non-standard reason phrase kept from `Status:`.
    pub reason: Option<Bytes>,
    /// Every byte after the head: what the response body starts with.
    pub body: Vec<u8>,
}

/// Feeds `stdout` to a [`HeadParser`] capped at `limit`, cut at `cuts` (offsets into
/// `stdout`, ascending), as STDOUT records would arrive. `Ok(None)`: the head never ended;
/// an error gives its kind. For `fuzz/fuzz_targets/head.rs`.
pub fn parse_response_head_pieces(
    stdout: &Bytes,
    cuts: &[usize],
    limit: usize,
) -> Result<Option<HeadSummary>, crate::ErrorKind> {
    let mut parser = HeadParser::new(limit);
    let mut from = 0;
    for &at in cuts.iter().chain(std::iter::once(&stdout.len())) {
        let to = at.clamp(from, stdout.len());
        let piece = stdout.slice(from..to);
        from = to;
        if let Some((head, rest)) = parser.push(piece).map_err(|e| e.kind())? {
            let mut body = rest.to_vec();
            body.extend_from_slice(stdout.get(from..).unwrap_or_default());
            let headers = head
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            return Ok(Some(HeadSummary {
                status: head.status.as_u16(),
                headers,
                content_length: head.content_length,
                local_redirect: head.local_redirect,
                reason: head.reason,
                body,
            }));
        }
    }
    Ok(None)
}

/// Parses an Authorizer's answer head as `FcgiAuthorizer` does (`Variable-NAME` fields
/// kept apart) from `chunks` pushed one by one, with the 64 KiB cap. Returns the status,
/// the header count, the variables and the body bytes after the head; `Ok(None)` if the
/// head never completed. For the `authorizer_head` fuzz target.
#[allow(clippy::type_complexity)]
pub fn parse_authorizer_head(
    chunks: &[Bytes],
) -> Result<Option<(u16, usize, Vec<(Vec<u8>, Vec<u8>)>, usize)>, crate::ErrorKind> {
    let mut parser = HeadParser::authorizer(64 * 1024);
    for (i, chunk) in chunks.iter().enumerate() {
        if let Some((head, rest)) = parser.push(chunk.clone()).map_err(|e| e.kind())? {
            let later: usize = chunks.iter().skip(i + 1).map(Bytes::len).sum();
            let variables = head
                .variables
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            return Ok(Some((
                head.status.as_u16(),
                head.headers.len(),
                variables,
                rest.len() + later,
            )));
        }
    }
    Ok(None)
}

/// One stream's events, summarised for comparison: `(kind, payload length)` with kind
/// 0 STDOUT, 1 STDERR, 2 END_REQUEST (length = app status), 3 overflowed.
pub type DemuxEvents = Vec<(u8, u64)>;

/// Feeds `wire` (records from a backend) to the multiplexed connection's demultiplexer
/// in `chunks`, with `streams` requests open (ids 1..=streams), `budget` bytes of
/// buffer per stream in memory and `spill` more STDOUT bytes in its spill file, then
/// drains every stream. Returns each stream's events, or the
/// error kind that failed the connection. For the `demux` fuzz target.
pub fn demux_feed(
    streams: u16,
    budget: usize,
    spill: u64,
    chunks: &[Bytes],
) -> Result<Vec<DemuxEvents>, crate::ErrorKind> {
    use crate::client::mux::demux::{Demux, StreamEvent};

    let mut demux = Demux::new(usize::from(streams.max(1)), budget, spill);
    let ids: Vec<u16> = (0..streams.max(1)).filter_map(|_| demux.open()).collect();
    let mut buf = BytesMut::new();
    let mut notices = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        demux.feed(&mut buf, &mut notices).map_err(|e| e.kind())?;
    }
    Ok(ids
        .iter()
        .map(|&id| {
            let mut events = Vec::new();
            while let Some(event) = demux.pop(id) {
                events.push(match event {
                    StreamEvent::Stdout(b) => (0, b.len() as u64),
                    StreamEvent::Stderr(b) => (1, b.len() as u64),
                    StreamEvent::End(end) => (2, u64::from(end.app_status)),
                    StreamEvent::Overflowed => (3, 0),
                });
            }
            events
        })
        .collect())
}
