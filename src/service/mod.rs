//! [`FcgiService`]: the tower face of the crate.

mod builder;
#[cfg(test)]
mod builder_docs;
mod future;
mod run;
mod script;
mod send;
mod stats;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use tower_service::Service;

pub use builder::{BuildError, FcgiServiceBuilder};
pub use future::{FallibleFuture, ResponseFuture};
pub use stats::{Failures, Latency, PoolStats, Stats};

use crate::body::FcgiBody;
use crate::cgi::CgiConfig;
use crate::client::Backend;
use crate::client::conn::Connection;
use crate::client::upload::BodyConfig;
use crate::error::{BoxError, Error};
use crate::pool::Pool;

/// A function that turns an error into the response sent to the client.
pub type ErrorHandler = Arc<dyn Fn(&Error) -> Response<FcgiBody> + Send + Sync>;

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
    pub(crate) backend: Backend,
    pub(crate) pool: Pool<Connection>,
    pub(crate) counters: stats::Counters,
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

    /// The state of the connection pool.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.counters.pool_stats(self.inner.pool.stats())
    }

    /// Everything the service counts about its backend: the pool, requests sent,
    /// response heads by status class, failures by cause, queue wait and time to head.
    pub fn stats(&self) -> Stats {
        self.inner.counters.stats(self.inner.pool.stats())
    }

    /// Handles a request and returns the typed error instead of an error response.
    pub fn try_call<B>(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<FcgiBody>, Error>> + Send + 'static
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        run::run(Arc::clone(&self.inner), req, None)
    }

    /// Runs a script already resolved under the document root (for [`PhpSite`](crate::PhpSite)).
    #[cfg(feature = "php")]
    pub(crate) fn call_resolved<B>(
        &self,
        req: Request<B>,
        resolved: crate::cgi::Resolved,
    ) -> impl Future<Output = Result<Response<FcgiBody>, Error>> + Send + 'static
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        run::run(Arc::clone(&self.inner), req, Some(resolved))
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
    /// `tower::retry` and other error-aware middleware.
    pub fn fallible(self) -> Fallible {
        Fallible { inner: self }
    }

    /// The response the service sends for an error (the configured handler, or a short
    /// plain-text response with the mapped status), and the log line that goes with it.
    pub fn error_response(&self, err: &Error) -> Response<FcgiBody> {
        self.inner.error_response(err)
    }
}

impl Inner {
    pub(crate) fn error_response(&self, err: &Error) -> Response<FcgiBody> {
        let status = err.status_code();
        if status.is_server_error() {
            tracing::error!(error = %err, status = status.as_u16(), backend = %self.backend, "FastCGI request failed");
        } else {
            tracing::info!(error = %err, status = status.as_u16(), "FastCGI request refused");
        }
        if let Some(handler) = &self.on_error {
            return handler(err);
        }
        default_error_response(err)
    }
}

/// The default error response: the mapped status and its reason as plain text.
fn default_error_response(err: &Error) -> Response<FcgiBody> {
    let status = err.status_code();
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut res = Response::new(FcgiBody::full(Bytes::from(text)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(value) = err
        .redirect_location()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        res.headers_mut().insert(header::LOCATION, value);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
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
            match run::run(Arc::clone(&inner), req, None).await {
                Ok(res) => Ok(res),
                Err(err) => Ok(inner.error_response(&err)),
            }
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
            .field("backend", &self.inner.backend)
            .field("mode", &self.inner.cgi.mode)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Fallible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fallible").field(&self.inner).finish()
    }
}
