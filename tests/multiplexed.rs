//! Issue 13, multiplexing on the request path: `FcgiService` with `Multiplex::Auto` /
//! `Multiplex::On` against real multiplexing servers we did not write: Go's
//! `net/http/fcgi`, the `tokio-fastcgi` crate (in-process, `support::tokio_mux`) and flup
//! with `multiplexed=True`, some behind a record tap (`support::record_tap`) to see what
//! goes over the wire. Requests share a handful of connections, a client that goes away
//! has only its stream aborted, bodies stream both ways, and a slow reader does not slow
//! the others (its response is spilled to a file, or aborted past the limit).
//!
//! No test asserts a duration: concurrency is read from the backends' own counters.
//! Without Go or flup those tests skip loudly (`FCGI_INTEROP=require` fails).

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tower::ServiceExt;
use tower_fastcgi::{Backend, FcgiBody, FcgiService, FcgiServiceBuilder, Multiplex};

use support::backends::GoFcgi;
use support::record_tap::Tap;
use support::tokio_mux::TokioMux;
use support::{Kind, Options};

fn builder(backend: Backend, mode: Multiplex, conns: usize) -> FcgiServiceBuilder {
    FcgiService::builder()
        .backend(backend)
        .multiplex(mode)
        .max_connections(conns)
        .response_head_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(30))
}

async fn send(svc: &FcgiService, req: Request<FcgiBody>) -> (StatusCode, Result<Bytes, String>) {
    let res = match svc.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string());
    (status, body)
}

fn get(target: &str) -> Request<FcgiBody> {
    Request::get(target)
        .header("host", "localhost")
        .body(FcgiBody::empty())
        .unwrap()
}

/// `n` slow requests (`ms` each) at once; each answer must name its own tag.
async fn slow_burst(svc: &FcgiService, n: usize, ms: u32) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, get(&format!("/slow?ms={ms}&tag=t{i}"))).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body:?}");
        let body = body.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("slow tag=t{i} ")), "{text}");
    }
}

/// Go's `net/http/fcgi` says FCGI_MPXS_CONNS=1: with `Auto`, 64 slow requests run at
/// once over at most 4 connections (plus the one that asked).
#[tokio::test]
async fn go_runs_sixty_four_slow_requests_at_once_over_a_handful_of_connections() {
    let Some(go) = GoFcgi::start_or_skip() else {
        return;
    };
    let svc = builder(go.fcgi_backend(), Multiplex::Auto, 4).build();
    slow_burst(&svc, 64, 500).await;
    let seen = go.counters();
    assert!(seen.accepted <= 5, "{seen:?}");
    assert!(seen.peak >= 48, "only {} ran at once: {seen:?}", seen.peak);
    assert_eq!(seen.completed, 64);
}

/// A client that goes away before its head: FCGI_ABORT_REQUEST goes to Go for that
/// stream alone (seen on the wire; Go itself ignores an abort once the request was
/// sent), the seven others on the connection finish, and the connection serves on.
#[tokio::test]
async fn go_client_gone_has_its_stream_aborted_while_the_others_finish() {
    let Some(go) = GoFcgi::start_or_skip() else {
        return;
    };
    let tap = Tap::start(go.addr());
    let svc = builder(tap.fcgi_backend(), Multiplex::Auto, 1).build();
    let others: Vec<_> = (0..7)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, get(&format!("/slow?ms=800&tag=o{i}"))).await })
        })
        .collect();
    let leaver = {
        let svc = svc.clone();
        tokio::spawn(async move { send(&svc, get("/slow?ms=800&tag=gone")).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    leaver.abort();
    for task in others {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body:?}");
    }
    let stats = tap.wait_for(Duration::from_secs(5), |s| s.aborts().len() == 1);
    assert_eq!(stats.aborts().len(), 1, "{stats:?}");
    assert_eq!(
        stats.request_connections(),
        1,
        "one connection carried all: {stats:?}"
    );
    assert!(stats.max_open() >= 8, "{stats:?}");
    let (status, body) = send(&svc, get("/slow?ms=0&tag=after")).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(tap.stats().request_connections(), 1);
}

/// Request bodies over the read-ahead go as STDIN one chunk at a time on the shared
/// connection, with and without a Content-Length, several at once; Go echoes each.
#[tokio::test]
async fn go_echoes_streamed_bodies_sent_at_once_on_one_connection() {
    let Some(go) = GoFcgi::start_or_skip() else {
        return;
    };
    let svc = builder(go.fcgi_backend(), Multiplex::Auto, 1).build();
    echo_burst(&svc, "/echo").await;
    assert!(go.counters().accepted <= 2, "{:?}", go.counters());
}

/// Six 3 MB bodies at once (half without a length), each echoed back intact.
async fn echo_burst(svc: &FcgiService, target: &'static str) {
    let tasks: Vec<_> = (0..6u8)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let payload: Vec<u8> = (0..3_000_000u32).map(|n| (n as u8) ^ i).collect();
                let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = payload
                    .chunks(100_000)
                    .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
                    .collect();
                let mut req = Request::post(target).header("host", "localhost");
                if i % 2 == 0 {
                    req = req.header("content-length", payload.len());
                }
                let body = FcgiBody::new(StreamBody::new(iter_stream(chunks)));
                let (status, body) = send(&svc, req.body(body).unwrap()).await;
                (i, payload, status, body)
            })
        })
        .collect();
    for task in tasks {
        let (i, payload, status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "request {i}: {body:?}");
        let body = body.unwrap();
        assert_eq!(body.len(), payload.len(), "request {i}");
        assert!(body[..] == payload[..], "request {i}: body differs");
    }
}

/// flup with `multiplexed=True` answers GET_VALUES with nothing on Python 3, so it needs
/// `On`: then 32 slow requests run at once on two connections, and bodies stream.
#[test]
fn flup_multiplexed_needs_on_and_then_runs_requests_at_once() {
    let _serial = support::one_at_a_time();
    let Some(flup) =
        support::backend_or_skip_with(Kind::FlupUnix, Options::default().multiplexed(true))
    else {
        return;
    };
    let tap = Tap::start(flup.addr());
    support::runtime().block_on(async {
        let svc = builder(tap.fcgi_backend(), Multiplex::On { max_streams: 32 }, 2).build();
        slow_burst(&svc, 32, 500).await;
        let stats = tap.stats();
        assert!(stats.request_connections() <= 2, "{stats:?}");
        assert!(stats.max_open() >= 16, "{stats:?}");
        echo_burst(&svc, "/echo").await;
    });
}

/// tokio-fastcgi: 64 slow requests at once on two connections.
#[tokio::test]
async fn tokio_fastcgi_runs_sixty_four_slow_requests_on_two_connections() {
    let mux = TokioMux::start(10, 100);
    let svc = builder(mux.fcgi_backend(), Multiplex::Auto, 2).build();
    slow_burst(&svc, 64, 300).await;
    let seen = mux.counters();
    assert!(
        seen.accepted <= 3,
        "{seen:?} (one is the GET_VALUES question)"
    );
    assert!(seen.peak >= 32, "{seen:?}");
}

/// A client that goes away mid-response: its stream is aborted, the others on the same
/// connection finish intact, and the connection serves the next request.
#[tokio::test]
async fn a_client_gone_mid_response_aborts_only_its_stream() {
    let mux = TokioMux::start(10, 100);
    let svc = builder(mux.fcgi_backend(), Multiplex::On { max_streams: 16 }, 1).build();
    let others: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, get("/big?bytes=300000")).await })
        })
        .collect();
    let res = match svc.clone().oneshot(get("/big?bytes=8000000")).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    drop(body);
    for task in others {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.unwrap().len(), 300_000);
    }
    let (status, body) = send(&svc, get("/slow?ms=0&tag=after")).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(mux.counters().accepted, 1, "one connection throughout");
}

/// tokio-fastcgi echoes streamed bodies sent at once on one connection.
#[tokio::test]
async fn tokio_fastcgi_echoes_streamed_bodies_on_one_connection() {
    let mux = TokioMux::start(10, 100);
    let svc = builder(mux.fcgi_backend(), Multiplex::On { max_streams: 8 }, 1).build();
    echo_burst(&svc, "/echo").await;
    assert_eq!(mux.counters().accepted, 1);
}

/// One client that does not read its 20 MB response while 50 others run on the same
/// connection: the others finish (the connection's reader never waits for the slow
/// one). Returns what the slow client then reads: its bytes, and whether its body ended
/// cleanly. A stream aborted before its head was read (the backend writes the 20 MB at
/// once, and its owner may not run before they overflow a small spill limit) is a 502:
/// an error too, never a clean short answer.
async fn stalled_reader_beside_fifty_others(spill: u64) -> (usize, Result<(), String>) {
    let mux = TokioMux::start(10, 100);
    let svc = builder(mux.fcgi_backend(), Multiplex::On { max_streams: 64 }, 1)
        .multiplex_buffer(256 * 1024)
        .multiplex_spill(spill)
        .build();
    let res = match svc.clone().oneshot(get("/big?bytes=20000000")).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let status = res.status();
    assert!(
        status == StatusCode::OK || status == StatusCode::BAD_GATEWAY,
        "{status}"
    );
    let mut stalled = res.into_body();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, get("/big?bytes=100000")).await })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.unwrap().len(), 100_000);
    }
    assert_eq!(mux.counters().accepted, 1);
    if status != StatusCode::OK {
        return (0, Err(format!("{status} before the head")));
    }
    let mut got = 0;
    let outcome = loop {
        match stalled.frame().await {
            Some(Ok(frame)) => got += frame.into_data().map_or(0, |d| d.len()),
            Some(Err(err)) => break Err(err.to_string()),
            None => break Ok(()),
        }
    };
    (got, outcome)
}

/// With the default spill limit (64 MiB) the slow client's 20 MB wait in a temporary
/// file beyond the 256 KiB in memory: it gets all of them afterwards.
#[tokio::test]
async fn a_stalled_reader_has_its_response_spilled_and_gets_all_of_it() {
    let (got, outcome) = stalled_reader_beside_fifty_others(64 << 20).await;
    assert_eq!(outcome, Ok(()));
    assert_eq!(got, 20_000_000);
}

/// With a 1 MiB spill limit the slow client falls further behind than memory and file
/// allow: its request is aborted, and its body fails (never a clean, short end).
#[tokio::test]
async fn a_reader_behind_more_than_buffer_and_spill_is_aborted_not_cut_clean() {
    let (got, outcome) = stalled_reader_beside_fifty_others(1 << 20).await;
    assert!(outcome.is_err(), "a clean end after {got} bytes");
    assert!(got < 20_000_000);
}

/// `futures::stream::iter` without the dependency.
fn iter_stream<T>(items: Vec<T>) -> impl futures_core::Stream<Item = T> {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Iter<T> {}
    Iter(items.into_iter())
}
