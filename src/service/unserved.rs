//! The "accepted but unserved" bound: a backend allowed more connections than it has
//! workers.
//!
//! php-fpm and php-cgi keep a worker on each kept-alive connection until it closes. With
//! a pool larger than the workers, the extra connections are accepted by the kernel and
//! sit in the listen queue while every worker waits on one of *our idle* connections:
//! their requests would wait for the whole response-head timeout. The signature seen
//! from here: a request on a new connection has had no response byte for
//! `unserved_after`, the same backend has idle connections, and more of its connections
//! are open than it was ever seen serving at once ([`Unserved::proven`]).
//!
//! The remedy, in that case:
//! - close one idle connection, which frees its worker to accept the oldest queued
//!   connection (ours): the waiting request is served where it is. It is never moved:
//!   a request in the listen queue and one running a slow script both look accepted
//!   and silent, so a replay could run it twice;
//! - lower the backend's cap to what it was seen serving (never below that, so a slow
//!   script mistaken for a waiting request cannot shrink a healthy backend below its
//!   demonstrated concurrency), for [`UNSERVED_CAP_HOLD`]; capacity beyond it is
//!   *parked*: slots taken from the pool and held, so the generic pool needs no
//!   notion of a changing cap;
//! - warn once per backend, naming the backend, its cap and the connections it serves.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::backend::BackendPool;
use super::stats::Counters;
use crate::client::Backend;
use crate::client::conn::Connection;
use crate::defaults::UNSERVED_CAP_HOLD;
use crate::pool::{Checkout, Reuse, Slot};

/// One backend's unserved-check state.
#[derive(Debug, Default)]
pub(crate) struct Unserved {
    /// Requests on a new connection still waiting for their response head.
    waiting: AtomicUsize,
    /// The most connections seen open and served at once: a lower bound on the
    /// backend's workers.
    proven: AtomicUsize,
    /// Slots held back from the pool while the cap is lowered (mirrors `lowered`).
    parked: AtomicUsize,
    /// The lowered cap, 0 when none (mirrors `lowered`, so that the balancer's load
    /// reads take the lock only while a cap is lowered).
    lowered_cap: AtomicUsize,
    lowered: Mutex<Option<Lowered>>,
    warned: AtomicBool,
}

#[derive(Debug)]
struct Lowered {
    cap: usize,
    until: Instant,
    parked: Vec<Slot<Connection>>,
}

impl Unserved {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Lowered>> {
        // Nothing panics under this lock.
        self.lowered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Slots parked now (counted by the pool as open and busy).
    pub(crate) fn parked(&self) -> usize {
        self.parked.load(Ordering::Acquire)
    }
}

/// Marks a request waiting for its head on a new connection, until dropped.
pub(crate) struct Waiting<'a>(&'a Unserved);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl BackendPool {
    /// The cap in force: the configured one, or the lowered one while it holds, and
    /// never above the backend's `FCGI_MAX_CONNS`.
    pub(crate) fn effective_cap(&self) -> usize {
        let cap = self
            .capabilities
            .limit()
            .map_or(self.cap, |l| l.min(self.cap));
        if self.unserved.lowered_cap.load(Ordering::Acquire) == 0 {
            return cap;
        }
        self.unserved
            .lock()
            .as_ref()
            .filter(|l| l.until > Instant::now())
            .map_or(cap, |l| l.cap.min(cap))
    }

    /// Whether a granted slot may open a connection: under a lowered cap, a slot that
    /// would exceed it is parked instead (`None`, and the caller checks out again, now
    /// waiting for an idle connection once the pool is full). An expired lowering is
    /// lifted here, its slots released.
    pub(crate) fn admit(&self, slot: Slot<Connection>) -> Option<Slot<Connection>> {
        let slot = self.admit_under_limit(slot)?;
        let mut lowered = self.unserved.lock();
        let lowered_cap = match lowered.as_ref() {
            None => return Some(slot),
            Some(l) if l.until <= Instant::now() => {
                let lifted = lowered.take();
                self.unserved.parked.store(0, Ordering::Release);
                self.unserved.lowered_cap.store(0, Ordering::Release);
                drop(lowered);
                // Parked capacity goes back to the pool (and its waiters) outside the lock.
                drop(lifted);
                return Some(slot);
            }
            Some(l) => l.cap,
        };
        let open = self.pool.stats().open.saturating_sub(self.parked());
        if open <= lowered_cap {
            return Some(slot);
        }
        if let Some(l) = lowered.as_mut() {
            l.parked.push(slot);
            self.unserved
                .parked
                .store(l.parked.len(), Ordering::Release);
        }
        None
    }

    /// Reads a new connection's response head (`head`), checking every `after` whether
    /// it waits for a worker our own idle connections hold.
    /// `mount` is the whole service's counters (the check counts there too).
    pub(crate) async fn watch_unserved<T>(
        &self,
        backend: &Backend,
        after: Duration,
        mount: &Counters,
        head: impl Future<Output = T>,
    ) -> T {
        let mut head = pin!(head);
        let waiting = {
            self.unserved.waiting.fetch_add(1, Ordering::AcqRel);
            Waiting(&self.unserved)
        };
        let out = loop {
            match tokio::time::timeout(after, head.as_mut()).await {
                Ok(out) => break out,
                Err(_) => self.check_unserved(backend, after, mount).await,
            }
        };
        drop(waiting);
        // Answered (or failed) on a new connection: how many are served at once now.
        let served = self
            .open_now()
            .saturating_sub(self.unserved.waiting.load(Ordering::Acquire));
        self.unserved.proven.fetch_max(served, Ordering::AcqRel);
        out
    }

    fn open_now(&self) -> usize {
        self.pool.stats().open.saturating_sub(self.parked())
    }

    async fn check_unserved(&self, backend: &Backend, after: Duration, mount: &Counters) {
        let pool = self.pool.stats();
        let open = pool.open.saturating_sub(self.parked());
        let waiting = self.unserved.waiting.load(Ordering::Acquire);
        let served = open.saturating_sub(waiting);
        let proven = self
            .unserved
            .proven
            .fetch_max(served, Ordering::AcqRel)
            .max(served);
        if pool.idle == 0 || open <= proven.max(1) {
            // Every connection busy (the backend is just loaded), or no more open than
            // it served at once (a slow script, not a queued connection).
            return;
        }
        let cap = proven.max(1);
        let lowered_now = {
            let mut lowered = self.unserved.lock();
            let until = Instant::now() + UNSERVED_CAP_HOLD;
            match lowered.as_mut() {
                Some(l) if l.cap <= cap => {
                    l.until = until;
                    false
                }
                Some(l) => {
                    l.cap = cap;
                    l.until = until;
                    true
                }
                None if cap < self.cap => {
                    *lowered = Some(Lowered {
                        cap,
                        until,
                        parked: Vec::new(),
                    });
                    true
                }
                None => false,
            }
        };
        if lowered_now {
            self.unserved.lowered_cap.store(cap, Ordering::Release);
        }
        let first = !self.unserved.warned.swap(true, Ordering::AcqRel);
        if first {
            tracing::warn!(
                backend = %backend,
                max_connections = self.cap,
                served_at_once = proven,
                waited_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                "FastCGI backend accepted a connection but no worker served it while our idle \
                 connections hold its workers: max_connections for it is above its workers \
                 (php-fpm pm.max_children); freeing a worker and lowering the cap to what it serves"
            );
        } else {
            tracing::debug!(backend = %backend, cap, lowered = lowered_now, "FastCGI backend connection unserved; freeing a worker");
        }
        self.counters.count_unserved();
        mount.count_unserved();
        self.close_one_idle().await;
    }

    /// Closes one idle connection (its worker is then free to accept a queued one).
    async fn close_one_idle(&self) {
        // Zero: take what is there now, never queue behind requests.
        let taken = tokio::time::timeout(
            Duration::ZERO,
            self.pool.checkout(Reuse::Idle { probe: false }),
        )
        .await;
        if let Ok(Ok(Checkout::Reused(mut conn))) = taken {
            conn.reusable = false;
            // Dropped here: closed, its capacity released (and parked by the next
            // checkout that would exceed the lowered cap).
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Load;
    use crate::pool::PoolConfig;

    fn backend(cap: usize) -> BackendPool {
        BackendPool::new(PoolConfig {
            max_open: cap,
            max_idle: cap,
            idle_timeout: None,
            max_uses: None,
            queue_timeout: Some(Duration::from_secs(1)),
            reuse: true,
        })
    }

    async fn slot(b: &BackendPool) -> Slot<Connection> {
        match b.pool.checkout(Reuse::Never).await.unwrap() {
            Checkout::Open(slot) => slot,
            Checkout::Reused(_) => panic!("no connection was ever opened"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lowered_cap_parks_the_capacity_above_it_until_it_expires() {
        let b = backend(4);
        *b.unserved.lock() = Some(Lowered {
            cap: 2,
            until: Instant::now() + UNSERVED_CAP_HOLD,
            parked: Vec::new(),
        });
        b.unserved.lowered_cap.store(2, Ordering::Release);
        assert_eq!(b.effective_cap(), 2, "lowered before anything is parked");
        let first = b.admit(slot(&b).await).expect("within the lowered cap");
        let _second = b.admit(slot(&b).await).expect("within the lowered cap");
        assert!(b.admit(slot(&b).await).is_none(), "parked");
        assert!(b.admit(slot(&b).await).is_none(), "parked");
        assert_eq!(b.unserved.parked(), 2);
        assert_eq!(b.effective_cap(), 2);
        // Parked capacity is not a connection: not open, not busy, not load.
        assert_eq!((b.snapshot().open, b.snapshot().busy), (2, 2));
        assert!(b.load().saturated);
        assert_eq!(b.load().pending, 2);

        tokio::time::advance(UNSERVED_CAP_HOLD).await;
        assert_eq!(b.effective_cap(), 4, "the lowering expired");
        drop(first);
        let _third = b.admit(slot(&b).await).expect("lifted");
        assert_eq!(b.unserved.parked(), 0, "parked slots went back to the pool");
        assert_eq!(b.pool.stats().open, 2);
        assert!(!b.load().saturated);
    }
}
