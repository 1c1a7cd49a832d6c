//! What each backend says about itself: FCGI_GET_VALUES (`FCGI_MAX_CONNS`,
//! `FCGI_MAX_REQS`, `FCGI_MPXS_CONNS`), asked once per backend before the first request
//! that needs it, and again after the backend was unreachable.
//!
//! The question goes on a connection of its own (`client::values`): php-fpm closes the
//! connection after answering, and a single-process libfcgi app does not answer a bare
//! GET_VALUES at all while it waits for BEGIN_REQUEST. Whatever is not an answer (EOF,
//! FCGI_UNKNOWN_TYPE, garbage, silence for [`MULTIPLEX_DISCOVERY_TIMEOUT`]) means "no
//! multiplexing, no limits", and the request goes on: the worst a backend can cost is
//! that timeout, once.
//!
//! `FCGI_MAX_CONNS` caps the backend's pool (the smaller of it and the configured cap),
//! the same way the unserved check lowers a cap: a slot the pool grants above the limit
//! is *parked* (held here, counted by the pool as open), so the generic pool needs no
//! notion of a changing cap. A connect failure forgets the answer and releases the
//! parked capacity: the backend that comes back may be another program or configured
//! differently.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::backend::BackendPool;
use crate::client::Backend;
use crate::client::conn::Connection;
use crate::client::values::{Values, get_values};
use crate::defaults::MULTIPLEX_DISCOVERY_TIMEOUT;
use crate::error::ErrorKind;
use crate::pool::Slot;

/// Whether requests share backend connections (FastCGI multiplexing), and whether the
/// service asks its backends what they support
/// ([`FcgiServiceBuilder::multiplex`](crate::FcgiServiceBuilder::multiplex)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Multiplex {
    /// Ask each backend FCGI_GET_VALUES on a connection of its own, once, before its
    /// first request (and again after it was unreachable), and honour the answer:
    /// `FCGI_MPXS_CONNS=1` multiplexes its connections (at most `FCGI_MAX_REQS`
    /// requests on each, else [`MULTIPLEX_STREAMS`](crate::defaults::MULTIPLEX_STREAMS)),
    /// `FCGI_MAX_CONNS` caps its connections. No answer within 500 ms means "no
    /// multiplexing, no limits".
    Auto,
    /// Multiplex without asking, at most `max_streams` requests on each connection:
    /// for backends that multiplex but do not say so (flup 1.0.3 on Python 3 answers
    /// GET_VALUES with nothing). A backend that cannot and says so (it answers
    /// FCGI_CANT_MPX_CONN) is downgraded to one request per connection, its refused
    /// request sent again. Never force it on libfcgi applications (fcgiwrap, Perl
    /// `FCGI`, C apps): they read requests one at a time and, in our tests, dropped a
    /// second request sent before the first was answered instead of refusing it, so
    /// it waited for the response-head timeout. `Auto` leaves them unmultiplexed.
    On {
        /// Requests at once on one connection (1 to 65535).
        max_streams: usize,
    },
    /// Ask nothing: one request per connection, capped by the configuration only.
    Off,
}

/// What a backend's answer means for us.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Learned {
    /// `FCGI_MPXS_CONNS=1`: several requests may share one connection.
    pub(crate) multiplexes: bool,
    /// `FCGI_MAX_CONNS`, when given and not 0.
    pub(crate) max_conns: Option<usize>,
    /// `FCGI_MAX_REQS`, when given and not 0.
    pub(crate) max_reqs: Option<usize>,
}

impl Learned {
    fn from_values(v: Values) -> Learned {
        let positive = |n: Option<u32>| {
            n.filter(|&n| n > 0)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        Learned {
            multiplexes: v.mpxs_conns == Some(true),
            max_conns: positive(v.max_conns),
            max_reqs: positive(v.max_reqs),
        }
    }
}

/// One backend's answer and the capacity parked by its `FCGI_MAX_CONNS`.
#[derive(Debug, Default)]
pub(crate) struct Capabilities {
    /// Set once an answer (or its absence) is stored; the fast path reads only this.
    known: AtomicBool,
    learned: Mutex<Learned>,
    /// One question at a time: the others wait here for its answer, which the question's
    /// own deadline bounds. A tokio lock, so a request that gives up while waiting (or
    /// while asking) simply lets the next one through.
    asking: tokio::sync::Mutex<()>,
    /// Bumped by [`forget`](Capabilities::forget): an answer to a question asked before
    /// the backend was found unreachable is not stored.
    epoch: AtomicU64,
    /// `FCGI_MAX_CONNS` in force, 0 when none (mirrors `learned`, read without the lock).
    limit: AtomicUsize,
    parked: Mutex<Vec<Slot<Connection>>>,
    /// `parked.len()`, read without the lock.
    parked_count: AtomicUsize,
}

impl Capabilities {
    fn lock_learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        // Nothing panics under these locks.
        self.learned.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_parked(&self) -> std::sync::MutexGuard<'_, Vec<Slot<Connection>>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Slots held back by `FCGI_MAX_CONNS` (counted by the pool as open and busy).
    pub(crate) fn parked(&self) -> usize {
        self.parked_count.load(Ordering::Acquire)
    }

    /// The `FCGI_MAX_CONNS` in force, if any.
    pub(crate) fn limit(&self) -> Option<usize> {
        Some(self.limit.load(Ordering::Acquire)).filter(|&n| n > 0)
    }

    /// The backend's answer, asking it first when it is not known yet.
    pub(crate) async fn learn(&self, backend: &Backend, configured_cap: usize) -> Learned {
        if self.known.load(Ordering::Acquire) {
            return *self.lock_learned();
        }
        let _asking = self.asking.lock().await;
        if self.known.load(Ordering::Acquire) {
            // Answered while this request waited.
            return *self.lock_learned();
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let learned = match get_values(backend, MULTIPLEX_DISCOVERY_TIMEOUT).await {
            Ok(Some(values)) if values.unknown_type => {
                tracing::debug!(backend = %backend, "FastCGI backend does not know FCGI_GET_VALUES; no multiplexing, no limits");
                Learned::default()
            }
            Ok(Some(values)) => Learned::from_values(values),
            Ok(None) => {
                tracing::debug!(backend = %backend, "FastCGI backend closed FCGI_GET_VALUES without an answer; no multiplexing, no limits");
                Learned::default()
            }
            Err(err) if err.kind() == ErrorKind::Connect => {
                // Unreachable: nothing learned, ask again before the next request (whose
                // own connect will most likely fail and be reported).
                tracing::debug!(backend = %backend, error = %err, "FCGI_GET_VALUES: backend unreachable");
                return Learned::default();
            }
            Err(err) => {
                tracing::debug!(backend = %backend, error = %err, "FCGI_GET_VALUES unanswered; no multiplexing, no limits");
                Learned::default()
            }
        };
        if self.epoch.load(Ordering::Acquire) != epoch {
            return learned;
        }
        *self.lock_learned() = learned;
        self.limit
            .store(learned.max_conns.unwrap_or(0), Ordering::Release);
        self.known.store(true, Ordering::Release);
        match learned.max_conns {
            Some(max) if max < configured_cap => tracing::info!(
                backend = %backend,
                fcgi_max_conns = max,
                max_connections = configured_cap,
                "FastCGI backend allows fewer connections than configured; capping its pool"
            ),
            _ => tracing::debug!(backend = %backend, ?learned, "FCGI_GET_VALUES answered"),
        }
        learned
    }

    /// Forgets the answer (the backend was unreachable) and releases the parked capacity.
    pub(crate) fn forget(&self) {
        if !self.known.swap(false, Ordering::AcqRel) {
            return;
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.limit.store(0, Ordering::Release);
        *self.lock_learned() = Learned::default();
        let released = {
            let mut parked = self.lock_parked();
            self.parked_count.store(0, Ordering::Release);
            std::mem::take(&mut *parked)
        };
        // Capacity goes back to the pool (and its waiters) outside the lock.
        drop(released);
    }
}

impl BackendPool {
    /// Whether a granted slot may open a connection under `FCGI_MAX_CONNS`: one that
    /// would exceed it is parked (`None`; the caller checks out again, and once the pool
    /// is full that waits for an idle connection).
    pub(crate) fn admit_under_limit(&self, slot: Slot<Connection>) -> Option<Slot<Connection>> {
        let Some(limit) = self.capabilities.limit() else {
            return Some(slot);
        };
        let mut parked = self.capabilities.lock_parked();
        // Under the lock, so two slots granted at once cannot both see room.
        let open = self.pool.stats().open.saturating_sub(self.parked());
        if open <= limit {
            return Some(slot);
        }
        parked.push(slot);
        self.capabilities
            .parked_count
            .store(parked.len(), Ordering::Release);
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fleet::Load;
    use crate::pool::{Checkout, PoolConfig, Reuse};

    fn backend(cap: usize) -> BackendPool {
        BackendPool::new(PoolConfig {
            max_open: cap,
            max_idle: cap,
            idle_timeout: None,
            max_uses: None,
            queue_timeout: Some(Duration::from_millis(100)),
            reuse: true,
        })
    }

    async fn slot(b: &BackendPool) -> Option<Slot<Connection>> {
        match b.pool.checkout(Reuse::Never).await {
            Ok(Checkout::Open(slot)) => Some(slot),
            _ => None,
        }
    }

    fn limit_to(b: &BackendPool, n: usize) {
        b.capabilities.limit.store(n, Ordering::Release);
        b.capabilities.known.store(true, Ordering::Release);
    }

    #[tokio::test]
    async fn max_conns_parks_the_capacity_above_it_until_forgotten() {
        let b = backend(4);
        limit_to(&b, 2);
        assert_eq!(b.effective_cap(), 2);
        let first = b.admit(slot(&b).await.unwrap()).expect("within the limit");
        let _second = b.admit(slot(&b).await.unwrap()).expect("within the limit");
        assert!(b.admit(slot(&b).await.unwrap()).is_none(), "parked");
        assert!(b.admit(slot(&b).await.unwrap()).is_none(), "parked");
        assert!(
            slot(&b).await.is_none(),
            "the pool is full: the checkout queues"
        );
        assert_eq!(b.capabilities.parked(), 2);
        assert_eq!((b.snapshot().open, b.snapshot().busy), (2, 2));
        assert!(b.load().saturated);

        b.capabilities.forget();
        assert_eq!(b.capabilities.parked(), 0);
        assert_eq!(b.effective_cap(), 4);
        drop(first);
        let _third = b.admit(slot(&b).await.unwrap()).expect("no limit any more");
        assert_eq!(b.pool.stats().open, 2);
    }

    #[test]
    fn zero_and_missing_values_are_no_limit() {
        let l = Learned::from_values(Values {
            max_conns: Some(0),
            max_reqs: None,
            mpxs_conns: Some(false),
            unknown_type: false,
        });
        assert_eq!(l, Learned::default());
        let l = Learned::from_values(Values {
            max_conns: Some(8),
            max_reqs: Some(50),
            mpxs_conns: Some(true),
            unknown_type: false,
        });
        assert_eq!(
            l,
            Learned {
                multiplexes: true,
                max_conns: Some(8),
                max_reqs: Some(50)
            }
        );
    }

    /// A backend that accepts and never answers: the question costs its timeout once,
    /// then the silence is remembered.
    #[tokio::test]
    async fn silence_costs_one_timeout_and_is_remembered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = Backend::tcp(listener.local_addr().unwrap().to_string());
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
        let caps = Capabilities::default();
        let started = tokio::time::Instant::now();
        assert_eq!(caps.learn(&addr, 4).await, Learned::default());
        assert!(started.elapsed() >= MULTIPLEX_DISCOVERY_TIMEOUT);
        assert_eq!(caps.learn(&addr, 4).await, Learned::default());
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "asked once");
        caps.forget();
        let _ = caps.learn(&addr, 4).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "asked again after forget"
        );
    }
}
