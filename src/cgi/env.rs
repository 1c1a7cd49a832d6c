//! `http::Request` parts → CGI/1.1 meta-variables (RFC 3875 §4.1 plus the de-facto
//! variables php-fpm, flup and fcgiwrap read), written straight into PARAMS records.
//!
//! No map is built: variables are encoded in a fixed order as they are computed, and a
//! user-configured parameter with the same name replaces the computed one. Where the
//! pairs go is a [`ParamSink`]: FastCGI PARAMS records, or the SCGI and uwsgi headers.

use std::borrow::Cow;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use http::Version;
use http::header::{self, HeaderMap, HeaderName};
use http::request::Parts;

use super::text::{AddrText, fmt_u64, itoa_buf};
use super::{CgiConfig, ConnectionInfo};
use crate::error::{Error, ErrorKind};
use crate::proto::{ProtoError, Role, encoded_pair_len};

pub(crate) use super::sink::ParamSink;
// The tests (`use super::*`) drive the writer into PARAMS records.
#[cfg(test)]
use crate::proto::ParamsEncoder;

/// The script that runs and what the request path means to it (its CGI path variables).
#[derive(Debug, Clone, Default)]
pub(crate) struct Script<'a> {
    /// SCRIPT_NAME, decoded (may be empty).
    pub(crate) script_name: Cow<'a, [u8]>,
    /// PATH_INFO, decoded (empty when there is none).
    pub(crate) path_info: Cow<'a, [u8]>,
    /// SCRIPT_FILENAME, if known.
    pub(crate) script_filename: Option<Cow<'a, Path>>,
    /// DOCUMENT_ROOT, if the service has one.
    pub(crate) document_root: Option<&'a Path>,
}

/// Everything about one request that the variables are computed from.
#[derive(Debug)]
pub(crate) struct RequestInfo<'a> {
    pub(crate) parts: &'a Parts,
    pub(crate) target: &'a Script<'a>,
    /// The original request target (path and query), undecoded, for REQUEST_URI.
    pub(crate) request_uri: &'a str,
    /// The exact request-body length, if the request has a body.
    pub(crate) content_length: Option<u64>,
    pub(crate) connection: Option<ConnectionInfo>,
    /// The role the request is for. An Authorizer gets the request's environment minus
    /// what only a responder of the body needs (see [`write_params`]).
    pub(crate) role: Role,
    /// A Filter's data file: FCGI_DATA_LENGTH and FCGI_DATA_LAST_MOD.
    pub(crate) data: Option<DataFile>,
}

/// What a Filter is told about the file it gets on FCGI_DATA (FastCGI 1.0 §6.4).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataFile {
    /// Its size in bytes.
    pub(crate) length: u64,
    /// Its modification time, in seconds since the Unix epoch.
    pub(crate) last_mod: u64,
}

/// Encodes the request's CGI environment into `enc` (for FastCGI, PARAMS records
/// without the terminator).
///
/// For the Authorizer role, as Apache's mod_authnz_fcgi and lighttpd do: no
/// SCRIPT_NAME, PATH_INFO, PATH_TRANSLATED (nor DOCUMENT_URI, their concatenation) and
/// no CONTENT_LENGTH (the authorizer never sees the body), `Authorization` always
/// forwarded (it is what the authorizer checks), and `FCGI_ROLE=AUTHORIZER`, which
/// Apache sends and flup-style applications without their own role variable read.
pub(crate) fn write_params<S: ParamSink>(
    enc: &mut S,
    cfg: &CgiConfig,
    req: &RequestInfo<'_>,
) -> Result<(), Error> {
    let mut w = Writer { enc, cfg, total: 0 };
    let parts = req.parts;
    let target = req.target;
    let https = cfg.https.unwrap_or_else(|| {
        req.connection.is_some_and(|c| c.tls)
            || parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS)
    });
    let host = host_of(parts);
    let (host_name, host_port) = host.map(split_host_port).unwrap_or((None, None));
    let local = req.connection.and_then(|c| c.local);
    let remote = req.connection.and_then(|c| c.remote);

    w.put(b"GATEWAY_INTERFACE", b"CGI/1.1")?;
    w.put(b"SERVER_SOFTWARE", cfg.server_software.as_bytes())?;
    w.put(b"SERVER_PROTOCOL", protocol(parts.version))?;
    w.put(b"REQUEST_METHOD", parts.method.as_str().as_bytes())?;
    w.put(b"REQUEST_SCHEME", if https { b"https" } else { b"http" })?;
    if https {
        w.put(b"HTTPS", b"on")?;
    }
    w.put(b"QUERY_STRING", parts.uri.query().unwrap_or("").as_bytes())?;
    w.put(b"REQUEST_URI", req.request_uri.as_bytes())?;
    let authorizer = req.role == Role::Authorizer;
    if let Some(data) = req.data.filter(|_| req.role == Role::Filter) {
        // A filter application tells the data file from the request by these (gofast
        // requires both); FCGI_ROLE as for an authorizer, for servers that do not set it.
        w.put(b"FCGI_ROLE", b"FILTER")?;
        let mut buf = itoa_buf();
        w.put(b"FCGI_DATA_LENGTH", fmt_u64(&mut buf, data.length))?;
        let mut buf = itoa_buf();
        w.put(b"FCGI_DATA_LAST_MOD", fmt_u64(&mut buf, data.last_mod))?;
    }
    if authorizer {
        w.put(b"FCGI_ROLE", b"AUTHORIZER")?;
    } else {
        w.put(b"SCRIPT_NAME", &target.script_name)?;
        w.put_parts(b"DOCUMENT_URI", &[&target.script_name, &target.path_info])?;
    }
    if !target.path_info.is_empty() && !authorizer {
        w.put(b"PATH_INFO", &target.path_info)?;
        if let Some(root) = target.document_root {
            w.put_parts(
                b"PATH_TRANSLATED",
                &[root.as_os_str().as_bytes(), &target.path_info],
            )?;
        }
    }
    if let Some(file) = &target.script_filename {
        w.put(b"SCRIPT_FILENAME", file.as_os_str().as_bytes())?;
    }
    if let Some(root) = target.document_root {
        w.put(b"DOCUMENT_ROOT", root.as_os_str().as_bytes())?;
    }

    // SERVER_NAME: configured name, else the Host the client asked for, else our address,
    // else `localhost`. RFC 3875 makes it mandatory and WSGI servers (flup) refuse to run
    // without it, e.g. for an HTTP/1.0 request without Host on a service without ConnectInfo.
    let mut addr_buf = AddrText::new();
    if let Some(name) = &cfg.server_name {
        w.put(b"SERVER_NAME", name.as_bytes())?;
    } else if let Some(name) = host_name {
        w.put(b"SERVER_NAME", name)?;
    } else if let Some(local) = local {
        w.put(b"SERVER_NAME", addr_buf.ip(local))?;
    } else {
        w.put(b"SERVER_NAME", b"localhost")?;
    }
    let mut port_buf = itoa_buf();
    let port: &[u8] = match (host_port, local) {
        (Some(port), _) => port,
        (None, Some(local)) => fmt_u64(&mut port_buf, u64::from(local.port())),
        (None, None) if https => b"443",
        (None, None) => b"80",
    };
    w.put(b"SERVER_PORT", port)?;
    if let Some(local) = local {
        w.put(b"SERVER_ADDR", addr_buf.ip(local))?;
    }
    if let Some(remote) = remote {
        w.put(b"REMOTE_ADDR", addr_buf.ip(remote))?;
        let mut buf = itoa_buf();
        w.put(b"REMOTE_PORT", fmt_u64(&mut buf, u64::from(remote.port())))?;
    } else if req.connection.is_some_and(|c| c.unix_socket) {
        // What nginx sends for a `listen unix:` server (see `ConnectionInfo`).
        w.put(b"REMOTE_ADDR", b"unix:")?;
        w.put(b"REMOTE_PORT", b"")?;
        w.put(b"SERVER_ADDR", b"unix:")?;
    }

    if let Some(len) = req.content_length.filter(|_| !authorizer) {
        let mut buf = itoa_buf();
        w.put(b"CONTENT_LENGTH", fmt_u64(&mut buf, len))?;
    }
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        w.put(b"CONTENT_TYPE", ct.as_bytes())?;
    }
    if cfg.redirect_status {
        // Harmless legacy: php-cgi built with --enable-force-cgi-redirect wants it.
        w.put(b"REDIRECT_STATUS", b"200")?;
    }
    if let Some(extra) = parts.extensions.get::<crate::RequestParams>() {
        for (name, value) in extra.iter() {
            w.put(name.as_bytes(), value)?;
        }
    }
    write_http_headers(&mut w, parts, host, authorizer)?;
    for (name, value) in &cfg.params {
        w.put_unchecked(name.as_bytes(), value.as_bytes())?;
    }
    Ok(())
}

/// Header fields that become `HTTP_*` variables, with the hygiene rules:
/// - `Proxy` never becomes HTTP_PROXY (httpoxy);
/// - names containing `_` are dropped unless configured, so `X_Forwarded_For` cannot
///   impersonate `X-Forwarded-For` (both would map to the same variable);
/// - hop-by-hop fields and those named in `Connection` are not forwarded;
/// - Content-Length and Content-Type are already CONTENT_LENGTH and CONTENT_TYPE;
/// - Proxy-Authorization is never forwarded, Authorization only when enabled;
/// - repeated fields are merged into one value, `Cookie` with `"; "`, others with `", "`.
fn write_http_headers<S: ParamSink>(
    w: &mut Writer<'_, S>,
    parts: &Parts,
    host: Option<&[u8]>,
    authorizer: bool,
) -> Result<(), Error> {
    let headers = &parts.headers;
    let connection_listed = ConnectionTokens::new(headers);
    let mut joined = Vec::new();
    let mut name_buf = [0u8; 128];
    for name in headers.keys() {
        let forwarded =
            w.cfg.forwards_header(name) || (authorizer && name == header::AUTHORIZATION);
        if !forwarded || connection_listed.contains(name) {
            continue;
        }
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else { continue };
        let mut heap_name;
        let var: &[u8] = match name_buf.get_mut(..name.as_str().len()) {
            Some(out) => {
                cgi_name(name.as_str().as_bytes(), out);
                out
            }
            None => {
                heap_name = vec![0; name.as_str().len()];
                cgi_name(name.as_str().as_bytes(), &mut heap_name);
                &heap_name
            }
        };
        match values.next() {
            None => w.put_http(var, first.as_bytes())?,
            Some(second) => {
                let sep: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
                joined.clear();
                joined.extend_from_slice(first.as_bytes());
                for value in std::iter::once(second).chain(values) {
                    joined.extend_from_slice(sep);
                    joined.extend_from_slice(value.as_bytes());
                }
                w.put_http(var, &joined)?;
            }
        }
    }
    // HTTP/2 and HTTP/3 carry the host in the URI authority instead of a Host field.
    if let (false, Some(host)) = (headers.contains_key(header::HOST), host) {
        w.put_http(b"HOST", host)?;
    }
    Ok(())
}

/// `x-forwarded-for` → `X_FORWARDED_FOR` (the `HTTP_` prefix is added by the caller).
fn cgi_name(name: &[u8], out: &mut [u8]) {
    for (o, &b) in out.iter_mut().zip(name) {
        *o = if b == b'-' {
            b'_'
        } else {
            b.to_ascii_uppercase()
        };
    }
}

/// Names listed in the request's `Connection` field (lowercase).
struct ConnectionTokens<'a> {
    tokens: Vec<&'a [u8]>,
}

impl<'a> ConnectionTokens<'a> {
    fn new(headers: &'a HeaderMap) -> ConnectionTokens<'a> {
        let mut tokens = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if !token.is_empty() {
                    tokens.push(token);
                }
            }
        }
        ConnectionTokens { tokens }
    }

    fn contains(&self, name: &HeaderName) -> bool {
        self.tokens
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name.as_str().as_bytes()))
    }
}

impl CgiConfig {
    /// Whether a request header may become an `HTTP_*` variable (see [`write_http_headers`]).
    fn forwards_header(&self, name: &HeaderName) -> bool {
        let n = name.as_str();
        if n.contains('_') && !self.underscores_in_headers {
            return false;
        }
        if name == header::AUTHORIZATION {
            return self.pass_authorization;
        }
        !matches!(
            n,
            "proxy"
                | "proxy-authorization"
                | "content-length"
                | "content-type"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
        )
    }
}

/// Encodes pairs, applying user overrides and the total size limit.
struct Writer<'e, S> {
    enc: &'e mut S,
    cfg: &'e CgiConfig,
    total: usize,
}

impl<S: ParamSink> Writer<'_, S> {
    fn put(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        self.put_named(&[name], &[value])
    }

    /// A variable whose value is the concatenation of `value`.
    fn put_parts(&mut self, name: &[u8], value: &[&[u8]]) -> Result<(), Error> {
        self.put_named(&[name], value)
    }

    /// `HTTP_` + `var`.
    fn put_http(&mut self, var: &[u8], value: &[u8]) -> Result<(), Error> {
        self.put_named(&[b"HTTP_", var], &[value])
    }

    fn put_named(&mut self, name: &[&[u8]], value: &[&[u8]]) -> Result<(), Error> {
        if self
            .cfg
            .params
            .iter()
            .any(|(n, _)| eq_parts(name, n.as_bytes()))
        {
            return Ok(());
        }
        self.encode(name, value)
    }

    /// A user-configured parameter: never overridden.
    fn put_unchecked(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        self.encode(&[name], &[value])
    }

    fn encode(&mut self, name: &[&[u8]], value: &[&[u8]]) -> Result<(), Error> {
        let name_len: usize = name.iter().map(|v| v.len()).sum();
        let value_len: usize = value.iter().map(|v| v.len()).sum();
        self.total += encoded_pair_len(name_len, value_len);
        if self.total > self.cfg.max_params_len {
            return Err(Error::msg(
                ErrorKind::RequestHeadersTooLarge,
                format!("CGI parameters exceed {} bytes", self.cfg.max_params_len),
            ));
        }
        self.enc
            .pair_sized(name, name_len, value, value_len)
            .map_err(|err| match err {
                ProtoError::PairTooLarge { .. } => {
                    Error::with(ErrorKind::RequestHeadersTooLarge, err)
                }
                other => Error::with(ErrorKind::BadRequest, other),
            })
    }
}

/// Whether the concatenation of `parts` equals `whole`, without building it.
fn eq_parts(parts: &[&[u8]], whole: &[u8]) -> bool {
    let mut rest = whole;
    for part in parts {
        match rest.strip_prefix(*part) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

fn protocol(version: Version) -> &'static [u8] {
    match version {
        Version::HTTP_09 => b"HTTP/0.9",
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_2 => b"HTTP/2.0",
        Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

/// The host the client asked for: the Host field, else the URI authority.
fn host_of(parts: &Parts) -> Option<&[u8]> {
    if let Some(host) = parts.headers.get(header::HOST) {
        return Some(host.as_bytes());
    }
    parts.uri.authority().map(|a| a.as_str().as_bytes())
}

/// `example.com:8080` → (`example.com`, `8080`); `[::1]:3000` → (`[::1]`, `3000`).
fn split_host_port(host: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let (name, port) = if host.starts_with(b"[") {
        match host.iter().position(|&b| b == b']') {
            Some(end) => {
                let (name, rest) = host.split_at(end + 1);
                (name, rest.strip_prefix(b":"))
            }
            None => (host, None),
        }
    } else {
        match host.iter().rposition(|&b| b == b':') {
            Some(i) => (host.get(..i).unwrap_or_default(), host.get(i + 1..)),
            None => (host, None),
        }
    };
    let port = port.filter(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    let name = (!name.is_empty()).then_some(name);
    (name, port)
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
