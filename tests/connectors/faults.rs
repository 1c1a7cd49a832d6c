//! The SCGI and uwsgi response decoders against a tiny misbehaving server on
//! 127.0.0.1: garbage, truncated and oversized heads, early closes, chunked framing,
//! silence; and the bytes of the requests they send.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_fastcgi::{FcgiService, FcgiServiceBuilder, UnknownLengthBody};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Scgi,
    Uwsgi,
}

/// A server that answers one connection with `answer` (then closes, unless `hang`) and
/// hands back the request bytes it read.
async fn serve_once(
    proto: Proto,
    answer: Vec<u8>,
    hang: bool,
) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let request = read_request(&mut sock, proto).await;
        if hang {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        let _ = sock.write_all(&answer).await;
        let _ = sock.shutdown().await;
        // Read to EOF so closing sends FIN, not RST.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), sock.read_to_end(&mut rest)).await;
        request
    });
    (addr, task)
}

/// Reads one request head (and the body CONTENT_LENGTH says, which these tests keep 0).
async fn read_request(sock: &mut tokio::net::TcpStream, proto: Proto) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let complete = match proto {
            Proto::Scgi => buf.iter().position(|&b| b == b':').is_some_and(|colon| {
                let len: usize = std::str::from_utf8(&buf[..colon]).unwrap().parse().unwrap();
                buf.len() > colon + len + 1
            }),
            Proto::Uwsgi => {
                buf.len() >= 4 && buf.len() >= 4 + u16::from_le_bytes([buf[1], buf[2]]) as usize
            }
        };
        if complete {
            return buf;
        }
        let n = sock.read(&mut chunk).await.unwrap();
        if n == 0 {
            return buf;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn builder(addr: &str) -> FcgiServiceBuilder {
    FcgiService::builder()
        .tcp(addr)
        .response_head_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(5))
}

/// One GET through the service for `proto`: the status and the body (or its error).
async fn get(proto: Proto, b: FcgiServiceBuilder) -> (StatusCode, Result<Bytes, String>) {
    let req = Request::get("/x?q=1")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = match proto {
        Proto::Scgi => b.build_scgi().oneshot(req).await.unwrap(),
        Proto::Uwsgi => b.build_uwsgi().oneshot(req).await.unwrap(),
    };
    let status = res.status();
    let body = res.into_body().collect().await;
    (
        status,
        body.map(|c| c.to_bytes()).map_err(|e| e.to_string()),
    )
}

async fn answer(proto: Proto, bytes: &[u8]) -> (StatusCode, Result<Bytes, String>) {
    let (addr, server) = serve_once(proto, bytes.to_vec(), false).await;
    let result = get(proto, builder(&addr)).await;
    server.abort();
    result
}

const BOTH: [Proto; 2] = [Proto::Scgi, Proto::Uwsgi];

#[tokio::test]
async fn garbage_is_502() {
    for proto in BOTH {
        let (status, _) = answer(proto, b"\x00\x01\x02 garbage\r\n\r\n").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{proto:?}");
        let (status, _) = answer(proto, b"HTTP/9.9 200 OK\r\n\r\n").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{proto:?}");
    }
}

#[tokio::test]
async fn truncated_head_and_silent_close_are_502() {
    for proto in BOTH {
        let (status, _) = answer(proto, b"Status: 200 OK\r\nContent-Type: text/plain\r\n").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{proto:?}");
        let (status, _) = answer(proto, b"").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{proto:?}");
    }
}

#[tokio::test]
async fn oversized_head_is_502() {
    for proto in BOTH {
        let mut head = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 100 * 1024));
        head.extend_from_slice(b"\r\n\r\nbody");
        let (status, _) = answer(proto, &head).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{proto:?}");
    }
}

#[tokio::test]
async fn hostile_heads_are_502() {
    for proto in BOTH {
        for head in [
            &b"HTTP/1.1 200 OK\r\nStatus: 404 Not Found\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"Status: 200\r\nX-A: a\rb\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
        ] {
            let (status, _) = answer(proto, head).await;
            assert_eq!(status, StatusCode::BAD_GATEWAY, "{proto:?} {head:?}");
        }
    }
}

#[tokio::test]
async fn status_line_and_cgi_heads_both_work() {
    for proto in BOTH {
        let (status, body) = answer(
            proto,
            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        )
        .await;
        assert_eq!(
            (status, body.unwrap()),
            (StatusCode::CREATED, Bytes::from("ok"))
        );
        let (status, body) = answer(proto, b"Status: 404 Not Found\r\n\r\nnope").await;
        assert_eq!(
            (status, body.unwrap()),
            (StatusCode::NOT_FOUND, Bytes::from("nope"))
        );
    }
}

/// The backend declared 100 bytes and closed after 10: a body error, never a clean end.
#[tokio::test]
async fn early_close_after_a_content_length_is_a_body_error() {
    for proto in BOTH {
        let (status, body) = answer(
            proto,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_err(), "{proto:?}: {body:?}");
        // Without a length, EOF is the end (the protocols have no other).
        let (_, body) = answer(proto, b"Status: 200 OK\r\n\r\n0123456789").await;
        assert_eq!(body.unwrap(), Bytes::from("0123456789"));
    }
}

#[tokio::test]
async fn silence_is_504_and_refused_is_502() {
    let (addr, server) = serve_once(Proto::Scgi, Vec::new(), true).await;
    let b = builder(&addr).response_head_timeout(Duration::from_millis(300));
    let (status, _) = get(Proto::Scgi, b).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    server.abort();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let (status, _) = get(Proto::Uwsgi, builder(&addr)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn scgi_request_is_a_netstring_with_content_length_first() {
    let (addr, server) = serve_once(Proto::Scgi, b"Status: 204\r\n\r\n".to_vec(), false).await;
    let (status, _) = get(Proto::Scgi, builder(&addr)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let request = server.await.unwrap();
    let colon = request.iter().position(|&b| b == b':').unwrap();
    let len: usize = std::str::from_utf8(&request[..colon])
        .unwrap()
        .parse()
        .unwrap();
    let headers = &request[colon + 1..colon + 1 + len];
    assert_eq!(request[colon + 1 + len], b',');
    assert!(
        headers.starts_with(b"CONTENT_LENGTH\x000\x00SCGI\x001\x00"),
        "{headers:?}"
    );
    let fields: Vec<&[u8]> = headers.split(|&b| b == 0).collect();
    let names: Vec<&[u8]> = fields.chunks(2).map(|p| p[0]).collect();
    assert_eq!(names.iter().filter(|n| **n == b"CONTENT_LENGTH").count(), 1);
    assert!(names.contains(&&b"QUERY_STRING"[..]));
}

#[tokio::test]
async fn uwsgi_request_has_the_four_byte_header() {
    let (addr, server) = serve_once(Proto::Uwsgi, b"HTTP/1.0 200 OK\r\n\r\n".to_vec(), false).await;
    let (status, _) = get(Proto::Uwsgi, builder(&addr)).await;
    assert_eq!(status, StatusCode::OK);
    let request = server.await.unwrap();
    let size = u16::from_le_bytes([request[1], request[2]]) as usize;
    assert_eq!((request[0], request[3]), (0, 0), "modifier1 and modifier2");
    assert_eq!(request.len(), 4 + size, "a GET has no body");
    let mut vars = &request[4..];
    let mut names = Vec::new();
    while !vars.is_empty() {
        let n = u16::from_le_bytes([vars[0], vars[1]]) as usize;
        let name = &vars[2..2 + n];
        let v = u16::from_le_bytes([vars[2 + n], vars[3 + n]]) as usize;
        names.push(String::from_utf8_lossy(name).into_owned());
        vars = &vars[4 + n + v..];
    }
    assert_eq!(names[0], "CONTENT_LENGTH");
    assert!(names.iter().any(|n| n == "REQUEST_METHOD"));
}

#[test]
fn streaming_an_unknown_length_body_is_a_build_error() {
    let err = FcgiService::builder()
        .tcp("127.0.0.1:1")
        .unknown_length_body(UnknownLengthBody::Stream)
        .try_build_stream::<tower_fastcgi::connector::Scgi>()
        .unwrap_err();
    assert!(err.to_string().contains("CONTENT_LENGTH"), "{err}");
}

/// `max_connections` caps connections in flight; past `queue_timeout` a request is 503.
#[tokio::test]
async fn a_full_backend_queues_then_503s() {
    let (addr, server) = serve_once(Proto::Scgi, Vec::new(), true).await;
    let svc = builder(&addr)
        .max_connections(1)
        .queue_timeout(Duration::from_millis(200))
        .build_scgi();
    let req = || Request::get("/x").body(axum::body::Body::empty()).unwrap();
    let hanging = tokio::spawn(svc.clone().oneshot(req()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(svc.pool_stats().open, 1);
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    hanging.abort();
    server.abort();
}
