//! HTTP/2 in front of the gateway (the real binary, php-fpm behind it): cleartext with
//! prior knowledge (h2c) with hyper's HTTP/2 client and with curl, and TLS with ALPN `h2`
//! on a certificate made at test time (openssl). A request body sent as DATA frames with
//! no length reaches PHP with an exact CONTENT_LENGTH (the library spools it).
//!
//! Interop tests: a missing php-fpm, curl or openssl skips loudly, or fails under
//! `FCGI_INTEROP=require`.

mod gateway_support;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use gateway_support::{Gateway, php_mount};
use support::http::{Chunked, ClientBody, empty};
use support::{EnvDump, Kind, Options};

fn php_fpm() -> Option<support::RunningBackend> {
    support::backend_or_skip_with(
        Kind::PhpFpmTcp,
        Options {
            workers: 4,
            ..Options::default()
        },
    )
}

/// An HTTP/2 client connection over `io`, speaking first (prior knowledge or after ALPN).
async fn h2<I>(io: I) -> SendRequest<ClientBody>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .expect("the HTTP/2 handshake");
    tokio::spawn(conn);
    sender
}

async fn h2c(addr: SocketAddr) -> SendRequest<ClientBody> {
    h2(tokio::net::TcpStream::connect(addr).await.unwrap()).await
}

/// Sends `req`, returning the status, the HTTP version and the whole body.
async fn send(
    sender: &mut SendRequest<ClientBody>,
    req: http::Request<ClientBody>,
) -> (http::StatusCode, http::Version, Bytes) {
    sender.ready().await.expect("the connection is usable");
    let res = sender.send_request(req).await.expect("a response");
    let (status, version) = (res.status(), res.version());
    let body = res.into_body().collect().await.expect("the whole body");
    (status, version, body.to_bytes())
}

fn get(uri: &str) -> http::Request<ClientBody> {
    http::Request::get(uri).body(empty()).unwrap()
}

/// A request body of `len` bytes in uneven DATA frames, with no length announced.
fn unsized_body(len: usize) -> (Vec<u8>, ClientBody) {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let chunks: Vec<Bytes> = bytes.chunks(10_007).map(Bytes::copy_from_slice).collect();
    (bytes, Chunked::new(chunks).boxed())
}

#[test]
fn h2c_prior_knowledge_get_and_unsized_post() {
    let _serial = support::one_at_a_time();
    let Some(php) = php_fpm() else { return };
    let gateway = Gateway::start(&["--php", &php_mount(&php)]);
    support::runtime().block_on(async {
        let mut h2 = h2c(gateway.addr()).await;

        let (status, version, body) = send(&mut h2, get("http://localhost/env.php?x=1")).await;
        assert_eq!((status.as_u16(), version), (200, http::Version::HTTP_2));
        let env = EnvDump::parse(&body).unwrap();
        assert_eq!(env.var("SERVER_PROTOCOL"), "HTTP/2.0");
        assert_eq!(env.var("QUERY_STRING"), "x=1");
        assert_eq!(env.var("HTTP_HOST"), "localhost");
        assert_eq!(env.get("HTTPS"), None, "cleartext is not HTTPS");

        // DATA frames only: no content-length, so the library spools and counts.
        let (sent, body) = unsized_body(300_000);
        let req = http::Request::post("http://localhost/env.php")
            .body(body)
            .unwrap();
        let (status, _, reply) = send(&mut h2, req).await;
        assert_eq!(status, 200);
        let env = EnvDump::parse(&reply).unwrap();
        assert_eq!(env.var("CONTENT_LENGTH"), sent.len().to_string());
        assert!(env.read_body(&sent), "PHP read exactly what was sent");

        let (sent, body) = unsized_body(200_000);
        let req = http::Request::post("http://localhost/echo.php")
            .body(body)
            .unwrap();
        let (status, _, echoed) = send(&mut h2, req).await;
        assert_eq!(status, 200);
        assert!(
            echoed == sent,
            "the echo is intact ({} bytes)",
            echoed.len()
        );
    });
}

#[test]
fn many_concurrent_streams_on_one_connection() {
    let _serial = support::one_at_a_time();
    let Some(php) = php_fpm() else { return };
    let gateway = Gateway::start(&["--php", &php_mount(&php)]);
    support::runtime().block_on(async {
        let h2 = h2c(gateway.addr()).await;
        let mut streams = tokio::task::JoinSet::new();
        for i in 0..64 {
            let mut h2 = h2.clone();
            streams.spawn(async move {
                let uri = format!("http://localhost/sleep.php?ms={}", i % 5 * 10);
                let (status, _, body) = send(&mut h2, get(&uri)).await;
                (status, body, i)
            });
        }
        let mut done = 0;
        while let Some(joined) = streams.join_next().await {
            let (status, body, i) = joined.unwrap();
            assert_eq!(status, 200, "stream {i}");
            assert_eq!(body, format!("slept {}\n", i % 5 * 10), "stream {i}");
            done += 1;
        }
        assert_eq!(done, 64);
    });
}

/// Whether `program` runs (`program VERSION_ARG`); otherwise skips loudly (or fails
/// under `FCGI_INTEROP=require`).
fn tool_or_skip(program: &str, version_arg: &str) -> bool {
    let works = Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|out| out.status.success());
    if !works {
        if support::policy() == support::Policy::Require {
            panic!("FCGI_INTEROP=require, but {program} is not installed");
        }
        support::skip_loudly(program, &format!("{program} is not installed"));
    }
    works
}

#[test]
fn curl_with_http2_prior_knowledge() {
    let _serial = support::one_at_a_time();
    if !tool_or_skip("curl", "--version") {
        return;
    }
    let Some(php) = php_fpm() else { return };
    let gateway = Gateway::start(&["--php", &php_mount(&php)]);
    let out = Command::new("curl")
        .args(["-sS", "-i", "--http2-prior-knowledge", "--max-time", "20"])
        .arg(format!("http://{}/sleep.php?ms=1", gateway.addr()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    assert!(text.ends_with("slept 1\n"), "{text}");
}

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key, in `dir`.
fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // `req -x509` makes a CA by default, which webpki refuses as a server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A TLS connection to `addr` trusting only `cert`, offering `alpn`.
async fn tls_connect(
    addr: SocketAddr,
    cert: &Path,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake")
}

#[test]
fn tls_with_alpn_h2_sets_https_on() {
    let _serial = support::one_at_a_time();
    if !tool_or_skip("openssl", "version") {
        return;
    }
    let Some(php) = php_fpm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let gateway = Gateway::start(&[
        "--php",
        &php_mount(&php),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(gateway.log().contains("listening on https://"));
    support::runtime().block_on(async {
        let tls = tls_connect(gateway.addr(), &cert, &[b"h2", b"http/1.1"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let mut h2 = h2(tls).await;
        let (status, version, body) = send(&mut h2, get("https://localhost/env.php")).await;
        assert_eq!((status.as_u16(), version), (200, http::Version::HTTP_2));
        let env = EnvDump::parse(&body).unwrap();
        assert_eq!(env.var("HTTPS"), "on");
        assert_eq!(env.var("SERVER_PROTOCOL"), "HTTP/2.0");
        assert_eq!(env.var("REQUEST_SCHEME"), "https");

        // A client offering only HTTP/1.1 gets HTTP/1.1 on the same port.
        let tls = tls_connect(gateway.addr(), &cert, &[b"http/1.1"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let (mut http1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/env.php")
            .header("host", "localhost")
            .body(empty())
            .unwrap();
        let res = http1.send_request(req).await.unwrap();
        assert_eq!(res.version(), http::Version::HTTP_11);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let env = EnvDump::parse(&body).unwrap();
        assert_eq!(env.var("HTTPS"), "on");
        assert_eq!(env.var("SERVER_PROTOCOL"), "HTTP/1.1");
    });
}

#[test]
fn bad_tls_files_are_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty_pem = dir.path().join("empty.pem");
    std::fs::write(&empty_pem, "").unwrap();
    let path = empty_pem.to_str().unwrap();
    let out = Command::new(gateway_support::binary())
        .args([
            "--app",
            "/=tcp://127.0.0.1:9",
            "--tls-cert",
            path,
            "--tls-key",
            path,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert"));
    let out = Command::new(gateway_support::binary())
        .args(["--app", "/=tcp://127.0.0.1:9", "--tls-cert", path])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a certificate without a key");
}
