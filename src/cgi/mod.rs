//! CGI/1.1 over FastCGI: request parts → environment, CGI response head → HTTP head.
//!
//! - [`env`]: the meta-variables (RFC 3875 §4.1 and the de-facto ones), encoded straight
//!   into PARAMS records;
//! - [`path`]: percent-decoding, normalisation and script resolution under a document root;
//! - [`head`]: the response head parser (Status, Location, framing headers, limits);
//! - [`route`]: where a request goes ([`Route`]): the mount point, then a script, a
//!   file, a directory redirect or nothing.

mod connection;
pub(crate) mod env;
pub(crate) mod head;
mod head_end;
pub(crate) mod path;
pub(crate) mod route;
pub(crate) mod sink;
pub(crate) mod text;

use std::path::PathBuf;

pub use connection::ConnectionInfo;
#[cfg(feature = "axum")]
pub use connection::{ConnectionInfoListener, ListenerAddr, ListenerIo};
use path::DocumentRoot;
pub(crate) use route::{Mount, Route, route};

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
