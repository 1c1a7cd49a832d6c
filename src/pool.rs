//! Keep-alive connections to one backend.
//!
//! Why not a generic pool: a FastCGI connection may only go back to the pool after
//! END_REQUEST was read *and* the whole request body was written, which happens inside the
//! response body, long after the future that checked it out; and every idle kept-alive
//! connection pins one backend worker (php-fpm, fcgiwrap), so the pool must stay within
//! the backend's worker count and queue requests instead of opening more connections.
//!
//! Design:
//! - capacity is counted in [`Lease`]s: one per open connection or connect in progress,
//!   at most `max_connections`; a lease's `Drop` hands its capacity to the next waiter or
//!   gives it back, so capacity can never leak, whatever is dropped where;
//! - idle connections are reused last-in-first-out (the warmest first) after a liveness
//!   probe, and expire after `idle_timeout` (a reaper task runs only while some are idle);
//! - when all connections are busy, requests wait in a FIFO queue, bounded in time by
//!   `queue_timeout`; a returned connection goes straight to the oldest waiter.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::client::Backend;
use crate::client::conn::Connection;
use crate::client::stream::Stream;
use crate::error::{Error, ErrorKind, Timeout};

/// Pool settings (see the builder for the documented defaults).
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub(crate) max_connections: usize,
    pub(crate) max_idle: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_requests_per_connection: Option<u32>,
    pub(crate) queue_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) keep_alive: bool,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            max_connections: 4,
            max_idle: 4,
            idle_timeout: Some(Duration::from_secs(15)),
            max_requests_per_connection: None,
            queue_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            keep_alive: true,
        }
    }
}

/// A snapshot of a pool's state and counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open or being opened (busy + idle).
    pub open: usize,
    /// Idle connections waiting for reuse.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
    /// Connections opened since the pool was created.
    pub connections_opened: u64,
    /// Requests that reused a kept-alive connection.
    pub connections_reused: u64,
    /// Requests retried on a fresh connection after a reused one turned out stale.
    pub stale_retries: u64,
}

/// A checked-out connection.
#[derive(Debug)]
pub(crate) struct Checkout {
    pub(crate) conn: Connection,
    /// Whether the connection served requests before (only those may be retried).
    pub(crate) reused: bool,
}

/// The keep-alive pool of one backend. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    backend: Backend,
    cfg: PoolConfig,
    state: Mutex<State>,
    opened: AtomicU64,
    reused: AtomicU64,
    retries: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Idle connections, most recently used last.
    idle: Vec<Connection>,
    /// Armed leases: connections open or being opened.
    open: usize,
    waiters: VecDeque<oneshot::Sender<Grant>>,
    reaper_running: bool,
}

/// What a waiter receives.
#[derive(Debug)]
enum Grant {
    Conn(Connection),
    Capacity(Lease),
}

/// One unit of connection capacity. Dropping it passes the capacity to the next waiter
/// or returns it to the pool.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Option<Arc<PoolInner>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release_capacity();
        }
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent in a way
        // that matters more than refusing service, so recover the guard.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Called when a lease drops: give its capacity to a live waiter, or free it.
    fn release_capacity(self: Arc<Self>) {
        let mut lease = Lease {
            pool: Some(Arc::clone(&self)),
        };
        loop {
            let waiter = {
                let mut st = self.lock();
                match st.waiters.pop_front() {
                    Some(w) => w,
                    None => {
                        st.open = st.open.saturating_sub(1);
                        drop(st);
                        // Disarm: the capacity was returned by hand.
                        lease.pool = None;
                        return;
                    }
                }
            };
            match waiter.send(Grant::Capacity(lease)) {
                Ok(()) => return,
                Err(Grant::Capacity(back)) => lease = back,
                Err(Grant::Conn(_)) => return,
            }
        }
    }
}

impl Pool {
    pub(crate) fn new(backend: Backend, cfg: PoolConfig) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                backend,
                cfg,
                state: Mutex::new(State::default()),
                opened: AtomicU64::new(0),
                reused: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let st = self.inner.lock();
        PoolStats {
            open: st.open,
            idle: st.idle.len(),
            waiting: st.waiters.iter().filter(|w| !w.is_closed()).count(),
            connections_opened: self.inner.opened.load(Ordering::Relaxed),
            connections_reused: self.inner.reused.load(Ordering::Relaxed),
            stale_retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_retry(&self) {
        self.inner.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the next request on `conn` may ask the backend to keep the connection.
    pub(crate) fn wants_keep_alive(&self, conn: &Connection) -> bool {
        let cfg = &self.inner.cfg;
        cfg.keep_alive
            && cfg.max_idle > 0
            && cfg
                .max_requests_per_connection
                .is_none_or(|max| conn.requests.saturating_add(1) < max)
    }

    /// A connection: an idle one (LIFO), a new one if under the cap, or the next one
    /// released, waiting at most `queue_timeout`.
    ///
    /// With `probe`, a reused connection is first checked with a non-blocking read (one
    /// syscall) and discarded if the backend closed it. Callers whose request can be
    /// replayed skip the probe: a stale connection then fails before any response byte
    /// and the request is retried on a fresh one, which costs a round trip once per
    /// recycled worker instead of a syscall on every request.
    pub(crate) async fn checkout(&self, probe: bool) -> Result<Checkout, Error> {
        self.acquire(true, probe).await
    }

    /// A new connection, never an idle one (used to retry after a stale connection).
    pub(crate) async fn checkout_fresh(&self) -> Result<Checkout, Error> {
        self.acquire(false, true).await
    }

    async fn acquire(&self, allow_idle: bool, probe: bool) -> Result<Checkout, Error> {
        let deadline = Instant::now()
            .checked_add(self.inner.cfg.queue_timeout)
            .unwrap_or_else(far_future);
        loop {
            let step = self.try_acquire(allow_idle);
            let grant = match step {
                Step::Ready(grant) => grant,
                Step::Wait(rx) => match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(grant)) => grant,
                    Ok(Err(_)) => return Err(Error::msg(ErrorKind::Io, "connection pool closed")),
                    Err(_) => return Err(Error::timeout(Timeout::PoolWait)),
                },
            };
            match grant {
                Grant::Conn(conn) if !allow_idle => {
                    // A retry asked for a new connection, but at capacity a waiter is
                    // handed whichever connection is released next: usually a kept-alive
                    // one, which may be just as stale as the one that failed (php-fpm
                    // recycles workers in bursts), and the retry would then fail with a
                    // 502. Close it and open a fresh one on its capacity.
                    let conn = self.connect(conn.into_lease()).await?;
                    return Ok(Checkout {
                        conn,
                        reused: false,
                    });
                }
                Grant::Conn(conn) => {
                    if !probe || conn.probe_alive() {
                        self.inner.reused.fetch_add(1, Ordering::Relaxed);
                        return Ok(Checkout { conn, reused: true });
                    }
                    tracing::debug!(backend = %self.inner.backend, "discarding a pooled connection the backend closed");
                    drop(conn);
                }
                Grant::Capacity(lease) => {
                    let conn = self.connect(lease).await?;
                    return Ok(Checkout {
                        conn,
                        reused: false,
                    });
                }
            }
        }
    }

    fn try_acquire(&self, allow_idle: bool) -> Step {
        let now = Instant::now();
        let idle_timeout = self.inner.cfg.idle_timeout;
        let mut expired = Vec::new();
        let step = {
            let mut st = self.inner.lock();
            let mut found = None;
            while let Some(conn) = allow_idle.then(|| st.idle.pop()).flatten() {
                if idle_timeout.is_some_and(|t| now.duration_since(conn.idle_since) >= t) {
                    expired.push(conn);
                    continue;
                }
                found = Some(conn);
                break;
            }
            if let Some(conn) = found {
                Step::Ready(Grant::Conn(conn))
            } else if st.open < self.inner.cfg.max_connections {
                st.open += 1;
                Step::Ready(Grant::Capacity(Lease {
                    pool: Some(Arc::clone(&self.inner)),
                }))
            } else {
                let (tx, rx) = oneshot::channel();
                // Drop waiters that gave up, so the queue stays bounded by live requests.
                st.waiters.retain(|w| !w.is_closed());
                st.waiters.push_back(tx);
                Step::Wait(rx)
            }
        };
        // Close expired connections outside the lock: their leases take it again.
        drop(expired);
        step
    }

    async fn connect(&self, lease: Lease) -> Result<Connection, Error> {
        let backend = &self.inner.backend;
        let connecting = Stream::connect(backend);
        let stream = match tokio::time::timeout(self.inner.cfg.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                return Err(Error::with(ErrorKind::Connect, format!("{backend}: {err}")));
            }
            Err(_) => return Err(Error::timeout(Timeout::Connect)),
        };
        self.inner.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Connection::new(stream, lease))
    }

    /// Returns a connection after a complete exchange (END_REQUEST read, request body
    /// fully written, nothing unread): to the oldest waiter, else to the idle list.
    pub(crate) fn checkin(&self, mut conn: Connection) {
        conn.requests = conn.requests.saturating_add(1);
        let cfg = &self.inner.cfg;
        if !cfg.keep_alive
            || cfg
                .max_requests_per_connection
                .is_some_and(|max| conn.requests >= max)
        {
            return;
        }
        conn.idle_since = Instant::now();
        loop {
            let waiter = {
                let mut st = self.inner.lock();
                match st.waiters.pop_front() {
                    Some(w) => w,
                    None => {
                        if st.idle.len() >= cfg.max_idle {
                            drop(st);
                            drop(conn);
                            return;
                        }
                        st.idle.push(conn);
                        let handle = tokio::runtime::Handle::try_current();
                        if let (true, Ok(handle)) =
                            (cfg.idle_timeout.is_some() && !st.reaper_running, handle)
                        {
                            st.reaper_running = true;
                            handle.spawn(reap_idle(Arc::downgrade(&self.inner)));
                        }
                        return;
                    }
                }
            };
            match waiter.send(Grant::Conn(conn)) {
                Ok(()) => return,
                Err(Grant::Conn(back)) => conn = back,
                Err(Grant::Capacity(_)) => return,
            }
        }
    }
}

enum Step {
    Ready(Grant),
    Wait(oneshot::Receiver<Grant>),
}

/// Closes idle connections older than the idle timeout; exits when none are idle (the
/// next checkin starts it again) or when the pool is gone.
async fn reap_idle(pool: Weak<PoolInner>) {
    loop {
        let period = match pool.upgrade().and_then(|p| p.cfg.idle_timeout) {
            Some(t) => (t / 2).max(Duration::from_millis(10)),
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(inner) = pool.upgrade() else { return };
        let Some(timeout) = inner.cfg.idle_timeout else {
            return;
        };
        let now = Instant::now();
        let (expired, done) = {
            let mut st = inner.lock();
            let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(&mut st.idle)
                .into_iter()
                .partition(|c| now.duration_since(c.idle_since) >= timeout);
            st.idle = fresh;
            let done = st.idle.is_empty();
            if done {
                st.reaper_running = false;
            }
            (old, done)
        };
        drop(expired);
        if done {
            return;
        }
    }
}

/// A deadline that never comes, for timeouts too large to add to `Instant::now()`.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}
