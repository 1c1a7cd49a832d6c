//! Where a request goes: its place under the mount point ([`Mount`]), then a [`Route`].
//!
//! The vocabulary: [`path::Lookup`](super::path::Lookup) is what a path finds on disk,
//! [`Script`] is what runs and the CGI path variables it gets, and [`Route`] is the
//! decision for one request (or one local-redirect hop): a script, a file, a redirect or
//! nothing. A route is a value; only a request that cannot be mapped at all (a hostile
//! path) is an `Error`.

use std::borrow::Cow;
use std::path::PathBuf;

use http::request::Parts;

use super::env::Script;
use super::path::{self, CleanPath, DocumentRoot, Lookup};
use super::{CgiConfig, ScriptMode};
use crate::error::{Error, ErrorKind};

/// The decision for one request.
#[derive(Debug)]
pub(crate) enum Route<'a> {
    /// Run a script on the FastCGI backend.
    Script(Script<'a>),
    /// Serve an existing file that is not a script (only `PhpSite` serves files).
    File(PathBuf),
    /// Redirect (308) to this location: a directory asked for without its trailing slash.
    Redirect(String),
    /// Nothing to serve (404), with the reason for the log.
    NotFound(&'static str),
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

    /// The path below the mount, decoded and normalised (the mount point itself is `/`).
    pub(crate) fn clean_rest(&self) -> Result<CleanPath<'a>, Error> {
        let rest = if self.rest.is_empty() { "/" } else { self.rest };
        CleanPath::parse(rest).map_err(bad_path)
    }

    /// The 308 target for a directory asked for without its trailing slash: the original
    /// request target (prefix included) with a slash, query kept.
    pub(crate) fn with_trailing_slash(&self) -> String {
        let (path, query) = match self.request_uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.request_uri, None),
        };
        let mut location = format!("{path}/");
        if let Some(q) = query {
            location.push('?');
            location.push_str(q);
        }
        location
    }
}

pub(crate) fn bad_path(err: path::PathError) -> Error {
    Error::with(ErrorKind::BadRequest, err.to_string())
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
            Ok(Route::Script(Script {
                script_name: decoded_prefix(prefix)?,
                path_info,
                script_filename: script_filename.as_deref().map(Cow::Borrowed),
                document_root: document_root.as_deref(),
            }))
        }
        ScriptMode::DocumentRoot(root) => {
            let clean = mount.clean_rest()?;
            Ok(match root.lookup(&clean) {
                Lookup::Script {
                    script,
                    path_info,
                    filename,
                } => Route::Script(script_under_root(root, mount, script, path_info, filename)?),
                Lookup::File(file) => Route::File(file),
                Lookup::DirectoryWithoutSlash => Route::Redirect(mount.with_trailing_slash()),
                Lookup::PastAFile | Lookup::Missing => Route::NotFound("no script for this path"),
            })
        }
    }
}

/// A script found under a document root: SCRIPT_NAME is the mount prefix plus the
/// script's path below the mount.
pub(crate) fn script_under_root<'a>(
    root: &'a DocumentRoot,
    mount: Mount<'a>,
    script: Vec<u8>,
    path_info: Vec<u8>,
    filename: PathBuf,
) -> Result<Script<'a>, Error> {
    let prefix = decoded_prefix(mount.prefix)?;
    let script_name = if prefix.is_empty() {
        script
    } else {
        let mut name = prefix.into_owned();
        name.extend_from_slice(&script);
        name
    };
    Ok(Script {
        script_name: Cow::Owned(script_name),
        path_info: Cow::Owned(path_info),
        script_filename: Some(Cow::Owned(filename)),
        document_root: Some(root.root.as_path()),
    })
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
        #[cfg_attr(not(feature = "axum"), allow(unused_mut))]
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
            other => panic!("not a script: {other:?}"),
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
        for uri in ["/a%00b", "/x.php/%ZZ", "/a%"] {
            let p = parts(uri, None);
            assert_eq!(
                route(&cfg, Mount::of(&p)).unwrap_err().kind(),
                ErrorKind::BadRequest,
                "{uri}"
            );
        }
    }

    #[test]
    fn directory_redirects_keep_the_prefix_and_query() {
        let p = parts("/docs?x=1", Some("/blog/docs?x=1"));
        let mount = Mount::of(&p);
        #[cfg(feature = "axum")]
        assert_eq!(mount.with_trailing_slash(), "/blog/docs/?x=1");
        #[cfg(not(feature = "axum"))]
        assert_eq!(mount.with_trailing_slash(), "/docs/?x=1");
    }
}
