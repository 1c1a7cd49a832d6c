//! Helpers for tests that drive `FcgiService` against the in-repo responder
//! (`examples/support/responder.rs`) acting as a well-behaved or misbehaving backend:
//! `use support::fake::*;` brings [`fake`], [`Fake`], the handler helpers and [`send`].

// Relative to this file's directory (`tests/support`).
#[path = "../../examples/support/responder.rs"]
pub mod responder;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_fastcgi::{Backend, Error, FcgiBody, FcgiService};

pub use responder::{After, Listen, Request as AppRequest, Stats, Writer};

/// A responder running on a Unix socket (or TCP port) of its own.
pub struct Fake {
    pub backend: Backend,
    pub stats: Arc<Stats>,
    _dir: tempfile::TempDir,
}

impl Fake {
    pub fn builder(&self) -> tower_fastcgi::FcgiServiceBuilder {
        FcgiService::builder()
            .backend(self.backend.clone())
            .response_head_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(10))
    }

    pub fn connections(&self) -> usize {
        self.stats
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn open(&self) -> usize {
        self.stats.open.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub type Handled = io::Result<(AppRequest, Writer, After)>;

/// Starts a responder on a Unix socket in a fresh temporary directory.
pub async fn fake<H, F>(handler: H) -> Fake
where
    H: Fn(AppRequest, Writer) -> F + Send + Sync + 'static,
    F: Future<Output = Handled> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind unix socket");
    let stats = Arc::new(Stats::default());
    tokio::spawn(responder::serve(
        Listen::Unix(listener, path.clone()),
        handler,
        Arc::clone(&stats),
    ));
    Fake {
        backend: Backend::unix(path),
        stats,
        _dir: dir,
    }
}

/// Starts a responder on 127.0.0.1 with a free port.
pub async fn fake_tcp<H, F>(handler: H) -> Fake
where
    H: Fn(AppRequest, Writer) -> F + Send + Sync + 'static,
    F: Future<Output = Handled> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let stats = Arc::new(Stats::default());
    tokio::spawn(responder::serve(
        Listen::Tcp(listener),
        handler,
        Arc::clone(&stats),
    ));
    Fake {
        backend: Backend::tcp(addr.to_string()),
        stats,
        _dir: tempfile::tempdir().expect("temp dir"),
    }
}

/// A well-behaved answer: `head` (CGI header block without the blank line), then `body`.
pub async fn answer(mut req: AppRequest, mut w: Writer, head: &str, body: &[u8]) -> Handled {
    req.drain_stdin().await?;
    w.stdout(format!("{head}\r\n\r\n").as_bytes()).await?;
    w.stdout(body).await?;
    w.end(0).await?;
    Ok((req, w, After::KeepIfAsked))
}

/// Echoes the request body back.
pub async fn echo(mut req: AppRequest, mut w: Writer) -> Handled {
    let len = req.param("CONTENT_LENGTH").to_owned();
    w.stdout(
        format!("Content-Type: application/octet-stream\r\nX-Declared-Length: {len}\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    while let Some(chunk) = req.read_stdin().await? {
        w.stdout(&chunk).await?;
    }
    w.end(0).await?;
    Ok((req, w, After::KeepIfAsked))
}

pub fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).expect("request")
}

pub fn post(uri: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(uri)
        .body(Full::new(body.into()))
        .expect("request")
}

/// Sends one request through the (infallible) service.
pub async fn send<B>(svc: &FcgiService, req: Request<B>) -> Response<FcgiBody>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<tower_fastcgi::BoxError>,
{
    match svc.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// The whole body, or the error that ended it.
pub async fn body(res: Response<FcgiBody>) -> Result<Bytes, Error> {
    res.into_body().collect().await.map(|c| c.to_bytes())
}

/// Waits (up to 5 s) until `cond` holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
