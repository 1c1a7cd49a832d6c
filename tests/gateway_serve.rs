//! The serving code the gateway and php examples share (`examples/support/listen.rs`,
//! `examples/support/serve.rs`): TCP_NODELAY on accepted connections, and the accept loop
//! that hands the service a `ConnectionInfo` with bounded buffers. Shutdown and HTTP/2
//! are in tests/gateway_shutdown.rs and tests/gateway_http2.rs.

#[path = "../examples/support/listen.rs"]
mod listen;
#[path = "../examples/support/serve.rs"]
mod serve;
mod support;

use axum::{Extension, Router, routing::get};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tower_fastcgi::ConnectionInfo;

use support::http::{HttpClient, raw};

/// `serve` with no shutdown signal: runs until the task is aborted.
async fn serve_forever(listener: tokio::net::TcpListener, app: Router) {
    serve::serve(
        listener,
        app,
        serve::Options::default(),
        std::future::pending(),
    )
    .await;
}

/// Without TCP_NODELAY a response written in pieces waits ~40 ms for the client's delayed
/// ACK (BENCHMARKS.md); Linux copies the option from the listening socket.
#[tokio::test]
async fn accepted_connections_have_tcp_nodelay() {
    let listener = listen::listen("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    assert!(accepted.nodelay().unwrap());
}

#[tokio::test]
async fn serve_gives_the_service_the_connection_info() {
    let listener = listen::listen("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/who",
        get(|Extension(info): Extension<ConnectionInfo>| async move {
            format!("{:?} {:?} {}", info.remote, info.local, info.tls)
        }),
    );
    let task = tokio::spawn(serve_forever(listener, app));

    // A client whose own port we know, to compare with REMOTE_ADDR.
    let tcp = tokio::net::TcpStream::connect(server).await.unwrap();
    let client_addr = tcp.local_addr().unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/who")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("Some({client_addr}) Some({server}) false")
    );

    // Keep-alive works across requests on the pooled client too.
    let client = HttpClient::new(server);
    for _ in 0..3 {
        assert_eq!(client.get("/who").await.status, 200);
    }
    task.abort();
}

/// The bounded read buffer (`MAX_READ_BUF`) is what keeps a slow backend plus many fast
/// uploaders from holding hyper's default ~400 KiB per connection (BENCHMARKS.md). A
/// request head far over it is refused, which pins the setting: with hyper's default
/// buffer the same head would be accepted.
#[tokio::test]
async fn serve_bounds_the_read_buffer() {
    let listener = listen::listen("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let app = Router::new().route("/who", get(|| async { "ok" }));
    let task = tokio::spawn(serve_forever(listener, app));

    async fn status_for(server: std::net::SocketAddr, header_len: usize) -> String {
        let head = format!(
            "GET /who HTTP/1.1\r\nhost: localhost\r\nx-pad: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(header_len)
        );
        // The server may answer and close before reading everything; `raw` allows that.
        raw(server, head.as_bytes()).await.status_line()
    }

    let fits = serve::MAX_READ_BUF / 2;
    assert_eq!(status_for(server, fits).await, "HTTP/1.1 200 OK");
    // hyper checks the limit between reads, so a head somewhat over it can still get in;
    // four times the limit cannot, and hyper's default buffer would take it.
    let too_big = 4 * serve::MAX_READ_BUF;
    assert!(
        status_for(server, too_big)
            .await
            .starts_with("HTTP/1.1 431"),
        "a {too_big}-byte header must not fit the read buffer: {:?}",
        status_for(server, too_big).await
    );
    task.abort();
}

/// An HTTP/2 (prior knowledge) client connection to `server`.
async fn h2c(
    server: std::net::SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(server).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// The HTTP/2 header list limit is the HTTP/1 head limit: a head far over it is refused
/// on both, so neither protocol is the way around the other's bound.
#[tokio::test]
async fn serve_bounds_the_http2_header_list() {
    let listener = listen::listen("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let app = Router::new().route("/who", get(|| async { "ok" }));
    let task = tokio::spawn(serve_forever(listener, app));

    let mut h2 = h2c(server).await;
    let req = |pad: usize| {
        http::Request::get("http://localhost/who")
            .header("x-pad", "a".repeat(pad))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    // Half the limit: over hyper's default (16 KiB), which pins the setting.
    let res = h2.send_request(req(serve::MAX_READ_BUF / 2)).await.unwrap();
    assert_eq!(
        (res.status().as_u16(), res.version()),
        (200, http::Version::HTTP_2)
    );
    let refused = h2.send_request(req(4 * serve::MAX_READ_BUF)).await;
    assert!(
        refused.as_ref().map_or(true, |res| res.status() == 431),
        "a {}-byte header must be refused: {refused:?}",
        4 * serve::MAX_READ_BUF
    );
    task.abort();
}

/// In process: the shutdown future stops the accept loop, an HTTP/2 stream in flight
/// still gets its whole response, and `serve` reports a clean drain.
#[tokio::test]
async fn shutdown_drains_an_http2_stream_in_flight() {
    let listener = listen::listen("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            "done"
        }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = serve::Options {
        grace: std::time::Duration::from_secs(10),
        ..serve::Options::default()
    };
    let task = tokio::spawn(serve::serve(listener, app, options, async {
        let _ = stopped.await;
    }));

    let mut h2 = h2c(server).await;
    let req = http::Request::get("http://localhost/slow")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let in_flight = tokio::spawn(async move {
        let res = h2.send_request(req).await.unwrap();
        let status = res.status();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"done"[..]));
    assert_eq!(task.await.unwrap(), serve::Stopped::Drained);
    assert!(tokio::net::TcpStream::connect(server).await.is_err());
}

/// What the grace period bounds: a handler that outlives it is cut, and `serve` says how
/// many connections it cut.
#[tokio::test]
async fn shutdown_cuts_what_outlives_the_grace() {
    let listener = listen::listen("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/stuck",
        get(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            "never"
        }),
    );
    let options = serve::Options {
        grace: std::time::Duration::from_millis(200),
        ..serve::Options::default()
    };
    let task = tokio::spawn(serve::serve(listener, app, options, async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }));
    let client = tokio::spawn(async move {
        raw(server, b"GET /stuck HTTP/1.1\r\nhost: localhost\r\n\r\n").await
    });
    let started = std::time::Instant::now();
    assert_eq!(task.await.unwrap(), serve::Stopped::GraceExpired { cut: 1 });
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The client sees its connection closed with no response.
    let reply = client.await.unwrap();
    assert!(!reply.text().contains("never"));
}
