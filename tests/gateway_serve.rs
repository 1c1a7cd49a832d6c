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
