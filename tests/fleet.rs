//! Fleets: several backends behind one service (issue 12). Real php-fpm masters, each
//! its own pool on its own TCP port, for the failures that matter in production (a
//! master killed under load, uneven pools, a backend down from the start, everything
//! down); the in-repo responder for the retry rules that need a backend misbehaving
//! on cue (a crash after reading a POST, FCGI_OVERLOADED, a spent retry budget).
//!
//! The php-fpm tests run one at a time (each keeps both cores busy) and print what each
//! backend served (`cargo test --test fleet -- --nocapture`). Without php-fpm they skip
//! loudly (`FCGI_INTEROP=require` fails).

#[path = "../examples/support/mount.rs"]
mod mount;
mod support;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_fastcgi::proto::ProtocolStatus;
use tower_fastcgi::{Backend, BackendStats, FcgiService, FcgiServiceBuilder};

use support::fake::{After, answer, fake};
use support::{Kind, Options, RunningBackend, one_at_a_time, runtime};

const HELLO_PHP: &str = "<?php\nheader('Content-Type: text/plain');\necho 'hello';\n";
const SLEEP_PHP: &str = "<?php\nusleep((int) ($_GET['ms'] ?? 0) * 1000);\nheader('Content-Type: text/plain');\necho 'hello';\n";

/// The document root all backends of a fleet serve: the service resolves
/// SCRIPT_FILENAME once, whichever backend then runs it.
fn shared_root() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("fcgi-fleet-")
        .tempdir()
        .expect("a temporary directory");
    std::fs::write(dir.path().join("hello.php"), HELLO_PHP).expect("write hello.php");
    std::fs::write(dir.path().join("sleep.php"), SLEEP_PHP).expect("write sleep.php");
    dir
}

fn php_fpm(root: &Path, workers: usize) -> Option<RunningBackend> {
    support::backend_or_skip_with(
        Kind::PhpFpmTcp,
        Options::default().workers(workers).document_root(root),
    )
}

/// A TCP address nothing listens on (bound a moment ago, then released).
fn dead_backend() -> Backend {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    Backend::tcp(listener.local_addr().expect("local addr").to_string())
}

async fn call(svc: &FcgiService, req: Request<Full<Bytes>>) -> (StatusCode, String) {
    let res = match svc.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let status = res.status();
    let retry_after = res.headers().get("retry-after").cloned();
    match res.into_body().collect().await {
        Ok(body) => {
            let mut text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
            if let Some(value) = retry_after {
                text = format!("[Retry-After: {value:?}] {text}");
            }
            (status, text)
        }
        Err(err) => (status, format!("body error: {err}")),
    }
}

fn get(target: &str) -> Request<Full<Bytes>> {
    Request::get(target)
        .header("host", "localhost")
        .body(Full::default())
        .expect("a valid request")
}

fn post(target: &str) -> Request<Full<Bytes>> {
    Request::post(target)
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(b"a=1")))
        .expect("a valid request")
}

/// `total` requests, `concurrency` at a time; the failures, described.
async fn run_gets<F, Fut>(total: usize, concurrency: usize, request: F) -> Vec<String>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (StatusCode, String)> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (next, failures, request) = (Arc::clone(&next), Arc::clone(&failures), request.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let (status, body) = request().await;
                if status != StatusCode::OK || body != "hello" {
                    failures.lock().unwrap().push(format!("{status} {body}"));
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a request worker panicked");
    }
    std::mem::take(&mut *failures.lock().unwrap())
}

fn answered(stats: &BackendStats) -> u64 {
    stats.stats.responses_by_class[1]
}

fn report(what: &str, svc: &FcgiService) {
    eprintln!("{what}: {:?}", svc.stats());
    for b in svc.backend_stats() {
        eprintln!(
            "  {}: 2xx {}, attempts {}, retried elsewhere {}, ejections {}, in rotation {}",
            b.backend,
            answered(&b),
            b.stats.requests,
            b.stats.retries,
            b.ejections,
            b.in_rotation
        );
    }
}

/// Three php-fpm masters; one is killed with SIGKILL (master and workers together)
/// while 12 clients send GETs and 3 send POSTs. GETs in flight on it, and every request
/// sent to it before it is ejected, move to the other two: no GET fails. A POST fails
/// only if it was running on the killed backend (it may have run), so at most its
/// `max_connections` of them. Restarted, the backend is readmitted and serves again.
#[test]
fn killing_one_master_under_load_fails_no_get_and_only_posts_running_there() {
    let _serial = one_at_a_time();
    let root = shared_root();
    let Some(a) = php_fpm(root.path(), 5) else {
        return;
    };
    let Some(mut b) = php_fpm(root.path(), 5) else {
        return;
    };
    let Some(c) = php_fpm(root.path(), 5) else {
        return;
    };
    runtime().block_on(async {
        let cap = 5;
        let svc = FcgiService::builder()
            .backends([a.fcgi_backend(), b.fcgi_backend(), c.fcgi_backend()])
            .document_root(root.path())
            .max_connections(cap)
            .build();
        let total = 4000;
        let gets = tokio::spawn(run_gets(total, 12, {
            let svc = svc.clone();
            move || {
                let svc = svc.clone();
                async move { call(&svc, get("/sleep.php?ms=1")).await }
            }
        }));
        let posts = tokio::spawn(run_gets(total / 4, 3, {
            let svc = svc.clone();
            move || {
                let svc = svc.clone();
                async move { call(&svc, post("/sleep.php?ms=1")).await }
            }
        }));
        // Kill the middle one once a quarter of the requests are through.
        while svc.stats().requests < total as u64 / 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let busy_on_b = svc.backend_stats()[1].stats.pool.busy;
        b.kill();
        let get_failures = gets.await.expect("the GET load ran");
        let post_failures = posts.await.expect("the POST load ran");
        report("kill one of three", &svc);
        eprintln!(
            "in flight on the killed backend when it died: {busy_on_b}; POSTs failed: {post_failures:?}"
        );
        assert!(
            get_failures.is_empty(),
            "{} GETs failed: {:?}",
            get_failures.len(),
            &get_failures[..get_failures.len().min(10)]
        );
        assert!(post_failures.len() <= cap, "{post_failures:?}");
        assert!(
            post_failures.iter().all(|f| f.starts_with("502")),
            "{post_failures:?}"
        );
        let killed = &svc.backend_stats()[1];
        assert!(killed.ejections >= 1, "the killed backend was never ejected: {killed:?}");
        assert!(!killed.in_rotation);

        // Restarted on the same port, it is readmitted by a trial request once its
        // backoff (at most a few seconds after two ejections) is over, and serves again.
        b.restart().expect("php-fpm restarts");
        let answered_before = answered(&svc.backend_stats()[1]);
        let restarted = Instant::now();
        while !svc.backend_stats()[1].in_rotation {
            assert!(
                restarted.elapsed() < Duration::from_secs(40),
                "not readmitted: {:?}",
                svc.backend_stats()[1]
            );
            assert_eq!(call(&svc, get("/hello.php")).await.0, StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("readmitted {:?} after the restart", restarted.elapsed());
        let failures = run_gets(300, 6, {
            let svc = svc.clone();
            move || {
                let svc = svc.clone();
                async move { call(&svc, get("/hello.php")).await }
            }
        })
        .await;
        assert!(failures.is_empty(), "{failures:?}");
        assert!(answered(&svc.backend_stats()[1]) > answered_before);
    });
}

/// Runs 400 GETs of a 20 ms script, 8 at a time, over a 1-worker and a 6-worker php-fpm
/// pool configured by `configure`, and returns the per-backend stats (small, big) after
/// checking that nothing failed and that the big pool answered at least twice as many
/// (`None`: php-fpm is not installed and the test is skipped).
fn uneven_split(
    what: &str,
    configure: impl FnOnce(FcgiServiceBuilder, &Backend) -> FcgiServiceBuilder,
) -> Option<Vec<BackendStats>> {
    let _serial = one_at_a_time();
    let root = shared_root();
    let small = php_fpm(root.path(), 1)?;
    let big = php_fpm(root.path(), 6)?;
    let stats = runtime().block_on(async {
        let builder = FcgiService::builder()
            .backends([small.fcgi_backend(), big.fcgi_backend()])
            .document_root(root.path())
            .max_connections(6);
        let svc = configure(builder, &small.fcgi_backend()).build();
        let failures = run_gets(400, 8, {
            let svc = svc.clone();
            move || {
                let svc = svc.clone();
                async move { call(&svc, get("/sleep.php?ms=20")).await }
            }
        })
        .await;
        report(what, &svc);
        assert!(failures.is_empty(), "{failures:?}");
        svc.backend_stats()
    });
    let (small_n, big_n) = (answered(&stats[0]), answered(&stats[1]));
    assert!(
        big_n >= 2 * small_n,
        "6 workers answered {big_n}, 1 worker {small_n}"
    );
    Some(stats)
}

/// A php-fpm pool of 1 worker beside one of 6, a script that sleeps 20 ms: balancing by
/// requests in flight sends the big pool at least twice the requests (round robin would
/// split them evenly and queue on the small one). Keep-alive is off: php-fpm pins a
/// worker to each kept-alive connection, so a cap of 6 connections on the 1-worker pool
/// would leave five of them waiting for a worker that never comes.
#[test]
fn a_six_worker_pool_answers_at_least_twice_what_a_one_worker_pool_does() {
    let Some(stats) = uneven_split("1 worker vs 6", |b, _| b.keep_alive(false)) else {
        return;
    };
    assert_eq!(answered(&stats[0]) + answered(&stats[1]), 400);
}

/// The same pools with keep-alive on, each capped at its own worker count
/// (`backend_max_connections`): the way to run uneven php-fpm pools in production.
#[test]
fn uneven_pools_with_their_own_caps_keep_alive_and_split_by_capacity() {
    let Some(stats) = uneven_split("1 worker (cap 1) vs 6 (cap 6), keep-alive", |b, small| {
        b.backend_max_connections(small, 1)
    }) else {
        return;
    };
    assert!(
        stats[0].stats.pool.connections_opened <= 1,
        "{:?}",
        stats[0]
    );
}

/// One backend of two was never up: every request succeeds on the other, and the dead
/// one leaves the rotation after its first failures.
#[test]
fn a_backend_down_from_the_start_costs_no_request() {
    let _serial = one_at_a_time();
    let root = shared_root();
    let Some(live) = php_fpm(root.path(), 4) else {
        return;
    };
    runtime().block_on(async {
        let svc = FcgiService::builder()
            .backends([dead_backend(), live.fcgi_backend()])
            .document_root(root.path())
            .build();
        let failures = run_gets(200, 4, {
            let svc = svc.clone();
            move || {
                let svc = svc.clone();
                async move { call(&svc, get("/hello.php")).await }
            }
        })
        .await;
        report("one down from the start", &svc);
        assert!(failures.is_empty(), "{failures:?}");
        let stats = svc.backend_stats();
        assert!(stats[0].ejections >= 1, "{:?}", stats[0]);
        assert_eq!(answered(&stats[1]), 200);
        assert!(svc.stats().retries >= 1);
    });
}

/// Every backend down (a killed php-fpm and an address nobody listens on): each request
/// is answered within a second, with 502 while the failures are counted and 503 with
/// `Retry-After` once both are ejected, never a hang.
#[test]
fn everything_down_is_503_at_once() {
    let _serial = one_at_a_time();
    let root = shared_root();
    let Some(mut php) = php_fpm(root.path(), 2) else {
        return;
    };
    let backend = php.fcgi_backend();
    php.kill();
    runtime().block_on(async {
        let svc = FcgiService::builder()
            .backends([backend, dead_backend()])
            .document_root(root.path())
            .build();
        let mut statuses = Vec::new();
        for _ in 0..8 {
            let started = Instant::now();
            let (status, body) = call(&svc, get("/hello.php")).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "took {:?}",
                started.elapsed()
            );
            statuses.push(status.as_u16());
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert!(body.starts_with("[Retry-After"), "{body}");
            }
        }
        report("everything down", &svc);
        assert!(
            statuses.iter().all(|s| [502, 503].contains(s)),
            "{statuses:?}"
        );
        assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
        assert!(svc.stats().failures.no_backend >= 1);
    });
}

/// A backend that reads the request and dies without answering may have run it: a GET
/// is replayed on the other backend, a POST is not (unless the user opts in).
#[tokio::test]
async fn a_request_that_may_have_run_is_replayed_only_when_idempotent() {
    let crashing = fake(|req, w| async move { Ok((req, w, After::Close)) }).await;
    let healthy =
        fake(|req, w| async move { answer(req, w, "Status: 200 OK", b"hello").await }).await;
    let builder = || {
        FcgiService::builder()
            .backends([crashing.backend.clone(), healthy.backend.clone()])
            // Keep the crashing backend in the rotation, so every case is exercised.
            .eject_after_failures(0)
    };
    let svc = builder().build();
    for _ in 0..20 {
        assert_eq!(call(&svc, get("/")).await, (StatusCode::OK, "hello".into()));
    }
    let mut failed = 0u64;
    for _ in 0..20 {
        let (status, _) = call(&svc, post("/")).await;
        if status != StatusCode::OK {
            assert_eq!(status, StatusCode::BAD_GATEWAY);
            failed += 1;
        }
    }
    // Each POST that went to the crashing backend first failed, and only those.
    let crashed_posts = svc.backend_stats()[0].stats.requests - svc.stats().retries;
    assert_eq!(failed, crashed_posts);
    assert!(failed > 0, "no POST was sent to the crashing backend first");

    let opted_in = builder().retry_non_idempotent(true).build();
    for _ in 0..20 {
        assert_eq!(call(&opted_in, post("/")).await.0, StatusCode::OK);
    }
    assert!(opted_in.stats().retries > 0);
}

/// FCGI_OVERLOADED means the backend did not run the request: any method moves.
#[tokio::test]
async fn overloaded_moves_even_a_post_to_another_backend() {
    let overloaded = fake(|mut req, mut w| async move {
        req.drain_stdin().await?;
        w.end_with(0, ProtocolStatus::Overloaded).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let healthy =
        fake(|req, w| async move { answer(req, w, "Status: 200 OK", b"hello").await }).await;
    let svc = FcgiService::builder()
        .backends([overloaded.backend.clone(), healthy.backend.clone()])
        .build();
    for _ in 0..30 {
        assert_eq!(
            call(&svc, post("/")).await,
            (StatusCode::OK, "hello".into())
        );
    }
    let stats = svc.backend_stats();
    assert!(stats[0].stats.failures.overloaded >= 1);
    assert!(
        stats[0].ejections >= 1,
        "3 overloads in a row eject: {:?}",
        stats[0]
    );
}

/// With the retry budget spent, a failure that could move is returned as it is: a
/// dying fleet is not hammered with retries.
#[tokio::test]
async fn a_spent_retry_budget_returns_the_failure() {
    let healthy =
        fake(|req, w| async move { answer(req, w, "Status: 200 OK", b"hello").await }).await;
    let svc = FcgiService::builder()
        .backends([dead_backend(), healthy.backend.clone()])
        .eject_after_failures(0)
        // No floor and no earnings: only the initial 10 retries.
        .retry_budget(0, 0)
        .build();
    let mut failed = 0u64;
    for _ in 0..80 {
        if call(&svc, get("/")).await.0 != StatusCode::OK {
            failed += 1;
        }
    }
    let stats = svc.stats();
    assert_eq!(stats.retries, 10, "{stats:?}");
    assert!(failed > 0);
    assert_eq!(stats.retries_over_budget, failed);
}

/// A lone backend is never ejected (there is nowhere else to go): it keeps being tried,
/// and its failures keep their own status, as before fleets existed.
#[tokio::test]
async fn a_lone_backend_is_never_ejected() {
    let svc = FcgiService::builder().backend(dead_backend()).build();
    for _ in 0..10 {
        assert_eq!(call(&svc, get("/")).await.0, StatusCode::BAD_GATEWAY);
    }
    let stats = svc.backend_stats();
    assert_eq!((stats[0].ejections, stats[0].in_rotation), (0, true));
    assert_eq!(svc.stats().failures.connect, 10);
}

/// The gateway's `backend=` option (the same parsing and builder code as
/// `examples/gateway.rs`): one mount balanced over two backends, `conns` per backend.
#[tokio::test]
async fn the_gateways_backend_option_balances_a_mount_over_several_backends() {
    let one = fake(|req, w| async move { answer(req, w, "Status: 200 OK", b"hello").await }).await;
    let two = fake(|req, w| async move { answer(req, w, "Status: 200 OK", b"hello").await }).await;
    let spec = format!("/app={},backend={},conns=2", one.backend, two.backend);
    let mount = mount::parse_mount(mount::Kind::App, &spec).expect("a valid mount");
    let app = mount.mount(axum::Router::new()).expect("mounted");
    let server = support::http::Server::start(app).await;
    let client = server.http();
    for _ in 0..40 {
        let reply = client.get("/app/x").await;
        assert_eq!(
            (reply.status, reply.text()),
            (StatusCode::OK, "hello".to_owned())
        );
    }
    let served = |f: &support::fake::Fake| f.stats.requests.load(Ordering::SeqCst);
    assert_eq!(served(&one) + served(&two), 40);
    assert!(
        served(&one) > 0 && served(&two) > 0,
        "{} / {}",
        served(&one),
        served(&two)
    );
    // Each backend's pool is capped at `conns`.
    assert!(one.connections() <= 2 && two.connections() <= 2);
}

/// Sends `signal` (STOP or CONT) to a backend's whole process group (master and workers).
fn signal_group(backend: &RunningBackend, signal: &str) {
    let group = backend.pid().expect("the backend runs");
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{group}")])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{signal} -{group}");
}

/// Both php-fpm masters frozen (SIGSTOP) until both are ejected, then thawed: the
/// backoff has 30 s to run, yet with panic routing (the default) the next burst is all
/// answered, and the backends are readmitted by those answers. With it off, only the
/// early trials (one per backend) get through and the rest of the burst gets its 503.
/// This is the hour-long soak's failure (RELIABILITY.md): ejections outlive faults.
#[test]
fn a_fleet_ejected_whole_but_back_is_answered_at_once() {
    let _serial = one_at_a_time();
    let root = shared_root();
    let (Some(a), Some(b)) = (php_fpm(root.path(), 4), php_fpm(root.path(), 4)) else {
        return;
    };
    for panic_routing in [true, false] {
        runtime().block_on(async {
            let svc = FcgiService::builder()
                .backends([a.fcgi_backend(), b.fcgi_backend()])
                .document_root(root.path())
                .response_head_timeout(Duration::from_millis(400))
                .ejection_backoff(Duration::from_secs(30), Duration::from_secs(30))
                .route_when_all_ejected(panic_routing)
                .build();
            for _ in 0..4 {
                assert_eq!(call(&svc, get("/hello.php")).await.0, StatusCode::OK);
            }
            signal_group(&a, "STOP");
            signal_group(&b, "STOP");
            let deadline = Instant::now() + Duration::from_secs(20);
            while svc.backend_stats().iter().any(|s| s.in_rotation) {
                assert!(Instant::now() < deadline, "never ejected");
                let (status, _) = call(&svc, get("/hello.php")).await;
                assert_ne!(status, StatusCode::OK, "a frozen fleet answered");
            }
            signal_group(&a, "CONT");
            signal_group(&b, "CONT");
            let burst: Vec<_> = (0..16)
                .map(|_| {
                    let svc = svc.clone();
                    // Slow enough that the early trials are still running when the
                    // rest of the burst picks (else a trial's answer readmits its
                    // backend first, and the "off" case proves nothing).
                    tokio::spawn(async move { call(&svc, get("/sleep.php?ms=150")).await.0 })
                })
                .collect();
            let mut statuses = Vec::new();
            for request in burst {
                statuses.push(request.await.expect("a request task").as_u16());
            }
            report(&format!("panic routing {panic_routing}"), &svc);
            if panic_routing {
                // The backlog the freeze left (requests we timed out) may still hold a
                // worker for a moment, never long enough for a 503.
                assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
                assert!(svc.backend_stats().iter().any(|s| s.in_rotation));
            } else {
                let refused = statuses.iter().filter(|s| **s == 503).count();
                assert!(refused >= 14, "{statuses:?}");
            }
        });
    }
}
