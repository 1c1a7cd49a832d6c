//! Issue 13, discovery: `Multiplex::Auto` asks each backend FCGI_GET_VALUES on a
//! connection of its own before its first request, and honours `FCGI_MAX_CONNS`.
//! Real php-cgi (answers and keeps the connection open), php-fpm (answers and closes)
//! and a single-process fcgiwrap (libfcgi: holds its only accept), plus the in-repo
//! responder for what it costs in connections.
//!
//! The real-backend tests run one at a time; without the programs they skip loudly
//! (`FCGI_INTEROP=require` fails).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_fastcgi::{FcgiService, FcgiServiceBuilder, Multiplex};

use support::fake::{answer, fake};
use support::{Kind, Options, RunningBackend, one_at_a_time, runtime};

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

fn auto(backend: &RunningBackend) -> FcgiServiceBuilder {
    let builder = FcgiService::builder()
        .backend(backend.fcgi_backend())
        .document_root(backend.document_root())
        .multiplex(Multiplex::Auto)
        // Only FCGI_MAX_CONNS may lower the cap here.
        .unserved_after(None)
        .response_head_timeout(Duration::from_secs(30));
    match backend.kind() {
        Kind::FcgiwrapTcp | Kind::FcgiwrapUnix => builder.script_extensions(["cgi"]),
        _ => builder,
    }
}

/// `concurrency` requests for `target` at once, while the most connections seen open is
/// recorded; returns the statuses and that maximum.
async fn burst(svc: &FcgiService, target: &str, concurrency: usize) -> (Vec<StatusCode>, usize) {
    let most_open = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let svc = svc.clone();
        let most_open = most_open.clone();
        tokio::spawn(async move {
            loop {
                most_open.fetch_max(svc.backend_stats()[0].stats.pool.open, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let svc = svc.clone();
            let target = target.to_owned();
            tokio::spawn(async move { get(&svc, &target).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let (status, body) = task.await.expect("a request task");
        if status != StatusCode::OK {
            eprintln!("{status}: {body}");
        }
        statuses.push(status);
    }
    sampler.abort();
    (statuses, most_open.load(Ordering::SeqCst))
}

/// php-cgi with 2 children answers FCGI_MAX_CONNS = 2 (and keeps the connection open):
/// a pool configured for 8 never opens more than 2, and nothing waits for a worker.
#[test]
fn php_cgi_max_conns_caps_the_pool() {
    let _serial = one_at_a_time();
    let Some(php) = support::backend_or_skip_with(Kind::PhpCgiTcp, Options::default().workers(2))
    else {
        return;
    };
    runtime().block_on(async {
        let svc = auto(&php).max_connections(8).build();
        let target = Kind::PhpCgiTcp.target("sleep?ms=100");
        let (statuses, most_open) = burst(&svc, &target, 12).await;
        let backend = &svc.backend_stats()[0];
        eprintln!("most open {most_open}; {backend:?}");
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        assert_eq!(
            backend.connection_cap, 2,
            "FCGI_MAX_CONNS, not max_connections"
        );
        assert!(most_open <= 2, "{most_open} connections open");
        assert!(backend.stats.pool.connections_opened <= 2, "{backend:?}");
    });
}

/// php-fpm 8.2 answers FCGI_MPXS_CONNS = 0 only (no FCGI_MAX_CONNS), on a connection
/// its worker then holds: the question's connection is closed at once, so the worker
/// is free again, and the pool (sized to the workers) serves everything.
#[test]
fn php_fpm_answers_no_limits_and_still_works() {
    let _serial = one_at_a_time();
    let Some(fpm) = support::backend_or_skip_with(Kind::PhpFpmTcp, Options::default().workers(3))
    else {
        return;
    };
    runtime().block_on(async {
        let svc = auto(&fpm).max_connections(3).build();
        let target = Kind::PhpFpmTcp.target("sleep?ms=50");
        let (statuses, most_open) = burst(&svc, &target, 9).await;
        let backend = &svc.backend_stats()[0];
        eprintln!("most open {most_open}; {backend:?}");
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        assert_eq!(backend.connection_cap, 3, "{backend:?}");
        assert_eq!(backend.stats.failures, Default::default());
    });
}

/// fcgiwrap with one process is a single-process libfcgi app: it holds the discovery
/// connection as its only accepted one and does not answer a bare GET_VALUES. The
/// question's timeout bounds that, the connection is closed, and the request (and every
/// one after it, without asking again) is served.
#[test]
fn a_single_process_libfcgi_app_costs_one_timeout_then_works() {
    let _serial = one_at_a_time();
    let Some(wrap) =
        support::backend_or_skip_with(Kind::FcgiwrapTcp, Options::default().workers(1))
    else {
        return;
    };
    runtime().block_on(async {
        let svc = auto(&wrap).max_connections(1).build();
        let target = Kind::FcgiwrapTcp.target("env");
        let started = Instant::now();
        let (status, body) = get(&svc, &target).await;
        eprintln!("first request after {:?}", started.elapsed());
        assert_eq!(status, StatusCode::OK, "{body}");
        for _ in 0..5 {
            let (status, body) = get(&svc, &target).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let backend = &svc.backend_stats()[0];
        assert_eq!(backend.connection_cap, 1, "{backend:?}");
        assert_eq!(backend.stats.failures, Default::default());
    });
}

/// The question costs one connection per backend, asked once however many requests
/// come at once (they wait for the one answer); `Off` (the default) asks nothing.
#[tokio::test]
async fn the_question_is_asked_once_on_a_connection_of_its_own() {
    let server = fake(|req, w| answer(req, w, "Status: 200", b"ok")).await;
    let svc = server
        .builder()
        .multiplex(Multiplex::Auto)
        .max_connections(2)
        .build();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { get(&svc, "/x").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("a request task").0, StatusCode::OK);
    }
    let opened = svc.stats().pool.connections_opened;
    // The responder answers FCGI_MAX_CONNS = 100: no cap below 2.
    assert_eq!(svc.backend_stats()[0].connection_cap, 2);
    assert_eq!(
        server.connections() as u64,
        opened + 1,
        "one GET_VALUES connection beside the pool's"
    );

    let plain = fake(|req, w| answer(req, w, "Status: 200", b"ok")).await;
    let svc = plain.builder().build();
    assert_eq!(get(&svc, "/x").await.0, StatusCode::OK);
    assert_eq!(plain.connections(), 1, "Off: nothing asked");
}

/// A backend that cannot multiplex and says so: while a request runs on a connection,
/// a second request id gets END_REQUEST with FCGI_CANT_MPX_CONN at once (what the
/// FastCGI spec asks of such an application). Each connection serves one request at a
/// time, 100 ms each. Fault injection: real libfcgi does not reliably answer this way
/// (see `Multiplex::On`).
async fn cant_mpx_server() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tower_fastcgi::proto::{Decoder, EndRequest, ProtocolStatus, Record};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let refused = Arc::new(AtomicUsize::new(0));
    let count = refused.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut decoder = Decoder::new();
                let mut buf = bytes::BytesMut::new();
                // The request being served: its id and when it ends.
                let mut current: Option<(u16, tokio::time::Instant)> = None;
                loop {
                    let mut out = bytes::BytesMut::new();
                    while let Ok(Some(record)) = decoder.decode(&mut buf) {
                        if let Record::BeginRequest { request_id, .. } = record {
                            if current.is_some() {
                                count.fetch_add(1, Ordering::SeqCst);
                                Record::EndRequest {
                                    request_id,
                                    body: EndRequest {
                                        app_status: 0,
                                        protocol_status: ProtocolStatus::CantMpxConn,
                                    },
                                }
                                .encode(&mut out);
                            } else {
                                let at = tokio::time::Instant::now() + Duration::from_millis(100);
                                current = Some((request_id, at));
                            }
                        }
                    }
                    if !out.is_empty() && socket.write_all(&out).await.is_err() {
                        return;
                    }
                    let wake = current.map(|(_, at)| at);
                    tokio::select! {
                        n = socket.read_buf(&mut buf) => {
                            if !matches!(n, Ok(n) if n > 0) {
                                return;
                            }
                        }
                        () = async {
                            match wake {
                                Some(at) => tokio::time::sleep_until(at).await,
                                None => std::future::pending().await,
                            }
                        } => {
                            let Some((id, _)) = current.take() else { continue };
                            let mut out = bytes::BytesMut::new();
                            Record::Stdout { request_id: id, data: Bytes::from_static(b"Status: 200\r\n\r\nserved") }.encode(&mut out);
                            Record::Stdout { request_id: id, data: Bytes::new() }.encode(&mut out);
                            Record::EndRequest {
                                request_id: id,
                                body: EndRequest { app_status: 0, protocol_status: ProtocolStatus::RequestComplete },
                            }
                            .encode(&mut out);
                            if socket.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, refused)
}

/// Multiplexing forced on a backend that answers FCGI_CANT_MPX_CONN: the refused
/// requests (they never ran) are sent again, the connections drop to one request at a
/// time, and every request of a burst is answered once: nothing lost, nothing doubled.
#[tokio::test]
async fn cant_mpx_conn_downgrades_the_connection_and_resends_the_refused() {
    let (addr, refused) = cant_mpx_server().await;
    let svc = FcgiService::builder()
        .tcp(&addr)
        .script_filename("/app")
        .multiplex(Multiplex::On { max_streams: 8 })
        .max_connections(2)
        .build();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { get(&svc, "/app").await })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.expect("a request task");
        assert_eq!((status, body.as_str()), (StatusCode::OK, "served"));
    }
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "the backend refused none"
    );
    let stats = svc.stats();
    assert_eq!(stats.failures, Default::default(), "{stats:?}");
    // Now one request per connection: the next ones are not refused.
    let before = refused.load(Ordering::SeqCst);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { get(&svc, "/app").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("a request task").0, StatusCode::OK);
    }
    assert_eq!(
        refused.load(Ordering::SeqCst),
        before,
        "refused after the downgrade"
    );
}
