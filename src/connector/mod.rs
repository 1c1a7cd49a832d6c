//! SCGI and uwsgi: the other connector protocols, on the same CGI layer as FastCGI.
//!
//! A protocol is a small module that encodes the CGI environment and frames the
//! request body ([`scgi`], [`uwsgi`]); everything else is shared with [`FcgiService`]:
//! the builder and its settings, routing (application or document-root mode), the
//! environment (`cgi::env`, through a `ParamSink`), the response head parser (in its
//! stream dialect, which also accepts an `HTTP/1.x` status line), bodies read ahead or
//! spooled, local redirects, timeouts, the error responses, the error hook and the
//! failure table.
//!
//! What differs, because the protocols have no framing for the response:
//! - **One connection per request.** The response ends when the server closes the
//!   connection (SCGI says so; uwsgi has no end marker either, and uWSGI closes after
//!   each request), so nothing is pooled: `max_idle`, `idle_timeout`, `keep_alive` and
//!   `max_requests_per_connection` do not apply. `max_connections` (per backend) and
//!   `queue_timeout` do: they cap the connections in flight and queue the rest.
//! - **A truncated body is only detectable with a Content-Length**: a connection that
//!   closes short of the length the backend declared is a body error; without one, EOF
//!   is the end.
//! - **CONTENT_LENGTH is always sent** (SCGI requires it, first, even "0"), so a body
//!   of unknown length is spooled to learn it; `unknown_length_body(Stream)` is a
//!   [`BuildError`].
//! - **No retry on another backend**: without an end-of-request record there is no way
//!   to tell a request that never ran from one that did. Backends still share the
//!   fleet's passive health (ejection after failures).
//! - No STDERR channel: the servers log themselves.
//!
//! AJP (flup's third connector, Tomcat's `ajp13`) is not offered. It would fit the
//! same shape, but it is more than an encoder: a binary packet protocol (4-byte
//! `0x1234` packets of at most 8 KiB), request attributes and coded header names, a
//! body sent in `GET_BODY_CHUNK`-requested chunks (the server pulls), a response as
//! `SEND_HEADERS` / `SEND_BODY_CHUNK` / `END_RESPONSE` messages with a `reuse` flag, so
//! connections are pooled as for FastCGI, and a CPING/CPONG probe. It needs its own
//! decoder and an exchange like `client::Exchange`, not the byte-stream one here.

mod exchange;
pub mod scgi;
mod transport;
pub mod uwsgi;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

pub use scgi::Scgi;
pub use uwsgi::Uwsgi;

use crate::body::FcgiBody;
use crate::cgi::CgiConfig;
use crate::cgi::env::{self, ParamSink, RequestInfo};
use crate::client::upload::UnknownLengthBody;
use crate::error::{BoxError, Error};
use crate::service::redirect::{self, follow_via};
use crate::service::{
    BackendStats, BuildError, FcgiService, FcgiServiceBuilder, PoolStats, ResponseFuture, Stats,
    respond,
};
use transport::Connector;

// The sealed-trait pattern: `Encode` is public in name only (its module is private),
// so its crate-private argument types never reach a user; the lint cannot see that.
#[allow(private_interfaces)]
mod sealed {
    /// How a protocol frames the request head; implemented in this module only.
    pub trait Encode {
        /// For logs and `Debug`.
        const NAME: &'static str;

        /// Whether to shut the write side down after a non-empty body. The connection
        /// carries one request either way; EOF lets a server that reads its input to
        /// the end (flup's SCGI server hands the raw socket to the application as
        /// `wsgi.input` when CONTENT_LENGTH is not 0) finish instead of waiting.
        /// Without a body there is nothing to read (flup gives an empty `wsgi.input`,
        /// uWSGI reads CONTENT_LENGTH bytes) and no `shutdown(2)` is sent: it would
        /// make us the side that closes first, which leaves every connection's
        /// TIME_WAIT on our ephemeral ports (nginx never half-closes).
        const HALF_CLOSE: bool;

        /// The whole request head, ready to write, for a body of `content_length` bytes.
        fn encode(
            cfg: &crate::cgi::CgiConfig,
            req: &crate::cgi::env::RequestInfo<'_>,
        ) -> Result<bytes::Bytes, crate::error::Error>;
    }
}

/// A connector protocol: [`Scgi`] or [`Uwsgi`]. Sealed.
pub trait Protocol: sealed::Encode + Send + Sync + 'static {}

/// A head being built pair by pair, then closed with the protocol's framing.
pub(crate) trait Framing: ParamSink {
    fn finish(self) -> Result<Bytes, Error>;
}

fn encode_with<H: Framing>(
    head: H,
    cfg: &CgiConfig,
    req: &RequestInfo<'_>,
) -> Result<Bytes, Error> {
    let mut head = head;
    env::write_params(&mut head, cfg, req)?;
    head.finish()
}

#[allow(private_interfaces)]
impl sealed::Encode for Scgi {
    const NAME: &'static str = "SCGI";
    const HALF_CLOSE: bool = true;
    fn encode(cfg: &CgiConfig, req: &RequestInfo<'_>) -> Result<Bytes, Error> {
        encode_with(
            scgi::ScgiHead::new(req.content_length.unwrap_or(0)),
            cfg,
            req,
        )
    }
}
impl Protocol for Scgi {}

#[allow(private_interfaces)]
impl sealed::Encode for Uwsgi {
    const NAME: &'static str = "uwsgi";
    const HALF_CLOSE: bool = true;
    fn encode(cfg: &CgiConfig, req: &RequestInfo<'_>) -> Result<Bytes, Error> {
        encode_with(
            uwsgi::UwsgiHead::new(req.content_length.unwrap_or(0)),
            cfg,
            req,
        )
    }
}
impl Protocol for Uwsgi {}

/// A `tower::Service` that forwards HTTP requests to an SCGI or uwsgi server, built
/// from the same [`FcgiServiceBuilder`] as [`FcgiService`]:
/// moving an application between protocols is one call,
/// [`build_scgi`](FcgiServiceBuilder::build_scgi) or
/// [`build_uwsgi`](FcgiServiceBuilder::build_uwsgi) instead of `build`.
///
/// Responses, errors and the error hook behave as for `FcgiService` (see the module
/// docs of [`connector`](crate::connector) for what differs: one connection per request).
///
/// ```no_run
/// use axum::Router;
/// use tower_fastcgi::{FcgiService, ScgiService, UwsgiService};
///
/// // flup's or uWSGI's SCGI server, and uWSGI's native protocol (nginx `uwsgi_pass`).
/// let scgi: ScgiService = FcgiService::builder().tcp("127.0.0.1:4000").build_scgi();
/// let uwsgi: UwsgiService = FcgiService::builder().unix("/run/app.sock").build_uwsgi();
/// let app: Router = Router::new()
///     .nest_service("/scgi", scgi)
///     .nest_service("/uwsgi", uwsgi);
/// ```
pub struct StreamService<P> {
    /// The FastCGI service the builder made: its settings, fleet and counters. Its pools
    /// hold no connection here, only capacity: each request takes a slot for its own
    /// connection, so `max_connections` and `queue_timeout` cap and queue as for FastCGI.
    fcgi: FcgiService,
    protocol: PhantomData<fn() -> P>,
}

/// An SCGI client service; see [`StreamService`].
pub type ScgiService = StreamService<Scgi>;
/// A uwsgi-protocol client service; see [`StreamService`].
pub type UwsgiService = StreamService<Uwsgi>;

impl<P> Clone for StreamService<P> {
    fn clone(&self) -> Self {
        StreamService {
            fcgi: self.fcgi.clone(),
            protocol: PhantomData,
        }
    }
}

impl<P: Protocol> StreamService<P> {
    /// Handles a request and returns the typed error instead of an error response (the
    /// error is logged; the error hook does not run), as
    /// [`FcgiService::try_call`](crate::FcgiService::try_call).
    pub fn try_call<B>(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<FcgiBody>, Error>> + Send + 'static
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let inner = Arc::clone(self.fcgi.shared());
        async move {
            let (parts, body) = req.into_parts();
            let transport = Connector::<P>::new();
            let result =
                follow_via(&inner, &transport, &redirect::ServiceRoutes, &parts, body).await;
            respond::into_result(&inner, result)
        }
    }

    /// The default response for an error, as
    /// [`FcgiService::error_response`](crate::FcgiService::error_response).
    pub fn error_response(&self, err: &Error) -> Response<FcgiBody> {
        respond::default_error_response(err)
    }

    /// Connections in flight (`open`, `busy`) and requests queued for one (`waiting`),
    /// added up over the backends; nothing is ever idle or reused.
    pub fn pool_stats(&self) -> PoolStats {
        self.fcgi.pool_stats()
    }

    /// The counters of [`FcgiService::stats`](crate::FcgiService::stats).
    pub fn stats(&self) -> Stats {
        self.fcgi.stats()
    }

    /// The counters of [`FcgiService::backend_stats`](crate::FcgiService::backend_stats).
    pub fn backend_stats(&self) -> Vec<BackendStats> {
        self.fcgi.backend_stats()
    }
}

impl<P: Protocol, B> Service<Request<B>> for StreamService<P>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<FcgiBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready, as `FcgiService`.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        let inner = Arc::clone(self.fcgi.shared());
        ResponseFuture::new(async move {
            let (parts, body) = req.into_parts();
            let transport = Connector::<P>::new();
            let result =
                follow_via(&inner, &transport, &redirect::ServiceRoutes, &parts, body).await;
            Ok(respond::respond(&inner, &parts, result).await)
        })
    }
}

impl<P: Protocol> fmt::Debug for StreamService<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamService")
            .field("protocol", &<P as sealed::Encode>::NAME)
            .field("backends", &format_args!("{}", self.fcgi.shared().fleet))
            .field("mode", &self.fcgi.shared().cgi.mode)
            .finish_non_exhaustive()
    }
}

impl FcgiServiceBuilder {
    /// Builds an [`ScgiService`] with these settings instead of a FastCGI service.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (see [`try_build_stream`](FcgiServiceBuilder::try_build_stream)).
    pub fn build_scgi(self) -> ScgiService {
        self.build_stream()
    }

    /// Builds a [`UwsgiService`] with these settings instead of a FastCGI service.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (see [`try_build_stream`](FcgiServiceBuilder::try_build_stream)).
    pub fn build_uwsgi(self) -> UwsgiService {
        self.build_stream()
    }

    #[allow(clippy::panic)]
    fn build_stream<P: Protocol>(self) -> StreamService<P> {
        match self.try_build_stream() {
            Ok(service) => service,
            Err(err) => panic!("{err}"),
        }
    }

    /// Builds a connector service for protocol `P`, or explains what is wrong: the
    /// errors of [`try_build`](FcgiServiceBuilder::try_build), plus
    /// `unknown_length_body(Stream)` (SCGI and uwsgi need a CONTENT_LENGTH) and
    /// `spawn` (it starts FastCGI programs).
    pub fn try_build_stream<P: Protocol>(self) -> Result<StreamService<P>, BuildError> {
        if self.spawns() {
            return Err(BuildError::new(
                "spawn starts FastCGI programs; it cannot be used with SCGI or uwsgi",
            ));
        }
        let fcgi = self.try_build()?;
        if fcgi.shared().body.unknown_length == UnknownLengthBody::Stream {
            return Err(BuildError::new(
                "unknown_length_body(Stream) cannot be used with SCGI or uwsgi: \
                 they need a CONTENT_LENGTH (use Spool or Reject)",
            ));
        }
        Ok(StreamService {
            fcgi,
            protocol: PhantomData,
        })
    }
}
