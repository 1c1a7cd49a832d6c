//! Active health checks (issue 12): probes that eject a backend before any request
//! fails on it and readmit it without a trial request. Real php-fpm, php-cgi and flup
//! for what each answers to FCGI_GET_VALUES and php-fpm's `ping.path`; the in-repo
//! responder for the probe task's lifetime.
//!
//! The real-backend tests run one at a time; without the programs they skip loudly
//! (`FCGI_INTEROP=require` fails).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_fastcgi::{BackendStats, FcgiService, HealthCheck};

use support::fake::{answer, fake};
use support::{Kind, Options, RunningBackend, one_at_a_time, runtime};

const HELLO_PHP: &str = "<?php\nheader('Content-Type: text/plain');\necho 'hello';\n";

fn shared_root() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("fcgi-health-")
        .tempdir()
        .expect("a temporary directory");
    std::fs::write(dir.path().join("hello.php"), HELLO_PHP).expect("write hello.php");
    dir
}

fn php_fpm(root: &Path, options: Options) -> Option<RunningBackend> {
    support::backend_or_skip_with(Kind::PhpFpmTcp, options.workers(3).document_root(root))
}

async fn get(svc: &FcgiService, target: &str) -> (StatusCode, String) {
    let req = Request::get(target)
        .header("host", "localhost")
        .body(Full::<Bytes>::default())
        .expect("a valid request");
    let res = match svc.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let status = res.status();
    let body = match res.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(err) => format!("body error: {err}"),
    };
    (status, body)
}

/// Waits (at most 20 s) until `what` holds for backend `i`.
async fn until(svc: &FcgiService, i: usize, what: &str, done: impl Fn(&BackendStats) -> bool) {
    let start = Instant::now();
    loop {
        let stats = svc.backend_stats();
        if done(&stats[i]) {
            eprintln!("{what} after {:?}: {:?}", start.elapsed(), stats[i]);
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: not after 20 s: {:?}",
            stats[i]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fast(check: HealthCheck) -> HealthCheck {
    check
        .interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(500))
}

/// Kill one php-fpm master of two while no request runs: GET_VALUES probes eject it,
/// so the requests that follow never meet it (no failure, no retry); restarted, a probe
/// readmits it before any request is sent its way.
#[test]
fn get_values_probes_eject_a_killed_master_and_readmit_it_restarted() {
    let _serial = one_at_a_time();
    let root = shared_root();
    let Some(a) = php_fpm(root.path(), Options::default()) else {
        return;
    };
    let Some(mut b) = php_fpm(root.path(), Options::default()) else {
        return;
    };
    runtime().block_on(async {
        let svc = FcgiService::builder()
            .backends([a.fcgi_backend(), b.fcgi_backend()])
            .document_root(root.path())
            // Below the 3 workers: the pool never holds all of them, so no probe is
            // skipped for that.
            .max_connections(2)
            .health_check(fast(HealthCheck::get_values()))
            .build();
        until(&svc, 1, "probed", |b| b.probes.ok >= 2).await;
        for _ in 0..20 {
            assert_eq!(
                get(&svc, "/hello.php").await,
                (StatusCode::OK, "hello".into())
            );
        }
        b.kill();
        until(&svc, 1, "ejected by probes", |b| !b.in_rotation).await;
        let before = svc.stats();
        for _ in 0..50 {
            assert_eq!(
                get(&svc, "/hello.php").await,
                (StatusCode::OK, "hello".into())
            );
        }
        let after = svc.stats();
        assert_eq!(
            after.retries, before.retries,
            "no request met the dead backend"
        );
        assert_eq!(after.failures, before.failures);
        let killed = &svc.backend_stats()[1];
        assert!(killed.probes.failed >= 2, "{killed:?}");
        assert_eq!(killed.ejections, 1, "{killed:?}");

        b.restart().expect("php-fpm restarts");
        let attempts = svc.backend_stats()[1].stats.requests;
        until(&svc, 1, "readmitted by a probe", |b| b.in_rotation).await;
        assert_eq!(
            svc.backend_stats()[1].stats.requests,
            attempts,
            "readmitted without a trial request"
        );
        for _ in 0..50 {
            assert_eq!(get(&svc, "/hello.php").await.0, StatusCode::OK);
        }
        assert!(svc.backend_stats()[1].stats.requests > attempts);
    });
}

/// php-fpm's `ping.path` answers 200 `pong` to a request whose SCRIPT_NAME is the path;
/// a pool without it answers 404 (no such script), which fails the probe: that backend
/// is ejected and, while its probes keep failing, gets no trial request either.
#[test]
fn ping_probes_pass_where_ping_path_is_set_and_eject_where_it_is_not() {
    let _serial = one_at_a_time();
    let root = shared_root();
    let with_ping = Options::default()
        .fpm_pool("ping.path", "/fpm-ping")
        .fpm_pool("ping.response", "pong");
    let Some(a) = php_fpm(root.path(), with_ping) else {
        return;
    };
    let Some(b) = php_fpm(root.path(), Options::default()) else {
        return;
    };
    runtime().block_on(async {
        let svc = FcgiService::builder()
            .backends([a.fcgi_backend(), b.fcgi_backend()])
            .document_root(root.path())
            .health_check(fast(HealthCheck::ping("/fpm-ping")))
            .ejection_backoff(Duration::from_millis(200), Duration::from_millis(400))
            .build();
        until(&svc, 1, "ejected (no ping.path)", |b| !b.in_rotation).await;
        until(&svc, 0, "pinged", |a| a.probes.ok >= 3).await;
        // Longer than the backoff: a trial would be due, but the probes say no.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let attempts = svc.backend_stats()[1].stats.requests;
        for _ in 0..30 {
            assert_eq!(get(&svc, "/hello.php").await.0, StatusCode::OK);
        }
        let stats = svc.backend_stats();
        assert_eq!(stats[1].stats.requests, attempts, "{:?}", stats[1]);
        assert!(!stats[1].in_rotation);
        assert_eq!(stats[0].probes.failed, 0, "{:?}", stats[0]);
        // The pings went over pooled connections and left them reusable.
        assert_eq!(stats[0].stats.failures, Default::default());
        assert!(stats[0].stats.pool.connections_reused > 0, "{:?}", stats[0]);
    });
}

/// What each real backend makes of a GET_VALUES probe: php-fpm answers and closes,
/// php-cgi answers and keeps the connection, flup (Python 3) answers with an empty
/// record. All are alive. A lone backend is never ejected, but its probes count.
#[test]
fn get_values_probes_pass_against_php_fpm_php_cgi_and_flup() {
    let _serial = one_at_a_time();
    for kind in [Kind::PhpFpmTcp, Kind::PhpCgiUnix, Kind::FlupTcp] {
        let Some(backend) = support::backend_or_skip_with(kind, Options::default().workers(2))
        else {
            continue;
        };
        runtime().block_on(async {
            let svc = FcgiService::builder()
                .backend(backend.fcgi_backend())
                .max_connections(1)
                .health_check(fast(HealthCheck::get_values()))
                .build();
            until(&svc, 0, &format!("{kind} probed"), |b| b.probes.ok >= 3).await;
            let stats = &svc.backend_stats()[0];
            assert_eq!(stats.probes.failed, 0, "{kind}: {stats:?}");
        });
    }
}

/// The probe task holds the fleet, not the service: dropping the last clone stops the
/// probes (the responder sees no new connection afterwards).
#[tokio::test]
async fn probes_stop_with_the_last_service_clone() {
    let app = fake(|req, w| answer(req, w, "Content-Type: text/plain\r\n\r\n", b"ok")).await;
    let svc = app
        .builder()
        .health_check(fast(HealthCheck::get_values()).interval(Duration::from_millis(20)))
        .build();
    let clone = svc.clone();
    let start = Instant::now();
    while app.connections() < 3 {
        assert!(start.elapsed() < Duration::from_secs(10), "no probes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(svc.backend_stats()[0].probes.ok >= 2);
    drop(svc);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(app.connections() >= 4, "a clone keeps the probes going");
    drop(clone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = app.connections();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.connections(),
        seen,
        "probes went on after the service was dropped"
    );
}

// ---- connections beyond a backend's workers ("accepted but unserved") ----

const SLEEP_PHP: &str = "<?php\nusleep((int) ($_GET['ms'] ?? 0) * 1000);\nheader('Content-Type: text/plain');\necho 'hello';\n";

/// Waves of `concurrency` GETs of a 100 ms script; each result's status and how long
/// it took.
async fn waves(svc: &FcgiService, waves: usize, concurrency: usize) -> Vec<(StatusCode, Duration)> {
    let mut results = Vec::new();
    for _ in 0..waves {
        let mut wave = Vec::new();
        for _ in 0..concurrency {
            let svc = svc.clone();
            wave.push(tokio::spawn(async move {
                let start = Instant::now();
                let (status, _) = get(&svc, "/sleep.php?ms=100").await;
                (status, start.elapsed())
            }));
        }
        for one in wave {
            results.push(one.await.expect("a request task"));
        }
    }
    results
}

fn two_worker_php_fpm(root: &Path) -> Option<RunningBackend> {
    std::fs::write(root.join("sleep.php"), SLEEP_PHP).expect("write sleep.php");
    support::backend_or_skip_with(
        Kind::PhpFpmTcp,
        Options::default().workers(2).document_root(root),
    )
}

/// php-fpm with pm.max_children = 2 and a pool of 4 kept-alive connections: each worker
/// stays on the connection it served, so the two connections beyond them are accepted
/// by the kernel and never served. Without the unserved check their requests wait for
/// the whole response-head timeout (504).
#[test]
fn more_connections_than_workers_time_out_without_the_unserved_check() {
    let _serial = one_at_a_time();
    let root = shared_root();
    let Some(fpm) = two_worker_php_fpm(root.path()) else {
        return;
    };
    runtime().block_on(async {
        let svc = FcgiService::builder()
            .backend(fpm.fcgi_backend())
            .document_root(root.path())
            .max_connections(4)
            .response_head_timeout(Duration::from_secs(3))
            .unserved_after(None)
            .build();
        let results = waves(&svc, 3, 4).await;
        let timeouts = results
            .iter()
            .filter(|(s, _)| *s == StatusCode::GATEWAY_TIMEOUT)
            .count();
        eprintln!("check off: {results:?}");
        assert!(
            timeouts >= 1,
            "expected requests stuck on unserved connections: {results:?}"
        );
    });
}

/// The same php-fpm and pool with the unserved check on (its default): a request whose
/// new connection no worker takes is served after the check frees a worker (one idle
/// connection closed), the backend's cap comes down to the two connections it serves,
/// and later waves queue for those two instead of opening connections nobody serves.
/// No request times out.
#[test]
fn the_unserved_check_frees_a_worker_and_lowers_the_cap_to_the_workers() {
    let _serial = one_at_a_time();
    let root = shared_root();
    let Some(fpm) = two_worker_php_fpm(root.path()) else {
        return;
    };
    runtime().block_on(async {
        let svc = FcgiService::builder()
            .backend(fpm.fcgi_backend())
            .document_root(root.path())
            .max_connections(4)
            // Long enough that a request served at all is never a timeout here.
            .response_head_timeout(Duration::from_secs(20))
            .build();
        let results = waves(&svc, 4, 4).await;
        eprintln!("check on: {results:?}");
        let stats = svc.stats();
        let backend = &svc.backend_stats()[0];
        eprintln!("{stats:?}\n{backend:?}");
        assert!(
            results.iter().all(|(s, _)| *s == StatusCode::OK),
            "{results:?}"
        );
        assert!(stats.unserved >= 1, "{stats:?}");
        assert_eq!(backend.connection_cap, 2, "{backend:?}");
        assert!(backend.stats.pool.open <= 2, "{backend:?}");
        assert_eq!(backend.stats.failures, Default::default());
    });
}

/// The EOF-on-a-reused-connection POST case: php-fpm recycles its one worker every 2
/// requests (pm.max_requests) and closes the kept-alive connection after the answer, so
/// every second request finds its pooled connection closed. A GET (idempotent,
/// replayable) is sent without a probe and retried on a new connection when it meets
/// EOF; a POST probes the pooled connection first (one non-blocking read), so it is
/// rarely written to a dead connection and rarely needs the replay at all.
#[test]
fn posts_probe_pooled_connections_so_a_recycled_worker_is_rarely_met() {
    let _serial = one_at_a_time();
    let root = shared_root();
    let Some(fpm) = support::backend_or_skip_with(
        Kind::PhpFpmTcp,
        Options::default()
            .workers(1)
            .max_requests(2)
            .document_root(root.path()),
    ) else {
        return;
    };
    runtime().block_on(async {
        let svc = FcgiService::builder()
            .backend(fpm.fcgi_backend())
            .document_root(root.path())
            .max_connections(1)
            .build();
        let mut stale = Vec::new();
        for method in ["GET", "POST"] {
            let before = svc.stats().pool.stale_retries;
            for _ in 0..60 {
                let req = Request::builder()
                    .method(method)
                    .uri("/hello.php")
                    .header("host", "localhost")
                    .body(Full::new(Bytes::from_static(b"a=1")))
                    .expect("a valid request");
                let res = match svc.clone().oneshot(req).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                };
                assert_eq!(res.status(), StatusCode::OK, "{method}");
                res.into_body().collect().await.expect("a complete body");
                // Time for the recycled worker's close to arrive.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stale.push(svc.stats().pool.stale_retries - before);
        }
        eprintln!("stale retries of 60 GETs, 60 POSTs: {stale:?}");
        assert!(stale[0] >= 20, "GETs are not probed: {stale:?}");
        assert!(stale[1] < 20, "POSTs are probed: {stale:?}");
    });
}
