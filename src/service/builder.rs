//! [`Builder`]: configuration for [`FcgiService`], with documented defaults.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Response;

use super::{ErrorHandler, Failure, FcgiService, Inner};
use crate::body::FcgiBody;
use crate::cgi::path::{DocumentRoot, ScriptMatch};
use crate::cgi::{CgiConfig, ScriptMode};
use crate::client::Backend;
use crate::client::upload::{BodyConfig, UnknownLengthBody};
#[cfg(doc)]
use crate::error::Error;
use crate::pool::{Pool, PoolConfig};

/// Builds an [`FcgiService`].
///
/// | setting | default |
/// |---|---|
/// | script mapping | application mode: SCRIPT_NAME = mount prefix, PATH_INFO = rest |
/// | [`document_root`](Builder::document_root) | off; when set: `*.php` scripts, `index.php` |
/// | [`max_connections`](Builder::max_connections) | 4 (keep it ≤ the backend's workers) |
/// | [`max_idle`](Builder::max_idle) | = `max_connections` |
/// | [`idle_timeout`](Builder::idle_timeout) | 15 s |
/// | [`max_requests_per_connection`](Builder::max_requests_per_connection) | unlimited |
/// | [`queue_timeout`](Builder::queue_timeout) | 30 s (then 503) |
/// | [`connect_timeout`](Builder::connect_timeout) | 5 s (then 504; refused is 502 at once) |
/// | [`response_head_timeout`](Builder::response_head_timeout) | 60 s (then 504) |
/// | [`read_timeout`](Builder::read_timeout) | 60 s between records |
/// | [`write_timeout`](Builder::write_timeout) | 60 s without request-body progress |
/// | [`total_timeout`](Builder::total_timeout) | none |
/// | [`max_request_body`](Builder::max_request_body) | 1 GiB (then 413) |
/// | [`unknown_length_body`](Builder::unknown_length_body) | spool: 256 KiB in memory, then a temp file |
/// | [`max_response_head`](Builder::max_response_head) | 64 KiB (then 502) |
/// | [`max_params_size`](Builder::max_params_size) | 64 KiB of CGI parameters (then 431) |
/// | [`pass_authorization`](Builder::pass_authorization) | on (HTTP_AUTHORIZATION, as nginx and Caddy) |
/// | [`underscores_in_headers`](Builder::underscores_in_headers) | off (header names with `_` are dropped) |
/// | `Proxy` header | never forwarded (httpoxy) |
/// | [`redirect_status`](Builder::redirect_status) | on (`REDIRECT_STATUS=200`) |
/// | [`stderr_log_limit`](Builder::stderr_log_limit) | 16 KiB of STDERR logged per request |
/// | [`local_redirects`](Builder::local_redirects) | on (RFC 3875 §6.2.2) |
/// | [`on_error`](Builder::on_error) | none: default error responses |
/// | [`intercept_errors`](Builder::intercept_errors) | off (backend error pages pass through) |
/// | [`intercept_not_found`](Builder::intercept_not_found) | off |
///
/// ```
/// use std::time::Duration;
/// use tower_fastcgi::FcgiService;
///
/// let php = FcgiService::builder()
///     .tcp("127.0.0.1:9000")
///     .document_root("/var/www/html")
///     .max_connections(8)                // pm.max_children = 8
///     .read_timeout(Duration::from_secs(30))
///     .param("APP_ENV", "production")
///     .build();
/// # let _ = php;
/// ```
#[must_use]
pub struct Builder {
    backend: Option<Backend>,
    cgi: CgiConfig,
    body: BodyConfig,
    pool: PoolConfig,
    /// `max_idle` was set explicitly; otherwise it follows `max_connections`.
    max_idle_set: bool,
    script_name: Option<String>,
    script_filename: Option<PathBuf>,
    app_document_root: Option<PathBuf>,
    document_root: Option<DocumentRoot>,
    max_response_head: usize,
    head_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    total_timeout: Option<Duration>,
    stderr_limit: usize,
    local_redirects: bool,
    on_error: Option<ErrorHandler>,
    intercept_errors: bool,
    intercept_not_found: bool,
}

/// An invalid [`Builder`] configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid FcgiService configuration: {}", self.0)
    }
}

impl std::error::Error for BuildError {}

impl BuildError {
    #[cfg(feature = "php")]
    pub(crate) fn new(message: impl Into<String>) -> BuildError {
        BuildError(message.into())
    }
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            backend: None,
            cgi: CgiConfig::default(),
            body: BodyConfig::default(),
            pool: PoolConfig::default(),
            max_idle_set: false,
            script_name: None,
            script_filename: None,
            app_document_root: None,
            document_root: None,
            max_response_head: 64 * 1024,
            head_timeout: Some(Duration::from_secs(60)),
            read_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(60)),
            total_timeout: None,
            stderr_limit: 16 * 1024,
            local_redirects: true,
            on_error: None,
            intercept_errors: false,
            intercept_not_found: false,
        }
    }

    // ---- backend ----

    /// Connect over TCP to `host:port` (TCP_NODELAY is set).
    pub fn tcp(mut self, addr: impl Into<String>) -> Builder {
        self.backend = Some(Backend::tcp(addr));
        self
    }

    /// Connect to a Unix domain socket.
    pub fn unix(mut self, path: impl Into<PathBuf>) -> Builder {
        self.backend = Some(Backend::unix(path));
        self
    }

    /// Connect to `backend`.
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = Some(backend);
        self
    }

    // ---- script mapping ----

    /// Document-root mode (php-fpm, fcgiwrap): the request path names a file under `root`,
    /// which becomes SCRIPT_FILENAME. Path info is split off after the first path segment
    /// that is an existing script (`/index.php/extra`), directories use the index file,
    /// a directory without its trailing slash is redirected (308), and anything else is 404.
    /// Scripts are `*.php` files unless changed with [`script_extensions`](Builder::script_extensions)
    /// or [`any_file_is_a_script`](Builder::any_file_is_a_script).
    pub fn document_root(mut self, root: impl Into<PathBuf>) -> Builder {
        let mut doc = DocumentRoot::new(root.into());
        if let Some(old) = self.document_root.take() {
            doc.index = old.index;
            doc.scripts = old.scripts;
            doc.follow_symlinks_outside = old.follow_symlinks_outside;
        }
        self.document_root = Some(doc);
        self
    }

    /// File extensions (without the dot) that mark scripts in document-root mode; compared
    /// byte for byte. Default: `php`.
    pub fn script_extensions<I, S>(mut self, extensions: I) -> Builder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let doc = self.doc_root();
        doc.scripts = ScriptMatch::Extensions(extensions.into_iter().map(Into::into).collect());
        self
    }

    /// In document-root mode, every regular file is a script (CGI directories run by
    /// fcgiwrap), and directories have no index file unless set with
    /// [`index_files`](Builder::index_files).
    pub fn any_file_is_a_script(mut self) -> Builder {
        let doc = self.doc_root();
        doc.scripts = ScriptMatch::AnyFile;
        doc.index.clear();
        self
    }

    /// Index files tried, in order, for a directory path in document-root mode.
    /// Default: `index.php`.
    pub fn index_files<I, S>(mut self, names: I) -> Builder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let doc = self.doc_root();
        doc.index = names.into_iter().map(Into::into).collect();
        self
    }

    /// Allow scripts that are symlinks resolving outside the document root. Default: off,
    /// such scripts are 404.
    pub fn follow_symlinks_outside_root(mut self, allow: bool) -> Builder {
        self.doc_root().follow_symlinks_outside = allow;
        self
    }

    fn doc_root(&mut self) -> &mut DocumentRoot {
        self.document_root
            .get_or_insert_with(|| DocumentRoot::new(PathBuf::from("/var/www/html")))
    }

    /// Application mode: SCRIPT_NAME when the service is not mounted with axum's
    /// `nest_service` (which provides the prefix itself). The prefix is stripped from the
    /// path to form PATH_INFO.
    pub fn script_name(mut self, prefix: impl Into<String>) -> Builder {
        self.script_name = Some(prefix.into());
        self
    }

    /// Application mode: a fixed SCRIPT_FILENAME for every request (a front controller
    /// such as `/srv/app/public/index.php`).
    pub fn script_filename(mut self, file: impl Into<PathBuf>) -> Builder {
        self.script_filename = Some(file.into());
        self
    }

    /// Application mode: DOCUMENT_ROOT to send (and PATH_TRANSLATED to derive).
    pub fn application_document_root(mut self, root: impl Into<PathBuf>) -> Builder {
        self.app_document_root = Some(root.into());
        self
    }

    // ---- CGI environment ----

    /// A parameter sent with every request; it replaces a computed variable of the same
    /// name (for example `SERVER_NAME`, or `HTTP_HOST` to pin the host). Use it for
    /// `PHP_VALUE`/`PHP_ADMIN_VALUE` overrides: no request data can ever set those.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Builder {
        let name = name.into();
        self.cgi.params.retain(|(n, _)| *n != name);
        self.cgi.params.push((name, value.into()));
        self
    }

    /// SERVER_SOFTWARE. Default: `tower-fastcgi/<version>`.
    pub fn server_software(mut self, value: impl Into<String>) -> Builder {
        self.cgi.server_software = value.into();
        self
    }

    /// A fixed SERVER_NAME (default: the request's Host, else the local address).
    pub fn server_name(mut self, name: impl Into<String>) -> Builder {
        self.cgi.server_name = Some(name.into());
        self
    }

    /// Force `HTTPS=on`/`REQUEST_SCHEME=https` (behind a TLS terminator) or plain HTTP.
    /// Default: detected from [`ConnectionInfo::tls`](crate::ConnectionInfo) or the URI scheme.
    pub fn https(mut self, on: bool) -> Builder {
        self.cgi.https = Some(on);
        self
    }

    /// Forward the `Authorization` header as HTTP_AUTHORIZATION (PHP's `PHP_AUTH_*` need
    /// it). Default: on, like nginx and Caddy; Apache's default is off. `Proxy-Authorization`
    /// is never forwarded.
    pub fn pass_authorization(mut self, on: bool) -> Builder {
        self.cgi.pass_authorization = on;
        self
    }

    /// Forward header names containing `_`. Default: off, because `X_Forwarded_For` and
    /// `X-Forwarded-For` map to the same variable and one could impersonate the other.
    pub fn underscores_in_headers(mut self, on: bool) -> Builder {
        self.cgi.underscores_in_headers = on;
        self
    }

    /// Send `REDIRECT_STATUS=200` (php-cgi's force-redirect check). Default: on.
    pub fn redirect_status(mut self, on: bool) -> Builder {
        self.cgi.redirect_status = on;
        self
    }

    /// Largest total size of the encoded CGI parameters; larger requests get 431.
    pub fn max_params_size(mut self, bytes: usize) -> Builder {
        self.cgi.max_params_len = bytes;
        self
    }

    // ---- bodies ----

    /// Largest request body accepted; larger ones get 413 before the backend is contacted.
    pub fn max_request_body(mut self, bytes: u64) -> Builder {
        self.body.max_len = bytes;
        self
    }

    /// What to do with a request body of unknown length. Default: spool it.
    pub fn unknown_length_body(mut self, policy: UnknownLengthBody) -> Builder {
        self.body.unknown_length = policy;
        self
    }

    /// Largest CGI response head; larger is 502.
    pub fn max_response_head(mut self, bytes: usize) -> Builder {
        self.max_response_head = bytes;
        self
    }

    /// Serve RFC 3875 local redirects internally: a response with `Location: /path` and
    /// no `Status` is answered with the response to a GET of that path (when it lies below
    /// this service's mount; at most 5 hops). Default: on, as the RFC requires (lighttpd
    /// does the same; nginx and Apache's mod_proxy_fcgi send a 302 instead, which is what
    /// `false` gives). PHP never sends such responses: it adds a 302 itself.
    pub fn local_redirects(mut self, on: bool) -> Builder {
        self.local_redirects = on;
        self
    }

    /// STDERR bytes logged per request; the rest is counted.
    pub fn stderr_log_limit(mut self, bytes: usize) -> Builder {
        self.stderr_limit = bytes;
        self
    }

    // ---- pool ----

    /// Most connections open to the backend at once; further requests wait in a queue.
    /// Keep it at or below the backend's worker count (php-fpm `pm.max_children`,
    /// fcgiwrap `-c`): each kept-alive connection occupies a worker even when idle.
    pub fn max_connections(mut self, n: usize) -> Builder {
        self.pool.max_connections = n.max(1);
        if !self.max_idle_set {
            self.pool.max_idle = self.pool.max_connections;
        }
        self
    }

    /// Most idle connections kept (default: as many as [`max_connections`](Builder::max_connections),
    /// so a pool sized to php-fpm's workers stays warm after a burst). Capped at `max_connections`.
    pub fn max_idle(mut self, n: usize) -> Builder {
        self.pool.max_idle = n;
        self.max_idle_set = true;
        self
    }

    /// How long an idle connection is kept (`None`: forever).
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Builder {
        self.pool.idle_timeout = timeout.into();
        self
    }

    /// Close a connection after this many requests (`None`: never). Set it below
    /// php-fpm's `pm.max_requests` to retire connections before php-fpm does.
    pub fn max_requests_per_connection(mut self, n: impl Into<Option<u32>>) -> Builder {
        self.pool.max_requests_per_connection = n.into();
        self
    }

    /// Keep connections open between requests (FCGI_KEEP_CONN). Default: on.
    pub fn keep_alive(mut self, on: bool) -> Builder {
        self.pool.keep_alive = on;
        self
    }

    /// How long a request may wait for a connection when all are busy (then 503).
    pub fn queue_timeout(mut self, timeout: Duration) -> Builder {
        self.pool.queue_timeout = timeout;
        self
    }

    // ---- timeouts ----

    /// How long connecting may take (then 504).
    pub fn connect_timeout(mut self, timeout: Duration) -> Builder {
        self.pool.connect_timeout = timeout;
        self
    }

    /// How long the backend may take to send the complete response head (then 504).
    pub fn response_head_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Builder {
        self.head_timeout = timeout.into();
        self
    }

    /// Longest silence between records from the backend (504 before the head, a body
    /// error after it). Time spent waiting for a slow client does not count.
    pub fn read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Builder {
        self.read_timeout = timeout.into();
        self
    }

    /// Longest time the backend may refuse request-body bytes.
    pub fn write_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Builder {
        self.write_timeout = timeout.into();
        self
    }

    /// A cap on the whole exchange, body included.
    pub fn total_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Builder {
        self.total_timeout = timeout.into();
        self
    }

    // ---- errors ----

    /// The error hook: a custom response when a request fails, or `None` to send the
    /// default one. Default: none (the defaults below).
    ///
    /// It is shown the request's parts (extensions included: under axum's
    /// `nest_service`, [`Failure::original_uri`] is the path the client asked for) and
    /// the [`Cause`](super::Cause):
    ///
    /// - the crate's [`Error`]s, always. Default response: [`Error::status_code`] and a
    ///   one-line plain-text body;
    /// - the backend's own error statuses (≥ 400), only with
    ///   [`intercept_errors`](Builder::intercept_errors). Default: the backend's response;
    /// - the crate's 404s (no script or file for the path), only with
    ///   [`intercept_not_found`](Builder::intercept_not_found). Default: plain 404.
    ///
    /// Directory redirects (308 with `Location`) never reach it. The error has already
    /// been logged when the hook runs. The hook runs for the infallible `Service` only:
    /// [`try_call`](FcgiService::try_call) and [`fallible`](FcgiService::fallible) return
    /// the error instead.
    ///
    /// ```
    /// use tower_fastcgi::{FcgiBody, FcgiService, service::Failure};
    ///
    /// let php = FcgiService::builder()
    ///     .unix("/run/php/php-fpm.sock")
    ///     .on_error(|failure: &Failure<'_>| {
    ///         let page = format!("<h1>{}</h1><p>{}</p>", failure.status(), failure.original_uri());
    ///         let mut res = http::Response::new(FcgiBody::full(page));
    ///         *res.status_mut() = failure.status();
    ///         Some(res)
    ///     })
    ///     .intercept_errors(true)
    ///     .build();
    /// # let _ = php;
    /// ```
    pub fn on_error<F>(mut self, handler: F) -> Builder
    where
        F: Fn(&Failure<'_>) -> Option<Response<FcgiBody>> + Send + Sync + 'static,
    {
        self.on_error = Some(Arc::new(handler));
        self
    }

    /// Show the backend's responses with an error status (≥ 400) to the
    /// [`on_error`](Builder::on_error) hook, which may replace them (nginx
    /// `fastcgi_intercept_errors`); the replaced body is read and discarded so the
    /// connection can be reused. Default: off (the backend's error pages pass through).
    pub fn intercept_errors(mut self, on: bool) -> Builder {
        self.intercept_errors = on;
        self
    }

    /// Show the crate's own 404s (no script or file for the path; in a
    /// [`PhpSite`](crate::PhpSite) also private paths) to the
    /// [`on_error`](Builder::on_error) hook. Default: off (a plain-text 404).
    pub fn intercept_not_found(mut self, on: bool) -> Builder {
        self.intercept_not_found = on;
        self
    }

    /// Builds the service.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (no backend, or a parameter that cannot be
    /// encoded); use [`try_build`](Builder::try_build) to get the error instead.
    #[allow(clippy::panic)]
    pub fn build(self) -> FcgiService {
        match self.try_build() {
            Ok(service) => service,
            Err(err) => panic!("{err}"),
        }
    }

    /// Builds the service, or explains what is wrong with the configuration.
    pub fn try_build(mut self) -> Result<FcgiService, BuildError> {
        let backend = self.backend.take().ok_or_else(|| {
            BuildError("no backend: call .tcp(\"host:port\") or .unix(path)".into())
        })?;
        for (name, value) in &self.cgi.params {
            if name.is_empty() || name.contains('\0') || value.contains('\0') {
                return Err(BuildError(format!("parameter {name:?} cannot be encoded")));
            }
        }
        self.cgi.mode = match self.document_root.take() {
            Some(doc) => ScriptMode::DocumentRoot(doc),
            None => ScriptMode::Application {
                script_name: self.script_name.take(),
                script_filename: self.script_filename.take(),
                document_root: self.app_document_root.take(),
            },
        };
        self.pool.max_idle = self.pool.max_idle.min(self.pool.max_connections);
        Ok(FcgiService {
            inner: Arc::new(Inner {
                cgi: self.cgi,
                body: self.body,
                pool: Pool::new(backend, self.pool),
                max_response_head: self.max_response_head,
                head_timeout: self.head_timeout,
                read_timeout: self.read_timeout,
                write_timeout: self.write_timeout,
                total_timeout: self.total_timeout,
                stderr_limit: self.stderr_limit,
                bodyless_drain_limit: 256 * 1024,
                local_redirects: self.local_redirects,
                on_error: self.on_error,
                intercept_errors: self.intercept_errors,
                intercept_not_found: self.intercept_not_found,
            }),
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("backend", &self.backend)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_idle_follows_max_connections_unless_set() {
        let b = Builder::new().max_connections(8);
        assert_eq!((b.pool.max_connections, b.pool.max_idle), (8, 8));
        let b = Builder::new().max_idle(2).max_connections(8);
        assert_eq!(b.pool.max_idle, 2);
        let b = Builder::new()
            .max_connections(8)
            .max_idle(16)
            .max_connections(3);
        assert_eq!(
            b.pool.max_idle.min(b.pool.max_connections),
            3,
            "capped at build"
        );
    }
}
