//! The requests: each kind, sent and checked end to end.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use sha2::{Digest, Sha256};

pub type Req = BoxBody<Bytes, Infallible>;
pub type HttpClient = Client<HttpConnector, Req>;
const BIG: usize = 10 << 20;
/// Longest a request may take before the driver gives up on it (then it is a failure).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Get,
    PostSmall,
    PostBig,
    Download,
    SlowDownload,
    SlowUpload,
    VanishDownload,
    VanishUpload,
}

/// What became of one request.
#[derive(Debug)]
pub enum Outcome {
    Ok,
    /// The driver walked away on purpose (a vanishing client).
    Vanished,
    /// The body arrived whole by HTTP's framing but its SHA-256 differs.
    Mismatch,
    /// HTTP's framing said "complete" but the length is not what was sent.
    FalseComplete,
    /// No 200 head (an error status, a refused or reset connection, a timeout).
    FailedHead(String),
    /// A 200 head, then the body broke off (visibly: an error from the client).
    FailedBody(String),
}

impl Outcome {
    /// Why a failed request failed, without the byte counts (to tally causes).
    pub fn cause(&self) -> Option<&str> {
        match self {
            Outcome::FailedHead(why) => Some(why),
            Outcome::FailedBody(why) => why.split(" after ").next(),
            _ => None,
        }
    }
}

pub struct Record {
    pub kind: Kind,
    pub start_ms: u64,
    pub end_ms: u64,
    pub outcome: Outcome,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// xorshift64*: cheap bytes and choices; the content needs no cryptographic quality,
/// only to differ between requests so a mix-up between two bodies is caught.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, len: usize) -> Bytes {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out.into()
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A request body fed piece by piece with pauses: a slow uploader.
struct Trickle {
    pieces: std::vec::IntoIter<Bytes>,
    pause: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let pause = self.pause;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.sleep = None;
        Poll::Ready(self.pieces.next().map(|piece| Ok(Frame::data(piece))))
    }
}

fn full(bytes: Bytes) -> Req {
    Full::new(bytes).boxed()
}

/// Sends one request and reads the answer: `expect` is the length and SHA-256 the body
/// must have (None: take them from `X-Sha256` and the requested size), `pace` slows the
/// reader down, `vanish_after` drops the response after that many body bytes.
async fn exchange(
    client: &HttpClient,
    req: http::Request<Req>,
    expect_len: usize,
    expect_sha: Option<String>,
    pace: Option<Duration>,
    vanish_after: Option<usize>,
) -> Outcome {
    let resp = match client.request(req).await {
        Ok(resp) => resp,
        Err(err) => return Outcome::FailedHead(format!("{err:?}")),
    };
    if resp.status() != http::StatusCode::OK {
        return Outcome::FailedHead(format!("status {}", resp.status()));
    }
    let header_sha = resp
        .headers()
        .get("x-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let want_sha = expect_sha.or(header_sha);
    let mut body = resp.into_body();
    let mut hasher = Sha256::new();
    let mut got = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    got += data.len();
                }
            }
            Err(err) => return Outcome::FailedBody(format!("{err:?} after {got} bytes")),
        }
        if vanish_after.is_some_and(|n| got >= n) {
            return Outcome::Vanished;
        }
        if let Some(pace) = pace {
            tokio::time::sleep(pace).await;
        }
    }
    if got != expect_len {
        return Outcome::FalseComplete;
    }
    match want_sha {
        Some(sha) if sha == hex(&hasher.finalize()) => Outcome::Ok,
        _ => Outcome::Mismatch,
    }
}

/// One request of `kind`.
pub async fn one(client: &HttpClient, base: &str, kind: Kind, rng: &mut Rng) -> Outcome {
    let seed = rng.next();
    let get = |path: String| {
        http::Request::get(format!("{base}{path}"))
            .body(full(Bytes::new()))
            .expect("a valid request")
    };
    let post = |body: Req, len: usize| {
        http::Request::post(format!("{base}/echo.php"))
            .header("content-type", "application/octet-stream")
            .header("content-length", len)
            .body(body)
            .expect("a valid request")
    };
    // `/echo.php` answers "LEN SHA256" of what it read.
    let echo_answer = |data: &Bytes| format!("{} {}", data.len(), hex(&Sha256::digest(data)));
    let echoed = |data: &Bytes| {
        let answer = echo_answer(data);
        (answer.len(), Some(hex(&Sha256::digest(answer.as_bytes()))))
    };
    match kind {
        Kind::Get => {
            let n = rng.below(4096);
            // Half with Content-Length from PHP (checked exactly by the gateway), half chunked.
            let req = get(format!("/small.php?n={n}&seed={seed}&cl={}", seed & 1));
            exchange(client, req, small_len(n, seed), None, None, None).await
        }
        Kind::PostSmall | Kind::PostBig => {
            let len = if kind == Kind::PostBig {
                BIG
            } else {
                1 + rng.below(64 << 10) as usize
            };
            let data = rng.bytes(len);
            let (answer_len, sha) = echoed(&data);
            exchange(client, post(full(data), len), answer_len, sha, None, None).await
        }
        Kind::SlowUpload => {
            let data = rng.bytes(256 << 10);
            let (answer_len, sha) = echoed(&data);
            let pieces: Vec<Bytes> = (0..data.len())
                .step_by(16 << 10)
                .map(|at| data.slice(at..(at + (16 << 10)).min(data.len())))
                .collect();
            let body = Trickle {
                pieces: pieces.into_iter(),
                pause: Duration::from_millis(30),
                sleep: None,
            };
            exchange(
                client,
                post(body.boxed(), data.len()),
                answer_len,
                sha,
                None,
                None,
            )
            .await
        }
        Kind::Download => {
            let req = get(format!("/download.php?size={BIG}&cl={}", seed & 1));
            exchange(client, req, BIG, None, None, None).await
        }
        Kind::SlowDownload => {
            let req = get(format!("/download.php?size={}&cl={}", 1 << 20, seed & 1));
            let pace = Some(Duration::from_millis(15));
            exchange(client, req, 1 << 20, None, pace, None).await
        }
        Kind::VanishDownload => {
            let req = get(format!("/download.php?size={BIG}&cl={}", seed & 1));
            let after = Some(rng.below(BIG as u64 / 2) as usize);
            exchange(client, req, BIG, None, None, after).await
        }
        Kind::VanishUpload => {
            let data = rng.bytes(1 << 20);
            let pieces: Vec<Bytes> = (0..16)
                .map(|i| data.slice(i << 16..(i + 1) << 16))
                .collect();
            let body = Trickle {
                pieces: pieces.into_iter(),
                pause: Duration::from_millis(20),
                sleep: None,
            };
            let req = post(body.boxed(), data.len());
            let give_up = Duration::from_millis(20 + rng.below(250));
            match tokio::time::timeout(give_up, exchange(client, req, 0, None, None, None)).await {
                Err(_) => Outcome::Vanished,
                Ok(outcome) => outcome,
            }
        }
    }
}

/// The length of `/small.php`'s answer: "n=N seed=S\n" then N bytes of filler.
fn small_len(n: u64, seed: u64) -> usize {
    format!("n={n} seed={seed}\n").len() + n as usize
}

/// Draws a request kind: mostly small requests, with the big and nasty ones mixed in.
pub fn pick(rng: &mut Rng) -> Kind {
    match rng.below(100) {
        0..40 => Kind::Get,
        40..62 => Kind::PostSmall,
        62..68 => Kind::PostBig,
        68..76 => Kind::Download,
        76..81 => Kind::SlowDownload,
        81..87 => Kind::SlowUpload,
        87..94 => Kind::VanishDownload,
        _ => Kind::VanishUpload,
    }
}
