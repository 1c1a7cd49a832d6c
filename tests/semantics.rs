//! CGI response semantics, bodies and the axum/tower-http integration, against the
//! in-repo responder. The same behaviours are checked against real backends in the
//! interop tests.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::routing::get as axum_get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use support::fake::*;
use tower::ServiceExt;
use tower_fastcgi::{FcgiService, UnknownLengthBody};

/// Answers with the request's CGI environment, one `NAME=value` per line.
async fn env_dump(mut req: AppRequest, mut w: Writer) -> Handled {
    let body = req.read_all_stdin().await?;
    let mut vars: Vec<_> = req.params.iter().collect();
    vars.sort();
    let mut out = String::new();
    for (k, v) in vars {
        out.push_str(&format!("{k}={v}\n"));
    }
    out.push_str(&format!("BODY_LEN={}\n", body.len()));
    w.stdout(b"Content-Type: text/plain\r\n\r\n").await?;
    w.stdout(out.as_bytes()).await?;
    w.end(0).await?;
    Ok((req, w, After::KeepIfAsked))
}

fn parse_env(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn env_of(svc: &FcgiService, req: Request<Full<Bytes>>) -> HashMap<String, String> {
    let res = send(svc, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    parse_env(&body(res).await.unwrap())
}

#[tokio::test]
async fn status_and_several_set_cookies() {
    let fake = fake(|req, w| {
        answer(
            req,
            w,
            "Status: 201 Created\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2; Path=/\r\nContent-Type: text/plain",
            b"made",
        )
    })
    .await;
    let res = send(&fake.builder().build(), get("/")).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookies: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2; Path=/"]);
    assert!(!res.headers().contains_key("status"));
}

#[tokio::test]
async fn absolute_location_without_status_is_302() {
    let fake = fake(|req, w| answer(req, w, "Location: https://example.com/elsewhere", b"")).await;
    let res = send(&fake.builder().build(), get("/")).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "https://example.com/elsewhere");
}

#[tokio::test]
async fn local_redirect_is_served_internally_as_get() {
    let fake = fake(|req, w| async move {
        if req.param("PATH_INFO") == "/old" {
            return answer(req, w, "Location: /app/new?from=old", b"").await;
        }
        env_dump(req, w).await
    })
    .await;
    let svc = fake.builder().script_name("/app").build();
    let res = send(&svc, post("/app/old", "form=1")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let env = parse_env(&body(res).await.unwrap());
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["PATH_INFO"], "/new");
    assert_eq!(env["QUERY_STRING"], "from=old");
    assert_eq!(env["REDIRECT_URL"], "/app/old");
    assert!(!env.contains_key("CONTENT_LENGTH"));
    assert_eq!(env["BODY_LEN"], "0");

    // Turned off, the client gets the 302.
    let svc = fake
        .builder()
        .script_name("/app")
        .local_redirects(false)
        .build();
    let res = send(&svc, get("/app/old")).await;
    assert_eq!(res.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn local_redirect_loops_are_cut() {
    let fake = fake(|req, w| answer(req, w, "Location: /loop", b"")).await;
    let err = fake
        .builder()
        .build()
        .try_call(get("/loop"))
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn head_204_and_304_carry_no_body_and_keep_the_connection() {
    // Like Go, flup and fcgiwrap, this backend sends a body even for HEAD.
    let fake = fake(|req, w| async move {
        let status = match req.param("QUERY_STRING") {
            "204" => "Status: 204 No Content\r\n",
            "304" => "Status: 304 Not Modified\r\n",
            _ => "",
        };
        let head = format!("{status}Content-Type: text/plain");
        answer(req, w, &head, &[b'b'; 10_000]).await
    })
    .await;
    let svc = fake.builder().build();
    let head = Request::head("/").body(Full::<Bytes>::default()).unwrap();
    for req in [head, get("/?204"), get("/?304")] {
        let res = send(&svc, req).await;
        assert!(body(res).await.unwrap().is_empty());
    }
    assert_eq!(fake.connections(), 1, "drained and reused");
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let fake = fake(echo).await;
    let svc = fake.builder().build();
    let data: Vec<u8> = (0..8 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let res = send(&svc, post("/", data.clone())).await;
    assert_eq!(res.headers()["x-declared-length"], (8 << 20).to_string());
    assert_eq!(body(res).await.unwrap(), data);
}

/// A body of unknown length (like chunked HTTP/1.1 or HTTP/2 without content-length).
struct Chunked {
    pieces: std::collections::VecDeque<Bytes>,
}

fn chunked_body(pieces: usize, size: usize) -> Chunked {
    Chunked {
        pieces: (0..pieces)
            .map(|i| Bytes::from(vec![(i % 256) as u8; size]))
            .collect(),
    }
}

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(
            self.pieces
                .pop_front()
                .map(|b| Ok(http_body::Frame::data(b))),
        )
    }
}

#[tokio::test]
async fn unknown_length_bodies_are_spooled_with_an_exact_length() {
    let fake = fake(echo).await;
    let svc = fake.builder().build();
    let req = Request::post("/").body(chunked_body(40, 10_000)).unwrap();
    let res = send(&svc, req).await;
    assert_eq!(res.headers()["x-declared-length"], "400000");
    assert_eq!(body(res).await.unwrap().len(), 400_000);
}

#[tokio::test]
async fn unknown_length_bodies_spill_to_a_temp_file() {
    let fake = fake(echo).await;
    let svc = fake
        .builder()
        .unknown_length_body(UnknownLengthBody::Spool {
            memory: 64 * 1024,
            dir: None,
        })
        .build();
    let req = Request::post("/").body(chunked_body(300, 10_000)).unwrap();
    let res = send(&svc, req).await;
    assert_eq!(res.headers()["x-declared-length"], "3000000");
    let got = body(res).await.unwrap();
    assert_eq!(got.len(), 3_000_000);
    assert!(got[..10_000].iter().all(|&b| b == 0) && got[2_990_000..].iter().all(|&b| b == 43));
}

#[tokio::test]
async fn unknown_length_policies() {
    let fake = fake(echo).await;
    let reject = fake
        .builder()
        .unknown_length_body(UnknownLengthBody::Reject)
        .build();
    let res = send(
        &reject,
        Request::post("/").body(chunked_body(2, 10)).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::LENGTH_REQUIRED);

    let stream = fake
        .builder()
        .unknown_length_body(UnknownLengthBody::Stream)
        .build();
    let res = send(
        &stream,
        Request::post("/").body(chunked_body(3, 1000)).unwrap(),
    )
    .await;
    assert_eq!(res.headers()["x-declared-length"], "", "no CONTENT_LENGTH");
    assert_eq!(body(res).await.unwrap().len(), 3000);

    let limited = fake.builder().max_request_body(5000).build();
    let res = send(
        &limited,
        Request::post("/").body(chunked_body(6, 1000)).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let res = send(&limited, post("/", vec![0u8; 6000])).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        fake.stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "413s never reach the backend"
    );
}

#[tokio::test]
async fn post_with_content_length_zero_has_an_empty_body() {
    let fake = fake(env_dump).await;
    let env = env_of(&fake.builder().build(), post("/", Bytes::new())).await;
    assert_eq!(env["CONTENT_LENGTH"], "0");
    let env = env_of(&fake.builder().build(), get("/")).await;
    assert!(!env.contains_key("CONTENT_LENGTH"));
}

#[tokio::test]
async fn concurrent_requests_queue_for_a_small_pool() {
    let fake = fake(|req, w| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        answer(req, w, "Content-Type: text/plain", b"ok").await
    })
    .await;
    let svc = fake.builder().max_connections(4).build();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let res = send(&svc, get("/")).await;
            (res.status(), body(res).await.map(|b| b.len()))
        }));
    }
    for t in tasks {
        let (status, len) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(len.unwrap(), 2);
    }
    assert!(
        fake.connections() <= 4,
        "{} connections",
        fake.connections()
    );
    let stats = svc.pool_stats();
    assert_eq!(stats.open, stats.idle);
    assert!(stats.connections_reused >= 196);
}

// ---------------------------------------------------------------- axum and tower-http

#[tokio::test]
async fn axum_nest_service_sets_script_name_and_request_uri() {
    let fake = fake(env_dump).await;
    let app = Router::new()
        .route("/", axum_get(|| async { "native" }))
        .nest_service("/fcgi-test", fake.builder().build());
    let req = Request::get("/fcgi-test/a%20b/c?x=%20y")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let env = parse_env(&res.into_body().collect().await.unwrap().to_bytes());
    assert_eq!(env["SCRIPT_NAME"], "/fcgi-test");
    assert_eq!(env["PATH_INFO"], "/a b/c");
    assert_eq!(env["REQUEST_URI"], "/fcgi-test/a%20b/c?x=%20y");
    assert_eq!(env["QUERY_STRING"], "x=%20y");
    let res = app
        .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        &res.into_body().collect().await.unwrap().to_bytes()[..],
        b"native"
    );
}

#[tokio::test]
async fn axum_route_and_fallback_service() {
    let fake = fake(env_dump).await;
    let svc = fake.builder().build();
    let app = Router::new()
        .route_service("/exact", svc.clone())
        .fallback_service(svc);
    for path in ["/exact", "/anything/else"] {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let env = parse_env(&res.into_body().collect().await.unwrap().to_bytes());
        assert_eq!(env["PATH_INFO"], path);
    }
}

#[tokio::test]
async fn tower_http_layers_compose() {
    use tower_http::compression::CompressionLayer;
    use tower_http::limit::RequestBodyLimitLayer;
    use tower_http::timeout::TimeoutLayer;
    use tower_http::trace::TraceLayer;

    let fake = fake(|req, w| async move {
        if req.param("PATH_INFO") == "/slow" {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        answer(req, w, "Content-Type: text/plain", &[b'a'; 50_000]).await
    })
    .await;
    let svc = tower::ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_millis(200),
        ))
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(1024))
        .service(fake.builder().build());
    let app = Router::new().nest_service("/php", svc);

    let req = Request::get("/php/x")
        .header("accept-encoding", "gzip")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let compressed = res.into_body().collect().await.unwrap().to_bytes();
    assert!(compressed.len() < 1000);

    let res = app
        .clone()
        .oneshot(
            Request::get("/php/slow")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);

    let res = app
        .oneshot(
            Request::post("/php/x")
                .header("content-length", "5000")
                .body(axum::body::Body::from(vec![0u8; 5000]))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn connect_info_fills_remote_and_server_addresses() {
    let fake = fake(env_dump).await;
    let server = support::http::Server::start_service(fake.builder().build()).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let client_port = stream.local_addr().unwrap().port();
    let reply = support::http::raw_on(
        &mut stream,
        b"GET /x HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    let env = parse_env(reply.body());
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["REMOTE_PORT"], client_port.to_string());
    assert_eq!(env["SERVER_ADDR"], "127.0.0.1");
    assert_eq!(env["SERVER_NAME"], "example.test");
    assert_eq!(env["SERVER_PORT"], "8080");
}

// ---------------------------------------------------------------- nginx-like behaviours

/// The raw response to one HTTP/1.1 request to `app` served by `axum::serve` on 127.0.0.1.
async fn raw_response(app: Router, request_line: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{request_line}\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    server.abort();
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn a_custom_reason_phrase_reaches_the_status_line() {
    let fake = fake(|req, w| async move {
        let status = match req.param("PATH_INFO") {
            "/custom" => "Status: 299 Custom Thing",
            "/standard" => "Status: 404 Not Found",
            _ => "Status: 404 Gone Fishing",
        };
        answer(
            req,
            w,
            &format!("{status}\r\nContent-Type: text/plain"),
            b"x",
        )
        .await
    })
    .await;
    let app = Router::new().nest_service("/php", fake.builder().build());
    let raw = raw_response(app.clone(), "GET /php/custom HTTP/1.1").await;
    assert!(raw.starts_with("HTTP/1.1 299 Custom Thing\r\n"), "{raw}");
    let raw = raw_response(app.clone(), "GET /php/standard HTTP/1.1").await;
    assert!(raw.starts_with("HTTP/1.1 404 Not Found\r\n"), "{raw}");
    let raw = raw_response(app, "GET /php/other HTTP/1.1").await;
    assert!(raw.starts_with("HTTP/1.1 404 Gone Fishing\r\n"), "{raw}");
}

#[tokio::test]
async fn invalid_percent_encoding_is_400_before_the_backend_in_every_mode() {
    let fake = fake(env_dump).await;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("x.php"), "<?php").unwrap();
    let application = fake.builder().build();
    let named = fake.builder().script_name("/app").build();
    let document_root = fake.builder().document_root(root.path()).build();
    for (svc, path) in [
        (&application, "/x.php/%ZZ"),
        (&application, "/a%"),
        (&named, "/app/x%4"),
        (&document_root, "/x.php/%ZZ"),
        (&document_root, "/%zz.php"),
    ] {
        let res = send(svc, get(path)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // Nested under axum, whatever the prefix.
    let app = Router::new().nest_service("/fcgi", fake.builder().build());
    let res = app
        .oneshot(
            Request::get("/fcgi/x.php/%ZZ")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(fake.connections(), 0, "no backend was contacted");
}
