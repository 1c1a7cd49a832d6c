//! Discovery with fakes and paused time: a stream's changes, DNS answers that change,
//! drained backends leaving the stats, and the tasks stopping with the service.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::mpsc;

use crate::discover::{Change, Resolve, Resolving};
use crate::{Backend, FcgiService};

/// A `tokio::sync::mpsc::Receiver` as a discovery stream.
struct Channel(mpsc::Receiver<Change>);

impl Stream for Channel {
    type Item = Result<Change, io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// A resolver whose answer the test sets; `None` fails the lookup.
#[derive(Clone, Default)]
struct FakeDns(Arc<Mutex<Option<Vec<IpAddr>>>>);

impl FakeDns {
    fn answer(&self, ips: &[&str]) {
        *self.0.lock().unwrap() = Some(ips.iter().map(|ip| ip.parse().unwrap()).collect());
    }
    fn fail(&self) {
        *self.0.lock().unwrap() = None;
    }
}

impl Resolve for FakeDns {
    fn resolve(&self, host: &str) -> Resolving {
        assert_eq!(host, "php.test");
        let answer = self.0.lock().unwrap().clone();
        Box::pin(async move { answer.ok_or_else(|| io::Error::other("SERVFAIL")) })
    }
}

fn keys(svc: &FcgiService) -> Vec<String> {
    svc.inner
        .fleet
        .members()
        .iter()
        .map(|m| m.key().to_string())
        .collect()
}

/// Lets the discovery task run (paused time: only tasks that are ready).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn dns_answers_become_members_that_join_and_drain() {
    let dns = FakeDns::default();
    dns.answer(&["10.0.0.1"]);
    let svc = FcgiService::builder()
        .tcp("php.test:9000")
        .add_backend(Backend::tcp("127.0.0.1:9001"))
        .resolve_every(Duration::from_secs(10))
        .resolver(dns.clone())
        .backend_max_connections(&Backend::tcp("php.test:9000"), 2)
        .build();
    settle().await;
    assert_eq!(
        svc.inner.discovery.tasks(),
        1,
        "one watcher: the name, not the IP"
    );
    assert_eq!(keys(&svc), ["tcp://127.0.0.1:9001", "tcp://10.0.0.1:9000"]);
    let caps: Vec<usize> = svc
        .inner
        .fleet
        .members()
        .iter()
        .map(|m| m.service.cap)
        .collect();
    assert_eq!(caps, [4, 2], "the name's cap applies to its addresses");

    dns.answer(&["10.0.0.2", "10.0.0.1"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(
        keys(&svc),
        [
            "tcp://127.0.0.1:9001",
            "tcp://10.0.0.1:9000",
            "tcp://10.0.0.2:9000"
        ]
    );

    // A failed lookup keeps the set; so does an empty answer.
    dns.fail();
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    dns.answer(&[]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(keys(&svc).len(), 3);

    dns.answer(&["10.0.0.2"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(keys(&svc), ["tcp://127.0.0.1:9001", "tcp://10.0.0.2:9000"]);
    // No connection was open to it, so it is drained at once and not listed.
    let listed: Vec<String> = svc
        .backend_stats()
        .iter()
        .map(|b| b.backend.to_string())
        .collect();
    assert_eq!(listed, keys(&svc));
}

#[tokio::test(start_paused = true)]
async fn the_name_serves_until_the_first_answer() {
    let dns = FakeDns::default();
    let svc = FcgiService::builder()
        .tcp("php.test:9000")
        .resolve_every(Duration::from_secs(5))
        .resolver(dns.clone())
        .build();
    settle().await;
    assert_eq!(
        keys(&svc),
        ["tcp://php.test:9000"],
        "the lookup failed: keep the name"
    );
    dns.answer(&["fd00::7"]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(keys(&svc), ["tcp://[fd00::7]:9000"]);
}

#[tokio::test(start_paused = true)]
async fn a_stream_inserts_and_removes_and_stops_with_the_service() {
    let (tx, rx) = mpsc::channel(8);
    let svc = FcgiService::builder().discover(Channel(rx)).build();
    assert!(
        keys(&svc).is_empty(),
        "a discovered service may start empty"
    );
    let a = Backend::tcp("127.0.0.1:9001");
    let b = Backend::unix("/run/b.sock");
    tx.send(Change::Insert(a.clone())).await.unwrap();
    tx.send(Change::Insert(b.clone())).await.unwrap();
    tx.send(Change::Insert(a.clone())).await.unwrap();
    settle().await;
    assert_eq!(keys(&svc), ["tcp://127.0.0.1:9001", "unix:/run/b.sock"]);
    tx.send(Change::Remove(a)).await.unwrap();
    settle().await;
    assert_eq!(keys(&svc), ["unix:/run/b.sock"]);

    let clone = svc.clone();
    drop(svc);
    settle().await;
    assert!(!tx.is_closed(), "a clone still holds the service");
    drop(clone);
    settle().await;
    assert!(tx.is_closed(), "the task dropped the stream");
}

#[test]
fn a_service_built_outside_a_runtime_starts_discovery_on_first_request() {
    let (tx, rx) = mpsc::channel(8);
    let svc = FcgiService::builder()
        .tcp("127.0.0.1:1")
        .discover(Channel(rx))
        .connect_timeout(Duration::from_millis(200))
        .build();
    tx.try_send(Change::Insert(Backend::tcp("127.0.0.1:2")))
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        settle().await;
        assert_eq!(keys(&svc).len(), 1, "not started yet");
        let req = http::Request::get("/")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let _ = svc.try_call(req).await;
        settle().await;
        assert_eq!(keys(&svc), ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]);
    });
}

#[test]
fn resolve_every_zero_is_a_build_error() {
    let err = FcgiService::builder()
        .tcp("php.test:9000")
        .resolve_every(Duration::ZERO)
        .try_build()
        .unwrap_err();
    assert!(err.to_string().contains("resolve_every"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn without_resolve_every_a_name_stays_one_backend() {
    // What the gateway and every existing configuration get: no watcher at all.
    let svc = FcgiService::builder().tcp("localhost:9000").build();
    settle().await;
    assert_eq!(keys(&svc), ["tcp://localhost:9000"]);
    assert_eq!(svc.inner.discovery.tasks(), 0);
}
