//! Issue 13, multiplexing on the request path: `FcgiService` with `Multiplex::Auto` /
//! `Multiplex::On` against the `tokio-fastcgi` crate (a third-party server that runs
//! several requests at once on one connection, in-process here): requests share a
//! handful of connections, a client that goes away has only its stream aborted, bodies
//! stream both ways, and a slow reader does not slow the others.

mod support;

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tokio_fastcgi::{RequestResult, Requests};
use tower::ServiceExt;
use tower_fastcgi::{FcgiBody, FcgiService, Multiplex};

/// What the tokio-fastcgi server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
    completed: AtomicUsize,
}

/// A tokio-fastcgi server on loopback answering GET_VALUES with MPXS_CONNS=1 (it says
/// so when it allows more than one request per connection): `?ms=N` sleeps, `?bytes=N`
/// writes N bytes of `x`, a body is echoed back; the query string ends the output.
async fn server(seen: Arc<Seen>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.connections.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let (read, write) = stream.into_split();
                let mut requests = Requests::new(read, ChannelWriter::to(write), 10, 100);
                while let Ok(Some(request)) = requests.next().await {
                    let seen = seen.clone();
                    tokio::spawn(request.process(move |request| async move {
                        let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
                        seen.most_running.fetch_max(now, Ordering::SeqCst);
                        let query = request.get_str_param("QUERY_STRING").unwrap_or("");
                        let number = |key: &str| {
                            query
                                .split('&')
                                .find_map(|kv| kv.strip_prefix(key))
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(0)
                        };
                        let mut body = Vec::new();
                        let _ = request.get_stdin().read_to_end(&mut body);
                        tokio::time::sleep(Duration::from_millis(number("ms=") as u64)).await;
                        let mut out = request.get_stdout();
                        let _ = out.write(b"Content-Type: text/plain\r\n\r\n").await;
                        let chunk = vec![b'x'; 16 * 1024];
                        let mut left = number("bytes=");
                        while left > 0 {
                            let n = left.min(chunk.len());
                            if out.write(&chunk[..n]).await.is_err() {
                                break;
                            }
                            left -= n;
                        }
                        for piece in body.chunks(16 * 1024) {
                            let _ = out.write(piece).await;
                        }
                        let _ = out.write(query.as_bytes()).await;
                        seen.running.fetch_sub(1, Ordering::SeqCst);
                        seen.completed.fetch_add(1, Ordering::SeqCst);
                        RequestResult::Complete(0)
                    }));
                }
            });
        }
    });
    addr.to_string()
}

fn service(addr: &str, mode: Multiplex, conns: usize) -> FcgiService {
    FcgiService::builder()
        .tcp(addr)
        .multiplex(mode)
        .max_connections(conns)
        .script_filename("/app")
        .build()
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

/// 64 slow requests at once on a backend that multiplexes: they run together (the
/// whole burst takes about one request's time) over at most two connections.
#[tokio::test]
async fn sixty_four_slow_requests_run_together_on_two_connections() {
    let seen = Arc::new(Seen::default());
    let addr = server(seen.clone()).await;
    let svc = service(&addr, Multiplex::Auto, 2);
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, get(&format!("/app?ms=300&n={i}"))).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.unwrap(), format!("ms=300&n={i}"));
    }
    let took = started.elapsed();
    assert!(
        seen.connections.load(Ordering::SeqCst) <= 3,
        "{} connections (one is the GET_VALUES question)",
        seen.connections.load(Ordering::SeqCst)
    );
    assert!(
        seen.most_running.load(Ordering::SeqCst) >= 32,
        "only {} ran at once",
        seen.most_running.load(Ordering::SeqCst)
    );
    // Generous: one after the other would be 19 s.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let stats = svc.backend_stats();
    assert!(
        stats[0].stats.pool.connections_opened <= 2,
        "{:?}",
        stats[0].stats.pool
    );
}

/// A client that goes away mid-response: its stream is aborted, the others on the same
/// connection finish intact, and the connection serves the next request.
#[tokio::test]
async fn a_client_gone_mid_response_aborts_only_its_stream() {
    let seen = Arc::new(Seen::default());
    let addr = server(seen.clone()).await;
    let svc = service(&addr, Multiplex::On { max_streams: 16 }, 1);
    let others: Vec<_> = (0..8)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                send(&svc, get(&format!("/app?ms=200&bytes=300000&n={i}"))).await
            })
        })
        .collect();
    // The leaver reads its head and one chunk, then drops the body.
    let res = match svc.clone().oneshot(get("/app?bytes=8000000")).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    for (i, task) in others.into_iter().enumerate() {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        let body = body.unwrap();
        assert_eq!(
            body.len(),
            300_000 + format!("ms=200&bytes=300000&n={i}").len()
        );
    }
    let (status, body) = send(&svc, get("/app?after")).await;
    assert_eq!(
        (status, body.unwrap()),
        (StatusCode::OK, Bytes::from("after"))
    );
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "one connection throughout"
    );
}

/// Bodies larger than the read-ahead are streamed as STDIN on the shared connection,
/// with and without a Content-Length, several at once; each comes back intact.
#[tokio::test]
async fn streamed_bodies_go_both_ways_on_a_shared_connection() {
    let seen = Arc::new(Seen::default());
    let addr = server(seen.clone()).await;
    let svc = service(&addr, Multiplex::On { max_streams: 8 }, 1);
    let tasks: Vec<_> = (0..6u8)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let payload: Vec<u8> = (0..3_000_000u32).map(|n| (n as u8) ^ i).collect();
                let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = payload
                    .chunks(100_000)
                    .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
                    .collect();
                let mut req = Request::post(format!("/app?n={i}")).header("host", "localhost");
                if i % 2 == 0 {
                    req = req.header("content-length", payload.len());
                }
                let body = FcgiBody::new(StreamBody::new(futures_stream(chunks)));
                let (status, body) = send(&svc, req.body(body).unwrap()).await;
                (i, payload, status, body)
            })
        })
        .collect();
    for task in tasks {
        let (i, payload, status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        let body = body.unwrap();
        let tail = format!("n={i}");
        assert_eq!(body.len(), payload.len() + tail.len(), "request {i}");
        assert!(
            body[..payload.len()] == payload[..],
            "request {i}: body differs"
        );
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

/// One client that does not read its 20 MB response while 30 others run on the same
/// connection: the others finish promptly (the connection's reader never waits for the
/// slow one). Returns what the slow client then reads: its bytes, and whether its body
/// ended cleanly.
async fn stalled_reader_beside_thirty_others(spill: u64) -> (usize, Result<(), String>) {
    let seen = Arc::new(Seen::default());
    let addr = server(seen.clone()).await;
    let svc = FcgiService::builder()
        .tcp(&addr)
        .multiplex(Multiplex::On { max_streams: 64 })
        .multiplex_buffer(256 * 1024)
        .multiplex_spill(spill)
        .max_connections(1)
        .script_filename("/app")
        .build();
    let res = match svc.clone().oneshot(get("/app?bytes=20000000")).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    assert_eq!(res.status(), StatusCode::OK);
    let mut stalled = res.into_body();
    let started = Instant::now();
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, get(&format!("/app?bytes=100000&n={i}"))).await })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body.unwrap().len() > 100_000);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
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
/// file beyond the 256 KiB in memory: it gets all of them, intact, afterwards.
#[tokio::test]
async fn a_stalled_reader_has_its_response_spilled_and_gets_all_of_it() {
    let (got, outcome) = stalled_reader_beside_thirty_others(64 << 20).await;
    assert_eq!(outcome, Ok(()));
    assert_eq!(got, 20_000_000 + "bytes=20000000".len());
}

/// With a 1 MiB spill limit the slow client falls further behind than memory and file
/// allow: its request is aborted, and its body fails (never a clean, short end).
#[tokio::test]
async fn a_reader_behind_more_than_buffer_and_spill_is_aborted_not_cut_clean() {
    let (got, outcome) = stalled_reader_beside_thirty_others(1 << 20).await;
    assert!(outcome.is_err(), "a clean end after {got} bytes");
    assert!(got < 20_000_000);
}

/// tokio-fastcgi 1.3 shares one writer between a connection's requests and panics
/// ("A request must not be processed by multiple threads") when a write finds another
/// one waiting on a full socket. Its writer here therefore never waits: bytes go to a
/// task that writes them to the socket (unbounded, as befits a test server; the
/// gateway's side is what is bounded).
struct ChannelWriter(tokio::sync::mpsc::UnboundedSender<Vec<u8>>);

impl ChannelWriter {
    fn to(mut socket: tokio::net::tcp::OwnedWriteHalf) -> ChannelWriter {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            while let Some(bytes) = rx.recv().await {
                if socket.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
        ChannelWriter(tx)
    }
}

impl tokio::io::AsyncWrite for ChannelWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let sent = self.0.send(buf.to_vec());
        std::task::Poll::Ready(
            sent.map(|()| buf.len())
                .map_err(|_| std::io::ErrorKind::BrokenPipe.into()),
        )
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// `futures::stream::iter` without the dependency.
fn futures_stream<T>(items: Vec<T>) -> impl futures_core::Stream<Item = T> {
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
