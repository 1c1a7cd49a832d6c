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
    for chunk in chunks {
        match parser.push(chunk.clone()) {
            Ok(Some((head, rest))) => {
                result = Some((head.status.as_u16(), head.headers.len(), rest.len()));
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
