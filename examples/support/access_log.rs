//! The gateway's access log: one line per request, written off the request path in
//! batches, like nginx's `access_log PATH buffer=64k flush=1s`.
//!
//! The format is nginx's and Apache's "combined", plus the request time in seconds:
//!
//! ```text
//! 127.0.0.1 - - [02/Dec/2026:03:36:50 +0000] "GET /index.php?p=1 HTTP/1.1" 200 5120 "-" "curl/8.0" 0.004
//! ```
//!
//! remote address (`unix:` for a Unix-socket client, `-` if unknown), two `-` (ident and
//! user, never known here), the time the request arrived (UTC), the request line, the
//! status, the response body bytes sent (counted as they leave, so a cut response shows
//! what went), the Referer and User-Agent (`-` if absent), and the seconds from the
//! request's arrival to its body's last byte (or to the client going away). Client-sent
//! text is escaped as nginx does: `"`, `\`, control and non-ASCII bytes become `\xHH`.
//!
//! Cost per request: one `String` formatted and pushed onto a queue under a mutex, no
//! syscall and no wake-up. A writer thread wakes every [`Config::tick`], takes the queue
//! whole, and writes it through a 64 KiB `BufWriter` (a write when 64 KiB accumulate, a
//! flush at least every [`Config::flush_every`]). When the queue holds
//! [`Config::queue_bytes`] already, the line is dropped and counted, never waited for;
//! the writer reports the count through `tracing` (warn).

use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower_fastcgi::ConnectionInfo;

/// Bytes the writer buffers before it writes (nginx's `buffer=64k`).
pub const BUFFER: usize = 64 * 1024;

/// How the log is batched; [`Config::default`] is what the gateway uses.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How often the writer takes the queue.
    pub tick: Duration,
    /// The longest a line waits in the writer's buffer (nginx's `flush=1s`).
    pub flush_every: Duration,
    /// Queued bytes beyond which new lines are dropped: a second of lines at about
    /// 100 000 requests/s, far more than a tick's worth at any rate seen here.
    pub queue_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            tick: Duration::from_millis(100),
            flush_every: Duration::from_secs(1),
            queue_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What the request path and the writer thread share.
struct Shared {
    queue: Mutex<Queue>,
    dropped: AtomicU64,
    stopping: AtomicBool,
    queue_bytes: usize,
}

#[derive(Default)]
struct Queue {
    lines: Vec<String>,
    bytes: usize,
}

impl Shared {
    fn push(&self, line: String) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.bytes + line.len() > self.queue_bytes {
            drop(queue);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.bytes += line.len();
        queue.lines.push(line);
    }
}

/// A running access log: the writer thread and the handle the layer pushes through.
pub struct AccessLog {
    shared: Arc<Shared>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl AccessLog {
    /// `-` is stderr, `off` is no log, anything else a file opened for appending.
    pub fn open(target: &str) -> Result<Option<AccessLog>, String> {
        let out: Box<dyn Write + Send> = match target {
            "off" => return Ok(None),
            "-" => Box::new(io::stderr()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|err| format!("--access-log {path}: {err}"))?,
            ),
        };
        AccessLog::start(out, Config::default())
            .map(Some)
            .map_err(|err| format!("--access-log {target}: cannot start its writer: {err}"))
    }

    /// Starts the writer thread over `out`.
    pub fn start(out: Box<dyn Write + Send>, config: Config) -> io::Result<AccessLog> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            dropped: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            queue_bytes: config.queue_bytes,
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("access-log".into())
                .spawn(move || write_loop(&shared, out, config))?
        };
        Ok(AccessLog {
            shared,
            writer: Some(writer),
        })
    }

    /// The layer that logs every request it sees.
    pub fn layer(&self) -> AccessLogLayer {
        AccessLogLayer {
            shared: self.shared.clone(),
        }
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued, flushes, and stops the writer.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(writer) = self.writer.take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_loop(shared: &Shared, out: Box<dyn Write + Send>, config: Config) {
    let mut out = BufWriter::with_capacity(BUFFER, out);
    let mut spare = Vec::new();
    let mut last_flush = Instant::now();
    let mut reported = 0;
    loop {
        // Parked, not waiting on the queue: a request never has to wake this thread.
        std::thread::park_timeout(config.tick);
        let stopping = shared.stopping.load(Ordering::Acquire);
        {
            let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut queue.lines, &mut spare);
            queue.bytes = 0;
        }
        let mut failed = None;
        for line in spare.drain(..) {
            if let Err(err) = out.write_all(line.as_bytes()) {
                failed = Some(err);
            }
        }
        if stopping || last_flush.elapsed() >= config.flush_every {
            if let Err(err) = out.flush() {
                failed = Some(err);
            }
            last_flush = Instant::now();
        }
        if let Some(err) = failed {
            tracing::warn!(error = %err, "access log: write failed, lines lost");
        }
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            tracing::warn!(
                dropped = dropped - reported,
                total = dropped,
                "access log: queue full, lines dropped"
            );
            reported = dropped;
        }
        if stopping {
            return;
        }
    }
}

/// Logs each request through its [`AccessLog`].
#[derive(Clone)]
pub struct AccessLogLayer {
    shared: Arc<Shared>,
}

impl<S> tower_layer::Layer<S> for AccessLogLayer {
    type Service = AccessLogService<S>;

    fn layer(&self, inner: S) -> AccessLogService<S> {
        AccessLogService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessLogService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B, RB> tower_service::Service<Request<B>> for AccessLogService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<LoggedBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let entry = Entry::begin(&req, self.shared.clone());
        ResponseFuture {
            inner: self.inner.call(req),
            entry: Some(entry),
        }
    }
}

/// A line in the making: everything up to the status, and where the rest goes.
struct Entry {
    line: String,
    /// Where the status and byte count are inserted (after the request line).
    status_at: usize,
    started: Instant,
    status: u16,
    bytes: u64,
    shared: Arc<Shared>,
}

impl Entry {
    fn begin<B>(req: &Request<B>, shared: Arc<Shared>) -> Entry {
        let mut line = String::with_capacity(160);
        match req.extensions().get::<ConnectionInfo>() {
            Some(info) if info.unix_socket => line.push_str("unix:"),
            Some(ConnectionInfo {
                remote: Some(addr), ..
            }) => push_display(&mut line, &addr.ip()),
            _ => line.push('-'),
        }
        line.push_str(" - - [");
        format::push_time(&mut line, SystemTime::now());
        line.push_str("] \"");
        format::push_escaped(&mut line, req.method().as_str().as_bytes());
        line.push(' ');
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        format::push_escaped(&mut line, target.as_bytes());
        line.push(' ');
        push_display(&mut line, &format_args!("{:?}", req.version()));
        line.push_str("\" ");
        let status_at = line.len();
        for name in [http::header::REFERER, http::header::USER_AGENT] {
            line.push_str(" \"");
            match req.headers().get(name) {
                Some(value) => format::push_escaped(&mut line, value.as_bytes()),
                None => line.push('-'),
            }
            line.push('"');
        }
        Entry {
            line,
            status_at,
            started: Instant::now(),
            status: 0,
            bytes: 0,
            shared,
        }
    }

    fn end(mut self) {
        let mut middle = String::with_capacity(24);
        push_display(&mut middle, &format_args!("{} {}", self.status, self.bytes));
        self.line.insert_str(self.status_at, &middle);
        let secs = self.started.elapsed().as_secs_f64();
        push_display(&mut self.line, &format_args!(" {secs:.3}\n"));
        let Entry { line, shared, .. } = self;
        shared.push(line);
    }
}

fn push_display(line: &mut String, value: &dyn std::fmt::Display) {
    use std::fmt::Write as _;
    let _ = write!(line, "{value}");
}

pin_project_lite::pin_project! {
    /// The inner service's future; its response's body is counted and logged.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        entry: Option<Entry>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<LoggedBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        // An error has no response to log (the router's error type is Infallible).
        Poll::Ready(res.map(|res| {
            let mut entry = this.entry.take();
            if let Some(entry) = entry.as_mut() {
                entry.status = res.status().as_u16();
            }
            res.map(|body| LoggedBody { inner: body, entry })
        }))
    }
}

/// A response body that counts the bytes it yields and writes the log line when it ends
/// or is dropped (the client went away, or the server never polled an empty body).
pub struct LoggedBody<B> {
    inner: B,
    entry: Option<Entry>,
}

impl<B: Body + Unpin> Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(data), Some(entry)) = (frame.data_ref(), self.entry.as_mut()) {
                    entry.bytes += bytes::Buf::remaining(data) as u64;
                }
            }
            Some(Err(_)) | None => {
                if let Some(entry) = self.entry.take() {
                    entry.end();
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.end();
        }
    }
}

#[path = "access_log_format.rs"]
mod format;
