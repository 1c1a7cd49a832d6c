//! [`FcgiServiceBuilder`]: configuration for [`FcgiService`]; every default comes from
//! [`crate::defaults`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Response;

use super::script::ScriptSettings;
use super::{ErrorHandler, Failure, FcgiService, Inner, Multiplex};
use crate::body::FcgiBody;
use crate::cgi::CgiConfig;
use crate::client::Backend;
use crate::client::upload::{BodyConfig, UnknownLengthBody};
use crate::defaults;
#[cfg(doc)]
use crate::error::Error;
use crate::fleet::{BudgetConfig, HealthConfig};
use crate::pool::PoolConfig;
use crate::service::stats::Counters;
pub use health::HealthCheck;
pub(crate) use health::Probe;

/// Builds an [`FcgiService`].
///
/// The defaults, each a constant in [`defaults`](crate::defaults) (a unit test checks
/// this table against them):
///
/// | setting | default |
/// |---|---|
/// | script mapping | application mode: SCRIPT_NAME = mount prefix, PATH_INFO = rest |
/// | [`document_root`](FcgiServiceBuilder::document_root) | off (application mode) |
/// | [`script_extensions`](FcgiServiceBuilder::script_extensions) | `php` (document-root mode) |
/// | [`index_files`](FcgiServiceBuilder::index_files) | `index.php` (document-root mode) |
/// | [`follow_symlinks_outside_root`](FcgiServiceBuilder::follow_symlinks_outside_root) | off (such scripts are 404) |
/// | [`backends`](FcgiServiceBuilder::backends) / [`add_backend`](FcgiServiceBuilder::add_backend) | one backend (required) |
/// | [`max_connections`](FcgiServiceBuilder::max_connections) | 4 per backend (keep it ≤ the backend's workers) |
/// | [`max_idle`](FcgiServiceBuilder::max_idle) | = `max_connections` |
/// | [`multiplex`](FcgiServiceBuilder::multiplex) | off (`Multiplex::Auto` asks each backend FCGI_GET_VALUES once and multiplexes those that can) |
/// | [`multiplex_buffer`](FcgiServiceBuilder::multiplex_buffer) | 1 MiB unread in memory per multiplexed request |
/// | [`multiplex_spill`](FcgiServiceBuilder::multiplex_spill) | 64 MiB more in a temporary file, then the request is aborted |
/// | [`idle_timeout`](FcgiServiceBuilder::idle_timeout) | 15 s |
/// | [`max_requests_per_connection`](FcgiServiceBuilder::max_requests_per_connection) | unlimited |
/// | [`keep_alive`](FcgiServiceBuilder::keep_alive) | on (FCGI_KEEP_CONN) |
/// | [`queue_timeout`](FcgiServiceBuilder::queue_timeout) | 30 s (then 503) |
/// | [`connect_timeout`](FcgiServiceBuilder::connect_timeout) | 5 s (then 504; refused is 502 at once) |
/// | [`response_head_timeout`](FcgiServiceBuilder::response_head_timeout) | 60 s (then 504) |
/// | [`read_timeout`](FcgiServiceBuilder::read_timeout) | 60 s between records |
/// | [`write_timeout`](FcgiServiceBuilder::write_timeout) | 60 s without request-body progress |
/// | [`total_timeout`](FcgiServiceBuilder::total_timeout) | none |
/// | [`max_request_body`](FcgiServiceBuilder::max_request_body) | 1 GiB (then 413) |
/// | [`unknown_length_body`](FcgiServiceBuilder::unknown_length_body) | spool: 256 KiB in memory, then a temp file |
/// | [`max_response_head`](FcgiServiceBuilder::max_response_head) | 64 KiB (then 502) |
/// | [`max_params_size`](FcgiServiceBuilder::max_params_size) | 64 KiB of CGI parameters (then 431) |
/// | [`server_software`](FcgiServiceBuilder::server_software) | `tower-fastcgi/<version>` |
/// | [`pass_authorization`](FcgiServiceBuilder::pass_authorization) | on (HTTP_AUTHORIZATION, as nginx and Caddy) |
/// | [`underscores_in_headers`](FcgiServiceBuilder::underscores_in_headers) | off (header names with `_` are dropped) |
/// | `Proxy` header | never forwarded (httpoxy) |
/// | [`redirect_status`](FcgiServiceBuilder::redirect_status) | on (`REDIRECT_STATUS=200`) |
/// | [`stderr_log_limit`](FcgiServiceBuilder::stderr_log_limit) | 16 KiB of STDERR logged per request |
/// | [`local_redirects`](FcgiServiceBuilder::local_redirects) | on (RFC 3875 §6.2.2) |
/// | [`on_error`](FcgiServiceBuilder::on_error) | none (default error responses) |
/// | [`intercept_errors`](FcgiServiceBuilder::intercept_errors) | off (backend error pages pass through) |
/// | [`intercept_not_found`](FcgiServiceBuilder::intercept_not_found) | off |
/// | [`backend_max_connections`](FcgiServiceBuilder::backend_max_connections) | = `max_connections` |
/// | [`eject_after_failures`](FcgiServiceBuilder::eject_after_failures) | 3 consecutive failures (with two or more backends) |
/// | [`ejection_backoff`](FcgiServiceBuilder::ejection_backoff) | 1 s, doubling up to 30 s, jittered |
/// | [`health_check`](FcgiServiceBuilder::health_check) | off (passive health only; probes every 10 s when on) |
/// | [`unserved_after`](FcgiServiceBuilder::unserved_after) | 1 s (then a pinned worker is freed and the cap lowered) |
/// | [`retry_budget`](FcgiServiceBuilder::retry_budget) | 20% of successful requests + 10/s |
/// | [`retry_non_idempotent`](FcgiServiceBuilder::retry_non_idempotent) | off (only GET, HEAD, OPTIONS, PUT, DELETE, TRACE) |
/// | [`discover`](FcgiServiceBuilder::discover) | none (the backends set at build) |
/// | [`resolve_every`](FcgiServiceBuilder::resolve_every) | off (a `tcp://` name is one backend, resolved at each connect) |
/// | [`resolver`](FcgiServiceBuilder::resolver) | the system resolver |
///
/// The script mode is chosen explicitly: [`document_root`](FcgiServiceBuilder::document_root)
/// selects document-root mode, and settings of the other mode are a [`BuildError`]
/// rather than silently ignored or switched into.
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
///
/// # Several backends
///
/// [`add_backend`](FcgiServiceBuilder::add_backend) (or
/// [`backends`](FcgiServiceBuilder::backends)) makes the service a fleet: each backend
/// gets its own pool of `max_connections` (or of its own
/// [`backend_max_connections`](FcgiServiceBuilder::backend_max_connections)), requests
/// go to the less loaded of two backends drawn at random (load = requests holding a
/// connection until their response body ends, plus those queued), a backend that fails
/// [`eject_after_failures`](FcgiServiceBuilder::eject_after_failures) times in a row
/// leaves the rotation for a growing [`ejection_backoff`](FcgiServiceBuilder::ejection_backoff),
/// and a request that no backend processed moves to another within the
/// [`retry_budget`](FcgiServiceBuilder::retry_budget). With every backend ejected,
/// requests get 503 with `Retry-After` at once.
///
/// The set can change while the service runs: [`discover`](FcgiServiceBuilder::discover)
/// takes a stream of [`Change`](crate::Change)s (Kubernetes endpoints, Consul, a config
/// reload), and [`resolve_every`](FcgiServiceBuilder::resolve_every) makes each address
/// of a `tcp://name:port` a backend, re-resolved periodically. A backend that joins gets
/// a pool like the others; one that leaves drains: no new requests, those in flight
/// complete, its connections close (see `examples/discovery.rs`).
///
/// ```
/// use tower_fastcgi::{Backend, FcgiService};
///
/// let php = FcgiService::builder()
///     .tcp("10.0.0.1:9000")
///     .add_backend(Backend::tcp("10.0.0.2:9000"))
///     .add_backend("unix:/run/php/php-fpm.sock".parse().unwrap())
///     .document_root("/var/www/html")
///     .max_connections(8)                // per backend
///     .build();
/// # let _ = php;
/// ```
#[must_use]
pub struct FcgiServiceBuilder {
    /// In configuration order; more than one makes a fleet.
    backends: Vec<Backend>,
    health: HealthConfig,
    /// Active health checks, when on.
    health_check: Option<HealthCheck>,
    budget: BudgetConfig,
    retry_non_idempotent: bool,
    unserved_after: Option<Duration>,
    /// `max_connections` overrides for some backends, in the order set.
    backend_caps: Vec<(Backend, usize)>,
    discovery: discover::DiscoverySettings,
    cgi: CgiConfig,
    body: BodyConfig,
    script: ScriptSettings,
    max_connections: usize,
    /// Whether backends are asked FCGI_GET_VALUES.
    multiplex: Multiplex,
    multiplex_buffer: usize,
    multiplex_spill: u64,
    /// `None`: follow `max_connections`.
    max_idle: Option<usize>,
    idle_timeout: Option<Duration>,
    max_requests_per_connection: Option<u32>,
    keep_alive: bool,
    queue_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
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
    /// The program to start and supervise (`builder_spawn.rs`).
    #[cfg(all(feature = "spawn", unix))]
    spawn: Option<crate::spawn::SpawnConfig>,
    /// Where the spawned programs' sockets are (`builder_spawn.rs`): backends there are
    /// never asked FCGI_GET_VALUES nor multiplexed.
    spawned_dir: Option<std::path::PathBuf>,
}

/// An invalid [`FcgiServiceBuilder`] (or [`PhpSiteBuilder`](crate::PhpSiteBuilder))
/// configuration: no backend, a parameter that cannot be encoded, or settings that
/// contradict each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid FcgiService configuration: {}", self.0)
    }
}

impl std::error::Error for BuildError {}

impl BuildError {
    pub(crate) fn new(message: impl Into<String>) -> BuildError {
        BuildError(message.into())
    }
}

impl Default for FcgiServiceBuilder {
    fn default() -> FcgiServiceBuilder {
        FcgiServiceBuilder::new()
    }
}

impl FcgiServiceBuilder {
    pub(crate) fn new() -> FcgiServiceBuilder {
        FcgiServiceBuilder {
            backends: Vec::new(),
            health: HealthConfig {
                eject_after: defaults::EJECT_AFTER_FAILURES,
                backoff: defaults::EJECTION_BACKOFF,
                max_backoff: defaults::EJECTION_BACKOFF_MAX,
                probe_eject_after: defaults::HEALTH_CHECK_FAILURES,
                route_when_all_ejected: defaults::ROUTE_WHEN_ALL_EJECTED,
            },
            health_check: None,
            budget: BudgetConfig {
                percent: defaults::RETRY_BUDGET_PERCENT,
                min_per_sec: defaults::RETRY_BUDGET_MIN_PER_SEC,
            },
            retry_non_idempotent: defaults::RETRY_NON_IDEMPOTENT,
            unserved_after: defaults::UNSERVED_AFTER,
            backend_caps: Vec::new(),
            discovery: discover::DiscoverySettings::default(),
            cgi: CgiConfig::default(),
            body: BodyConfig {
                unknown_length: UnknownLengthBody::default(),
                max_len: defaults::MAX_REQUEST_BODY,
                read_ahead: defaults::READ_AHEAD,
            },
            script: ScriptSettings::default(),
            max_connections: defaults::MAX_CONNECTIONS,
            multiplex: if defaults::MULTIPLEX_AUTO {
                Multiplex::Auto
            } else {
                Multiplex::Off
            },
            multiplex_buffer: defaults::MULTIPLEX_BUFFER,
            multiplex_spill: defaults::MULTIPLEX_SPILL,
            max_idle: None,
            idle_timeout: defaults::IDLE_TIMEOUT,
            max_requests_per_connection: defaults::MAX_REQUESTS_PER_CONNECTION,
            keep_alive: defaults::KEEP_ALIVE,
            queue_timeout: defaults::QUEUE_TIMEOUT,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            max_response_head: defaults::MAX_RESPONSE_HEAD,
            head_timeout: defaults::RESPONSE_HEAD_TIMEOUT,
            read_timeout: defaults::READ_TIMEOUT,
            write_timeout: defaults::WRITE_TIMEOUT,
            total_timeout: defaults::TOTAL_TIMEOUT,
            stderr_limit: defaults::STDERR_LOG_LIMIT,
            local_redirects: defaults::LOCAL_REDIRECTS,
            on_error: None,
            intercept_errors: defaults::INTERCEPT_ERRORS,
            intercept_not_found: defaults::INTERCEPT_NOT_FOUND,
            #[cfg(all(feature = "spawn", unix))]
            spawn: None,
            spawned_dir: None,
        }
    }

    // ---- backend ----

    /// Connect over TCP to `host:port` (TCP_NODELAY is set): the one backend, replacing
    /// any set before. Required: this, [`unix`](FcgiServiceBuilder::unix),
    /// [`backend`](FcgiServiceBuilder::backend) or [`backends`](FcgiServiceBuilder::backends).
    pub fn tcp(self, addr: impl Into<String>) -> FcgiServiceBuilder {
        self.backend(Backend::tcp(addr))
    }

    /// Connect to a Unix domain socket: the one backend, replacing any set before.
    /// Required: this, [`tcp`](FcgiServiceBuilder::tcp), [`backend`](FcgiServiceBuilder::backend)
    /// or [`backends`](FcgiServiceBuilder::backends).
    pub fn unix(self, path: impl Into<PathBuf>) -> FcgiServiceBuilder {
        self.backend(Backend::unix(path))
    }

    /// Connect to `backend`: the one backend, replacing any set before. Required: this,
    /// [`tcp`](FcgiServiceBuilder::tcp), [`unix`](FcgiServiceBuilder::unix) or
    /// [`backends`](FcgiServiceBuilder::backends).
    pub fn backend(mut self, backend: Backend) -> FcgiServiceBuilder {
        self.backends = vec![backend];
        self
    }

    // ---- script mapping: document-root mode ----

    /// Document-root mode (php-fpm, fcgiwrap): the request path names a file under `root`,
    /// which becomes SCRIPT_FILENAME. Path info is split off after the first path segment
    /// that is an existing script (`/index.php/extra`), directories use the index file,
    /// a directory without its trailing slash is redirected (308), and anything else is 404.
    /// Scripts are `*.php` files unless changed with [`script_extensions`](FcgiServiceBuilder::script_extensions)
    /// or [`any_file_is_a_script`](FcgiServiceBuilder::any_file_is_a_script).
    ///
    /// Default: off (application mode). With a document root, the application-mode
    /// settings ([`script_name`](FcgiServiceBuilder::script_name),
    /// [`script_filename`](FcgiServiceBuilder::script_filename),
    /// [`application_document_root`](FcgiServiceBuilder::application_document_root)) are
    /// a [`BuildError`].
    pub fn document_root(mut self, root: impl Into<PathBuf>) -> FcgiServiceBuilder {
        self.script.document_root = Some(root.into());
        self
    }

    /// File extensions (without the dot) that mark scripts in document-root mode; compared
    /// byte for byte. Default: `php` ([`SCRIPT_EXTENSIONS`](defaults::SCRIPT_EXTENSIONS)).
    /// Needs [`document_root`](FcgiServiceBuilder::document_root); contradicts
    /// [`any_file_is_a_script`](FcgiServiceBuilder::any_file_is_a_script).
    pub fn script_extensions<I, S>(mut self, extensions: I) -> FcgiServiceBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.script.extensions = Some(extensions.into_iter().map(Into::into).collect());
        self
    }

    /// In document-root mode, every regular file is a script (CGI directories run by
    /// fcgiwrap), and directories have no index file unless set with
    /// [`index_files`](FcgiServiceBuilder::index_files). Default: off, only
    /// [`script_extensions`](FcgiServiceBuilder::script_extensions) run. Needs
    /// [`document_root`](FcgiServiceBuilder::document_root).
    pub fn any_file_is_a_script(mut self) -> FcgiServiceBuilder {
        self.script.any_file = true;
        self
    }

    /// Index files tried, in order, for a directory path in document-root mode.
    /// Default: `index.php` ([`INDEX_FILES`](defaults::INDEX_FILES)), none with
    /// [`any_file_is_a_script`](FcgiServiceBuilder::any_file_is_a_script). Needs
    /// [`document_root`](FcgiServiceBuilder::document_root).
    pub fn index_files<I, S>(mut self, names: I) -> FcgiServiceBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.script.index = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Allow scripts that are symlinks resolving outside the document root. Default: off
    /// ([`FOLLOW_SYMLINKS_OUTSIDE_ROOT`](defaults::FOLLOW_SYMLINKS_OUTSIDE_ROOT)): such
    /// scripts are 404. Needs [`document_root`](FcgiServiceBuilder::document_root).
    pub fn follow_symlinks_outside_root(mut self, allow: bool) -> FcgiServiceBuilder {
        self.script.follow_symlinks_outside = Some(allow);
        self
    }

    // ---- script mapping: application mode ----

    /// Application mode: SCRIPT_NAME when the service is not mounted with axum's
    /// `nest_service` (which provides the prefix itself). The prefix is stripped from the
    /// path to form PATH_INFO. Default: none (the `nest_service` prefix, else empty).
    pub fn script_name(mut self, prefix: impl Into<String>) -> FcgiServiceBuilder {
        self.script.script_name = Some(prefix.into());
        self
    }

    /// Application mode: a fixed SCRIPT_FILENAME for every request (a front controller
    /// such as `/srv/app/public/index.php`). Default: none (not sent).
    pub fn script_filename(mut self, file: impl Into<PathBuf>) -> FcgiServiceBuilder {
        self.script.script_filename = Some(file.into());
        self
    }

    /// Application mode: DOCUMENT_ROOT to send (and PATH_TRANSLATED to derive).
    /// Default: none (not sent).
    pub fn application_document_root(mut self, root: impl Into<PathBuf>) -> FcgiServiceBuilder {
        self.script.app_document_root = Some(root.into());
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
    ///   [`intercept_errors`](FcgiServiceBuilder::intercept_errors). Default: the backend's response;
    /// - the crate's 404s (no script or file for the path), only with
    ///   [`intercept_not_found`](FcgiServiceBuilder::intercept_not_found). Default: plain 404.
    ///
    /// Directory redirects (308 with `Location`) never reach it. The error has already
    /// been logged when the hook runs. The hook runs for the infallible `Service` only:
    /// [`try_call`](FcgiService::try_call) and [`fallible`](FcgiService::fallible) return
    /// the error instead.
    ///
    /// ```
    /// use tower_fastcgi::{FcgiBody, FcgiService, Failure};
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
    pub fn on_error<F>(mut self, handler: F) -> FcgiServiceBuilder
    where
        F: Fn(&Failure<'_>) -> Option<Response<FcgiBody>> + Send + Sync + 'static,
    {
        self.on_error = Some(Arc::new(handler));
        self
    }

    /// Show the backend's responses with an error status (≥ 400) to the
    /// [`on_error`](FcgiServiceBuilder::on_error) hook, which may replace them (nginx
    /// `fastcgi_intercept_errors`); the replaced body is read and discarded so the
    /// connection can be reused. Default: off (the backend's error pages pass through;
    /// [`INTERCEPT_ERRORS`](defaults::INTERCEPT_ERRORS)).
    pub fn intercept_errors(mut self, on: bool) -> FcgiServiceBuilder {
        self.intercept_errors = on;
        self
    }

    /// Show the crate's own 404s (no script or file for the path; in a
    /// [`PhpSite`](crate::PhpSite) also private paths) to the
    /// [`on_error`](FcgiServiceBuilder::on_error) hook. Default: off (a plain-text 404;
    /// [`INTERCEPT_NOT_FOUND`](defaults::INTERCEPT_NOT_FOUND)).
    pub fn intercept_not_found(mut self, on: bool) -> FcgiServiceBuilder {
        self.intercept_not_found = on;
        self
    }

    /// Builds the service.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (see [`try_build`](FcgiServiceBuilder::try_build)),
    /// with the [`BuildError`]'s message.
    #[allow(clippy::panic)]
    pub fn build(self) -> FcgiService {
        match self.try_build() {
            Ok(service) => service,
            Err(err) => panic!("{err}"),
        }
    }

    /// Builds the service, or explains what is wrong with the configuration: no backend,
    /// a parameter that cannot be encoded, or settings of both script modes.
    pub fn try_build(mut self) -> Result<FcgiService, BuildError> {
        let multiplex = self.multiplex;
        #[cfg(all(feature = "spawn", unix))]
        self.start_spawned()?;
        if self.backends.is_empty() && !self.discovery.is_dynamic() {
            return Err(BuildError(
                "no backend: call .tcp(\"host:port\") or .unix(path)".into(),
            ));
        }
        for (i, backend) in self.backends.iter().enumerate() {
            if self.backends.iter().skip(i + 1).any(|b| b == backend) {
                return Err(BuildError(format!("backend {backend} is listed twice")));
            }
        }
        for (name, value) in &self.cgi.params {
            if name.is_empty() || name.contains('\0') || value.contains('\0') {
                return Err(BuildError(format!("parameter {name:?} cannot be encoded")));
            }
        }
        if let Some((backend, _)) = self
            .backend_caps
            .iter()
            .find(|(b, _)| !self.backends.contains(b) && !self.discovery.is_dynamic())
        {
            return Err(BuildError(format!(
                "backend_max_connections names {backend}, which is not a backend of this service"
            )));
        }
        self.cgi.mode = std::mem::take(&mut self.script).into_mode()?;
        let (fleet, discovery) = self.assemble()?;
        let service = FcgiService {
            inner: Arc::new(Inner {
                fleet,
                discovery,
                retry_non_idempotent: self.retry_non_idempotent,
                unserved_after: self.unserved_after,
                multiplex,
                spawned_dir: self.spawned_dir,
                multiplex_buffer: self.multiplex_buffer,
                multiplex_spill: self.multiplex_spill,
                queue_timeout: self.queue_timeout,
                idle_timeout: self.idle_timeout,
                cgi: self.cgi,
                body: self.body,
                counters: Counters::default(),
                connect_timeout: self.connect_timeout,
                max_response_head: self.max_response_head,
                head_timeout: self.head_timeout,
                read_timeout: self.read_timeout,
                write_timeout: self.write_timeout,
                total_timeout: self.total_timeout,
                stderr_limit: self.stderr_limit,
                bodyless_drain_limit: defaults::BODYLESS_DRAIN_LIMIT,
                local_redirects: self.local_redirects,
                on_error: self.on_error,
                intercept_errors: self.intercept_errors,
                intercept_not_found: self.intercept_not_found,
            }),
        };
        service.inner.discovery.start(&service.inner.fleet);
        Ok(service)
    }

    /// Whether the service would start its backend itself (the connectors refuse that).
    pub(crate) fn spawns(&self) -> bool {
        #[cfg(all(feature = "spawn", unix))]
        return self.spawn.is_some();
        #[cfg(not(all(feature = "spawn", unix)))]
        false
    }

    fn pool_config(&self) -> PoolConfig {
        self.pool_config_capped(self.max_connections)
    }

    /// The pool of a backend allowed `max_open` connections (`max_idle` follows it
    /// unless set, and never exceeds it).
    fn pool_config_capped(&self, max_open: usize) -> PoolConfig {
        PoolConfig {
            max_open,
            max_idle: self.max_idle.unwrap_or(max_open).min(max_open),
            idle_timeout: self.idle_timeout,
            max_uses: self.max_requests_per_connection,
            queue_timeout: self.queue_timeout,
            reuse: self.keep_alive,
        }
    }
}

impl fmt::Debug for FcgiServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcgiServiceBuilder")
            .field("backends", &self.backends)
            .field("script", &self.script)
            .field("pool", &self.pool_config())
            .finish_non_exhaustive()
    }
}

#[path = "builder_discover.rs"]
mod discover;
#[path = "builder_fleet.rs"]
mod fleet;
#[path = "builder_health.rs"]
mod health;
#[path = "builder_limits.rs"]
mod limits;
#[cfg(all(feature = "spawn", unix))]
#[path = "builder_spawn.rs"]
mod spawn;
#[cfg(test)]
#[path = "builder_tests.rs"]
mod tests;
