//! The service's own cost per request, without HTTP in front or a real application
//! behind: `FcgiService::call` plus reading the whole `FcgiBody`, against a canned
//! in-process backend on a Unix socket that answers from a static buffer.
//!
//! * `service/tiny_get`: GET, 13-byte response (the "hello world" of the end-to-end
//!   benchmark), on a kept-alive pooled connection;
//! * `service/post_4k`: POST with a 4 KiB body (read ahead and sent in the same write as
//!   the PARAMS);
//! * `service/tiny_get_fleet3`: the tiny GET on a service with three backends (three
//!   canned backends on three sockets, same process), so the difference from `tiny_get`
//!   is the fleet's own cost per request: the pick, the per-backend pool and counters.
//!
//! Wall-clock times on a shared 2-core machine are noisy; for a load-independent figure,
//! `SERVICE_BENCH_ONLY=single|fleet3 SERVICE_BENCH_REQUESTS=N` skips criterion and runs
//! N tiny GETs on that service, so `valgrind --tool=callgrind` at two values of N gives
//! instructions per request (the difference divided by the difference of N).
//!
//! A counting global allocator reports allocations per request once, outside the timed
//! loop. The backend allocates nothing per request, so the figure is the service's (and
//! the current-thread runtime's) alone. Run with `cargo bench --bench service`.

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::Service;
use tower_fastcgi::FcgiService;
use tower_fastcgi::proto::{RecordType, encode_stream};

#[path = "support/counting.rs"]
mod counting;
#[path = "support/wire.rs"]
mod wire;

/// The end of a request as the service writes it: an empty STDIN record.
const STDIN_END: [u8; 8] = [1, 5, 0, 1, 0, 0, 0, 0];

/// STDOUT with a CGI head and "Hello, world!", the STDOUT terminator, END_REQUEST.
fn canned_response() -> Vec<u8> {
    let mut wire = bytes::BytesMut::new();
    encode_stream(
        &mut wire,
        RecordType::Stdout,
        1,
        b"Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!",
    );
    wire::end_response(&mut wire, 1);
    wire.to_vec()
}

/// Answers every request on every connection with the canned response, reusing one
/// buffer per connection. It only looks for the STDIN terminator at the end of what it
/// has read, which holds for this client (one request at a time, terminator last).
async fn canned_backend(listener: tokio::net::UnixListener) {
    let response: &'static [u8] = canned_response().leak();
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 256 * 1024];
            let mut filled = 0;
            loop {
                match sock.read(&mut buf[filled..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => filled += n,
                }
                if buf[..filled].ends_with(&STDIN_END) {
                    filled = 0;
                    if sock.write_all(response).await.is_err() {
                        return;
                    }
                } else if filled == buf.len() {
                    filled = 0; // a large body: keep only looking at its end
                }
            }
        });
    }
}

fn get() -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .uri("/app/hello?name=world")
        .header("host", "bench.local")
        .header("user-agent", "criterion")
        .header("accept", "*/*")
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

fn post(body: &Bytes) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method("POST")
        .uri("/app/upload")
        .header("host", "bench.local")
        .header("content-type", "application/octet-stream")
        .header("content-length", body.len())
        .body(Full::new(body.clone()))
        .expect("valid request")
}

async fn roundtrip(svc: &mut FcgiService, req: http::Request<Full<Bytes>>) -> usize {
    let res = svc.call(req).await.expect("infallible");
    assert_eq!(res.status(), 200);
    let body = res
        .into_body()
        .collect()
        .await
        .expect("whole body")
        .to_bytes();
    body.len()
}

fn bench_service(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let paths: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("canned-{i}.sock")))
        .collect();
    let (mut svc, mut fleet) = rt.block_on(async {
        for path in &paths {
            let listener = tokio::net::UnixListener::bind(path).expect("bind");
            tokio::spawn(canned_backend(listener));
        }
        let single = FcgiService::builder().unix(&paths[0]).build();
        let fleet = FcgiService::builder()
            .backends(paths.iter().map(tower_fastcgi::Backend::unix))
            .build();
        (single, fleet)
    });
    let body = Bytes::from(vec![b'x'; 4096]);

    for (name, make) in [
        (
            "tiny_get",
            Box::new(get) as Box<dyn Fn() -> http::Request<Full<Bytes>>>,
        ),
        ("post_4k", Box::new(move || post(&body))),
    ] {
        // Requests are built outside the count: they are the caller's allocations.
        let per_request = rt.block_on(async {
            for _ in 0..100 {
                roundtrip(&mut svc, make()).await;
            }
            let runs = 2000;
            let mut requests: Vec<_> = (0..runs).map(|_| make()).collect();
            let before = counting::allocations();
            for req in requests.drain(..) {
                roundtrip(&mut svc, req).await;
            }
            (counting::allocations() - before) as f64 / runs as f64
        });
        println!(
            "service/{name}: {per_request:.1} allocations per request (call + body, runtime included); {:?}",
            svc.pool_stats()
        );
        c.bench_function(&format!("service/{name}"), |b| {
            b.iter(|| rt.block_on(roundtrip(&mut svc, make())))
        });
    }

    rt.block_on(async {
        for _ in 0..300 {
            roundtrip(&mut fleet, get()).await;
        }
    });
    c.bench_function("service/tiny_get_fleet3", |b| {
        b.iter(|| rt.block_on(roundtrip(&mut fleet, get())))
    });
    // The same request on the one-backend service right after, so the two are measured
    // under the same machine load and can be compared.
    c.bench_function("service/tiny_get_again", |b| {
        b.iter(|| rt.block_on(roundtrip(&mut svc, get())))
    });
}

/// The instruction-count mode (see the module docs): N requests on one service, no criterion.
fn count_only(which: &str, requests: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let paths: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("canned-{i}.sock")))
        .collect();
    rt.block_on(async {
        for path in &paths {
            let listener = tokio::net::UnixListener::bind(path).expect("bind");
            tokio::spawn(canned_backend(listener));
        }
        let builder = FcgiService::builder();
        let mut svc = match which {
            "single" => builder.unix(&paths[0]).build(),
            "fleet3" => builder
                .backends(paths.iter().map(tower_fastcgi::Backend::unix))
                .build(),
            other => panic!("SERVICE_BENCH_ONLY={other}: expected single or fleet3"),
        };
        // Open the connections first, so N=0 and N>0 differ only by the requests.
        for _ in 0..30 {
            roundtrip(&mut svc, get()).await;
        }
        for _ in 0..requests {
            roundtrip(&mut svc, get()).await;
        }
    });
}

criterion_group!(benches, bench_service);

fn main() {
    if let Ok(which) = std::env::var("SERVICE_BENCH_ONLY") {
        let requests = std::env::var("SERVICE_BENCH_REQUESTS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1000);
        count_only(&which, requests);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
