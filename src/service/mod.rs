//! [`FcgiService`]: the tower face of the crate.

mod backend;
mod builder;
#[cfg(test)]
mod builder_docs;
mod capabilities;
mod discover;
mod dispatch;
mod future;
mod hook;
mod probe;
pub(crate) mod redirect;
pub(crate) mod respond;
mod run;
mod script;
mod send;
mod send_mux;
mod stats;
mod unserved;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

pub use builder::{BuildError, FcgiServiceBuilder, HealthCheck};
pub use capabilities::Multiplex;
pub use future::{FallibleFuture, ResponseFuture};
pub use hook::{Cause, ErrorHandler, Failure};
pub use stats::{BackendStats, Failures, Latency, PoolStats, Probes, Stats};

// The authorizer layer (`crate::authorize`) and the filter (`crate::filter`) send their
// requests through the same fleet, pools, retry and timeouts as the service's own.
pub(crate) use dispatch::send_request;
pub(crate) use run::{FastCgi, build_response, drain};
pub(crate) use send::{Encoded, Head};

use crate::body::FcgiBody;
use crate::cgi::CgiConfig;
use crate::client::upload::BodyConfig;
use crate::error::{BoxError, Error};
use crate::fleet::Fleet;

/// A `tower::Service` that forwards HTTP requests to a FastCGI application.
///
/// It turns each request into FastCGI records (BEGIN_REQUEST, PARAMS with the CGI/1.1
/// environment, STDIN), sends them over a pooled keep-alive connection, and streams the
/// CGI response back as an `http::Response<FcgiBody>`.
///
/// Backend failures become responses (502, 503, 504; see [`Error::status_code`]), so the
/// service's error type is [`Infallible`] and axum accepts it directly. Use
/// [`try_call`](FcgiService::try_call) or [`fallible`](FcgiService::fallible) to get the
/// typed [`Error`] instead.
///
/// Cloning is cheap: clones share the configuration and the connection pool.
///
/// # Example: PHP-FPM beside native axum handlers
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use tower_fastcgi::FcgiService;
///
/// # async fn run() {
/// let php = FcgiService::builder()
///     .unix("/run/php/php-fpm.sock")
///     .document_root("/var/www/html")
///     .build();
///
/// let app = Router::new()
///     .route("/", get(|| async { "hello from Rust" }))
///     .nest_service("/blog", php);
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
/// axum::serve(listener, app).await.unwrap();
/// # }
/// ```
///
/// # Example: a WSGI application (flup) owning a mount point
///
/// ```no_run
/// use axum::Router;
/// use tower_fastcgi::FcgiService;
///
/// // SCRIPT_NAME = "/app", PATH_INFO = the rest of the path.
/// let wsgi = FcgiService::builder().tcp("127.0.0.1:9500").build();
/// let app: Router = Router::new().nest_service("/app", wsgi);
/// ```
#[derive(Clone)]
pub struct FcgiService {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cgi: CgiConfig,
    pub(crate) body: BodyConfig,
    /// The backends, each with its own pool and counters. Shared with the discovery
    /// tasks that change it.
    pub(crate) fleet: Arc<Fleet<backend::BackendPool>>,
    /// What changes the fleet at run time (a discovery stream, DNS).
    pub(crate) discovery: discover::Discovery,
    /// The whole service's counters (each request once, however many backends it tried).
    pub(crate) counters: stats::Counters,
    /// Replay requests that may have run (EOF before the head) on another backend even
    /// when their method is not idempotent.
    pub(crate) retry_non_idempotent: bool,
    /// A request on a new connection with no byte this long, while the backend has
    /// idle connections, frees a worker (see `backend::BackendPool::unserved`).
    pub(crate) unserved_after: Option<Duration>,
    /// Whether backends are asked FCGI_GET_VALUES before their first request, and
    /// whether requests share connections.
    pub(crate) multiplex: Multiplex,
    /// The directory of the spawned programs' sockets: those backends are known (the
    /// supervisor caps each process at what it started) and may serve a single
    /// connection, so they are never asked FCGI_GET_VALUES nor multiplexed.
    pub(crate) spawned_dir: Option<std::path::PathBuf>,
    /// Unread bytes one request may buffer in memory on a multiplexed connection.
    pub(crate) multiplex_buffer: usize,
    /// Unread bytes one such request may have in its spill file beyond that.
    pub(crate) multiplex_spill: u64,
    /// Longest wait for room on a backend's connections (the pool's, and the
    /// multiplexed set's).
    pub(crate) queue_timeout: Option<Duration>,
    /// How long a connection may stay unused before it is closed (the pool's, and a
    /// multiplexed connection carrying no stream).
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) max_response_head: usize,
    pub(crate) head_timeout: Option<Duration>,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) total_timeout: Option<Duration>,
    pub(crate) stderr_limit: usize,
    pub(crate) bodyless_drain_limit: usize,
    pub(crate) local_redirects: bool,
    pub(crate) on_error: Option<ErrorHandler>,
    /// Backend statuses ≥ 400 go to `on_error` too.
    pub(crate) intercept_errors: bool,
    /// The crate's own 404s go to `on_error` too.
    pub(crate) intercept_not_found: bool,
}

impl Inner {
    /// Whether `backend` is one of the programs this service spawned.
    pub(crate) fn is_spawned(&self, backend: &crate::client::Backend) -> bool {
        match (backend, &self.spawned_dir) {
            (crate::client::Backend::Unix(path), Some(dir)) => path.parent() == Some(dir.as_path()),
            _ => false,
        }
    }
}

impl FcgiService {
    /// A builder with the documented defaults; set a backend with
    /// [`tcp`](FcgiServiceBuilder::tcp) or [`unix`](FcgiServiceBuilder::unix).
    pub fn builder() -> FcgiServiceBuilder {
        FcgiServiceBuilder::new()
    }

    /// A service for a TCP backend (`host:port`) with default settings: application
    /// mode, where SCRIPT_NAME is the mount prefix and PATH_INFO the rest of the path.
    pub fn tcp(addr: impl Into<String>) -> FcgiService {
        FcgiServiceBuilder::new().tcp(addr).build()
    }

    /// A service for a Unix-socket backend with default settings (application mode).
    pub fn unix(path: impl Into<std::path::PathBuf>) -> FcgiService {
        FcgiServiceBuilder::new().unix(path).build()
    }

    /// Handles a request and returns the typed error instead of an error response.
    ///
    /// The error is logged, as on every path; the [`on_error`](FcgiServiceBuilder::on_error) hook
    /// does not run (there is no response to replace). Not-founds and directory
    /// redirects are not errors: they come back as their default responses (404, 308).
    pub fn try_call<B>(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<FcgiBody>, Error>> + Send + 'static
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let inner = Arc::clone(&self.inner);
        async move {
            let (parts, body) = req.into_parts();
            let result = redirect::follow(&inner, &redirect::ServiceRoutes, &parts, body).await;
            respond::into_result(&inner, result)
        }
    }

    /// Serves a request routed by `router` (PhpSite's rules) through the same redirect
    /// loop, error hook and default responses as the service's own requests.
    #[cfg(feature = "php")]
    pub(crate) async fn serve_routed<R, B>(&self, router: &R, req: Request<B>) -> Response<FcgiBody>
    where
        R: redirect::Router,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let result = redirect::follow(&self.inner, router, &parts, body).await;
        respond::respond(&self.inner, &parts, result).await
    }

    /// The shared state: configuration, fleet, pools, counters.
    pub(crate) fn shared(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The document root, in document-root mode.
    #[cfg(feature = "php")]
    pub(crate) fn document_root(&self) -> Option<&crate::cgi::path::DocumentRoot> {
        match &self.inner.cgi.mode {
            crate::cgi::ScriptMode::DocumentRoot(root) => Some(root),
            crate::cgi::ScriptMode::Application { .. } => None,
        }
    }

    /// A view of this service whose error type is [`Error`], for `HandleErrorLayer`,
    /// `tower::retry` and other error-aware middleware. Errors are logged as on the
    /// infallible path; the [`on_error`](FcgiServiceBuilder::on_error) hook does not run.
    pub fn fallible(self) -> Fallible {
        Fallible { inner: self }
    }

    /// The default response for an error: its [`status`](Error::status_code) and reason
    /// as one line of plain text (with `Retry-After: 1` on 503). It neither logs nor asks
    /// the [`on_error`](FcgiServiceBuilder::on_error) hook; use it in a `HandleErrorLayer` behind
    /// [`fallible`](FcgiService::fallible).
    pub fn error_response(&self, err: &Error) -> Response<FcgiBody> {
        respond::default_error_response(err)
    }
}

impl<B> Service<Request<B>> for FcgiService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<FcgiBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: backpressure happens per request, in the pool's queue, because axum
    /// drives `poll_ready` and `call` back to back and expects services not to shed load.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        let inner = Arc::clone(&self.inner);
        ResponseFuture::new(async move {
            let (parts, body) = req.into_parts();
            let result = redirect::follow(&inner, &redirect::ServiceRoutes, &parts, body).await;
            Ok(respond::respond(&inner, &parts, result).await)
        })
    }
}

/// [`FcgiService`] with [`Error`] as its error type; see [`FcgiService::fallible`].
#[derive(Clone)]
pub struct Fallible {
    inner: FcgiService,
}

impl<B> Service<Request<B>> for Fallible
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<FcgiBody>;
    type Error = Error;
    type Future = FallibleFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> FallibleFuture {
        FallibleFuture::new(self.inner.try_call(req))
    }
}

impl fmt::Debug for FcgiService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcgiService")
            .field("backends", &format_args!("{}", self.inner.fleet))
            .field("mode", &self.inner.cgi.mode)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Fallible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fallible").field(&self.inner).finish()
    }
}
