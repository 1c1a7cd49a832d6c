//! The serving code the gateway and php examples share (`examples/support/listen.rs`,
//! `examples/support/serve.rs`): TCP_NODELAY on accepted connections, and the HTTP/1 loop
//! that hands the service a `ConnectionInfo`.

#[path = "../examples/support/listen.rs"]
mod listen;
#[path = "../examples/support/serve.rs"]
mod serve;

use axum::{Extension, Router, routing::get};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_fastcgi::ConnectionInfo;

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
async fn serve_http1_gives_the_service_the_connection_info() {
    let listener = listen::listen("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/who",
        get(|Extension(info): Extension<ConnectionInfo>| async move {
            format!("{:?} {:?} {}", info.remote, info.local, info.tls)
        }),
    );
    let task = tokio::spawn(serve::serve_http1(listener, app));

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
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for _ in 0..3 {
        let res = client
            .get(format!("http://{server}/who").parse().unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    task.abort();
}
