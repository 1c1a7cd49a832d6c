//! tower-http's `RequestBodyLimitLayer` in front of `FcgiService` through `axum::serve`:
//! a body over the limit is 413 whether Content-Length announces it (tower-http answers)
//! or a chunked body runs into the limit (the service maps `LengthLimitError`).

mod support;

use std::sync::atomic::Ordering;

use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_http::limit::RequestBodyLimitLayer;

const LIMIT: usize = 16;

async fn start() -> (std::net::SocketAddr, support::fake::Fake) {
    let fake = support::fake::fake(support::fake::echo).await;
    let app = Router::new()
        .fallback_service(fake.builder().build())
        .layer(RequestBodyLimitLayer::new(LIMIT));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, fake)
}

/// Sends `head` + `body` as written and returns the response's status code and text.
async fn exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head.as_bytes()).await.expect("write head");
    tcp.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    (status, text)
}

/// A chunked body of `len` bytes in chunks of 5.
fn chunked(len: usize) -> Vec<u8> {
    let data = vec![b'x'; len];
    let mut out = Vec::new();
    for chunk in data.chunks(5) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

const CHUNKED: &str =
    "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let (addr, fake) = start().await;
    let (status, text) = exchange(addr, CHUNKED, &chunked(LIMIT * 4)).await;
    assert_eq!(status, 413, "{text}");
    // The service's own error response, not tower-http's (which only sees Content-Length).
    assert!(text.contains("413 Payload Too Large"), "{text}");
    assert_eq!(
        fake.stats.connections.load(Ordering::SeqCst),
        0,
        "the spooled body never reached the backend"
    );
}

#[tokio::test]
async fn chunked_body_within_the_limit_passes() {
    let (addr, _fake) = start().await;
    let (status, text) = exchange(addr, CHUNKED, &chunked(LIMIT)).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(&format!("x-declared-length: {LIMIT}")),
        "{text}"
    );
}

#[tokio::test]
async fn content_length_over_the_limit_is_413() {
    let (addr, _fake) = start().await;
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        LIMIT * 4
    );
    let (status, text) = exchange(addr, &head, &[b'x'; LIMIT * 4]).await;
    assert_eq!(status, 413, "{text}");
}
