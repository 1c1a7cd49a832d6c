//! The client side of the harness: whole responses ([`Reply`]), request bodies, a pooled
//! keep-alive [`HttpClient`] and a cookie-keeping [`Session`].

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client as Hyper, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

use super::forms::{Multipart, form_urlencoded};

/// How long one request may take before the test fails (php-fpm answers in milliseconds).
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

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
