//! `FcgiService::stats()` after a known sequence of requests: what a dashboard reads.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::fake::{answer, body, fake, get, send};
use tower_fastcgi::FcgiService;

#[tokio::test]
async fn stats_count_requests_statuses_failures_and_latency() {
    let fake = fake(|req, w| async move {
        let status = if req.param("PATH_INFO") == "/missing" {
            "Status: 404 Not Found"
        } else {
            "Status: 200 OK"
        };
        answer(req, w, status, b"ok").await
    })
    .await;
    let svc = fake.builder().build();
    for path in ["/a", "/b", "/c", "/missing"] {
        let res = send(&svc, get(path)).await;
        body(res).await.expect("complete body");
    }
    let stats = svc.stats();
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.responses_by_class, [0, 3, 0, 1, 0]);
    assert_eq!(stats.failures, Default::default());
    assert_eq!(stats.time_to_head.count, 4);
    assert!(stats.time_to_head.max >= stats.time_to_head.mean().unwrap());
    assert_eq!(stats.queue_wait.count, 4);
    assert_eq!(stats.pool.connections_opened, 1, "{stats:?}");
    assert_eq!(stats.pool.connections_reused, 3);
    assert_eq!((stats.pool.busy, stats.pool.idle), (0, 1));

    // A body still being read holds its connection: that is the backend's load.
    let res = send(&svc, get("/a")).await;
    assert_eq!(svc.stats().pool.busy, 1);
    drop(res);
    assert_eq!(svc.stats().pool.busy, 0);
}

#[tokio::test]
async fn stats_count_failures_by_cause() {
    let dir = tempfile::tempdir().unwrap();
    let svc = FcgiService::builder()
        .unix(dir.path().join("nobody-listens.sock"))
        .build();
    let res = send(&svc, get("/")).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let stats = svc.stats();
    assert_eq!((stats.requests, stats.failures.connect), (1, 1));
    assert_eq!(stats.responses_by_class, [0; 5]);

    // One connection, held by a slow request: the next one times out in the queue.
    let fake = fake(|req, w| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        answer(req, w, "Status: 200 OK", b"").await
    })
    .await;
    let svc = fake
        .builder()
        .max_connections(1)
        .queue_timeout(Duration::from_millis(50))
        .build();
    let slow = tokio::spawn({
        let svc = svc.clone();
        async move { send(&svc, get("/")).await.status() }
    });
    support::fake::eventually("the first request holds the connection", || {
        svc.stats().pool.busy == 1
    })
    .await;
    let res = send(&svc, get("/")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
    let stats = svc.stats();
    assert_eq!(stats.failures.queue_timeout, 1, "{stats:?}");
    assert!(stats.queue_wait.max >= Duration::from_millis(50));
}

/// The `fastcgi_backend` span names the backend and carries the queue wait and the time
/// to the response head, for a tracing backend (Jaeger, Tempo) to show per request.
#[tokio::test]
async fn the_backend_span_carries_the_backend_queue_wait_and_time_to_head() {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::format::FmtSpan;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tower_fastcgi=debug")
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread test: the default subscriber covers every poll of the request.
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = fake(|req, w| async move { answer(req, w, "Status: 200 OK", b"ok").await }).await;
    let svc = fake.builder().build();
    body(send(&svc, get("/a")).await)
        .await
        .expect("complete body");
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let close = text
        .lines()
        .find(|l| l.contains("fastcgi_backend") && l.contains("close"))
        .unwrap_or_else(|| panic!("no span close in:\n{text}"));
    for field in ["backend=", "queue_wait_us=", "head_us=", "attempt=1"] {
        assert!(close.contains(field), "{field} missing from {close}");
    }
}
