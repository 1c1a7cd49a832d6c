//! A record tap: a loopback proxy (a Unix socket in a temp dir in front of any backend
//! address) that forwards bytes both ways unchanged and decodes them into FastCGI records
//! on the side, counting per connection what went over the wire: the BEGIN_REQUEST and
//! ABORT_REQUEST ids the client sent, the END_REQUEST ids the backend answered, GET_VALUES
//! questions and answers, and the most request ids open at once on one connection.
//!
//! This is how tests see aborts and multiplexing "at the record level" for backends that
//! do not report them (Go never cancels a handler on FCGI_ABORT_REQUEST).
//!
//! ```ignore
//! let go = GoFcgi::start_or_skip()?;
//! let tap = Tap::start(go.addr());
//! let svc = FcgiService::builder().backend(tap.fcgi_backend()).build();
//! // ... requests, one dropped mid-way ...
//! let stats = tap.wait_for(Duration::from_secs(5), |s| !s.aborts().is_empty());
//! assert_eq!(stats.connections.len(), 1);
//! assert!(stats.max_open() >= 2, "{stats:#?}");
//! ```
//!
//! The forwarding threads are blocking std threads, so a tap works the same under any
//! tokio runtime (or none). Dropping the tap shuts every proxied connection down.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tower_fastcgi::proto::{Decoder, Record};

use super::backends::Addr;
use super::raw_client::Stream;

/// What one proxied connection carried, as decoded records.
#[derive(Debug, Clone, Default)]
pub struct ConnStats {
    /// BEGIN_REQUEST ids, client to backend, in order.
    pub begin_ids: Vec<u16>,
    /// ABORT_REQUEST ids, client to backend, in order.
    pub abort_ids: Vec<u16>,
    /// END_REQUEST ids, backend to client, in order (Go may answer one id twice).
    pub end_ids: Vec<u16>,
    /// FCGI_GET_VALUES records the client sent.
    pub get_values: usize,
    /// FCGI_GET_VALUES_RESULT records the backend sent (Go sends two per question).
    pub get_values_results: usize,
    /// Ids begun and not yet ended, now.
    pub open_ids: BTreeSet<u16>,
    /// The most ids open at once (a BEGIN_REQUEST opens an id, its END_REQUEST closes it).
    pub max_open: usize,
    /// Both directions have ended.
    pub closed: bool,
    /// The first undecodable bytes (forwarding goes on; decoding that direction stops).
    pub parse_error: Option<String>,
    /// Connecting to the backend failed (the client's connection was closed at once).
    pub upstream_error: Option<String>,
}

/// Every connection the tap proxied, in accept order.
#[derive(Debug, Clone, Default)]
pub struct TapStats {
    pub connections: Vec<ConnStats>,
}

impl TapStats {
    /// Connections whose first record was a GET_VALUES: discovery's own connections.
    pub fn question_connections(&self) -> usize {
        self.connections
            .iter()
            .filter(|c| c.get_values > 0 && c.begin_ids.is_empty())
            .count()
    }

    /// Connections that carried at least one request.
    pub fn request_connections(&self) -> usize {
        self.connections
            .iter()
            .filter(|c| !c.begin_ids.is_empty())
            .count()
    }

    /// All BEGIN_REQUESTs on all connections.
    pub fn begins(&self) -> usize {
        self.connections.iter().map(|c| c.begin_ids.len()).sum()
    }

    /// All ABORT_REQUEST ids on all connections, connection by connection.
    pub fn aborts(&self) -> Vec<u16> {
        self.connections
            .iter()
            .flat_map(|c| c.abort_ids.iter().copied())
            .collect()
    }

    /// All END_REQUESTs on all connections.
    pub fn ends(&self) -> usize {
        self.connections.iter().map(|c| c.end_ids.len()).sum()
    }

    /// All GET_VALUES records on all connections.
    pub fn get_values(&self) -> usize {
        self.connections.iter().map(|c| c.get_values).sum()
    }

    /// The most request ids open at once on any one connection.
    pub fn max_open(&self) -> usize {
        self.connections
            .iter()
            .map(|c| c.max_open)
            .max()
            .unwrap_or(0)
    }

    /// Connections not closed yet.
    pub fn open_connections(&self) -> usize {
        self.connections.iter().filter(|c| !c.closed).count()
    }
}

/// One proxied connection: its counters and both streams (to shut them down on drop).
struct Conn {
    stats: Mutex<ConnStats>,
    streams: Mutex<Vec<Stream>>,
}

impl Conn {
    fn stats(&self) -> MutexGuard<'_, ConnStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shutdown(&self) {
        for stream in self
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    conns: Mutex<Vec<Arc<Conn>>>,
}

/// A running tap; dropping it stops it and cuts every proxied connection.
pub struct Tap {
    path: PathBuf,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
    // Dropped last: the socket file lives in it.
    _dir: tempfile::TempDir,
}

impl Tap {
    /// Starts a tap on a fresh Unix socket, forwarding every connection to `upstream`.
    pub fn start(upstream: &Addr) -> Tap {
        let dir = tempfile::Builder::new()
            .prefix("fcgi-tap-")
            .tempdir()
            .expect("a temporary directory for the tap");
        let path = dir.path().join("tap.sock");
        let listener = UnixListener::bind(&path).expect("bind the tap socket");
        let shared = Arc::new(Shared::default());
        let accept = {
            let shared = Arc::clone(&shared);
            let upstream = upstream.clone();
            thread::Builder::new()
                .name("record-tap-accept".into())
                .spawn(move || accept_loop(&listener, &upstream, &shared))
                .expect("spawn the tap's accept thread")
        };
        Tap {
            path,
            shared,
            accept: Some(accept),
            _dir: dir,
        }
    }

    /// The tap's own address (a Unix socket).
    pub fn addr(&self) -> Addr {
        Addr::Unix(self.path.clone())
    }

    /// The tap's socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tap's address as the crate's backend type.
    pub fn fcgi_backend(&self) -> tower_fastcgi::Backend {
        tower_fastcgi::Backend::unix(self.path.clone())
    }

    /// What went over the wire so far.
    pub fn stats(&self) -> TapStats {
        let conns = self.shared.conns.lock().unwrap_or_else(|p| p.into_inner());
        TapStats {
            connections: conns.iter().map(|c| c.stats().clone()).collect(),
        }
    }

    /// Polls [`Tap::stats`] until `done` holds or `timeout` passes; the last reading.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&TapStats) -> bool) -> TapStats {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if done(&stats) || Instant::now() >= deadline {
                return stats;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for conn in self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            conn.shutdown();
        }
    }
}

fn accept_loop(listener: &UnixListener, upstream: &Addr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let conn = Arc::new(Conn {
            stats: Mutex::new(ConnStats::default()),
            streams: Mutex::new(Vec::new()),
        });
        shared
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&conn));
        let backend = match Stream::connect(upstream).and_then(|s| {
            // The raw client's default timeouts would cut a connection idling in a pool.
            s.set_timeouts(None)?;
            Ok(s)
        }) {
            Ok(backend) => backend,
            Err(e) => {
                let mut stats = conn.stats();
                stats.upstream_error = Some(e.to_string());
                stats.closed = true;
                continue;
            }
        };
        let client = Stream::Unix(client);
        let streams = (|| -> std::io::Result<_> {
            Ok((
                client.try_clone()?,
                client.try_clone()?,
                backend.try_clone()?,
                backend.try_clone()?,
            ))
        })();
        let Ok((client_read, client_write, backend_read, backend_write)) = streams else {
            conn.stats().closed = true;
            continue;
        };
        conn.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([client, backend]);
        let done = Arc::new(AtomicBool::new(false));
        for (from, to, direction) in [
            (client_read, backend_write, Direction::ToBackend),
            (backend_read, client_write, Direction::ToClient),
        ] {
            let (mine, done) = (Arc::clone(&conn), Arc::clone(&done));
            let spawned = thread::Builder::new()
                .name("record-tap-pump".into())
                .spawn(move || {
                    pump(from, to, direction, &mine);
                    // The second direction to finish closes the connection's books.
                    if done.swap(true, Ordering::SeqCst) {
                        mine.stats().closed = true;
                    }
                });
            if spawned.is_err() {
                conn.shutdown();
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToBackend,
    ToClient,
}

/// Copies `from` to `to` until EOF or an error, decoding on the side; then passes the
/// end on (a half close, so the other direction can still finish).
fn pump(mut from: Stream, mut to: Stream, direction: Direction, conn: &Conn) {
    let mut decoder = Some(Decoder::new());
    let mut pending = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&chunk[..n]).is_err() {
            // The far side is gone: cut both sides so the other pump ends too.
            conn.shutdown();
            return;
        }
        if let Some(dec) = decoder.as_mut() {
            pending.extend_from_slice(&chunk[..n]);
            loop {
                match dec.decode(&mut pending) {
                    Ok(Some(record)) => count(&mut conn.stats(), direction, &record),
                    Ok(None) => break,
                    Err(e) => {
                        conn.stats().parse_error = Some(e.to_string());
                        decoder = None;
                        pending.clear();
                        break;
                    }
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn count(stats: &mut ConnStats, direction: Direction, record: &Record) {
    match (direction, record) {
        (Direction::ToBackend, Record::BeginRequest { request_id, .. }) => {
            stats.begin_ids.push(*request_id);
            stats.open_ids.insert(*request_id);
            stats.max_open = stats.max_open.max(stats.open_ids.len());
        }
        (Direction::ToBackend, Record::AbortRequest { request_id }) => {
            stats.abort_ids.push(*request_id);
        }
        (Direction::ToBackend, Record::GetValues { .. }) => stats.get_values += 1,
        (Direction::ToClient, Record::EndRequest { request_id, .. }) => {
            stats.end_ids.push(*request_id);
            stats.open_ids.remove(request_id);
        }
        (Direction::ToClient, Record::GetValuesResult { .. }) => stats.get_values_results += 1,
        _ => {}
    }
}
