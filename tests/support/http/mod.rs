//! Real HTTP on both sides, the one harness every end-to-end test uses: [`Server`] serves
//! an axum `Router` (or any tower service) on 127.0.0.1 with a free port and stops on
//! drop; [`HttpClient`] is a pooled keep-alive hyper client aimed at it; [`Session`] adds
//! a cookie jar, like a browser; [`raw`] sends bytes and returns the bytes of the answer,
//! for what a client library would hide or refuse.
//!
//! ```ignore
//! let server = Server::start(Router::new().nest_service("/app", svc)).await;
//! let reply = server.client().get("/app/env.php").await;
//! assert_eq!(reply.status, StatusCode::OK);
//! ```

mod client;
mod forms;
mod raw;

use std::convert::Infallible;
use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use http::Request;
use tokio::sync::oneshot;
use tower_fastcgi::ConnectionInfo;

pub use client::{Chunked, ClientBody, HttpClient, Reply, Session, empty, full, request};
pub use forms::{Multipart, form_urlencoded};
pub use raw::{RawReply, raw, raw_on};

/// How long [`Server::stop`] waits for open connections before it aborts the server.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// An app served on 127.0.0.1. Dropping it shuts the server down gracefully: it stops
/// accepting, lets requests in flight finish and closes idle connections; the runtime
/// ending the test takes whatever is left. [`Server::stop`] waits for that.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Serves `app` the way an application would: with `ConnectionInfo`, so the gateway
    /// sees the peer and local addresses (REMOTE_ADDR, SERVER_PORT, ...).
    pub async fn start(app: Router) -> Server {
        let (listener, addr) = bind().await;
        let (shutdown, signal) = shutdown_signal();
        let make_service = app.into_make_service_with_connect_info::<ConnectionInfo>();
        let served = axum::serve(listener, make_service).with_graceful_shutdown(signal);
        Server {
            addr,
            shutdown: Some(shutdown),
            task: Some(tokio::spawn(report_failure(served))),
        }
    }

    /// Serves `app` without `ConnectionInfo` (as `axum::serve(listener, app)` does), for
    /// what a gateway does when it is not told the connection's addresses.
    pub async fn start_without_connect_info(app: Router) -> Server {
        let (listener, addr) = bind().await;
        let (shutdown, signal) = shutdown_signal();
        let served = axum::serve(listener, app).with_graceful_shutdown(signal);
        Server {
            addr,
            shutdown: Some(shutdown),
            task: Some(tokio::spawn(report_failure(served))),
        }
    }

    /// Serves one tower service for every path (with `ConnectionInfo`).
    pub async fn start_service<S>(service: S) -> Server
    where
        S: tower::Service<Request<axum::body::Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        Server::start(Router::new().fallback_service(service)).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{target}`.
    pub fn url(&self, target: &str) -> String {
        format!("http://{}{target}", self.addr)
    }

    /// A pooled keep-alive client for this server.
    pub fn http(&self) -> HttpClient {
        HttpClient::new(self.addr)
    }

    /// A browser-like session with this server, with an empty cookie jar.
    pub fn client(&self) -> Session {
        Session::new(self.addr)
    }

    /// Shuts down and waits (up to 5 s, then aborts) until the server has stopped.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(STOP_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the listener's address");
    (listener, addr)
}

fn shutdown_signal() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel::<()>();
    // A dropped sender also means "stop": the Server is gone.
    (tx, async move {
        let _ = rx.await;
    })
}

async fn report_failure(served: impl IntoFuture<Output = io::Result<()>>) {
    if let Err(err) = served.await {
        eprintln!("test server stopped: {err}");
    }
}
