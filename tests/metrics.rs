//! `tower_fastcgi::metrics::Reporter` (feature `metrics`): after a known sequence of
//! requests, the values a recorder receives, their labels, and that every name is
//! described and in the module docs' table.
//!
//! A small capturing recorder, installed per test with `metrics::with_local_recorder`
//! (so tests running in parallel never see each other's series); only the interval
//! task reports to the global recorder, in one test.

#[path = "metrics/capture.rs"]
mod capture;
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use capture::{Capture, Value};
use http::StatusCode;
use metrics::Unit;
use support::fake::{answer, body, fake, get, send};
use tower_fastcgi::metrics::Reporter;
use tower_fastcgi::{Backend, FcgiService};

async fn ok_or_404() -> support::fake::Fake {
    fake(|req, w| async move {
        let status = if req.param("PATH_INFO") == "/missing" {
            "Status: 404 Not Found"
        } else {
            "Status: 200 OK"
        };
        answer(req, w, status, b"ok").await
    })
    .await
}

#[tokio::test]
async fn counters_after_a_known_sequence_of_requests() {
    let fake = ok_or_404().await;
    let svc = fake.builder().build();
    for path in ["/a", "/b", "/c", "/missing"] {
        body(send(&svc, get(path)).await)
            .await
            .expect("complete body");
    }
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || {
        Reporter::new(svc.clone(), "/app").report_once()
    });

    let mount = [("mount", "/app")];
    let backend_label = fake.backend.to_string();
    let backend = [("mount", "/app"), ("backend", backend_label.as_str())];
    for labels in [&mount[..], &backend[..]] {
        let family = if labels.len() == 1 {
            "fastcgi_"
        } else {
            "fastcgi_backend_"
        };
        let counter = |suffix: &str, extra: &[(&str, &str)]| {
            let all: Vec<_> = labels.iter().chain(extra).copied().collect();
            capture.counter(&format!("{family}{suffix}"), &all)
        };
        let gauge = |suffix: &str| capture.gauge(&format!("{family}{suffix}"), labels);
        assert_eq!(counter("requests_total", &[]), 4, "{family}");
        let by_class: Vec<u64> = ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .map(|class| counter("responses_total", &[("class", class)]))
            .collect();
        assert_eq!(by_class, [0, 3, 0, 1, 0], "{family}");
        for cause in [
            "connect",
            "queue_timeout",
            "timeout",
            "overloaded",
            "broken",
            "no_backend",
        ] {
            assert_eq!(
                counter("failures_total", &[("cause", cause)]),
                0,
                "{family} {cause}"
            );
        }
        assert_eq!(counter("retries_total", &[]), 0);
        assert_eq!(counter("stale_retries_total", &[]), 0);
        assert_eq!(counter("connections_opened_total", &[]), 1, "{family}");
        assert_eq!(counter("connections_reused_total", &[]), 3, "{family}");
        assert_eq!(gauge("in_flight"), 0.0);
        assert_eq!(gauge("connections_open"), 1.0);
        assert_eq!(gauge("connections_idle"), 1.0);
        assert_eq!(gauge("queue_waiting"), 0.0);
        assert_eq!(counter("queue_wait_seconds_count", &[]), 4);
        assert_eq!(counter("time_to_head_seconds_count", &[]), 4);
        let (sum, max) = (
            gauge("time_to_head_seconds_sum"),
            gauge("time_to_head_seconds_max"),
        );
        assert!(
            sum > 0.0 && max > 0.0 && max <= sum,
            "{family}: sum {sum}, max {max}"
        );
    }
    assert_eq!(
        capture.counter("fastcgi_retries_over_budget_total", &mount),
        0
    );
    assert_eq!(capture.gauge("fastcgi_backend_in_rotation", &backend), 1.0);
    assert_eq!(
        capture.counter("fastcgi_backend_ejections_total", &backend),
        0
    );

    // The latency figures are the snapshot's, in seconds.
    let stats = svc.stats();
    let sum = capture.gauge("fastcgi_time_to_head_seconds_sum", &mount);
    assert_eq!(sum, stats.time_to_head.total.as_secs_f64());
    let max = capture.gauge("fastcgi_queue_wait_seconds_max", &mount);
    assert_eq!(max, stats.queue_wait.max.as_secs_f64());

    // A response body still being read is in flight; a second report says so, and
    // counters move to the new absolute values rather than adding up.
    let res = send(&svc, get("/a")).await;
    let reporter = Reporter::new(svc.clone(), "/app");
    metrics::with_local_recorder(&capture, || reporter.report_once());
    assert_eq!(capture.gauge("fastcgi_in_flight", &mount), 1.0);
    assert_eq!(capture.gauge("fastcgi_backend_in_flight", &backend), 1.0);
    assert_eq!(capture.counter("fastcgi_requests_total", &mount), 5);
    drop(res);
    metrics::with_local_recorder(&capture, || reporter.report_once());
    assert_eq!(capture.gauge("fastcgi_in_flight", &mount), 0.0);
    assert_eq!(capture.counter("fastcgi_requests_total", &mount), 5);
}

#[tokio::test]
async fn a_backend_nobody_listens_on_counts_connect_failures() {
    let dir = tempfile::tempdir().unwrap();
    let dead = Backend::unix(dir.path().join("nobody-listens.sock"));
    let svc = FcgiService::builder().backend(dead.clone()).build();
    for _ in 0..2 {
        assert_eq!(send(&svc, get("/")).await.status(), StatusCode::BAD_GATEWAY);
    }
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || Reporter::new(svc, "dead").report_once());
    let dead = dead.to_string();
    let backend = [("mount", "dead"), ("backend", dead.as_str())];
    for (name, labels) in [
        ("fastcgi_failures_total", &[("mount", "dead")][..]),
        ("fastcgi_backend_failures_total", &backend[..]),
    ] {
        let with_cause: Vec<_> = labels
            .iter()
            .copied()
            .chain([("cause", "connect")])
            .collect();
        assert_eq!(capture.counter(name, &with_cause), 2, "{name}");
    }
    assert_eq!(
        capture.counter("fastcgi_requests_total", &[("mount", "dead")]),
        2
    );
    // A 502 made here is not a response head from the backend.
    let five = [("mount", "dead"), ("class", "5xx")];
    assert_eq!(capture.counter("fastcgi_responses_total", &five), 0);
    assert_eq!(
        capture.counter("fastcgi_backend_connections_opened_total", &backend),
        0
    );
}

/// Two live backends and a dead one: whatever the balancer chose, each backend's series
/// are exactly its snapshot, labelled with its Display form, and the attempts add up.
#[tokio::test]
async fn a_fleet_reports_every_backend_with_its_own_labels() {
    let (one, two) = (ok_or_404().await, ok_or_404().await);
    let dir = tempfile::tempdir().unwrap();
    let dead = Backend::unix(dir.path().join("nobody-listens.sock"));
    let svc = FcgiService::builder()
        .backends([one.backend.clone(), two.backend.clone(), dead.clone()])
        .build();
    for _ in 0..12 {
        let res = send(&svc, get("/a")).await;
        assert_eq!(res.status(), StatusCode::OK);
        body(res).await.expect("complete body");
    }
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || {
        Reporter::new(svc.clone(), "fleet").report_once()
    });

    let mount = [("mount", "fleet")];
    assert_eq!(capture.counter("fastcgi_requests_total", &mount), 12);
    let ok = [("mount", "fleet"), ("class", "2xx")];
    assert_eq!(capture.counter("fastcgi_responses_total", &ok), 12);

    let snapshot = svc.backend_stats();
    assert_eq!(snapshot.len(), 3);
    let mut answered = 0;
    for backend in &snapshot {
        let name = backend.backend.to_string();
        let labels = [("mount", "fleet"), ("backend", name.as_str())];
        let requests = capture.counter("fastcgi_backend_requests_total", &labels);
        assert_eq!(requests, backend.stats.requests, "{name}");
        let connect: Vec<_> = labels
            .iter()
            .copied()
            .chain([("cause", "connect")])
            .collect();
        let refused = capture.counter("fastcgi_backend_failures_total", &connect);
        assert_eq!(refused, backend.stats.failures.connect, "{name}");
        let in_rotation = capture.gauge("fastcgi_backend_in_rotation", &labels);
        assert_eq!(
            in_rotation,
            f64::from(u8::from(backend.in_rotation)),
            "{name}"
        );
        let ejections = capture.counter("fastcgi_backend_ejections_total", &labels);
        assert_eq!(ejections, backend.ejections, "{name}");
        let cap = capture.gauge("fastcgi_backend_connection_cap", &labels);
        assert_eq!(cap, backend.connection_cap as f64, "{name}");
        let failed: Vec<_> = labels
            .iter()
            .copied()
            .chain([("result", "failed")])
            .collect();
        let probes = capture.counter("fastcgi_backend_probes_total", &failed);
        assert_eq!(probes, backend.probes.failed, "{name}");
        let ok: Vec<_> = labels.iter().copied().chain([("class", "2xx")]).collect();
        answered += capture.counter("fastcgi_backend_responses_total", &ok);
    }
    assert_eq!(
        answered, 12,
        "every answer counted on the backend that gave it"
    );
    let dead = dead.to_string();
    let dead = [("mount", "fleet"), ("backend", dead.as_str())];
    let attempts = capture.counter("fastcgi_backend_requests_total", &dead);
    let refused = [
        ("mount", "fleet"),
        ("backend", dead[1].1),
        ("cause", "connect"),
    ];
    assert_eq!(
        capture.counter("fastcgi_backend_failures_total", &refused),
        attempts
    );
    // Each refused attempt moved to another backend.
    assert_eq!(capture.counter("fastcgi_retries_total", &mount), attempts);

    // Every name is in the module docs' table and described, with a unit for seconds.
    let emitted: BTreeSet<String> = capture.series().into_keys().collect();
    assert_eq!(
        emitted,
        documented_names(),
        "the table in src/metrics/mod.rs"
    );
    let described = capture.described.lock().unwrap();
    assert_eq!(described.keys().cloned().collect::<BTreeSet<_>>(), emitted);
    for (name, (unit, help)) in described.iter() {
        assert!(!help.is_empty(), "{name}");
        let seconds = name.ends_with("_seconds_sum") || name.ends_with("_seconds_max");
        assert_eq!(*unit == Some(Unit::Seconds), seconds, "{name}");
    }
}

/// The names in the table of `src/metrics/mod.rs`: the first cell of each row, both
/// families for a suffix, the name as written for a full `fastcgi_` name.
fn documented_names() -> BTreeSet<String> {
    let docs = include_str!("../src/metrics/mod.rs");
    let mut names = BTreeSet::new();
    for row in docs.lines().filter_map(|l| l.strip_prefix("//! | `")) {
        let name = row.split('`').next().unwrap();
        if name.starts_with("fastcgi_") {
            names.insert(name.to_owned());
        } else {
            names.insert(format!("fastcgi_{name}"));
            names.insert(format!("fastcgi_backend_{name}"));
        }
    }
    names
}

#[tokio::test]
async fn the_interval_task_reports_until_its_handle_drops() {
    static GLOBAL: std::sync::OnceLock<Arc<Capture>> = std::sync::OnceLock::new();
    let capture = GLOBAL.get_or_init(Arc::default).clone();
    metrics::set_global_recorder(Arc::clone(&capture)).expect("the only global recorder");

    let fake = ok_or_404().await;
    let svc = fake.builder().build();
    let task = Reporter::new(svc.clone(), "/ticks")
        .spawn(Duration::from_millis(10))
        .expect("inside a runtime");
    let mount = [("mount", "/ticks")];
    let requests = || {
        capture
            .series()
            .get("fastcgi_requests_total")
            .and_then(|by| by.values().next().copied())
    };
    support::fake::eventually("a first report", || requests().is_some()).await;
    body(send(&svc, get("/a")).await)
        .await
        .expect("complete body");
    support::fake::eventually("the request reported", || {
        requests() == Some(Value::Counter(1))
    })
    .await;
    assert_eq!(capture.counter("fastcgi_requests_total", &mount), 1);

    drop(task);
    body(send(&svc, get("/a")).await)
        .await
        .expect("complete body");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        capture.counter("fastcgi_requests_total", &mount),
        1,
        "no report after drop"
    );
    assert_eq!(svc.stats().requests, 2);
}
