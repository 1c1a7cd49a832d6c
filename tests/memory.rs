//! Memory stays bounded while 1 GiB flows each way through `FcgiService`.
//!
//! One test in its own binary, so the process's peak RSS (VmHWM) belongs to it alone.
//! The backend is the in-repo responder in the same process; its buffers count too.

mod support;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use support::fake::*;

const GIB: u64 = 1 << 30;
const CHUNK: usize = 64 * 1024;

/// Resident set size and its peak, in KiB, from /proc/self/status.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A request body of `len` bytes produced on the fly, with an exact length.
struct Generated {
    left: u64,
    chunk: Bytes,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK as u64) as usize;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_each_way_in_bounded_memory() {
    let fake = fake(|mut req, mut w| async move {
        if req.param("REQUEST_METHOD") == "POST" {
            let n = req.drain_stdin().await?;
            w.stdout(format!("Content-Type: text/plain\r\n\r\n{n}").as_bytes())
                .await?;
        } else {
            req.drain_stdin().await?;
            w.stdout(
                format!("Content-Type: application/octet-stream\r\nContent-Length: {GIB}\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
            let chunk = vec![b'd'; CHUNK];
            for _ in 0..GIB / CHUNK as u64 {
                w.stdout(&chunk).await?;
            }
        }
        w.end(0).await?;
        Ok((req, w, After::KeepIfAsked))
    })
    .await;
    let svc = fake.builder().build();

    // Warm up allocator and pool, then take the baseline.
    let res = send(&svc, post("/", vec![0u8; 1000])).await;
    assert!(body(res).await.is_ok());
    let (base, _) = rss_kib();

    // Download: read frame by frame and drop each one, as a server writing to a socket would.
    let mut res = send(&svc, get("/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut received = 0u64;
    let mut peak_during = 0u64;
    while let Some(frame) = http_body_util::BodyExt::frame(res.body_mut()).await {
        received += frame
            .expect("download")
            .into_data()
            .map_or(0, |d| d.len() as u64);
        if received.is_multiple_of(64 << 20) {
            peak_during = peak_during.max(rss_kib().0);
        }
    }
    assert_eq!(received, GIB);

    // Upload of a known length, streamed.
    let req = http::Request::post("/")
        .body(Generated {
            left: GIB,
            chunk: Bytes::from(vec![b'u'; CHUNK]),
        })
        .unwrap();
    let res = send(&svc, req).await;
    assert_eq!(&body(res).await.unwrap()[..], GIB.to_string().as_bytes());

    let (after, peak) = rss_kib();
    let growth_mib = peak.saturating_sub(base) as f64 / 1024.0;
    eprintln!(
        "memory: baseline {:.1} MiB, peak {:.1} MiB, after {:.1} MiB, peak growth {growth_mib:.1} MiB for 1 GiB down + 1 GiB up",
        base as f64 / 1024.0,
        peak as f64 / 1024.0,
        after as f64 / 1024.0
    );
    assert!(growth_mib < 16.0, "peak RSS grew by {growth_mib:.1} MiB");
}
