//! Failure semantics: every backend fault, timeout and cancellation has a defined outcome.
//! The backend here is the in-repo responder told to misbehave; the same behaviours are
//! exercised against real backends in the interop tests where a real backend can produce
//! the fault.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body::Body as _;
use support::fake::*;
use tower_fastcgi::proto::{ProtocolStatus, RecordType, encode_stream};
use tower_fastcgi::{ErrorKind, FcgiService, Timeout};

fn ok_handler(req: AppRequest, w: Writer) -> impl std::future::Future<Output = Handled> {
    answer(req, w, "Content-Type: text/plain", b"ok")
}

// ---------------------------------------------------------------- connection faults

#[tokio::test]
async fn connection_refused_is_502_at_once() {
    // A Unix socket path with nothing behind it.
    let dir = tempfile::tempdir().unwrap();
    let svc = FcgiService::builder()
        .unix(dir.path().join("missing.sock"))
        .build();
    let start = Instant::now();
    let res = send(&svc, get("/")).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(start.elapsed() < Duration::from_secs(1));

    // A TCP port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let svc = FcgiService::tcp(format!("127.0.0.1:{port}"));
    let err = svc.try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert_eq!(err.status_code(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn crash_before_head_is_502() {
    let fake = fake(|req, w| async move { Ok((req, w, After::Close)) }).await;
    let svc = fake.builder().build();
    let err = svc.try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(send(&svc, get("/")).await.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn eof_after_partial_head_is_502() {
    let fake = fake(|req, mut w| async move {
        w.stdout(b"Content-Type: text/pl").await?;
        w.flush().await?;
        Ok((req, w, After::Close))
    })
    .await;
    let svc = fake.builder().build();
    assert_eq!(send(&svc, get("/")).await.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn crash_mid_body_is_a_body_error() {
    let fake = fake(|req, mut w| async move {
        w.stdout(b"Content-Type: text/plain\r\n\r\n").await?;
        w.stdout(&[b'x'; 100_000]).await?;
        w.flush().await?;
        Ok((req, w, After::Close)) // no END_REQUEST
    })
    .await;
    let svc = fake.builder().build();
    let res = send(&svc, get("/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let err = body(res).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
}

#[tokio::test]
async fn eof_after_stdout_end_without_end_request_is_complete() {
    // FastCGI lets an application close instead of sending END_REQUEST when it was not
    // asked to keep the connection; the STDOUT terminator makes the body complete.
    let fake = fake(|req, mut w| async move {
        w.stdout(b"Content-Type: text/plain\r\n\r\nall here")
            .await?;
        let mut terminator = bytes::BytesMut::new();
        encode_stream(&mut terminator, RecordType::Stdout, w.request_id(), b"");
        w.raw(&terminator);
        w.flush().await?;
        Ok((req, w, After::Close))
    })
    .await;
    let svc = fake.builder().keep_alive(false).build();
    let res = send(&svc, get("/")).await;
    assert_eq!(&body(res).await.unwrap()[..], b"all here");
}

// ---------------------------------------------------------------- protocol faults

async fn raw_reply(bytes: &'static [u8]) -> support::fake::Fake {
    fake(move |req, mut w| async move {
        w.raw(bytes);
        w.flush().await?;
        Ok((req, w, After::Close))
    })
    .await
}

#[tokio::test]
async fn garbage_is_502_and_connection_closed() {
    let fake = raw_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").await;
    let svc = fake.builder().build();
    let err = svc.try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert_eq!(err.status_code(), StatusCode::BAD_GATEWAY);
    assert_eq!(svc.pool_stats().open, 0, "connection closed, not pooled");
}

#[tokio::test]
async fn bad_version_is_502() {
    // A STDOUT record with version 2.
    let fake = raw_reply(&[2, 6, 0, 1, 0, 0, 0, 0]).await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[tokio::test]
async fn wrong_request_id_is_502() {
    let fake = raw_reply(&[1, 6, 0, 2, 0, 1, 7, 0, b'x', 0, 0, 0, 0, 0, 0, 0]).await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn record_longer_than_the_stream_is_502() {
    // Header promises 65535 content bytes, then the backend hangs up.
    let fake = raw_reply(&[1, 6, 0, 1, 0xff, 0xff, 0, 0, b'S', b't']).await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.status_code(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn invalid_end_request_length_is_502() {
    let fake = raw_reply(&[
        1, 3, 0, 1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ])
    .await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn web_server_record_types_from_the_app_are_502() {
    // A BEGIN_REQUEST coming back from the application.
    let fake = raw_reply(&[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn overloaded_is_503() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        w.end_with(0, ProtocolStatus::Overloaded).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let svc = fake.builder().build();
    let res = send(&svc, get("/")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn cant_mpx_conn_is_503() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        w.end_with(0, ProtocolStatus::CantMpxConn).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CantMultiplex);
    assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn unknown_role_is_502_with_a_hint() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        w.end_with(0, ProtocolStatus::UnknownRole).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownRole);
    assert_eq!(err.status_code(), StatusCode::BAD_GATEWAY);
    assert!(err.to_string().contains("Responder"), "{err}");
}

#[tokio::test]
async fn end_request_without_output_is_502() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        w.end(0).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponseHead);
}

#[tokio::test]
async fn unknown_record_types_are_skipped() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        // Type 42 with some content and padding, and an unsolicited management record.
        w.raw(&[1, 42, 0, 1, 0, 3, 5, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]);
        w.raw(&[1, 11, 0, 0, 0, 8, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        w.stdout(b"Content-Type: text/plain\r\n\r\nfine").await?;
        w.end(0).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let res = send(&fake.builder().build(), get("/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(&body(res).await.unwrap()[..], b"fine");
}

// ---------------------------------------------------------------- bad response heads

async fn head_reply(head: &'static [u8]) -> support::fake::Fake {
    fake(move |mut req, mut w| async move {
        req.drain_stdin().await?;
        w.stdout(head).await?;
        w.end(0).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await
}

#[tokio::test]
async fn response_head_larger_than_the_cap_is_502() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        for i in 0..2000 {
            w.stdout(format!("X-Header-{i}: {}\r\n", "v".repeat(40)).as_bytes())
                .await?;
        }
        w.stdout(b"\r\n").await?;
        w.end(0).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let svc = fake.builder().max_response_head(16 * 1024).build();
    let err = svc.try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResponseHeadTooLarge);
    assert_eq!(err.status_code(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn invalid_header_name_is_502() {
    let fake = head_reply(b"Bad Header: x\r\n\r\n").await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponseHead);
}

#[tokio::test]
async fn cr_inside_a_header_value_is_502() {
    let fake = head_reply(b"X-Split: a\rSet-Cookie: injected\r\n\r\n").await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponseHead);
}

#[tokio::test]
async fn obs_fold_continuation_is_502() {
    let fake = head_reply(b"X-A: 1\r\n  folded\r\n\r\n").await;
    let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponseHead);
}

#[tokio::test]
async fn invalid_status_is_502() {
    for head in [
        &b"Status: 2000\r\n\r\n"[..],
        b"Status: abc\r\n\r\n",
        b"Status: 101\r\n\r\n",
    ] {
        let fake = head_reply(head).await;
        let err = fake.builder().build().try_call(get("/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponseHead, "{head:?}");
    }
}

#[tokio::test]
async fn backend_content_length_mismatch_is_a_body_error() {
    // Says 100, sends 5: a short body must not look complete.
    let fake = head_reply(b"Content-Length: 100\r\n\r\nshort").await;
    let res = send(&fake.builder().build(), get("/")).await;
    assert_eq!(res.headers()["content-length"], "100");
    let err = body(res).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContentLengthMismatch);

    // Says 2, sends 5.
    let fake = head_reply(b"Content-Length: 2\r\n\r\ntoo long").await;
    let err = body(send(&fake.builder().build(), get("/")).await)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContentLengthMismatch);

    // A matching Content-Length passes through.
    let fake = head_reply(b"Content-Length: 5\r\n\r\nexact").await;
    let res = send(&fake.builder().build(), get("/")).await;
    assert_eq!(res.body().size_hint().exact(), Some(5));
    assert_eq!(&body(res).await.unwrap()[..], b"exact");
}

#[tokio::test]
async fn backend_transfer_encoding_never_reaches_the_client() {
    let fake =
        head_reply(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            .await;
    let res = send(&fake.builder().build(), get("/")).await;
    assert!(!res.headers().contains_key("transfer-encoding"));
    assert!(!res.headers().contains_key("content-length"));
    assert!(body(res).await.is_ok());
}

// ---------------------------------------------------------------- connection reuse rules

#[tokio::test]
async fn data_after_end_request_closes_the_connection() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        w.stdout(b"Content-Type: text/plain\r\n\r\nok").await?;
        w.end(0).await?;
        // More output after END_REQUEST.
        w.stdout(b"trailing garbage").await?;
        w.flush().await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let svc = fake.builder().build();
    for _ in 0..3 {
        let res = send(&svc, get("/")).await;
        assert_eq!(&body(res).await.unwrap()[..], b"ok");
        // Give the trailing bytes time to arrive before the connection is judged.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.connections(), 3, "no connection was reused");
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let fake = fake(ok_handler).await;
    let svc = fake.builder().build();
    for _ in 0..20 {
        assert_eq!(&body(send(&svc, get("/")).await).await.unwrap()[..], b"ok");
    }
    assert_eq!(fake.connections(), 1);
    let stats = svc.pool_stats();
    assert_eq!(stats.connections_opened, 1);
    assert_eq!(stats.connections_reused, 19);
    assert_eq!(stats.idle, 1);
}

#[tokio::test]
async fn max_requests_per_connection_retires_connections() {
    let fake = fake(ok_handler).await;
    let svc = fake.builder().max_requests_per_connection(5).build();
    for _ in 0..20 {
        assert!(body(send(&svc, get("/")).await).await.is_ok());
    }
    assert_eq!(fake.connections(), 4);
}

#[tokio::test]
async fn stderr_flood_is_bounded_and_harmless() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        let line = [b'e'; 1000];
        for _ in 0..10_000 {
            w.stderr(&line).await?;
            w.stderr(b"\n").await?;
        }
        w.stdout(b"Content-Type: text/plain\r\n\r\nstill fine")
            .await?;
        w.end(0).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let svc = fake.builder().stderr_log_limit(4096).build();
    let res = send(&svc, get("/")).await;
    assert_eq!(&body(res).await.unwrap()[..], b"still fine");
    assert_eq!(
        svc.pool_stats().idle,
        1,
        "connection reused after the flood"
    );
}

// ---------------------------------------------------------------- timeouts

#[tokio::test]
async fn response_head_timeout_is_504() {
    let fake = fake(|req, w| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok((req, w, After::Close))
    })
    .await;
    let svc = fake
        .builder()
        .response_head_timeout(Duration::from_millis(200))
        .build();
    let start = Instant::now();
    let err = svc.try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Timeout::ResponseHead));
    assert_eq!(err.status_code(), StatusCode::GATEWAY_TIMEOUT);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn read_timeout_after_the_head_is_a_body_error() {
    let fake = fake(|req, mut w| async move {
        w.stdout(b"Content-Type: text/plain\r\n\r\nstart").await?;
        w.flush().await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok((req, w, After::Close))
    })
    .await;
    let svc = fake
        .builder()
        .read_timeout(Duration::from_millis(200))
        .build();
    let res = send(&svc, get("/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let err = body(res).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Timeout::Read));
}

#[tokio::test]
async fn read_timeout_does_not_count_a_slow_client() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        w.stdout(b"Content-Type: text/plain\r\n\r\n").await?;
        for _ in 0..3 {
            w.stdout(&[b'x'; 100]).await?;
            w.flush().await?;
        }
        w.end(0).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let svc = fake
        .builder()
        .read_timeout(Duration::from_millis(100))
        .build();
    let mut res = send(&svc, get("/")).await;
    // The client waits longer than the read timeout before reading on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut total = 0;
    while let Some(frame) = http_body_util::BodyExt::frame(res.body_mut()).await {
        total += frame.unwrap().into_data().unwrap().len();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(total, 300);
}

#[tokio::test]
async fn write_timeout_when_the_backend_stops_reading() {
    // The backend never reads STDIN and never answers.
    let fake = fake(|req, w| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok((req, w, After::Close))
    })
    .await;
    let svc = fake
        .builder()
        .write_timeout(Duration::from_millis(300))
        .build();
    let big = Bytes::from(vec![b'u'; 32 << 20]);
    let start = Instant::now();
    let err = svc.try_call(post("/", big)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Timeout::Write));
    assert_eq!(err.status_code(), StatusCode::GATEWAY_TIMEOUT);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn total_timeout_caps_a_streaming_body() {
    let fake = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        w.stdout(b"Content-Type: text/plain\r\n\r\n").await?;
        loop {
            w.stdout(b"tick\n").await?;
            w.flush().await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let svc = fake
        .builder()
        .total_timeout(Duration::from_millis(300))
        .build();
    let res = send(&svc, get("/")).await;
    let err = body(res).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Timeout::Total));
}

#[tokio::test]
async fn queue_timeout_is_503() {
    let fake = fake(|mut req, w| async move {
        req.drain_stdin().await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok((req, w, After::Close))
    })
    .await;
    let svc = fake
        .builder()
        .max_connections(1)
        .queue_timeout(Duration::from_millis(200))
        .build();
    let first = tokio::spawn({
        let svc = svc.clone();
        async move { svc.try_call(get("/")).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = svc.try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Timeout::PoolWait));
    assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    first.abort();
}

#[tokio::test]
async fn connect_timeout_is_504() {
    // A listener whose accept queue is full: further SYNs are dropped, connect hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let _listener = socket.listen(1).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let svc = FcgiService::builder()
        .tcp(addr.to_string())
        .connect_timeout(Duration::from_millis(300))
        .build();
    let err = svc.try_call(get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Timeout::Connect));
    assert_eq!(err.status_code(), StatusCode::GATEWAY_TIMEOUT);
}

// ---------------------------------------------------------------- cancellation

fn forever_streamer(
    started: Arc<AtomicUsize>,
) -> impl Fn(AppRequest, Writer) -> std::pin::Pin<Box<dyn std::future::Future<Output = Handled> + Send>>
+ Send
+ Sync
+ 'static {
    move |mut req, mut w| {
        let started = Arc::clone(&started);
        Box::pin(async move {
            req.drain_stdin().await?;
            started.fetch_add(1, Ordering::SeqCst);
            if req.param("QUERY_STRING") == "quick" {
                return answer(req, w, "Content-Type: text/plain", b"quick").await;
            }
            w.stdout(b"Content-Type: text/plain\r\n\r\n").await?;
            loop {
                // Fails once the web server closes the connection.
                w.stdout(&[b'z'; 8192]).await?;
                w.flush().await?;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    }
}

#[tokio::test]
async fn dropping_the_body_closes_the_backend_connection() {
    let started = Arc::new(AtomicUsize::new(0));
    let fake = fake(forever_streamer(Arc::clone(&started))).await;
    let svc = fake.builder().max_connections(2).build();
    let mut res = send(&svc, get("/")).await;
    let first = http_body_util::BodyExt::frame(res.body_mut()).await;
    assert!(first.is_some());
    assert_eq!(svc.pool_stats().open, 1);
    drop(res); // the client went away
    assert_eq!(svc.pool_stats().open, 0, "freed at once, not pooled");
    eventually("the backend saw the connection close", || fake.open() == 0).await;
    // The next request works, on a new connection.
    let res = send(&svc, get("/?quick")).await;
    assert_eq!(&body(res).await.unwrap()[..], b"quick");
    assert_eq!(fake.connections(), 2);
}

#[tokio::test]
async fn dropping_the_future_before_the_head_closes_the_backend_connection() {
    let fake = fake(|mut req, w| async move {
        req.drain_stdin().await?;
        // Stays busy until the web server hangs up.
        let _ = tokio::time::timeout(Duration::from_secs(30), req.wait_for_close()).await;
        Ok((req, w, After::Close))
    })
    .await;
    let svc = fake.builder().build();
    let call = svc.try_call(get("/"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), call)
            .await
            .is_err()
    );
    assert_eq!(svc.pool_stats().open, 0);
    eventually("the backend saw the connection close", || fake.open() == 0).await;
}

// ---------------------------------------------------------------- stale connections

#[tokio::test]
async fn stale_pooled_connection_is_retried_once() {
    // Each connection serves one request; the second request on it finds the backend
    // gone only after it was sent (the liveness probe cannot see it yet).
    let fake = fake(|mut req, mut w| async move {
        let n = req.param("HTTP_X_N").to_owned();
        req.drain_stdin().await?;
        if n == "hangup" {
            return Ok((req, w, After::Close));
        }
        w.stdout(b"Content-Type: text/plain\r\n\r\nserved").await?;
        w.end(0).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let svc = fake.builder().build();
    assert!(body(send(&svc, get("/")).await).await.is_ok());
    // This request hits the idle connection; the backend hangs up on it. The retry goes
    // to a new connection, where the backend hangs up again: the client sees 502 only
    // because this fake backend always hangs up on "hangup".
    let req = http::Request::get("/")
        .header("x-n", "hangup")
        .body(http_body_util::Full::<Bytes>::default())
        .unwrap();
    let res = send(&svc, req).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(svc.pool_stats().stale_retries, 1, "retried exactly once");
    assert_eq!(fake.connections(), 2);
}

#[tokio::test]
async fn stale_connection_retry_succeeds_on_a_fresh_connection() {
    // The backend hangs up, once, on the second request of a connection, as php-fpm
    // does when a worker reaches pm.max_requests while the next request is in flight.
    let hung_up = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&hung_up);
    let fake = fake(move |mut req, w| {
        let flag = Arc::clone(&flag);
        async move {
            if req.nth_on_connection == 1
                && flag
                    .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                req.drain_stdin().await?;
                return Ok((req, w, After::Close));
            }
            answer(req, w, "Content-Type: text/plain", b"served").await
        }
    })
    .await;
    let svc = fake.builder().build();
    for _ in 0..5 {
        let res = send(&svc, post("/", "small body, replayable")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(&body(res).await.unwrap()[..], b"served");
    }
    assert_eq!(hung_up.load(Ordering::SeqCst), 1);
    assert_eq!(svc.pool_stats().stale_retries, 1);
    assert_eq!(fake.connections(), 2);
}

#[tokio::test]
async fn stale_retry_at_capacity_gets_a_fresh_connection() {
    // Every connection serves one request and hangs up on the next one once it was sent
    // (php-fpm recycling workers in a burst). With one connection allowed and a request
    // queued behind the one that meets the stale connection, the retry waits for capacity,
    // and what is released next is the queued request's kept-alive connection, which the
    // backend will hang up on too: the retry must open a fresh connection instead.
    // (Found by tests/interop_load.rs against php-fpm with pm.max_requests = 10.)
    let fake = fake(|mut req, w| async move {
        if req.nth_on_connection >= 1 {
            req.drain_stdin().await?;
            return Ok((req, w, After::Close));
        }
        answer(req, w, "Content-Type: text/plain", b"served").await
    })
    .await;
    let svc = fake.builder().max_connections(1).build();
    assert!(body(send(&svc, get("/")).await).await.is_ok());
    // On this single-threaded runtime `a` runs first and takes the idle connection; `b`
    // queues; `a`'s retry queues behind `b`.
    let request = |path: &'static str| {
        let svc = svc.clone();
        tokio::spawn(async move {
            let res = send(&svc, get(path)).await;
            (res.status(), body(res).await.ok())
        })
    };
    let (a, b) = (request("/a"), request("/b"));
    for (name, task) in [("a", a), ("b", b)] {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(body.as_deref(), Some(&b"served"[..]), "{name}");
    }
    let stats = svc.pool_stats();
    assert_eq!(stats.stale_retries, 1, "{stats:?}");
    assert_eq!(
        fake.connections(),
        3,
        "the retry used a connection of its own"
    );
}

#[tokio::test]
async fn streamed_body_is_not_replayed() {
    let fake = fake(|mut req, w| async move {
        // Hang up on any request with a body, after reading a little of it.
        if !req.param("CONTENT_LENGTH").is_empty() {
            let _ = req.read_stdin().await;
            return Ok((req, w, After::Close));
        }
        answer(req, w, "Content-Type: text/plain", b"ok").await
    })
    .await;
    let svc = fake.builder().build();
    assert!(body(send(&svc, get("/")).await).await.is_ok());
    let big = Bytes::from(vec![b'b'; 1 << 20]);
    let res = send(&svc, post("/", big)).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        svc.pool_stats().stale_retries,
        0,
        "a streamed body cannot be replayed"
    );
    // So it is never sent on a pooled connection, which a backend recycling its worker
    // may be closing: the GET's idle connection was left alone.
    assert_eq!(
        fake.connections(),
        2,
        "the streamed body got a new connection"
    );
    assert_eq!(svc.pool_stats().connections_reused, 0);
}
