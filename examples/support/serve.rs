//! Serving a router like `axum::serve`, but with what a production gateway needs and
//! `axum::serve` does not expose: bounded buffers per client connection, HTTP/1.1 and
//! HTTP/2 on one port (h2c by the connection preface; over TLS, by ALPN), TLS,
//! `ConnectionInfo` for REMOTE_ADDR/SERVER_ADDR/HTTPS, and a graceful shutdown.
//!
//! Shutdown: when the `shutdown` future completes, the listener is closed (new
//! connections are refused), every connection is told to finish (HTTP/1: the request in
//! flight is answered, then the connection closes; idle keep-alive connections close at
//! once; HTTP/2: GOAWAY, open streams run to completion), and [`serve`] waits for them up
//! to the grace period, then drops whatever is left.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tower_fastcgi::ConnectionInfo;

/// hyper's HTTP/1 read buffer per client connection. hyper's default (about 400 KiB) is
/// what a client uploading faster than the backend reads fills; with hundreds of
/// concurrent uploads that is hundreds of MiB (BENCHMARKS.md). 64 KiB still reads a whole
/// STDIN record's worth per syscall.
pub const MAX_READ_BUF: usize = 64 * 1024;

// HTTP/2 limits, chosen to bound memory per connection the way MAX_READ_BUF does for
// HTTP/1 (hyper's defaults are 1 MiB windows and ~400 KiB send buffers per stream).

/// Streams open at once on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS);
/// nginx's `http2_max_concurrent_streams` default. More are refused by the protocol, not
/// queued.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// Request body bytes a client may send on one stream before the backend has read them
/// (SETTINGS_INITIAL_WINDOW_SIZE): the same bound per upload as MAX_READ_BUF on HTTP/1.
pub const H2_STREAM_WINDOW: u32 = MAX_READ_BUF as u32;
/// Request body bytes unread by the backends across all streams of one connection: 16
/// full stream windows, so one connection holds at most 1 MiB of uploads.
pub const H2_CONNECTION_WINDOW: u32 = 16 * H2_STREAM_WINDOW;
/// The largest request head (decoded header list, SETTINGS_MAX_HEADER_LIST_SIZE): the
/// same as the HTTP/1 read buffer, so a head refused on one protocol is refused on both.
pub const H2_MAX_HEADER_LIST: u32 = MAX_READ_BUF as u32;
/// The largest frame a client may send (SETTINGS_MAX_FRAME_SIZE): the protocol's
/// minimum, 16 KiB; larger frames save little and enlarge every read.
pub const H2_MAX_FRAME: u32 = 16 * 1024;
/// Response bytes buffered per stream before hyper stops polling the body: like
/// MAX_READ_BUF, a slow client holds at most this much of a response per stream.
pub const H2_MAX_SEND_BUF: usize = MAX_READ_BUF;

/// How long in-flight requests get to finish after the shutdown signal, unless
/// `--grace SECS` says otherwise (the one place the default is stated).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// How long a client may take to finish the TLS handshake. Handshakes run on the
/// connection's own task, so a slow one never holds up the accept loop, but it holds a
/// socket: this bounds how long (nginx's `client_header_timeout` covers the same ground).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`serve`] hands each request to. Called by shared reference, as hyper calls its
/// service, so nothing is cloned per request: an axum `Router` (cloned per request, as
/// `axum::serve` does), a boxed tower service (the gateway's layered stack), or the
/// gateway's mount table (`mounts.rs`).
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle(
        &self,
        req: axum::extract::Request,
    ) -> Pin<Box<dyn Future<Output = axum::response::Response> + Send>>;
}

impl Handler for Router {
    fn handle(
        &self,
        req: axum::extract::Request,
    ) -> Pin<Box<dyn Future<Output = axum::response::Response> + Send>> {
        boxed_oneshot(self.clone(), req)
    }
}

/// `svc.oneshot(req)` as a boxed future of the response (the services here never fail).
fn boxed_oneshot<S>(
    svc: S,
    req: axum::extract::Request,
) -> Pin<Box<dyn Future<Output = axum::response::Response> + Send>>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let call = svc.oneshot(req);
    Box::pin(async move {
        match call.await {
            Ok(res) => res,
            Err(never) => match never {},
        }
    })
}

/// A tower stack erased to one type (the gateway's mounts under its layers).
pub type BoxedApp = tower::util::BoxCloneSyncService<
    axum::extract::Request,
    axum::response::Response,
    std::convert::Infallible,
>;

impl Handler for BoxedApp {
    fn handle(
        &self,
        req: axum::extract::Request,
    ) -> Pin<Box<dyn Future<Output = axum::response::Response> + Send>> {
        boxed_oneshot(self.clone(), req)
    }
}

/// How the connections are served.
#[derive(Clone)]
pub struct Options {
    /// TLS on every connection (ALPN `h2`, `http/1.1`), or cleartext.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// How long [`serve`] waits for in-flight requests after the shutdown signal.
    pub grace: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls: None,
            grace: DEFAULT_GRACE,
        }
    }
}

/// How [`serve`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished within the grace period.
    Drained,
    /// The grace period ran out; this many connections were cut.
    GraceExpired { cut: usize },
}

/// Accepts connections from `listener` and serves `app` on each until `shutdown`
/// completes, then drains them (see the module docs).
pub async fn serve<A: Handler>(
    listener: tokio::net::TcpListener,
    app: A,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Stopped {
    let http = Arc::new(builder());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let info = ConnectionInfo {
            remote: Some(remote),
            local: tcp.local_addr().ok(),
            tls: options.tls.is_some(),
            ..ConnectionInfo::default()
        };
        let (http, app, stop) = (http.clone(), app.clone(), stop_rx.clone());
        match options.tls.clone() {
            None => connections.spawn(connection(http, tcp, info, app, stop)),
            Some(tls) => connections.spawn(tls_connection(http, tls, tcp, info, app, stop)),
        };
    }
    // Closing the listener first: from here on a connect is refused, not queued.
    drop(listener);
    let _ = stop_tx.send(true);
    let open = connections.len();
    tracing::info!(
        connections = open,
        grace_secs = options.grace.as_secs_f64(),
        "shutting down: no longer accepting, letting requests in flight finish"
    );
    let drained = tokio::time::timeout(options.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => Stopped::Drained,
        Err(_) => {
            let cut = connections.len();
            tracing::warn!(
                connections = cut,
                "grace period over: closing the connections still open"
            );
            // Aborting drops each connection's service (and its pooled backend
            // connections) now, not whenever the runtime goes.
            connections.shutdown().await;
            Stopped::GraceExpired { cut }
        }
    }
}

/// hyper's HTTP/1 + HTTP/2 builder with the limits above.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .max_buf_size(MAX_READ_BUF)
        .timer(TokioTimer::new());
    http.http2()
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_frame_size(H2_MAX_FRAME)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .timer(TokioTimer::new());
    http
}

/// The TLS handshake, then [`connection`]. A shutdown during the handshake drops the
/// connection: it has no request yet.
async fn tls_connection<A: Handler>(
    http: Arc<auto::Builder<TokioExecutor>>,
    tls: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    info: ConnectionInfo,
    app: A,
    mut stop: watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(tcp));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, remote = ?info.remote, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(remote = ?info.remote, "TLS handshake timed out");
                return;
            }
        },
        () = stopping(&mut stop) => return,
    };
    connection(http, stream, info, app, stop).await;
}

/// Serves one client connection until it ends, finishing gracefully once `stop` says so.
async fn connection<I, A: Handler>(
    http: Arc<auto::Builder<TokioExecutor>>,
    io: I,
    info: ConnectionInfo,
    app: A,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(info);
        let res = app.handle(req.map(axum::body::Body::new));
        async move { Ok::<_, std::convert::Infallible>(res.await) }
    });
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stopping(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = ended {
        tracing::debug!(error = %err, "client connection ended with an error");
    }
}

/// Completes once the server is shutting down (or gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not across an await.
    let _ = stop.wait_for(|&stopping| stopping).await.map(drop);
}
