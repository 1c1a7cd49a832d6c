//! The `tokio-fastcgi` crate (a third-party FastCGI application library) as a multiplexing
//! responder: every request of a connection runs in a task of its own, so several request
//! ids are served at once on one connection. It answers FCGI_GET_VALUES with
//! `FCGI_MPXS_CONNS=1` and the limits it was started with.
//!
//! Routes (the path of REQUEST_URI, else SCRIPT_NAME + PATH_INFO): `/slow?ms=N&tag=T`
//! (answers `slow tag=T ms=N id=ID` after N ms, ID being the FastCGI request id), `/echo`
//! (STDIN back) and `/big?bytes=N` (N bytes of the fixtures' stream pattern).
//!
//! tokio-fastcgi 1.3 guards its writer with a tokio mutex it only `try_lock`s, and panics
//! when two tasks write at the same time. The safe way used here: the writer it gets never
//! waits (each write is handed to a channel, and one task per connection writes the
//! channel to the socket in order), and the whole server runs on a current-thread runtime
//! of its own thread, so a lock is never seen held. Its quirk, pinned by
//! `tests/mux_backends.rs`: FCGI_ABORT_REQUEST is answered with END_REQUEST at once, and
//! a request whose handler already runs still sends its output and a second END_REQUEST.
//!
//! ```ignore
//! let mux = support::tokio_mux::TokioMux::start(4, 64);
//! let svc = FcgiService::builder().backend(mux.fcgi_backend()).build();
//! // ...
//! assert!(mux.counters().peak >= 32, "{:?}", mux.counters());
//! ```

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio_fastcgi::{RequestResult, Requests};

use super::backends::Addr;

/// What the responder counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokioCounters {
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Handlers running now.
    pub inflight: u64,
    /// The most handlers that ran at once.
    pub peak: u64,
    /// Handlers that returned.
    pub completed: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    inflight: AtomicU64,
    peak: AtomicU64,
    completed: AtomicU64,
}

/// A running tokio-fastcgi responder on a Unix socket in a temp dir; dropping it stops it.
pub struct TokioMux {
    path: PathBuf,
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TokioMux {
    /// Starts it; GET_VALUES answers `FCGI_MAX_CONNS=max_conns`, `FCGI_MAX_REQS=max_reqs`.
    pub fn start(max_conns: u8, max_reqs: u8) -> TokioMux {
        let dir = tempfile::Builder::new()
            .prefix("fcgi-tokio-mux-")
            .tempdir()
            .expect("a temporary directory");
        let path = dir.path().join("mux.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind mux.sock");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = oneshot::channel();
        let thread = {
            let counters = Arc::clone(&counters);
            thread::Builder::new()
                .name("tokio-mux".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime");
                    runtime.block_on(async move {
                        let listener = UnixListener::from_std(listener).expect("a tokio listener");
                        tokio::select! {
                            () = serve(listener, counters, max_conns, max_reqs) => {}
                            _ = stopped => {}
                        }
                    });
                    // Dropping the runtime cancels every connection's tasks.
                })
                .expect("spawn the tokio-mux thread")
        };
        TokioMux {
            path,
            counters,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn addr(&self) -> Addr {
        Addr::Unix(self.path.clone())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fcgi_backend(&self) -> tower_fastcgi::Backend {
        tower_fastcgi::Backend::unix(self.path.clone())
    }

    pub fn counters(&self) -> TokioCounters {
        let c = &self.counters;
        TokioCounters {
            accepted: c.accepted.load(Ordering::SeqCst),
            open: c.open.load(Ordering::SeqCst),
            inflight: c.inflight.load(Ordering::SeqCst),
            peak: c.peak.load(Ordering::SeqCst),
            completed: c.completed.load(Ordering::SeqCst),
        }
    }

    /// Polls [`TokioMux::counters`] until `done` holds or `timeout` passes.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&TokioCounters) -> bool,
    ) -> TokioCounters {
        let deadline = Instant::now() + timeout;
        loop {
            let counters = self.counters();
            if done(&counters) || Instant::now() >= deadline {
                return counters;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TokioMux {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: UnixListener, counters: Arc<Counters>, max_conns: u8, max_reqs: u8) {
    while let Ok((stream, _)) = listener.accept().await {
        counters.accepted.fetch_add(1, Ordering::SeqCst);
        counters.open.fetch_add(1, Ordering::SeqCst);
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
            // The one writer of this connection: records leave in the order they were
            // written, whole, whichever request task wrote them.
            let writer = tokio::spawn(async move {
                while let Some(bytes) = rx.recv().await {
                    if write.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                let _ = write.shutdown().await;
            });
            let mut requests = Requests::new(read, ChannelWriter(tx), max_conns, max_reqs);
            let mut handlers = tokio::task::JoinSet::new();
            while let Ok(Some(request)) = requests.next().await {
                let counters = Arc::clone(&counters);
                handlers.spawn(async move {
                    let now = counters.inflight.fetch_add(1, Ordering::SeqCst) + 1;
                    counters.peak.fetch_max(now, Ordering::SeqCst);
                    let _ = request.process(answer).await;
                    counters.inflight.fetch_sub(1, Ordering::SeqCst);
                    counters.completed.fetch_add(1, Ordering::SeqCst);
                });
            }
            // The web server closed (or broke) the connection: let the running handlers
            // finish, then the writer drains and closes once the last sender is gone.
            while handlers.join_next().await.is_some() {}
            drop(requests);
            let _ = writer.await;
            counters.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

type Request = tokio_fastcgi::Request<ChannelWriter>;

async fn answer(request: Arc<Request>) -> RequestResult {
    let param = |name: &str| request.get_str_param(name).unwrap_or("").to_owned();
    let uri = param("REQUEST_URI");
    let path = match uri.split_once('?') {
        _ if uri.is_empty() => format!("{}{}", param("SCRIPT_NAME"), param("PATH_INFO")),
        Some((path, _)) => path.to_owned(),
        None => uri.clone(),
    };
    let query = param("QUERY_STRING");
    let arg = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| *n == name)
            .map_or(String::new(), |(_, v)| v.to_owned())
    };
    let (head, body): (&str, Vec<u8>) = match path.as_str() {
        "/slow" => {
            let ms: u64 = arg("ms").parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let id = request.get_request_id();
            let text = format!("slow tag={} ms={ms} id={id}", arg("tag"));
            ("Content-Type: text/plain", text.into_bytes())
        }
        "/echo" => {
            let mut body = Vec::new();
            // The request is complete before it is handed out: STDIN is all in memory.
            let _ = std::io::Read::read_to_end(&mut *request.get_stdin(), &mut body);
            ("Content-Type: application/octet-stream", body)
        }
        "/big" => {
            let n: usize = arg("bytes").parse().unwrap_or(0);
            let body = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            ("Content-Type: application/octet-stream", body)
        }
        _ => (
            "Status: 404 Not Found\r\nContent-Type: text/plain",
            b"no such route".to_vec(),
        ),
    };
    let mut out = request.get_stdout();
    let head = format!("{head}\r\nContent-Length: {}\r\n\r\n", body.len());
    if out.write(head.as_bytes()).await.is_err() || out.write(&body).await.is_err() {
        return RequestResult::Complete(1);
    }
    RequestResult::Complete(0)
}

/// The writer tokio-fastcgi gets: every write is queued whole to the connection's writer
/// task and completes at once, so no write ever holds tokio-fastcgi's lock across a wait.
pub struct ChannelWriter(mpsc::UnboundedSender<Vec<u8>>);

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(match self.0.send(buf.to_vec()) {
            Ok(()) => Ok(buf.len()),
            Err(_) => Err(std::io::ErrorKind::BrokenPipe.into()),
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
