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

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client as Hyper, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tower_fastcgi::ConnectionInfo;

pub use super::forms::{Multipart, form_urlencoded};

/// How long one request may take before the test fails (php-fpm answers in milliseconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

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

/// A whole response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status line's reason phrase when it is not the canonical one for the code.
    pub custom_reason: Option<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header as a string ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The reason phrase of the status line as sent ("" if there was none and the code
    /// has no canonical one).
    pub fn reason(&self) -> &str {
        match &self.custom_reason {
            Some(reason) => reason,
            None => self.status.canonical_reason().unwrap_or(""),
        }
    }

    /// Reads a whole response, keeping what hyper tells about its status line.
    pub async fn read(res: Response<Incoming>) -> Result<Reply, hyper::Error> {
        let (parts, body) = res.into_parts();
        let custom_reason = parts
            .extensions
            .get::<hyper::ext::ReasonPhrase>()
            .map(|reason| String::from_utf8_lossy(reason.as_bytes()).into_owned());
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            custom_reason,
        })
    }
}

/// A request body sent in the given chunks with no length (HTTP/1.1 chunked encoding).
pub struct Chunked(VecDeque<Bytes>);

impl Chunked {
    pub fn new<I: IntoIterator<Item = Bytes>>(chunks: I) -> Chunked {
        Chunked(chunks.into_iter().collect())
    }
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// The body type of every client request (build it with [`full`], [`empty`] or
/// `Chunked::new(..).boxed()`).
pub type ClientBody = BoxBody<Bytes, Infallible>;

/// A body of known length.
pub fn full(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into()).boxed()
}

/// An empty body (`Content-Length: 0` where the method has a body).
pub fn empty() -> ClientBody {
    full(Bytes::new())
}

/// A pooled HTTP/1.1 client (hyper's, keeping connections alive) for one server; cheap to
/// clone, and clones share the pool.
#[derive(Clone)]
pub struct HttpClient {
    hyper: Hyper<HttpConnector, ClientBody>,
    addr: SocketAddr,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> HttpClient {
        HttpClient {
            hyper: Hyper::builder(TokioExecutor::new()).build_http(),
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` (its URI may be just a path and query: it is then sent to this
    /// client's server) and returns the response with its body unread.
    pub async fn request(
        &self,
        mut req: Request<ClientBody>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        if req.uri().authority().is_none() {
            let uri = format!("http://{}{}", self.addr, req.uri());
            *req.uri_mut() = uri.parse::<Uri>().expect("a request target");
        }
        self.hyper.request(req).await
    }

    /// Sends `req` and reads the whole response; a failure or no answer in 20 s fails the
    /// test.
    pub async fn fetch(&self, req: Request<ClientBody>) -> Reply {
        let what = format!("{} {}", req.method(), req.uri());
        let exchange = async {
            let res = self.request(req).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Reply::read(res).await?)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(err)) => panic!("{what}: {err}"),
            Err(_) => panic!("{what}: no complete response in {REQUEST_TIMEOUT:?}"),
        }
    }

    /// GET of `target`, read whole.
    pub async fn get(&self, target: &str) -> Reply {
        self.fetch(
            request(Method::GET, target)
                .body(empty())
                .expect("a request"),
        )
        .await
    }
}

/// A request to `target` (a path and query, or a whole URL); set the body with [`full`],
/// [`empty`] or [`Chunked`].
pub fn request(method: Method, target: &str) -> http::request::Builder {
    Request::builder().method(method).uri(target)
}

/// A browser-like session with one server: an [`HttpClient`] and a cookie jar (name →
/// value; paths, domains and expiry dates other than "already expired" are ignored).
pub struct Session {
    http: HttpClient,
    cookies: BTreeMap<String, String>,
}

impl Session {
    pub fn new(addr: SocketAddr) -> Session {
        Session {
            http: HttpClient::new(addr),
            cookies: BTreeMap::new(),
        }
    }

    pub fn cookies(&self) -> &BTreeMap<String, String> {
        &self.cookies
    }

    /// Sends `req` (its URI is a path and query) with the jar's cookies, reads the whole
    /// response and remembers the cookies it sets.
    pub async fn send(&mut self, mut req: Request<ClientBody>) -> Reply {
        if !self.cookies.is_empty() && !req.headers().contains_key(header::COOKIE) {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            req.headers_mut().insert(
                header::COOKIE,
                HeaderValue::from_str(&jar.join("; ")).expect("cookie header"),
            );
        }
        let reply = self.http.fetch(req).await;
        for value in reply.headers.get_all(header::SET_COOKIE) {
            self.remember(value.to_str().unwrap_or(""));
        }
        reply
    }

    fn remember(&mut self, set_cookie: &str) {
        let mut attributes = set_cookie.split(';').map(str::trim);
        let Some((name, value)) = attributes.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let expired = value == "deleted"
            || attributes.any(|a| {
                let a = a.to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-") || a.contains("1970")
            });
        if expired {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }

    /// A request to this server (set the body with [`full`] or [`Chunked`]).
    pub fn request(method: Method, target: &str) -> http::request::Builder {
        request(method, target)
    }

    pub async fn get(&mut self, target: &str) -> Reply {
        self.get_with(target, &[]).await
    }

    pub async fn get_with(&mut self, target: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = request(Method::GET, target);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(empty()).expect("request")).await
    }

    /// POST of an `application/x-www-form-urlencoded` form.
    pub async fn post_form(&mut self, target: &str, fields: &[(&str, &str)]) -> Reply {
        let req = request(Method::POST, target)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(full(form_urlencoded(fields)))
            .expect("request");
        self.send(req).await
    }

    /// POST of a `multipart/form-data` form.
    pub async fn post_multipart(&mut self, target: &str, form: &Multipart) -> Reply {
        let (content_type, body) = form.encode();
        let req = request(Method::POST, target)
            .header(header::CONTENT_TYPE, content_type)
            .body(full(body))
            .expect("request");
        self.send(req).await
    }
}

/// What came back on a raw connection: every byte until the server closed it.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub bytes: Vec<u8>,
}

impl RawReply {
    /// The first line, `HTTP/1.1 200 OK` ("" if nothing came back).
    pub fn status_line(&self) -> String {
        self.text().lines().next().unwrap_or_default().to_owned()
    }

    /// Everything after the first blank line (the body, still chunk-encoded if it was).
    pub fn body(&self) -> &[u8] {
        match self.bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(at) => &self.bytes[at + 4..],
            None => &[],
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Connects to `addr`, writes `request` as is and reads until the server closes (send
/// `Connection: close`). Errors end the exchange early instead of failing the test: a
/// server may answer and close before it has read everything, and what it answered is
/// what the test checks.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> RawReply {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the test server");
    raw_on(&mut stream, request).await
}

/// [`raw`] on a connection the test opened itself (to know its local port, say).
pub async fn raw_on(stream: &mut tokio::net::TcpStream, request: &[u8]) -> RawReply {
    let exchange = async {
        let _ = stream.write_all(request).await;
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        bytes
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(bytes) => RawReply { bytes },
        Err(_) => panic!("raw request: the server did not close in {REQUEST_TIMEOUT:?}"),
    }
}
