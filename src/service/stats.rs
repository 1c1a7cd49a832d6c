//! What a service reports about its backends: [`PoolStats`] (connections) and [`Stats`]
//! (requests sent, answers by status class, failures by cause, queue wait, time to the
//! response head, retries), for the whole service and for each backend
//! ([`BackendStats`]), in the same vocabulary.
//!
//! Counting is a handful of relaxed atomic additions per request: cheap enough to be
//! always on, and a snapshot never blocks a request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::error::{Error, ErrorKind, Timeout};
use crate::pool::Snapshot;

/// A snapshot of a service's connection pool and its counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open or being opened (busy + idle).
    pub open: usize,
    /// Connections held by a request, from the checkout until its response body ends
    /// (or is dropped): the backend's load in flight.
    pub busy: usize,
    /// Idle connections waiting for reuse.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
    /// Connections opened since the service was built.
    pub connections_opened: u64,
    /// Requests that reused a kept-alive connection.
    pub connections_reused: u64,
    /// Requests retried on a fresh connection after a reused one turned out stale.
    pub stale_retries: u64,
}

/// A snapshot of everything a service counts about its backend; see
/// [`FcgiService::stats`](crate::FcgiService::stats).
///
/// Only requests that were sent to the backend (or tried to be) are counted here: a
/// request refused before that (a 400 for a hostile path, a 413 body) never is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The connection pool.
    pub pool: PoolStats,
    /// Requests handed to the backend path (each counted once, retries included).
    pub requests: u64,
    /// Response heads received, by status class: index 0 is 1xx, … index 4 is 5xx.
    pub responses_by_class: [u64; 5],
    /// Requests that failed before a response head, by cause.
    pub failures: Failures,
    /// Time spent waiting for a pooled connection (zero when one was free).
    pub queue_wait: Latency,
    /// Time from the request's start to its complete response head.
    pub time_to_head: Latency,
    /// Requests sent again on another backend after a failure where they were not
    /// processed (or, for idempotent methods, may have been). Per backend: the
    /// attempts on it that failed and moved elsewhere.
    pub retries: u64,
    /// Retries not made because the retry budget was empty (the request failed).
    /// Counted for the whole service only.
    pub retries_over_budget: u64,
    /// Times a request on a new connection went unserved while the backend's workers
    /// sat on our idle connections, and one was closed to free a worker (see
    /// [`unserved_after`](crate::FcgiServiceBuilder::unserved_after)).
    pub unserved: u64,
}

/// One backend's share of a service's work; see
/// [`FcgiService::backend_stats`](crate::FcgiService::backend_stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendStats {
    /// The backend.
    pub backend: crate::Backend,
    /// Its pool and the attempts sent to it.
    pub stats: Stats,
    /// Whether it takes requests now (false while ejected by passive or active health).
    pub in_rotation: bool,
    /// The connection cap in force: its `max_connections`, or less while the
    /// [`unserved_after`](crate::FcgiServiceBuilder::unserved_after) check holds it lowered.
    pub connection_cap: usize,
    /// How often passive health ejected it.
    pub ejections: u64,
    /// It was removed (by a discovery stream or DNS) and takes no new requests; the
    /// requests it was serving finish, then its connections close and it is no
    /// longer listed.
    pub draining: bool,
    /// Active health probes of this backend (all zero without
    /// [`health_check`](crate::FcgiServiceBuilder::health_check)).
    pub probes: Probes,
}

/// Active health probes of one backend, by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Probes {
    /// Answered: the backend is alive.
    pub ok: u64,
    /// Refused, timed out, or answered wrongly.
    pub failed: u64,
    /// Not sent, because the answer would only have reflected the service's own pool
    /// (see [`HealthCheck`](crate::HealthCheck)).
    pub skipped: u64,
}

/// The probe counters a backend keeps.
#[derive(Debug, Default)]
pub(crate) struct ProbeCounters {
    ok: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

impl ProbeCounters {
    /// Counts one probe: `Some(alive)` when it was sent, `None` when skipped.
    pub(crate) fn count(&self, result: Option<bool>) {
        let counter = match result {
            Some(true) => &self.ok,
            Some(false) => &self.failed,
            None => &self.skipped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Probes {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Probes {
            ok: load(&self.ok),
            failed: load(&self.failed),
            skipped: load(&self.skipped),
        }
    }
}

/// Failures before a response head, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failures {
    /// Connection refused, socket missing, connect timeout.
    pub connect: u64,
    /// No connection became free within the queue timeout.
    pub queue_timeout: u64,
    /// Response head, read, write or total timeout.
    pub timeout: u64,
    /// FCGI_OVERLOADED or FCGI_CANT_MPX_CONN.
    pub overloaded: u64,
    /// Protocol errors, broken connections, invalid response heads.
    pub broken: u64,
    /// Every backend was out of the rotation (503 at once).
    pub no_backend: u64,
}

/// A latency summary: how many, their sum and the largest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latency {
    /// How many were measured.
    pub count: u64,
    /// Their sum.
    pub total: Duration,
    /// The largest.
    pub max: Duration,
}

impl Latency {
    /// The mean, or `None` before the first measurement.
    pub fn mean(&self) -> Option<Duration> {
        let count = u32::try_from(self.count).ok().filter(|c| *c > 0)?;
        Some(self.total / count)
    }
}

#[derive(Debug, Default)]
struct LatencyCounter {
    count: AtomicU64,
    total_us: AtomicU64,
    max_us: AtomicU64,
}

impl LatencyCounter {
    fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Latency {
        Latency {
            count: self.count.load(Ordering::Relaxed),
            total: Duration::from_micros(self.total_us.load(Ordering::Relaxed)),
            max: Duration::from_micros(self.max_us.load(Ordering::Relaxed)),
        }
    }
}

/// Counters kept by the service itself (the pool keeps its own).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    stale_retries: AtomicU64,
    requests: AtomicU64,
    by_class: [AtomicU64; 5],
    connect: AtomicU64,
    queue_timeout: AtomicU64,
    timeout: AtomicU64,
    overloaded: AtomicU64,
    broken: AtomicU64,
    no_backend: AtomicU64,
    retries: AtomicU64,
    unserved: AtomicU64,
    queue_wait: LatencyCounter,
    time_to_head: LatencyCounter,
}

impl Counters {
    pub(crate) fn count_stale_retry(&self) {
        self.stale_retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_unserved(&self) {
        self.unserved.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_queue_wait(&self, took: Duration) {
        self.queue_wait.record(took);
    }

    pub(crate) fn record_head(&self, status: StatusCode, took: Duration) {
        let class = usize::from(status.as_u16() / 100).saturating_sub(1);
        if let Some(counter) = self.by_class.get(class) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.time_to_head.record(took);
    }

    pub(crate) fn record_failure(&self, err: &Error) {
        let counter = match err.kind() {
            ErrorKind::Connect | ErrorKind::Timeout(Timeout::Connect) => &self.connect,
            ErrorKind::Timeout(Timeout::PoolWait) => &self.queue_timeout,
            ErrorKind::Timeout(_) => &self.timeout,
            ErrorKind::Overloaded | ErrorKind::CantMultiplex => &self.overloaded,
            ErrorKind::NoBackend => &self.no_backend,
            _ => &self.broken,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn pool_stats(&self, pool: Snapshot) -> PoolStats {
        PoolStats {
            open: pool.open,
            busy: pool.busy,
            idle: pool.idle,
            waiting: pool.waiting,
            connections_opened: pool.opened,
            connections_reused: pool.reused,
            stale_retries: self.stale_retries.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn stats(&self, pool: Snapshot) -> Stats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            pool: self.pool_stats(pool),
            requests: load(&self.requests),
            responses_by_class: [0, 1, 2, 3, 4].map(|i| self.by_class.get(i).map_or(0, load)),
            failures: Failures {
                connect: load(&self.connect),
                queue_timeout: load(&self.queue_timeout),
                timeout: load(&self.timeout),
                overloaded: load(&self.overloaded),
                broken: load(&self.broken),
                no_backend: load(&self.no_backend),
            },
            queue_wait: self.queue_wait.snapshot(),
            time_to_head: self.time_to_head.snapshot(),
            retries: load(&self.retries),
            retries_over_budget: 0,
            unserved: load(&self.unserved),
        }
    }
}
