//! `ConnectionInfo` through `axum::serve`: a plain `TcpListener`, `tap_io` listeners
//! (the axum 0.8 way to set TCP_NODELAY) wrapped in `ConnectionInfoListener`, and Unix
//! listeners, asserting the addresses the backend sees.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::serve::ListenerExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tower_fastcgi::{ConnectionInfo, ConnectionInfoListener};

use support::fake::{After, AppRequest, Handled, Writer};

const NAMES: [&str; 4] = ["REMOTE_ADDR", "REMOTE_PORT", "SERVER_ADDR", "SERVER_PORT"];

/// Answers with `NAME=value` lines for the address variables (`NAME unset` if absent).
async fn addresses(mut req: AppRequest, mut w: Writer) -> Handled {
    req.drain_stdin().await?;
    let mut body = String::new();
    for name in NAMES {
        match req.params.get(name) {
            Some(value) => body.push_str(&format!("{name}={value}\n")),
            None => body.push_str(&format!("{name} unset\n")),
        }
    }
    w.stdout(format!("Content-Type: text/plain\r\n\r\n{body}").as_bytes())
        .await?;
    w.end(0).await?;
    Ok((req, w, After::KeepIfAsked))
}

async fn app() -> (Router, support::fake::Fake) {
    let fake = support::fake::fake(addresses).await;
    let app = Router::new().fallback_service(fake.builder().build());
    (app, fake)
}

/// One HTTP/1.0 `GET /` (so the response body is close-delimited); the response body.
async fn get(mut io: impl AsyncRead + AsyncWrite + Unpin, host: &str) -> String {
    let req = format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n");
    io.write_all(req.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    io.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    let (_, body) = text.split_once("\r\n\r\n").expect("head and body");
    body.to_owned()
}

fn serve<L>(listener: L, app: Router)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    for<'a> ConnectionInfo:
        axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let make = app.into_make_service_with_connect_info::<ConnectionInfo>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, make).await;
    });
}

async fn tcp_client(addr: std::net::SocketAddr) -> (TcpStream, String) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let ours = tcp.local_addr().expect("client address");
    (tcp, ours.port().to_string())
}

fn expect_tcp(body: &str, client_port: &str, server_port: u16) {
    assert_eq!(
        body,
        format!(
            "REMOTE_ADDR=127.0.0.1\nREMOTE_PORT={client_port}\nSERVER_ADDR=127.0.0.1\nSERVER_PORT={server_port}\n"
        )
    );
}

#[tokio::test]
async fn tap_io_inside_connection_info_listener_keeps_every_address() {
    let (app, _fake) = app().await;
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let tapped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&tapped);
    let listener = ConnectionInfoListener::new(tcp.tap_io(move |tcp| {
        let _ = tcp.set_nodelay(true);
        flag.store(true, Ordering::SeqCst);
    }));
    serve(listener, app);
    let (client, port) = tcp_client(addr).await;
    let body = get(client, &addr.to_string()).await;
    expect_tcp(&body, &port, addr.port());
    assert!(tapped.load(Ordering::SeqCst), "the tap ran");
}

#[tokio::test]
async fn tap_io_outside_connection_info_listener_keeps_every_address() {
    let (app, _fake) = app().await;
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let listener = ConnectionInfoListener::new(tcp).tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    serve(listener, app);
    let (client, port) = tcp_client(addr).await;
    let body = get(client, &addr.to_string()).await;
    expect_tcp(&body, &port, addr.port());
}

#[tokio::test]
async fn plain_tcp_listener_keeps_every_address() {
    let (app, _fake) = app().await;
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    serve(tcp, app);
    let (client, port) = tcp_client(addr).await;
    let body = get(client, &addr.to_string()).await;
    expect_tcp(&body, &port, addr.port());
}

/// nginx for `listen unix:`: REMOTE_ADDR `unix:`, REMOTE_PORT empty, SERVER_ADDR `unix:`
/// (without the path, see `ConnectionInfo`); SERVER_PORT from the Host header.
const UNIX_ENV: &str = "REMOTE_ADDR=unix:\nREMOTE_PORT=\nSERVER_ADDR=unix:\nSERVER_PORT=8080\n";

#[tokio::test]
async fn unix_listener_sets_the_addresses_nginx_sets() {
    let (app, _fake) = app().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("http.sock");
    serve(UnixListener::bind(&path).expect("bind"), app);
    let client = UnixStream::connect(&path).await.expect("connect");
    assert_eq!(get(client, "localhost:8080").await, UNIX_ENV);
}

#[tokio::test]
async fn unix_listener_under_tap_io_sets_the_addresses_nginx_sets() {
    let (app, _fake) = app().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("http.sock");
    let listener = UnixListener::bind(&path).expect("bind").tap_io(|_| {});
    serve(ConnectionInfoListener::new(listener), app);
    let client = UnixStream::connect(&path).await.expect("connect");
    assert_eq!(get(client, "localhost:8080").await, UNIX_ENV);
}
