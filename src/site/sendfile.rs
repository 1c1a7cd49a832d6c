//! X-Sendfile / X-Accel-Redirect: a script names a file, the gateway serves it.
//!
//! Only files inside allow-listed directories are served, checked after resolving
//! symlinks, so a compromised or buggy script cannot read `/etc/passwd` through it.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use http::header::HeaderName;
use http::{HeaderMap, Response};

use crate::body::FcgiBody;
use crate::cgi::path::CleanPath;
use crate::error::{Error, ErrorKind};

/// An allow-listed directory and the URI prefix that maps to it.
#[derive(Debug, Clone)]
pub(super) struct SendfileDir {
    uri_prefix: String,
    dir: PathBuf,
    canonical: PathBuf,
}

impl SendfileDir {
    pub(super) fn new(uri_prefix: String, dir: PathBuf) -> SendfileDir {
        let canonical = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        let uri_prefix = format!("/{}/", uri_prefix.trim_matches('/'));
        SendfileDir {
            uri_prefix,
            dir,
            canonical,
        }
    }
}

/// What the backend asked for.
#[derive(Debug)]
pub(super) enum Target {
    /// `X-Accel-Redirect`: a URI.
    Uri(String),
    /// `X-Sendfile`: a filesystem path.
    Path(PathBuf),
}

static X_ACCEL_REDIRECT: HeaderName = HeaderName::from_static("x-accel-redirect");
static X_SENDFILE: HeaderName = HeaderName::from_static("x-sendfile");

pub(super) fn requested(headers: &HeaderMap) -> Option<Target> {
    if let Some(v) = headers.get(&X_ACCEL_REDIRECT).and_then(|v| v.to_str().ok()) {
        return Some(Target::Uri(v.to_owned()));
    }
    headers
        .get(&X_SENDFILE)
        .and_then(|v| v.to_str().ok())
        .map(|v| Target::Path(PathBuf::from(v)))
}

fn denied(what: impl std::fmt::Display) -> Error {
    Error::msg(
        ErrorKind::Config,
        format!("X-Sendfile/X-Accel-Redirect target {what} is not in an allowed directory"),
    )
}

/// The file to serve, if it lies in an allowed directory.
pub(super) fn resolve(dirs: &[SendfileDir], target: &Target) -> Result<PathBuf, Error> {
    let candidate = match target {
        Target::Uri(uri) => {
            let path = uri.split('?').next().unwrap_or("");
            let (dir, rest) = dirs
                .iter()
                .find_map(|d| {
                    path.strip_prefix(d.uri_prefix.as_str())
                        .map(|rest| (d, rest))
                })
                .ok_or_else(|| denied(uri))?;
            let rooted = format!("/{rest}");
            let clean = CleanPath::parse(&rooted).map_err(|e| {
                Error::msg(ErrorKind::Config, format!("X-Accel-Redirect {uri}: {e}"))
            })?;
            let mut file = dir.dir.clone();
            for segment in clean.segments() {
                file.push(std::ffi::OsStr::from_bytes(segment));
            }
            file
        }
        Target::Path(path) => {
            if !path.is_absolute() {
                return Err(denied(path.display()));
            }
            path.clone()
        }
    };
    let real = std::fs::canonicalize(&candidate).map_err(|_| {
        Error::msg(
            ErrorKind::NotFound,
            format!("X-Sendfile target {} does not exist", candidate.display()),
        )
    })?;
    if !real.is_file() || !dirs.iter().any(|d| real.starts_with(&d.canonical)) {
        tracing::warn!(target = %candidate.display(), "refusing an X-Sendfile target outside the allowed directories");
        return Err(denied(candidate.display()));
    }
    Ok(real)
}

/// Adds the script's headers to the file response, except those that describe the
/// script's own (empty) body or the hand-off itself.
pub(super) fn merge_headers(
    mut res: Response<FcgiBody>,
    backend: &HeaderMap,
) -> Response<FcgiBody> {
    for (name, value) in backend {
        let n = name.as_str();
        if n.starts_with("x-accel-")
            || n == "x-sendfile"
            || matches!(
                n,
                "content-length"
                    | "content-range"
                    | "accept-ranges"
                    | "etag"
                    | "last-modified"
                    | "content-encoding"
                    | "transfer-encoding"
            )
        {
            continue;
        }
        if n == "content-type" {
            res.headers_mut().insert(name.clone(), value.clone());
        } else {
            res.headers_mut().append(name.clone(), value.clone());
        }
    }
    res
}
