//! The driver against tokio-fastcgi (a third-party multiplexing server) on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_fastcgi::{RequestResult, Requests};

use super::*;
use crate::client::Backend;
use std::future::poll_fn;

use bytes::BytesMut;

use crate::client::stream::Stream;
use crate::proto::{BeginRequest, ParamsEncoder, Record, RecordType, Role};

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

/// A tokio-fastcgi server: `?ms=N` sleeps, `?bytes=N` writes N bytes, then `id=<ID>`.
async fn server(seen: Arc<Seen>) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.connections.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let (read, write) = stream.into_split();
                let mut requests = Requests::new(read, write, 10, 100);
                while let Ok(Some(request)) = requests.next().await {
                    let seen = seen.clone();
                    tokio::spawn(request.process(move |request| async move {
                        let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
                        seen.most_running.fetch_max(now, Ordering::SeqCst);
                        let query = request.get_str_param("QUERY_STRING").unwrap_or("");
                        let number = |key: &str| {
                            query
                                .strip_prefix(key)
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(0)
                        };
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
                        let _ = out.write(query.as_bytes()).await;
                        seen.running.fetch_sub(1, Ordering::SeqCst);
                        RequestResult::Complete(0)
                    }));
                }
            });
        }
    });
    Backend::tcp(addr.to_string())
}

/// BEGIN_REQUEST (keep the connection), PARAMS with QUERY_STRING, empty STDIN; id 1
/// (the connection sets the real one).
fn request(query: &str) -> Vec<u8> {
    let mut buf = BytesMut::new();
    Record::BeginRequest {
        request_id: 1,
        body: BeginRequest {
            role: Role::Responder,
            keep_conn: true,
        },
    }
    .encode(&mut buf);
    let mut enc = ParamsEncoder::with_type(&mut buf, RecordType::Params, 1);
    enc.push(b"QUERY_STRING", query.as_bytes()).unwrap();
    enc.push(b"REQUEST_METHOD", b"GET").unwrap();
    enc.finish_record();
    for empty in [
        Record::Params {
            request_id: 1,
            data: Bytes::new(),
        },
        Record::Stdin {
            request_id: 1,
            data: Bytes::new(),
        },
    ] {
        empty.encode(&mut buf);
    }
    buf.to_vec()
}

/// Reads a stream to its END_REQUEST: the STDOUT bytes, or the error.
async fn read_all(mut stream: MuxStream) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    loop {
        match poll_fn(|cx| stream.poll_event(cx)).await? {
            StreamEvent::Stdout(b) => out.extend_from_slice(&b),
            StreamEvent::End(_) => return Ok(out),
            _ => {}
        }
    }
}

async fn connect(backend: &Backend, budget: usize) -> MuxConn {
    let stream = Stream::connect(backend).await.unwrap();
    let settings = MuxSettings {
        max_streams: 100,
        budget,
        spill_limit: 0,
        write_stall: None,
        idle_timeout: None,
    };
    MuxConn::start(stream, settings, Arc::new(tokio::sync::Notify::new()))
}

#[tokio::test]
async fn many_slow_requests_run_at_once_on_one_connection() {
    let seen = Arc::new(Seen::default());
    let backend = server(seen.clone()).await;
    let conn = connect(&backend, 1 << 20).await;
    let streams: Vec<_> = (0..32)
        .map(|i| {
            let query = format!("ms=200&n={i}");
            conn.open(&[], &request(&query), false).unwrap().0
        })
        .collect();
    let ids: Vec<u16> = streams.iter().map(MuxStream::id).collect();
    assert_eq!(ids, (1..=32).collect::<Vec<u16>>(), "lowest free ids");
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(read_all(s)))
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let body = task.await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.ends_with(&format!("ms=200&n={i}")), "{text}");
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert!(
        seen.most_running.load(Ordering::SeqCst) > 1,
        "requests overlapped on the one connection"
    );
    assert_eq!(conn.in_use(), 0, "every id free again");
}

#[tokio::test]
async fn a_dropped_stream_is_aborted_and_the_connection_stays_usable() {
    let seen = Arc::new(Seen::default());
    let backend = server(seen.clone()).await;
    let conn = connect(&backend, 1 << 20).await;
    let gone = conn.open(&[], &request("ms=300&gone"), false).unwrap().0;
    let stays = conn.open(&[], &request("ms=300&stays"), false).unwrap().0;
    let stays = tokio::spawn(read_all(stays));
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(gone);
    let body = stays.await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&body).ends_with("stays"));
    for i in 0..3 {
        let next = conn
            .open(&[], &request(&format!("n={i}")), false)
            .unwrap()
            .0;
        let body = read_all(next).await.unwrap();
        assert!(String::from_utf8_lossy(&body).ends_with(&format!("n={i}")));
    }
    assert!(!conn.is_failed());
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

/// A scripted multiplexing server on the crate's own decoder, writing from one task (so
/// one stream's flood is on the wire *before* the others' answers): `QUERY_STRING=big`
/// gets 1 MiB of STDOUT and END_REQUEST only when aborted; anything else gets its
/// query back at once.
async fn flooding_server() -> Backend {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut decoder = crate::proto::Decoder::new();
        let mut buf = BytesMut::new();
        let mut queries = std::collections::HashMap::new();
        let end = |id: u16, out: &mut BytesMut| {
            Record::EndRequest {
                request_id: id,
                body: crate::proto::EndRequest {
                    app_status: 0,
                    protocol_status: crate::proto::ProtocolStatus::RequestComplete,
                },
            }
            .encode(out)
        };
        loop {
            if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
            let mut out = BytesMut::new();
            while let Ok(Some(record)) = decoder.decode(&mut buf) {
                match record {
                    Record::Params { request_id, data } if !data.is_empty() => {
                        for pair in crate::proto::PairIter::new(&data) {
                            let (n, v) = pair.unwrap();
                            if n == b"QUERY_STRING" {
                                queries.insert(request_id, v.to_vec());
                            }
                        }
                    }
                    Record::Stdin { request_id, data } if data.is_empty() => {
                        let query = queries.remove(&request_id).unwrap_or_default();
                        let stdout = |data: Vec<u8>, out: &mut BytesMut| {
                            Record::Stdout {
                                request_id,
                                data: data.into(),
                            }
                            .encode(out)
                        };
                        stdout(b"Content-Type: text/plain\r\n\r\n".to_vec(), &mut out);
                        if query == b"big" {
                            for _ in 0..32 {
                                stdout(vec![b'x'; 32 * 1024], &mut out);
                            }
                        } else {
                            stdout(query, &mut out);
                            end(request_id, &mut out);
                        }
                    }
                    Record::AbortRequest { request_id } => end(request_id, &mut out),
                    _ => {}
                }
            }
            if s.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    Backend::tcp(addr.to_string())
}

#[tokio::test]
async fn a_stream_nobody_reads_is_aborted_while_the_others_finish() {
    let backend = flooding_server().await;
    let conn = connect(&backend, 256 * 1024).await;
    let mut slow = conn.open(&[], &request("big"), false).unwrap().0;
    // Let the flood reach the wire first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let others: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(read_all(
                conn.open(&[], &request(&format!("n={i}")), false)
                    .unwrap()
                    .0,
            ))
        })
        .collect();
    for (i, task) in others.into_iter().enumerate() {
        let body = task.await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&body).ends_with(&format!("n={i}")));
    }
    // The slow one, read only now, is an error, never a clean end.
    loop {
        match poll_fn(|cx| slow.poll_event(cx)).await {
            Ok(StreamEvent::End(_)) => panic!("an overflowed stream ended cleanly"),
            Ok(_) => {}
            Err(err) => {
                assert!(err.to_string().contains("aborted"), "{err}");
                break;
            }
        }
    }
    drop(slow);
    let body = read_all(conn.open(&[], &request("after"), false).unwrap().0)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).ends_with("after"));
    assert!(!conn.is_failed());
    // The server ends the flood only when it gets FCGI_ABORT_REQUEST: its END_REQUEST
    // frees the last reserved id.
    tokio::time::timeout(Duration::from_secs(10), async {
        while conn.in_use() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the aborted stream's END_REQUEST was consumed");
}

/// A connection that carries no stream for its idle timeout closes itself: it is marked
/// failed (no stream can open on it), and the backend sees the close.
#[tokio::test]
async fn an_idle_connection_closes_itself_after_its_idle_timeout() {
    let seen = Arc::new(Seen::default());
    let backend = server(seen.clone()).await;
    let stream = Stream::connect(&backend).await.unwrap();
    let settings = MuxSettings {
        max_streams: 4,
        budget: 1 << 20,
        spill_limit: 0,
        write_stall: None,
        idle_timeout: Some(Duration::from_millis(200)),
    };
    let conn = MuxConn::start(stream, settings, Arc::new(tokio::sync::Notify::new()));
    let body = read_all(conn.open(&[], &request("first"), false).unwrap().0)
        .await
        .unwrap();
    assert!(body.ends_with(b"first"));
    assert!(!conn.is_failed(), "in use a moment ago");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(conn.is_failed(), "idle for longer than its timeout");
    assert!(conn.open(&[], &request("late"), false).is_none());
}
