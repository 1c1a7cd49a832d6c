//! A bounded pool of reusable items (backend connections), generic over what it holds.
//!
//! The pool does not know what a FastCGI connection is, nor how to open one: it counts
//! capacity, queues waiters, and keeps idle items. The caller opens new items itself on
//! the capacity the pool grants ([`Slot::fill`]), and a checked-out item comes back by
//! itself when its handle ([`Pooled`]) drops, if [`Poolable::can_reuse`] says it may.
//! That is why nothing above the pool ever holds the pool to give an item back: the
//! response body that finishes a FastCGI exchange long after the request future has
//! returned simply drops the connection's handle.
//!
//! Why bounded and queueing rather than opening on demand: every open connection to
//! php-fpm or fcgiwrap pins one worker process, so the pool must stay within the
//! backend's worker count, and requests beyond it wait (FIFO, up to `queue_timeout`)
//! instead of failing or overloading the backend.
//!
//! Design:
//! - capacity is counted in [`Slot`]s: one per open item or open in progress (idle items
//!   hold theirs implicitly), at most `max_open`. A slot's `Drop` hands its capacity to
//!   the oldest live waiter or frees it, so capacity can never leak, whatever is dropped
//!   where;
//! - idle items are reused last-in-first-out (the warmest first), optionally after a
//!   liveness probe, and expire after `idle_timeout` (a reaper task runs only while some
//!   are idle);
//! - a returned item goes straight to the oldest waiter, else to the idle list;
//! - idle items hold no reference to the pool, so dropping the last handle to the pool
//!   closes them (no reference cycle keeps them open).

mod handle;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Timeout};

pub(crate) use handle::{Pooled, Slot};

/// What the pool needs to know about the items it holds.
pub(crate) trait Poolable: Send + 'static {
    /// Whether the item may serve another use now that its handle is dropped (for a
    /// connection: the last exchange on it ended cleanly).
    fn can_reuse(&self) -> bool;

    /// A cheap, non-blocking check, before reuse, that an idle item still works (for a
    /// connection: the peer has not closed it while it was idle).
    fn is_alive(&self) -> bool;
}

/// Pool limits. The builder that exposes them documents their defaults.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    /// Most items open (busy, idle or being opened) at once.
    pub(crate) max_open: usize,
    /// Most idle items kept; a returned item beyond this is closed.
    pub(crate) max_idle: usize,
    /// Idle items older than this are closed (`None`: never).
    pub(crate) idle_timeout: Option<Duration>,
    /// An item is closed after this many uses (`None`: unlimited).
    pub(crate) max_uses: Option<u32>,
    /// How long a checkout waits for capacity (`None`: forever).
    pub(crate) queue_timeout: Option<Duration>,
    /// Whether items are reused at all.
    pub(crate) reuse: bool,
}

/// A snapshot of the pool's state and counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Items open or being opened (busy + idle).
    pub(crate) open: usize,
    /// Items checked out (or being opened).
    pub(crate) busy: usize,
    pub(crate) idle: usize,
    /// Live checkouts waiting for capacity.
    pub(crate) waiting: usize,
    /// Items filled into slots since the pool was created.
    pub(crate) opened: u64,
    /// Checkouts served by an idle item.
    pub(crate) reused: u64,
}

/// How a checkout may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// An idle item if there is one; `probe` checks it with [`Poolable::is_alive`] first.
    Idle { probe: bool },
    /// Never an idle item: capacity for a new one (a retry after a stale connection).
    Never,
}

/// What a checkout yields: an idle item, or capacity to open a new one.
#[derive(Debug)]
pub(crate) enum Checkout<T: Poolable> {
    Reused(Pooled<T>),
    Open(Slot<T>),
}

/// The pool. Cheap to clone; clones share the items.
#[derive(Debug)]
pub(crate) struct Pool<T: Poolable> {
    shared: Arc<Shared<T>>,
}

impl<T: Poolable> Clone for Pool<T> {
    fn clone(&self) -> Pool<T> {
        Pool {
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug)]
struct Shared<T: Poolable> {
    cfg: PoolConfig,
    state: Mutex<State<T>>,
    opened: AtomicU64,
    reused: AtomicU64,
    /// Set by [`Pool::retire`]: no item is kept idle any more.
    retired: AtomicBool,
}

#[derive(Debug)]
struct State<T: Poolable> {
    /// Idle items, most recently returned last.
    idle: Vec<Idle<T>>,
    /// Capacity taken: items busy, idle or being opened.
    open: usize,
    waiters: VecDeque<oneshot::Sender<Grant<T>>>,
    reaper_running: bool,
}

/// An idle item with its bookkeeping. It holds its capacity implicitly (`State::open`).
#[derive(Debug)]
struct Idle<T> {
    item: T,
    uses: u32,
    since: Instant,
}

/// What a waiter receives. Both carry an armed slot: a grant that sits unread in the
/// channel of a waiter that gave up is dropped with it, and must free its capacity.
#[derive(Debug)]
enum Grant<T: Poolable> {
    Idle(Idle<T>, Slot<T>),
    Capacity(Slot<T>),
}

enum Step<T: Poolable> {
    Ready(Grant<T>),
    Wait(oneshot::Receiver<Grant<T>>),
}

impl<T: Poolable> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code path panics while holding the lock; if one ever did, the counts are
        // still better than refusing all service, so recover the guard.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T: Poolable> Pool<T> {
    pub(crate) fn new(cfg: PoolConfig) -> Pool<T> {
        Pool {
            shared: Arc::new(Shared {
                cfg,
                state: Mutex::new(State {
                    idle: Vec::new(),
                    open: 0,
                    waiters: VecDeque::new(),
                    reaper_running: false,
                }),
                opened: AtomicU64::new(0),
                reused: AtomicU64::new(0),
                retired: AtomicBool::new(false),
            }),
        }
    }

    pub(crate) fn stats(&self) -> Snapshot {
        let st = self.shared.lock();
        Snapshot {
            open: st.open,
            busy: st.open.saturating_sub(st.idle.len()),
            idle: st.idle.len(),
            waiting: st.waiters.iter().filter(|w| !w.is_closed()).count(),
            opened: self.shared.opened.load(Ordering::Relaxed),
            reused: self.shared.reused.load(Ordering::Relaxed),
        }
    }

    /// Drains the pool (its backend left the fleet): idle items close now, and every
    /// item still checked out closes when its use ends instead of going idle (and is
    /// told so up front, [`Pooled::is_last_use`]). Checkouts still work, so requests
    /// already queued here are served; nothing new should be sent.
    pub(crate) fn retire(&self) {
        self.shared.retired.store(true, Ordering::Release);
        let idle = {
            let mut st = self.shared.lock();
            let idle = std::mem::take(&mut st.idle);
            st.open = st.open.saturating_sub(idle.len());
            idle
        };
        // Closed outside the lock.
        drop(idle);
    }

    /// An idle item (LIFO), capacity for a new one if under the cap, or whatever is
    /// released next, waiting at most `queue_timeout` (then a 503-mapped timeout).
    ///
    /// An idle item that fails its probe, or any idle item under [`Reuse::Never`], is
    /// closed and its capacity granted instead: the caller opens a fresh item on it
    /// rather than queueing again behind other waiters.
    pub(crate) async fn checkout(&self, reuse: Reuse) -> Result<Checkout<T>, Error> {
        let deadline = self
            .shared
            .cfg
            .queue_timeout
            .and_then(|t| Instant::now().checked_add(t));
        let grant = match self.try_acquire(reuse) {
            Step::Ready(grant) => grant,
            Step::Wait(rx) => {
                let granted = match deadline {
                    Some(at) => tokio::time::timeout_at(at, rx)
                        .await
                        .map_err(|_| Error::timeout(Timeout::PoolWait))?,
                    None => rx.await,
                };
                granted.map_err(|_| Error::msg(ErrorKind::Io, "connection pool closed"))?
            }
        };
        Ok(match grant {
            Grant::Capacity(slot) => Checkout::Open(slot),
            Grant::Idle(idle, slot) => {
                let usable = match reuse {
                    Reuse::Idle { probe } => !probe || idle.item.is_alive(),
                    Reuse::Never => false,
                };
                if usable {
                    self.shared.reused.fetch_add(1, Ordering::Relaxed);
                    Checkout::Reused(Pooled::new(idle.item, idle.uses, slot))
                } else {
                    if reuse != Reuse::Never {
                        tracing::debug!("discarding a pooled connection the backend closed");
                    }
                    drop(idle);
                    Checkout::Open(slot)
                }
            }
        })
    }

    fn try_acquire(&self, reuse: Reuse) -> Step<T> {
        let now = Instant::now();
        let idle_timeout = self.shared.cfg.idle_timeout;
        let mut expired = Vec::new();
        let step = {
            let mut st = self.shared.lock();
            let mut found = None;
            // A fresh item is wanted: leave idle ones alone while there is spare capacity.
            let take_idle = reuse != Reuse::Never || st.open >= self.shared.cfg.max_open;
            while let Some(idle) = take_idle.then(|| st.idle.pop()).flatten() {
                if idle_timeout.is_some_and(|t| now.duration_since(idle.since) >= t) {
                    expired.push(idle);
                    continue;
                }
                found = Some(idle);
                break;
            }
            // An expired item's capacity is taken over by this checkout, so `open`
            // stays the same for the first one and drops for the rest.
            let reclaimed = expired.len();
            if let Some(idle) = found {
                st.open = st.open.saturating_sub(reclaimed);
                Step::Ready(Grant::Idle(idle, Slot::armed(Arc::clone(&self.shared))))
            } else if reclaimed > 0 {
                st.open = st.open.saturating_sub(reclaimed - 1);
                Step::Ready(Grant::Capacity(Slot::armed(Arc::clone(&self.shared))))
            } else if st.open < self.shared.cfg.max_open {
                st.open += 1;
                Step::Ready(Grant::Capacity(Slot::armed(Arc::clone(&self.shared))))
            } else {
                let (tx, rx) = oneshot::channel();
                // Drop waiters that gave up, so the queue stays bounded by live requests.
                st.waiters.retain(|w| !w.is_closed());
                st.waiters.push_back(tx);
                Step::Wait(rx)
            }
        };
        // Expired items close outside the lock.
        drop(expired);
        step
    }
}

impl<T: Poolable> Shared<T> {
    /// A slot dropped: give its capacity to a live waiter, or free it.
    fn release_capacity(self: &Arc<Self>) {
        let mut slot = Slot::armed(Arc::clone(self));
        loop {
            let waiter = {
                let mut st = self.lock();
                match st.waiters.pop_front() {
                    Some(w) => w,
                    None => {
                        st.open = st.open.saturating_sub(1);
                        drop(st);
                        slot.disarm();
                        return;
                    }
                }
            };
            match waiter.send(Grant::Capacity(slot)) {
                Ok(()) => return,
                Err(Grant::Capacity(back)) => slot = back,
                Err(Grant::Idle(..)) => return,
            }
        }
    }

    /// A reusable item came back: to the oldest live waiter, else to the idle list
    /// (or closed, past `max_idle`). Its capacity moves with it.
    fn check_in(self: &Arc<Self>, mut idle: Idle<T>) {
        loop {
            let waiter = {
                let mut st = self.lock();
                match st.waiters.pop_front() {
                    Some(w) => w,
                    None => {
                        if st.idle.len() >= self.cfg.max_idle {
                            // No waiter, so the capacity is simply freed.
                            st.open = st.open.saturating_sub(1);
                            drop(st);
                            drop(idle);
                            return;
                        }
                        st.idle.push(idle);
                        let runtime = tokio::runtime::Handle::try_current();
                        if let (Some(_), false, Ok(runtime)) =
                            (self.cfg.idle_timeout, st.reaper_running, runtime)
                        {
                            st.reaper_running = true;
                            runtime.spawn(reap_idle(Arc::downgrade(self)));
                        }
                        return;
                    }
                }
            };
            // The item's capacity travels with it as an armed slot.
            match waiter.send(Grant::Idle(idle, Slot::armed(Arc::clone(self)))) {
                Ok(()) => return,
                Err(Grant::Idle(back, mut slot)) => {
                    slot.disarm();
                    idle = back;
                }
                Err(Grant::Capacity(mut slot)) => {
                    slot.disarm();
                    return;
                }
            }
        }
    }
}

/// Closes idle items older than the idle timeout; exits when none are idle (the next
/// check-in starts it again) or when the pool is gone.
async fn reap_idle<T: Poolable>(pool: Weak<Shared<T>>) {
    loop {
        let period = match pool.upgrade().and_then(|p| p.cfg.idle_timeout) {
            Some(t) => (t / 2).max(Duration::from_millis(10)),
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(shared) = pool.upgrade() else { return };
        let Some(timeout) = shared.cfg.idle_timeout else {
            return;
        };
        let now = Instant::now();
        let (expired, done) = {
            let mut st = shared.lock();
            let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(&mut st.idle)
                .into_iter()
                .partition(|idle| now.duration_since(idle.since) >= timeout);
            st.idle = fresh;
            let done = st.idle.is_empty();
            if done {
                st.reaper_running = false;
            }
            (old, done)
        };
        // Each expired item frees one unit of capacity (for a waiter, if any).
        for idle in expired {
            drop(idle);
            shared.release_capacity();
        }
        if done {
            return;
        }
    }
}
