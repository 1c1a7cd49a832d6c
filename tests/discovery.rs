//! Discovery (issue 12): backends that join and leave a running service. Real php-fpm
//! masters for the drain that matters in production (a backend added under load, the
//! first one removed with requests in flight: they complete, its connections close,
//! nothing fails); the in-repo responder on two loopback addresses for DNS answers
//! that change, through an injected resolver (the machine has no network).
//!
//! Without php-fpm the php-fpm test skips loudly (`FCGI_INTEROP=require` fails).

mod support;

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_fastcgi::discover::{Resolve, Resolving};
use tower_fastcgi::{Backend, BackendStats, Change, FcgiService};

use support::fake::answer;
use support::fake::responder::{self, Listen, Stats};
use support::{Addr, Kind, Options, RunningBackend, runtime};

const SLEEP_PHP: &str = "<?php\nusleep((int) ($_GET['ms'] ?? 0) * 1000);\nheader('Content-Type: text/plain');\necho 'hello';\n";

/// A channel as a discovery stream (what a Kubernetes or Consul watcher would feed).
struct Channel(mpsc::Receiver<Change>);

impl Stream for Channel {
    type Item = Result<Change, io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

async fn call(svc: &FcgiService, target: &str) -> (StatusCode, String) {
    let req = Request::get(target)
        .header("host", "localhost")
        .body(Full::<Bytes>::default())
        .expect("a valid request");
    let res = match svc.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let status = res.status();
    match res.into_body().collect().await {
        Ok(body) => (
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        ),
        Err(err) => (status, format!("body error: {err}")),
    }
}

fn stats_of(svc: &FcgiService, backend: &Backend) -> Option<BackendStats> {
    svc.backend_stats()
        .into_iter()
        .find(|b| &b.backend == backend)
}

/// Waits (up to 10 s) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Established TCP connections whose local port is `port` (php-fpm's side of ours),
/// from /proc/net/tcp: what the backend sees, whatever the service's counters say.
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols
                .get(1)
                .and_then(|local| local.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && cols.get(3) == Some(&"01")
        })
        .count()
}

fn tcp_port(backend: &RunningBackend) -> u16 {
    match backend.addr() {
        Addr::Tcp(addr) => addr.port(),
        Addr::Unix(path) => panic!("php-fpm on a Unix socket: {}", path.display()),
    }
}

/// Starts with one php-fpm master; under load a second joins through the stream and
/// both serve; then the first is removed while three slow requests run on it. They
/// complete, it takes no new request, `backend_stats` marks it draining and then drops
/// it, and php-fpm sees none of our connections any more. No request fails.
#[test]
fn a_backend_added_under_load_serves_and_one_removed_drains_without_a_failure() {
    let root = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(root.path().join("sleep.php"), SLEEP_PHP).expect("write sleep.php");
    let options = || Options::default().workers(6).document_root(root.path());
    let Some(first) = support::backend_or_skip_with(Kind::PhpFpmTcp, options()) else {
        return;
    };
    let Some(second) = support::backend_or_skip_with(Kind::PhpFpmTcp, options()) else {
        return;
    };
    let (a, b) = (first.fcgi_backend(), second.fcgi_backend());
    runtime().block_on(async {
        let (tx, rx) = mpsc::channel(4);
        let svc = FcgiService::builder()
            .backend(a.clone())
            .discover(Channel(rx))
            .document_root(root.path())
            .max_connections(6)
            .build();

        let failures = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let total = 1500;
        let mut load = Vec::new();
        for _ in 0..3 {
            let (svc, failures, sent) = (svc.clone(), Arc::clone(&failures), Arc::clone(&sent));
            load.push(tokio::spawn(async move {
                while sent.fetch_add(1, Ordering::Relaxed) < total {
                    let (status, body) = call(&svc, "/sleep.php?ms=1").await;
                    if status != StatusCode::OK || body != "hello" {
                        failures.lock().unwrap().push(format!("{status} {body}"));
                    }
                }
            }));
        }
        // Three slow requests, necessarily on the first backend (the only one yet).
        let slow: Vec<_> = (0..3)
            .map(|_| {
                let svc = svc.clone();
                tokio::spawn(async move { call(&svc, "/sleep.php?ms=1500").await })
            })
            .collect();
        eventually("the slow requests run on the first backend", || {
            stats_of(&svc, &a).is_some_and(|s| s.stats.pool.busy >= 3)
        })
        .await;

        tx.send(Change::Insert(b.clone()))
            .await
            .expect("the stream is read");
        eventually("the second backend answers", || {
            stats_of(&svc, &b).is_some_and(|s| s.stats.responses_by_class[1] > 20)
        })
        .await;
        let before = stats_of(&svc, &a).expect("still a member");
        assert!(
            before.stats.responses_by_class[1] > 0,
            "both serve: {before:?}"
        );
        assert!(
            before.stats.pool.busy >= 3,
            "the slow requests still run: {before:?}"
        );

        tx.send(Change::Remove(a.clone()))
            .await
            .expect("the stream is read");
        eventually("the first backend is draining", || {
            stats_of(&svc, &a).is_some_and(|s| s.draining)
        })
        .await;
        let draining = stats_of(&svc, &a).expect("listed while draining");
        assert!(!draining.in_rotation, "{draining:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(later) = stats_of(&svc, &a) {
            assert_eq!(
                later.stats.requests, draining.stats.requests,
                "a draining backend takes no new request"
            );
        }

        for request in slow {
            let (status, body) = request.await.expect("a slow request ran");
            assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
        }
        for worker in load {
            worker.await.expect("a load worker ran");
        }
        let failures = failures.lock().unwrap().clone();
        assert!(
            failures.is_empty(),
            "{} failed: {failures:?}",
            failures.len()
        );

        eventually("the drained backend is no longer listed", || {
            stats_of(&svc, &a).is_none()
        })
        .await;
        let port = tcp_port(&first);
        eventually("php-fpm sees no connection from us", || {
            established_to(port) == 0
        })
        .await;
        assert_eq!(svc.backend_stats().len(), 1);
        assert_eq!(call(&svc, "/sleep.php").await.0, StatusCode::OK);
        eprintln!("after the drain: {:?}", svc.backend_stats());
    });
}

/// A resolver whose answer the test sets.
#[derive(Clone)]
struct FakeDns(Arc<Mutex<Vec<IpAddr>>>);

impl Resolve for FakeDns {
    fn resolve(&self, _host: &str) -> Resolving {
        let answer = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(answer) })
    }
}

/// A responder that answers with its own name, on `ip:port`.
async fn named_responder(ip: &str, port: u16, name: &'static str) -> Arc<Stats> {
    let listener = tokio::net::TcpListener::bind((ip, port))
        .await
        .unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"));
    let stats = Arc::new(Stats::default());
    tokio::spawn(responder::serve(
        Listen::Tcp(listener),
        move |req, w| answer(req, w, "Content-Type: text/plain", name.as_bytes()),
        Arc::clone(&stats),
    ));
    stats
}

/// `tcp://php.test:PORT` re-resolved every 100 ms: the answer goes from {A} to {A, B}
/// to {B} (two responders on the same port of 127.0.0.1 and 127.0.0.2), and requests
/// follow: only A, then both, then only B, with A's connections closed.
#[test]
fn a_name_whose_addresses_change_is_followed() {
    runtime().block_on(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let a_stats = named_responder("127.0.0.1", port, "a").await;
        let _b_stats = named_responder("127.0.0.2", port, "b").await;
        let a_ip: IpAddr = "127.0.0.1".parse().unwrap();
        let b_ip: IpAddr = "127.0.0.2".parse().unwrap();
        let answer = Arc::new(Mutex::new(vec![a_ip]));
        let svc = FcgiService::builder()
            .tcp(format!("php.test:{port}"))
            .resolve_every(Duration::from_millis(100))
            .resolver(FakeDns(Arc::clone(&answer)))
            .build();
        let a = Backend::tcp(format!("127.0.0.1:{port}"));
        let b = Backend::tcp(format!("127.0.0.2:{port}"));
        let members = |svc: &FcgiService| -> Vec<Backend> {
            svc.backend_stats()
                .into_iter()
                .filter(|s| !s.draining)
                .map(|s| s.backend)
                .collect()
        };
        eventually("the name resolves to A", || members(&svc) == [a.clone()]).await;
        for _ in 0..20 {
            assert_eq!(call(&svc, "/").await, (StatusCode::OK, "a".to_owned()));
        }

        *answer.lock().unwrap() = vec![b_ip, a_ip];
        eventually("B joins", || members(&svc).len() == 2).await;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let (status, body) = call(&svc, "/").await;
            assert_eq!(status, StatusCode::OK);
            seen.insert(body);
            if seen.len() == 2 {
                break;
            }
        }
        assert_eq!(seen.len(), 2, "both addresses serve: {seen:?}");

        *answer.lock().unwrap() = vec![b_ip];
        eventually("A leaves", || members(&svc) == [b.clone()]).await;
        for _ in 0..20 {
            assert_eq!(call(&svc, "/").await, (StatusCode::OK, "b".to_owned()));
        }
        eventually("A is drained and its connections closed", || {
            stats_of(&svc, &a).is_none() && a_stats.open.load(Ordering::SeqCst) == 0
        })
        .await;
    });
}
