//! Real HTTP on both sides, for end-to-end tests of a whole site: [`Server`] runs an axum
//! `Router` on 127.0.0.1 (a free port, stopped on drop) and [`Client`] talks to it with
//! hyper, keeping cookies like a browser session would.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper_util::client::legacy::{Client as Hyper, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower_fastcgi::ConnectionInfo;

/// How long one request may take before the test fails (php-fpm answers in milliseconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// An axum app served on 127.0.0.1; the server task is aborted on drop.
pub struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves `app` the way an application would (with `ConnectionInfo`, so the backend
    /// sees REMOTE_ADDR and SERVER_PORT).
    pub async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<ConnectionInfo>(),
            )
            .await;
            if let Err(err) = served {
                eprintln!("test server stopped: {err}");
            }
        });
        Server { addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client for this server, with an empty cookie jar.
    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
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

pub type ClientBody = BoxBody<Bytes, Infallible>;

/// An HTTP/1.1 client bound to one server, with a cookie jar (name → value; paths, domains
/// and expiry dates other than "already expired" are ignored).
pub struct Client {
    hyper: Hyper<HttpConnector, ClientBody>,
    addr: SocketAddr,
    cookies: BTreeMap<String, String>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            hyper: Hyper::builder(TokioExecutor::new()).build_http(),
            addr,
            cookies: BTreeMap::new(),
        }
    }

    pub fn cookies(&self) -> &BTreeMap<String, String> {
        &self.cookies
    }

    /// Sends `req` (its URI is a path and query), with the jar's cookies and a Host header.
    pub async fn send(&mut self, mut req: Request<ClientBody>) -> Reply {
        let target = req.uri().to_string();
        let uri = format!("http://{}{target}", self.addr);
        *req.uri_mut() = uri.parse().expect("request target");
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
        let method = req.method().clone();
        let exchange = async {
            let res = self.hyper.request(req).await?;
            let (parts, body) = res.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(done)) => done,
            Ok(Err(err)) => panic!("{method} {target}: {err}"),
            Err(_) => panic!("{method} {target}: no complete response in {REQUEST_TIMEOUT:?}"),
        };
        for value in parts.headers.get_all(header::SET_COOKIE) {
            self.remember(value.to_str().unwrap_or(""));
        }
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
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
        Request::builder().method(method).uri(target)
    }

    pub async fn get(&mut self, target: &str) -> Reply {
        self.get_with(target, &[]).await
    }

    pub async fn get_with(&mut self, target: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = Client::request(Method::GET, target);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(full("")).expect("request")).await
    }

    /// POST of an `application/x-www-form-urlencoded` form.
    pub async fn post_form(&mut self, target: &str, fields: &[(&str, &str)]) -> Reply {
        let req = Client::request(Method::POST, target)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(full(form_urlencoded(fields)))
            .expect("request");
        self.send(req).await
    }

    /// POST of a `multipart/form-data` form.
    pub async fn post_multipart(&mut self, target: &str, form: &Multipart) -> Reply {
        let (content_type, body) = form.encode();
        let req = Client::request(Method::POST, target)
            .header(header::CONTENT_TYPE, content_type)
            .body(full(body))
            .expect("request");
        self.send(req).await
    }
}

/// A body of known length.
pub fn full(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into()).boxed()
}

/// `a=1&b=x+y`, percent-encoding everything but unreserved characters.
pub fn form_urlencoded(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", form_escape(name), form_escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A `multipart/form-data` body under construction.
#[derive(Debug, Default, Clone)]
pub struct Multipart {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
struct Part {
    name: String,
    /// File name and content type, for a file.
    file: Option<(String, String)>,
    data: Vec<u8>,
}

impl Multipart {
    pub fn new() -> Multipart {
        Multipart::default()
    }

    pub fn field(mut self, name: &str, value: &str) -> Multipart {
        self.parts.push(Part {
            name: name.to_owned(),
            file: None,
            data: value.as_bytes().to_vec(),
        });
        self
    }

    pub fn file(
        mut self,
        name: &str,
        filename: &str,
        content_type: &str,
        data: &[u8],
    ) -> Multipart {
        self.parts.push(Part {
            name: name.to_owned(),
            file: Some((filename.to_owned(), content_type.to_owned())),
            data: data.to_vec(),
        });
        self
    }

    /// The Content-Type (with its boundary) and the body.
    pub fn encode(&self) -> (String, Vec<u8>) {
        let boundary = "----tower-fastcgi-test-7d1f0c9a2b";
        let mut body = Vec::new();
        for Part { name, file, data } in &self.parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file {
                Some((filename, content_type)) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                         Content-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }
}
