//! `ScgiService` and `UwsgiService` end to end against real servers: flup's SCGI
//! WSGIServer, the reference `scgi` package from PyPI (with a small WSGI adapter), uWSGI with `--scgi-socket` and uWSGI with `--uwsgi-socket`, all running
//! `tests/fixtures/wsgi_app.py` (the application of the FastCGI interop tests), mounted
//! at `/app` in application mode and reached over HTTP through the served router.
//!
//! The checks mirror `tests/interop.rs`: env dump, POST, 10 MiB echo with and without
//! Content-Length, a 50 MiB stream, Status, several Set-Cookie, redirects, HEAD and
//! concurrent requests. `for_each_server!` makes one `#[test]` per check and server
//! (`env_get::uwsgi_native`). Missing servers skip loudly (`FCGI_INTEROP=require` fails).

mod support;

#[path = "connectors/faults.rs"]
mod faults;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{HeaderName, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use tower_fastcgi::{FcgiService, FcgiServiceBuilder, PoolStats, ScgiService, UwsgiService};

use support::backends::scgi::{Flavor, StreamServer};
use support::http::{Chunked, ClientBody as ReqBody, HttpClient, Server, empty, full};
use support::{EnvDump, StartError, sha256_hex};

const MIB: usize = 1024 * 1024;
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

struct Gateway {
    server: StreamServer,
    svc: Svc,
    http: Server,
    client: HttpClient,
}

enum Svc {
    Scgi(ScgiService),
    Uwsgi(UwsgiService),
}

impl Svc {
    fn pool_stats(&self) -> PoolStats {
        match self {
            Svc::Scgi(svc) => svc.pool_stats(),
            Svc::Uwsgi(svc) => svc.pool_stats(),
        }
    }
}

fn builder(server: &StreamServer) -> FcgiServiceBuilder {
    FcgiService::builder()
        .backend(server.backend())
        .response_head_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(30))
}

impl Gateway {
    async fn start(server: StreamServer) -> Gateway {
        Gateway::start_with(server, |b| b).await
    }

    async fn start_with(
        server: StreamServer,
        configure: impl FnOnce(FcgiServiceBuilder) -> FcgiServiceBuilder,
    ) -> Gateway {
        let b = configure(builder(&server));
        let (app, svc): (Router, Svc) = match server.flavor() {
            Flavor::FlupScgi | Flavor::PyScgi | Flavor::UwsgiScgi => {
                let svc = b.build_scgi();
                (
                    Router::new().nest_service("/app", svc.clone()),
                    Svc::Scgi(svc),
                )
            }
            Flavor::UwsgiNative => {
                let svc = b.build_uwsgi();
                (
                    Router::new().nest_service("/app", svc.clone()),
                    Svc::Uwsgi(svc),
                )
            }
        };
        let app = app.route("/native", axum::routing::get(|| async { "native handler" }));
        let http = Server::start(app).await;
        let client = http.http();
        Gateway {
            server,
            svc,
            http,
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    fn context(&self, what: impl Display) -> String {
        format!(
            "{}: {what}\n{}",
            self.server.flavor(),
            self.server.log_report()
        )
    }

    async fn send(&self, req: Request<ReqBody>) -> Response<Incoming> {
        let what = format!("{} {}", req.method(), req.uri());
        self.client
            .request(req)
            .await
            .unwrap_or_else(|err| panic!("{}", self.context(format!("{what}: {err:?}"))))
    }

    async fn read(&self, res: Response<Incoming>) -> (Response<()>, Bytes) {
        let (parts, body) = res.into_parts();
        let bytes = body
            .collect()
            .await
            .unwrap_or_else(|err| panic!("{}", self.context(format!("body: {err:?}"))))
            .to_bytes();
        (Response::from_parts(parts, ()), bytes)
    }

    async fn get(&self, path: &str) -> (Response<()>, Bytes) {
        let res = self
            .send(request(Method::GET, &self.url(path), empty()))
            .await;
        self.read(res).await
    }

    fn env(&self, res: &Response<()>, body: &[u8]) -> EnvDump {
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            self.context(format!("env: {}", String::from_utf8_lossy(body)))
        );
        EnvDump::parse(body).unwrap_or_else(|e| panic!("{}", self.context(e)))
    }
}

fn request(method: Method, url: &str, body: ReqBody) -> Request<ReqBody> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(body)
        .expect("a valid request")
}

fn chunked(data: Bytes) -> ReqBody {
    let pieces = (0..data.len())
        .step_by(64 * 1024)
        .map(|at| data.slice(at..data.len().min(at + 64 * 1024)));
    Chunked::new(pieces).boxed()
}

fn payload(len: usize, seed: u64) -> Bytes {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

async fn digest<B>(body: B) -> Result<(u64, String), String>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut body = std::pin::pin!(body);
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(|err| format!("after {len} bytes: {err:?}"))?;
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            hasher.update(&data);
        }
    }
    Ok((len, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pattern_sha256(len: usize) -> String {
    let block = support::stream_pattern(26 * 2048);
    let mut hasher = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        hasher.update(&block[..n]);
        left -= n;
    }
    hex(&hasher.finalize())
}

/// Starts `flavor` (or skips loudly), then runs `check` on a fresh runtime.
fn run<C, F>(flavor: Flavor, check: C)
where
    C: FnOnce(StreamServer) -> F,
    F: Future<Output = ()>,
{
    let policy = support::policy();
    if policy == support::Policy::SkipAll {
        return;
    }
    let server = match StreamServer::start(flavor) {
        Ok(server) => server,
        Err(StartError::Missing(what)) if policy == support::Policy::Require => {
            panic!("FCGI_INTEROP=require, but {flavor} cannot run: {what}")
        }
        Err(StartError::Missing(what)) => {
            support::skip_loudly(&flavor.to_string(), &what);
            return;
        }
        Err(StartError::Failed(why)) => panic!("{flavor} is installed but did not start:\n{why}"),
    };
    support::runtime().block_on(async {
        if tokio::time::timeout(CHECK_TIMEOUT, check(server))
            .await
            .is_err()
        {
            panic!("{flavor}: the check did not finish within {CHECK_TIMEOUT:?}");
        }
    });
}

macro_rules! for_each_server {
    ($($check:ident),+ $(,)?) => {$(
        mod $check {
            use super::{Flavor, run};
            #[test]
            fn flup_scgi() {
                run(Flavor::FlupScgi, super::$check);
            }
            #[test]
            fn pypi_scgi() {
                run(Flavor::PyScgi, super::$check);
            }
            #[test]
            fn uwsgi_scgi() {
                run(Flavor::UwsgiScgi, super::$check);
            }
            #[test]
            fn uwsgi_native() {
                run(Flavor::UwsgiNative, super::$check);
            }
        }
    )+};
}

for_each_server!(
    env_get,
    env_post,
    upload_10mib_with_content_length,
    upload_10mib_chunked,
    download_50mib,
    status_header,
    set_cookies_stay_separate,
    redirects,
    head_has_no_body,
    concurrent_requests,
);

const RAW_QUERY: &str = "x=%20y&e=%E2%82%AC&s=a%2Fb&p=a+b&empty=";

fn assert_env(g: &Gateway, env: &EnvDump, expected: &[(&str, Option<&str>)]) {
    for (name, value) in expected {
        assert_eq!(
            env.get(name),
            *value,
            "{}",
            g.context(format!("{name} in {:#?}", env.env))
        );
    }
}

async fn env_get(server: StreamServer) {
    let g = Gateway::start(server).await;
    let (res, body) = g.get("/native").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(&body[..], b"native handler");

    let request_uri = format!("/app/%65nv?{RAW_QUERY}");
    let mut req = request(Method::GET, &g.url(&request_uri), empty());
    let headers = req.headers_mut();
    headers.insert("x-custom-header", "hello world".parse().unwrap());
    headers.append(header::COOKIE, "a=1".parse().unwrap());
    headers.append(header::COOKIE, "b=2".parse().unwrap());
    headers.append("x-multi", "one".parse().unwrap());
    headers.append("x-multi", "two".parse().unwrap());
    headers.insert("proxy", "http://evil.example:3128".parse().unwrap());
    headers.insert(
        HeaderName::from_static("x_foo"),
        "from-underscore".parse().unwrap(),
    );
    headers.insert("x-foo", "from-dash".parse().unwrap());
    let res = g.send(req).await;
    let (res, body) = g.read(res).await;
    let env = g.env(&res, &body);
    let port = g.http.addr().port().to_string();
    let host = g.http.addr().to_string();
    assert_env(
        &g,
        &env,
        &[
            ("REQUEST_METHOD", Some("GET")),
            ("QUERY_STRING", Some(RAW_QUERY)),
            ("REQUEST_URI", Some(&request_uri)),
            ("SCRIPT_NAME", Some("/app")),
            ("PATH_INFO", Some("/env")),
            ("SERVER_PROTOCOL", Some("HTTP/1.1")),
            ("REMOTE_ADDR", Some("127.0.0.1")),
            ("SERVER_NAME", Some("127.0.0.1")),
            ("SERVER_PORT", Some(&port)),
            ("HTTP_HOST", Some(&host)),
            ("HTTP_X_CUSTOM_HEADER", Some("hello world")),
            ("HTTP_COOKIE", Some("a=1; b=2")),
            ("HTTP_X_MULTI", Some("one, two")),
            ("HTTP_PROXY", None),
            ("HTTP_X_FOO", Some("from-dash")),
        ],
    );
    // SCGI always states the length (the spec requires it, "0" for none).
    if g.server.flavor() != Flavor::UwsgiNative {
        assert_env(&g, &env, &[("CONTENT_LENGTH", Some("0"))]);
    }
    assert!(env.read_body(b""), "{}", g.context("no body"));
}

async fn env_post(server: StreamServer) {
    let g = Gateway::start(server).await;
    let body = payload(200_000, 7);
    let mut req = request(Method::POST, &g.url("/app/env?q=1"), full(body.clone()));
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-test; charset=utf-8".parse().unwrap(),
    );
    let res = g.send(req).await;
    let (res, answer) = g.read(res).await;
    let env = g.env(&res, &answer);
    assert_env(
        &g,
        &env,
        &[
            ("REQUEST_METHOD", Some("POST")),
            ("QUERY_STRING", Some("q=1")),
            ("CONTENT_LENGTH", Some("200000")),
            ("CONTENT_TYPE", Some("application/x-test; charset=utf-8")),
            ("HTTP_CONTENT_LENGTH", None),
        ],
    );
    assert!(env.read_body(&body), "{}", g.context("the body read"));
}

async fn upload(g: &Gateway, body: Bytes, make: fn(Bytes) -> ReqBody) {
    let expected = sha256_hex(&body);
    let res = g
        .send(request(
            Method::POST,
            &g.url("/app/echo"),
            make(body.clone()),
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK, "{}", g.context("echo status"));
    let (len, sha) = digest(res.into_body())
        .await
        .unwrap_or_else(|err| panic!("{}", g.context(format!("echo body: {err}"))));
    assert_eq!(len, body.len() as u64, "{}", g.context("echo length"));
    assert_eq!(sha, expected, "{}", g.context("echo digest"));

    let res = g
        .send(request(
            Method::POST,
            &g.url("/app/env"),
            make(body.clone()),
        ))
        .await;
    let (res, answer) = g.read(res).await;
    let env = g.env(&res, &answer);
    assert_eq!(
        env.var("CONTENT_LENGTH"),
        body.len().to_string(),
        "{}",
        g.context("length")
    );
    assert!(env.read_body(&body), "{}", g.context("the body read"));
}

async fn upload_10mib_with_content_length(server: StreamServer) {
    let g = Gateway::start(server).await;
    upload(&g, payload(10 * MIB, 10), full).await;
}

/// Without a length the body is spooled, so CONTENT_LENGTH is exact (SCGI needs one).
async fn upload_10mib_chunked(server: StreamServer) {
    let g = Gateway::start(server).await;
    upload(&g, payload(10 * MIB, 11), chunked).await;
}

async fn download_50mib(server: StreamServer) {
    let g = Gateway::start(server).await;
    let bytes = 50 * MIB;
    for with_length in [false, true] {
        let path = format!(
            "/app/stream?bytes={bytes}&chunk=65536{}",
            if with_length { "&length=1" } else { "" }
        );
        let res = g.send(request(Method::GET, &g.url(&path), empty())).await;
        assert_eq!(res.status(), StatusCode::OK, "{}", g.context("status"));
        let (len, sha) = digest(res.into_body())
            .await
            .unwrap_or_else(|err| panic!("{}", g.context(format!("stream body: {err}"))));
        assert_eq!(len, bytes as u64, "{}", g.context("length"));
        assert_eq!(sha, pattern_sha256(bytes), "{}", g.context("digest"));
    }
}

async fn status_header(server: StreamServer) {
    let g = Gateway::start(server).await;
    for code in [201u16, 404, 418, 503] {
        let (res, body) = g.get(&format!("/app/status?code={code}")).await;
        assert_eq!(res.status().as_u16(), code, "{}", g.context("status"));
        assert_eq!(&body[..], format!("status {code}\n").as_bytes());
        assert!(res.headers().get("status").is_none());
    }
}

async fn set_cookies_stay_separate(server: StreamServer) {
    let g = Gateway::start(server).await;
    let (res, body) = g.get("/app/cookies").await;
    assert_eq!(res.status(), StatusCode::OK, "{}", g.context("status"));
    assert_eq!(&body[..], b"cookies\n");
    let cookies: Vec<_> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    assert_eq!(cookies.len(), 3, "{}", g.context(format!("{cookies:?}")));
    assert_eq!(cookies[0], "a=1");
    assert!(cookies[1].starts_with("b=2; "), "{cookies:?}");
    assert_eq!(cookies[2], "c=3; Secure");
}

async fn redirects(server: StreamServer) {
    let g = Gateway::start(server).await;
    let (res, _) = g.get("/app/redirect?to=/elsewhere").await;
    assert_eq!(res.status(), StatusCode::FOUND, "{}", g.context("302"));
    assert_eq!(res.headers()[header::LOCATION], "/elsewhere");
    let (res, _) = g
        .get("/app/redirect?to=http://example.test/x&code=301")
        .await;
    assert_eq!(
        res.status(),
        StatusCode::MOVED_PERMANENTLY,
        "{}",
        g.context("301")
    );
    assert_eq!(res.headers()[header::LOCATION], "http://example.test/x");
}

/// HEAD: the headers arrive, no body does (the servers send one; the connection is
/// simply closed).
async fn head_has_no_body(server: StreamServer) {
    let g = Gateway::start(server).await;
    let res = g
        .send(request(Method::HEAD, &g.url("/app/head"), empty()))
        .await;
    let (res, body) = g.read(res).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", g.context("HEAD"));
    assert_eq!(res.headers()["x-method"], "HEAD");
    assert!(
        body.is_empty(),
        "{}",
        g.context(format!("HEAD body {body:?}"))
    );
    let (_, body) = g.get("/app/head").await;
    assert!(
        body.starts_with(b"body of head"),
        "{}",
        g.context("GET after HEAD")
    );
}

/// 100 concurrent requests on at most four connections at a time (max_connections is
/// a cap on connections in flight): none fails, the rest queue.
async fn concurrent_requests(server: StreamServer) {
    let g = Arc::new(
        Gateway::start_with(server, |b| {
            b.max_connections(4).queue_timeout(Duration::from_secs(60))
        })
        .await,
    );
    let url = g.url("/app/sleep?ms=5");
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let g = Arc::clone(&g);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let (mut max_open, mut max_waiting) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let stats = g.svc.pool_stats();
                max_open = max_open.max(stats.open);
                max_waiting = max_waiting.max(stats.waiting);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (max_open, max_waiting)
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let client = g.client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let res = client
                .request(request(Method::GET, &url, empty()))
                .await
                .map_err(|e| format!("{e:?}"))?;
            let status = res.status();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{e:?}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        match task.await.expect("request task") {
            Ok((StatusCode::OK, body)) if &body[..] == b"slept 5\n" => {}
            Ok((status, body)) => failures.push(format!("{status} {body:?}")),
            Err(err) => failures.push(err),
        }
    }
    done.store(true, Ordering::Relaxed);
    let (max_open, max_waiting) = monitor.await.expect("monitor");
    let stats = g.svc.pool_stats();
    assert!(
        failures.is_empty(),
        "{}",
        g.context(format!("{failures:?}"))
    );
    assert!(max_open <= 4, "{}", g.context(format!("{max_open} open")));
    assert!(
        max_waiting > 0,
        "{}",
        g.context("100 requests on 4 connections queue")
    );
    assert_eq!((stats.open, stats.connections_reused), (0, 0), "{stats:?}");
}
