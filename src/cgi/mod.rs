//! CGI/1.1 over FastCGI: request parts → environment, CGI response head → HTTP head.
//!
//! - [`env`]: the meta-variables (RFC 3875 §4.1 and the de-facto ones), encoded straight
//!   into PARAMS records;
//! - [`path`]: percent-decoding, normalisation and script resolution under a document root;
//! - [`head`]: the response head parser (Status, Location, framing headers, limits).

mod connection;
pub(crate) mod env;
pub(crate) mod head;
pub(crate) mod path;

use std::borrow::Cow;
use std::path::PathBuf;

use http::request::Parts;

use crate::error::{Error, ErrorKind};
pub use connection::ConnectionInfo;
#[cfg(feature = "axum")]
pub use connection::{ConnectionInfoListener, ListenerAddr, ListenerIo};
use env::Target;
use path::{CleanPath, DocumentRoot, Resolution};

/// Extra CGI parameters for one request, set by trusted server-side code (an
/// authentication middleware setting `REMOTE_USER` and `AUTH_TYPE`, for example).
///
/// Insert it as a request extension before the request reaches the FastCGI service.
/// Nothing the client sends can create it; header fields only ever become `HTTP_*`.
///
/// ```
/// use tower_fastcgi::RequestParams;
///
/// let mut req = http::Request::new(());
/// let mut params = RequestParams::new();
/// params.insert("REMOTE_USER", "alice");
/// params.insert("AUTH_TYPE", "Basic");
/// req.extensions_mut().insert(params);
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequestParams {
    params: Vec<(String, Vec<u8>)>,
}

impl RequestParams {
    /// No parameters.
    pub fn new() -> RequestParams {
        RequestParams::default()
    }

    /// Adds (or replaces) a parameter.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        let value = value.into();
        match self.params.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.params.push((name, value)),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }
}

/// How request paths map to scripts.
#[derive(Debug, Clone)]
pub(crate) enum ScriptMode {
    /// One application owns the mount (flup/WSGI, `ProxyPass /app fcgi://...`):
    /// SCRIPT_NAME is the mount prefix, PATH_INFO the rest of the path.
    Application {
        /// SCRIPT_NAME when the service is not nested (stripped from the path).
        script_name: Option<String>,
        /// A fixed SCRIPT_FILENAME (a front controller), if the backend needs one.
        script_filename: Option<PathBuf>,
        /// DOCUMENT_ROOT, if the backend needs one.
        document_root: Option<PathBuf>,
    },
    /// Scripts are files under a directory (php-fpm, fcgiwrap).
    DocumentRoot(DocumentRoot),
}

/// Settings for the CGI environment.
#[derive(Debug, Clone)]
pub(crate) struct CgiConfig {
    pub(crate) mode: ScriptMode,
    pub(crate) server_software: String,
    pub(crate) server_name: Option<String>,
    pub(crate) https: Option<bool>,
    pub(crate) pass_authorization: bool,
    pub(crate) underscores_in_headers: bool,
    pub(crate) redirect_status: bool,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) max_params_len: usize,
}

impl Default for CgiConfig {
    /// Application mode and the values of [`crate::defaults`].
    fn default() -> CgiConfig {
        use crate::defaults;
        CgiConfig {
            mode: ScriptMode::Application {
                script_name: None,
                script_filename: None,
                document_root: None,
            },
            server_software: defaults::SERVER_SOFTWARE.to_owned(),
            server_name: None,
            https: None,
            pass_authorization: defaults::PASS_AUTHORIZATION,
            underscores_in_headers: defaults::UNDERSCORES_IN_HEADERS,
            redirect_status: defaults::REDIRECT_STATUS,
            params: Vec::new(),
            max_params_len: defaults::MAX_PARAMS_SIZE,
        }
    }
}

/// Where a request goes.
#[derive(Debug)]
pub(crate) enum Route<'a> {
    /// To the FastCGI backend, with this script target.
    Script(Target<'a>),
    /// An existing file under the document root that is not a script.
    StaticFile(PathBuf),
}

/// The request's position under its mount point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mount<'a> {
    /// The mount prefix (raw), `""` when not nested.
    pub(crate) prefix: &'a str,
    /// The path below the prefix (raw); `""` when the request named the mount point itself.
    pub(crate) rest: &'a str,
    /// The original request target (path and query), for REQUEST_URI.
    pub(crate) request_uri: &'a str,
}

impl<'a> Mount<'a> {
    /// Reads the mount from axum's `OriginalUri` (when present) and the stripped URI.
    pub(crate) fn of(parts: &'a Parts) -> Mount<'a> {
        let path = parts.uri.path();
        let own = parts.uri.path_and_query().map_or(path, |pq| pq.as_str());
        #[cfg(feature = "axum")]
        if let Some(axum::extract::OriginalUri(original)) =
            parts.extensions.get::<axum::extract::OriginalUri>()
        {
            let original_path = original.path();
            let request_uri = original
                .path_and_query()
                .map_or(original_path, |pq| pq.as_str());
            if original_path == path {
                return Mount {
                    prefix: "",
                    rest: path,
                    request_uri,
                };
            }
            // nest_service strips the prefix; the mount point itself arrives as "/".
            if path == "/" && !original_path.ends_with('/') {
                return Mount {
                    prefix: original_path,
                    rest: "",
                    request_uri,
                };
            }
            if let Some(prefix) = original_path.strip_suffix(path) {
                return Mount {
                    prefix,
                    rest: path,
                    request_uri,
                };
            }
            return Mount {
                prefix: "",
                rest: path,
                request_uri,
            };
        }
        Mount {
            prefix: "",
            rest: path,
            request_uri: own,
        }
    }
}

pub(crate) fn bad_path(err: path::PathError) -> Error {
    Error::with(ErrorKind::BadRequest, err.to_string())
}

fn decoded_prefix(prefix: &str) -> Result<Cow<'_, [u8]>, Error> {
    if prefix.is_empty() {
        return Ok(Cow::Borrowed(b""));
    }
    let clean = CleanPath::parse(prefix).map_err(bad_path)?;
    let bytes = clean.into_bytes();
    // A prefix never keeps a trailing slash: "/blog/" + "/index.php" would double it.
    Ok(match bytes {
        Cow::Borrowed(b) => Cow::Borrowed(b.strip_suffix(b"/").unwrap_or(b)),
        Cow::Owned(mut v) => {
            if v.ends_with(b"/") {
                v.pop();
            }
            Cow::Owned(v)
        }
    })
}

/// Decides where a request goes under the configured mode.
pub(crate) fn route<'a>(cfg: &'a CgiConfig, mount: Mount<'a>) -> Result<Route<'a>, Error> {
    match &cfg.mode {
        ScriptMode::Application {
            script_name,
            script_filename,
            document_root,
        } => {
            let (prefix, rest) = match (mount.prefix, script_name) {
                ("", Some(name)) => match strip_segment_prefix(mount.rest, name) {
                    Some(rest) => (name.as_str(), rest),
                    None => ("", mount.rest),
                },
                (prefix, _) => (prefix, mount.rest),
            };
            let path_info: Cow<'a, [u8]> = if rest.is_empty() {
                Cow::Borrowed(b"")
            } else {
                CleanPath::parse(rest).map_err(bad_path)?.into_bytes()
            };
            Ok(Route::Script(Target {
                script_name: decoded_prefix(prefix)?,
                path_info,
                script_filename: script_filename.as_deref().map(Cow::Borrowed),
                document_root: document_root.as_deref(),
            }))
        }
        ScriptMode::DocumentRoot(root) => {
            let rest = if mount.rest.is_empty() {
                "/"
            } else {
                mount.rest
            };
            let clean = CleanPath::parse(rest).map_err(bad_path)?;
            match root.resolve(&clean) {
                Resolution::Script {
                    script,
                    path_info,
                    filename,
                } => Ok(Route::Script(script_target(
                    root,
                    mount,
                    Resolved {
                        script,
                        path_info,
                        filename,
                    },
                )?)),
                Resolution::StaticFile(file) => Ok(Route::StaticFile(file)),
                Resolution::DirectoryRedirect => Err(directory_redirect(mount)),
                Resolution::NotFound => Err(Error::new(ErrorKind::NotFound)),
            }
        }
    }
}

/// Most internal re-dispatches of one request for RFC 3875 local redirects (lighttpd
/// uses the same limit).
pub(crate) const MAX_LOCAL_REDIRECTS: usize = 5;

/// Marks a response that is an RFC 3875 local redirect (`Location: /path`, no Status) the
/// caller must dispatch itself; it carries the redirected request (GET, no body). Only
/// set on requests whose script the caller resolved (`FcgiService::call_resolved`, used
/// by PhpSite), so that the target passes the caller's rules too.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "php"), allow(dead_code))]
pub(crate) struct LocalRedirect(pub(crate) Parts);

/// A script found under a document root (by [`DocumentRoot::resolve`] or chosen as a
/// front controller).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// URI path of the script below the mount, decoded.
    pub(crate) script: Vec<u8>,
    /// PATH_INFO, decoded.
    pub(crate) path_info: Vec<u8>,
    /// SCRIPT_FILENAME.
    pub(crate) filename: PathBuf,
}

/// The target for a resolved script: SCRIPT_NAME is the mount prefix plus the script path.
pub(crate) fn script_target<'a>(
    root: &'a DocumentRoot,
    mount: Mount<'a>,
    resolved: Resolved,
) -> Result<Target<'a>, Error> {
    let prefix = decoded_prefix(mount.prefix)?;
    let script_name = if prefix.is_empty() {
        Cow::Owned(resolved.script)
    } else {
        let mut name = prefix.into_owned();
        name.extend_from_slice(&resolved.script);
        Cow::Owned(name)
    };
    Ok(Target {
        script_name,
        path_info: Cow::Owned(resolved.path_info),
        script_filename: Some(Cow::Owned(resolved.filename)),
        document_root: Some(root.root.as_path()),
    })
}

/// A 308 to the same path with a trailing slash (query kept).
pub(crate) fn directory_redirect(mount: Mount<'_>) -> Error {
    let (path, query) = match mount.request_uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (mount.request_uri, None),
    };
    let mut location = format!("{path}/");
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    Error::directory_redirect(location)
}

/// `path` without `prefix` when the prefix ends at a segment boundary.
fn strip_segment_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, original: Option<&str>) -> Parts {
        let mut req = http::Request::get(uri).body(()).unwrap();
        if let Some(o) = original {
            #[cfg(feature = "axum")]
            req.extensions_mut()
                .insert(axum::extract::OriginalUri(o.parse().unwrap()));
            #[cfg(not(feature = "axum"))]
            let _ = o;
        }
        req.into_parts().0
    }

    fn app_route(cfg: &CgiConfig, p: &Parts) -> (String, String, String) {
        let mount = Mount::of(p);
        match route(cfg, mount).unwrap() {
            Route::Script(t) => (
                String::from_utf8(t.script_name.to_vec()).unwrap(),
                String::from_utf8(t.path_info.to_vec()).unwrap(),
                mount.request_uri.to_owned(),
            ),
            Route::StaticFile(_) => panic!("static"),
        }
    }

    #[cfg(feature = "axum")]
    #[test]
    fn nest_service_mounts() {
        let cfg = CgiConfig::default();
        // GET /fcgi-test/foo%20bar?x=1 nested at /fcgi-test: axum passes /foo%20bar?x=1.
        let p = parts("/foo%20bar?x=1", Some("/fcgi-test/foo%20bar?x=1"));
        assert_eq!(
            app_route(&cfg, &p),
            (
                "/fcgi-test".into(),
                "/foo bar".into(),
                "/fcgi-test/foo%20bar?x=1".into()
            )
        );
        // The mount point itself.
        let p = parts("/", Some("/fcgi-test"));
        assert_eq!(
            app_route(&cfg, &p),
            ("/fcgi-test".into(), "".into(), "/fcgi-test".into())
        );
        let p = parts("/", Some("/fcgi-test/"));
        assert_eq!(
            app_route(&cfg, &p),
            ("/fcgi-test".into(), "/".into(), "/fcgi-test/".into())
        );
        // Not nested.
        let p = parts("/a/b", Some("/a/b"));
        assert_eq!(
            app_route(&cfg, &p),
            ("".into(), "/a/b".into(), "/a/b".into())
        );
    }

    #[test]
    fn configured_script_name() {
        let cfg = CgiConfig {
            mode: ScriptMode::Application {
                script_name: Some("/app".into()),
                script_filename: None,
                document_root: None,
            },
            ..CgiConfig::default()
        };
        let p = parts("/app/x?q", None);
        assert_eq!(
            app_route(&cfg, &p),
            ("/app".into(), "/x".into(), "/app/x?q".into())
        );
        let p = parts("/application", None);
        assert_eq!(
            app_route(&cfg, &p).0,
            "",
            "prefix must end at a segment boundary"
        );
    }

    #[test]
    fn hostile_path_info_is_400() {
        let cfg = CgiConfig::default();
        let p = parts("/a%00b", None);
        assert_eq!(
            route(&cfg, Mount::of(&p)).unwrap_err().kind(),
            ErrorKind::BadRequest
        );
    }
}
