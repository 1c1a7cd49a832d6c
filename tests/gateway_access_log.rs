//! The gateway's access log (`examples/support/access_log.rs`): the line format, batching
//! (one write for many lines), a full queue dropping and counting instead of waiting, and
//! the real binary's `--access-log FILE`, flushed within a second and at shutdown.

// The gateway opens its log by name (`open`); these tests start it on a test writer.
#[allow(dead_code)]
#[path = "../examples/support/access_log.rs"]
mod access_log;
mod gateway_support;
mod support;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use access_log::{AccessLog, Config};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};
use tower_fastcgi::ConnectionInfo;

/// A `Write` that keeps each `write` call separately, to see the batching.
#[derive(Clone, Default)]
struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

impl Write for Writes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Writes {
    fn calls(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().concat()).unwrap()
    }
}

/// A service answering `status` with `body`, behind the access log's layer.
async fn log_one(
    log: &AccessLog,
    req: http::Request<Full<Bytes>>,
    status: u16,
    body: &'static str,
) {
    let inner = tower::service_fn(move |_req: http::Request<Full<Bytes>>| async move {
        Ok::<_, std::convert::Infallible>(
            http::Response::builder()
                .status(status)
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap(),
        )
    });
    let res = log.layer().layer(inner).oneshot(req).await.unwrap();
    // The line is written when the body has been sent (here: read).
    res.into_body().collect().await.unwrap();
}

fn slow_ticks() -> Config {
    // The writer never wakes by itself during the test: `finish` drains.
    Config {
        tick: Duration::from_secs(3600),
        flush_every: Duration::from_secs(3600),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_line_per_request_in_the_combined_format() {
    let out = Writes::default();
    let log = AccessLog::start(Box::new(out.clone()), slow_ticks()).unwrap();
    let mut req = http::Request::get("/a?q=%221%22")
        .header(
            "user-agent",
            http::HeaderValue::from_bytes(b"curl \"x\" \xe9").unwrap(),
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        remote: Some("192.0.2.7:5555".parse().unwrap()),
        ..ConnectionInfo::default()
    });
    log_one(&log, req, 404, "not here").await;
    let req = http::Request::post("/upload")
        .body(Full::new(Bytes::new()))
        .unwrap();
    log_one(&log, req, 201, "").await;
    log.finish();

    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first = lines[0];
    assert!(first.starts_with("192.0.2.7 - - ["), "{first}");
    // [DD/Mon/YYYY:HH:MM:SS +0000]
    assert_eq!(
        &first[first.find('[').unwrap() + 21..][..8],
        " +0000] ",
        "{first}"
    );
    assert!(
        first.contains("] \"GET /a?q=%221%22 HTTP/1.1\" 404 8 \"-\" \"curl \\x22x\\x22 \\xE9\" "),
        "{first}"
    );
    let secs: f64 = first.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs >= 0.0);
    assert!(
        lines[1].starts_with("- - - [")
            && lines[1].contains("\"POST /upload HTTP/1.1\" 201 0 \"-\" \"-\" "),
        "no ConnectionInfo: remote is -; empty body: 0 bytes: {}",
        lines[1]
    );
}

#[tokio::test]
async fn many_lines_leave_in_one_write() {
    let out = Writes::default();
    let log = AccessLog::start(Box::new(out.clone()), slow_ticks()).unwrap();
    for _ in 0..200 {
        let req = http::Request::get("/tiny")
            .body(Full::new(Bytes::new()))
            .unwrap();
        log_one(&log, req, 200, "hello").await;
    }
    assert_eq!(out.calls(), 0, "nothing is written on the request path");
    log.finish();
    assert_eq!(out.text().lines().count(), 200);
    // 200 lines of ~70 bytes fit the 64 KiB buffer: one write for all of them.
    assert_eq!(out.calls(), 1, "batched into one write");
}

#[tokio::test]
async fn the_writer_flushes_by_itself_within_the_flush_interval() {
    let out = Writes::default();
    let config = Config {
        tick: Duration::from_millis(20),
        flush_every: Duration::from_millis(100),
        ..Config::default()
    };
    let log = AccessLog::start(Box::new(out.clone()), config).unwrap();
    let req = http::Request::get("/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    log_one(&log, req, 200, "").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.calls() == 0 {
        assert!(Instant::now() < deadline, "the line was never flushed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(out.text().contains("\"GET /x HTTP/1.1\" 200 0"));
    log.finish();
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let out = Writes::default();
    let config = Config {
        // Room for about three lines.
        queue_bytes: 250,
        ..slow_ticks()
    };
    let log = AccessLog::start(Box::new(out.clone()), config).unwrap();
    let started = Instant::now();
    for _ in 0..10 {
        let req = http::Request::get("/q")
            .body(Full::new(Bytes::new()))
            .unwrap();
        log_one(&log, req, 200, "").await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "never blocks");
    let dropped = log.dropped();
    log.finish();
    let written = out.text().lines().count() as u64;
    assert!(
        written >= 1 && dropped >= 1,
        "written {written}, dropped {dropped}"
    );
    assert_eq!(
        written + dropped,
        10,
        "every line is either written or counted"
    );
}

/// The real binary: `--access-log FILE` gets a line per request within about a second
/// (the flush interval) and everything at shutdown.
#[test]
fn the_gateway_writes_its_access_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    // Nothing listens on port 1: every request is a 502, which needs no backend.
    let mut gateway = gateway_support::Gateway::start(&[
        "--app",
        "/=tcp://127.0.0.1:1",
        "--access-log",
        path.to_str().unwrap(),
    ]);
    let get = |target: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://{}{target}", gateway.addr()))
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let Ok(code) = get("/first") else {
        if support::policy() == support::Policy::Require {
            panic!("FCGI_INTEROP=require, but curl is not installed");
        }
        support::skip_loudly("curl", "curl is not installed");
        return;
    };
    assert_eq!(code, "502");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("\"GET /first HTTP/1.1\" 502 ") {
            break;
        }
        assert!(Instant::now() < deadline, "no line within 5 s: {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    get("/second").unwrap();
    gateway.terminate();
    assert!(
        gateway
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"GET /second HTTP/1.1\" 502 "),
        "flushed at exit: {text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
}
