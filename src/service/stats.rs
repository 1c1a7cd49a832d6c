//! [`PoolStats`]: what a service reports about its backend connections.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::pool::Snapshot;

/// A snapshot of a service's connection pool and its counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open or being opened (busy + idle).
    pub open: usize,
    /// Connections serving a request or being opened for one.
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

/// Counters kept by the service itself (the pool keeps its own).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    stale_retries: AtomicU64,
}

impl Counters {
    pub(crate) fn count_stale_retry(&self) {
        self.stale_retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self, pool: Snapshot) -> PoolStats {
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
}
