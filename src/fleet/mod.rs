//! A fleet: several backends behind one service, each with its own connection pool,
//! balanced by load, ejected and readmitted by passive health, with a retry budget.
//!
//! The vocabulary is tower's (`tower::balance`, `tower::load`, `tower::discover`):
//! an [`Endpoint`] is one backend's service, keyed by its address; [`Load`] is what
//! the balancer compares; [`Change`] is how the set of endpoints changes. tower's own
//! `Balance` is not used because it is not `Clone` (axum clones services per request),
//! it evicts an endpoint for good on its first `poll_ready` error, and its load ends
//! with the response *future*, while a FastCGI worker stays busy until the response
//! *body* ends (see `next-wave.md` §4).
//!
//! Layering: the fleet knows backends only through [`Load`] and the address they are
//! keyed by. It does not know how a request is sent; `service::dispatch` asks it for an
//! endpoint, sends on that endpoint's pool, and reports the outcome back
//! ([`Pick::settle`]). The pool below knows nothing of the fleet.
//!
//! A fleet of one backend behaves exactly as a single backend did before fleets: it is
//! never ejected (there is nowhere else to go; nginx ignores `max_fails` for a lone
//! server too) and nothing is retried elsewhere.

mod balance;
mod health;
mod outage;
mod retry;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::time::Instant;

use crate::client::Backend;
use balance::{Rng, p2c};
use health::{Health, Standing};

pub(crate) use health::{HealthConfig, Verdict};
pub(crate) use retry::{Budget, BudgetConfig, Retry, classify};

/// What the balancer reads from an endpoint's service (tower's `Load`, with the one
/// extra bit a bounded pool has: whether a new request would have to queue).
pub(crate) trait Load {
    fn load(&self) -> Loaded;
}

/// An endpoint's load. Ordered: any endpoint with room beats any saturated one, then
/// fewer requests in flight win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Loaded {
    /// Every connection is busy: a new request would wait in the queue.
    pub(crate) saturated: bool,
    /// Requests holding a connection (until their response body ends) plus those
    /// queued for one.
    pub(crate) pending: usize,
}

/// A change to the set of endpoints, as tower's `discover::Change`: the builder's static
/// list, DNS re-resolution and a user's discovery stream all feed these to
/// [`Fleet::apply`].
#[derive(Debug)]
pub(crate) enum Change<S> {
    /// Add the endpoint for this address (nothing changes if it is already a member:
    /// discovery sources repeat themselves, and a member's pool and health are kept).
    Insert(Backend, S),
    /// Remove it: it takes no new requests; those in flight keep their connections.
    /// [`Fleet::apply`] hands the endpoint back so the caller can drain it.
    Remove(Backend),
}

/// One backend of the fleet: its address, its service, its health.
#[derive(Debug)]
pub(crate) struct Endpoint<S> {
    key: Backend,
    pub(crate) service: S,
    health: Health,
    /// Set when it leaves the fleet: a request that read the member list just before
    /// the removal must not pick it either.
    removed: AtomicBool,
}

impl<S> Endpoint<S> {
    pub(crate) fn key(&self) -> &Backend {
        &self.key
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn in_rotation(&self) -> bool {
        self.health.standing(Instant::now()) == Standing::InRotation
    }

    pub(crate) fn ejections(&self) -> u64 {
        self.health.ejections()
    }
}

/// The members at one moment. Requests work on such a snapshot, so a change never
/// waits for them nor they for it.
pub(crate) type Members<S> = Arc<[Arc<Endpoint<S>>]>;

/// The set of backends of one service.
#[derive(Debug)]
pub(crate) struct Fleet<S> {
    /// Swapped whole on every change. The read lock is held only to clone the `Arc`
    /// (one atomic increment), and the write lock only to store the new one, which is
    /// built outside it: the request path never waits behind a change being computed.
    members: RwLock<Members<S>>,
    /// Serializes changes (DNS and a discovery stream may both apply them), so that
    /// two read-modify-write cycles cannot lose each other's update.
    changing: Mutex<()>,
    /// Removed endpoints whose requests may still be running, for their owner to
    /// drain and report (see [`Fleet::draining`]).
    draining: Mutex<Vec<Arc<Endpoint<S>>>>,
    health: HealthConfig,
    pub(crate) budget: Budget,
    rng: Rng,
    /// Retries refused because the budget was empty.
    over_budget: AtomicU64,
}

impl<S> Fleet<S> {
    /// The members now (a snapshot: later changes do not show in it).
    pub(crate) fn members(&self) -> Members<S> {
        // Nothing panics while holding the lock; a poisoned one still holds a valid set.
        Arc::clone(&self.members.read().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<S: Load> Fleet<S> {
    pub(crate) fn new(
        members: impl IntoIterator<Item = (Backend, S)>,
        health: HealthConfig,
        budget: BudgetConfig,
    ) -> Fleet<S> {
        let fleet = Fleet {
            members: RwLock::new(Arc::from(Vec::new())),
            changing: Mutex::new(()),
            draining: Mutex::new(Vec::new()),
            health,
            budget: Budget::new(budget),
            rng: Rng::from_entropy(),
            over_budget: AtomicU64::new(0),
        };
        for (key, service) in members {
            fleet.apply(Change::Insert(key, service));
        }
        fleet
    }

    /// Applies a change; returns the endpoint a `Remove` took out (it is also kept in
    /// the draining list), `None` if nothing changed.
    pub(crate) fn apply(&self, change: Change<S>) -> Option<Arc<Endpoint<S>>> {
        let _one_at_a_time = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.members();
        let (next, removed): (Vec<_>, _) = match change {
            Change::Insert(key, service) => {
                if current.iter().any(|e| e.key == key) {
                    return None;
                }
                let endpoint = Arc::new(Endpoint {
                    key,
                    service,
                    health: Health::new(self.health),
                    removed: AtomicBool::new(false),
                });
                let next = current.iter().cloned().chain([endpoint]).collect();
                (next, None)
            }
            Change::Remove(key) => {
                let gone = current.iter().find(|e| e.key == key).cloned()?;
                gone.removed.store(true, Ordering::Release);
                let next = current.iter().filter(|e| e.key != key).cloned().collect();
                (next, Some(gone))
            }
        };
        *self.members.write().unwrap_or_else(|p| p.into_inner()) = Arc::from(next);
        if let Some(gone) = &removed {
            self.lock_draining().push(Arc::clone(gone));
        }
        removed
    }

    fn lock_draining(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Endpoint<S>>>> {
        self.draining.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removed endpoints not yet drained: those for which `drained` is false are kept
    /// and returned, the others are forgotten (dropping the fleet's last hold on them).
    pub(crate) fn draining(&self, drained: impl Fn(&S) -> bool) -> Vec<Arc<Endpoint<S>>> {
        let mut list = self.lock_draining();
        list.retain(|e| !drained(&e.service));
        list.clone()
    }

    /// The endpoint for the next attempt, skipping those in `tried`; `None` when no
    /// endpoint may take it (all ejected, or all tried).
    ///
    /// Order: a trial that is due goes first (else a busy fleet would never give an
    /// ejected backend the request that readmits it); then power of two choices among
    /// those in rotation, preferring any with a free connection; when none is in
    /// rotation, an early trial or panic routing (`outage`).
    pub(crate) fn pick(&self, tried: &[Arc<Endpoint<S>>]) -> Option<Pick<'_, S>> {
        let members = self.members();
        let untried =
            |e: &&Arc<Endpoint<S>>| !e.is_removed() && !tried.iter().any(|t| Arc::ptr_eq(t, e));
        if let [only] = &members[..] {
            return untried(&only).then(|| Pick::new(self, Arc::clone(only), false, true));
        }
        let now = Instant::now();
        let mut candidates = 0;
        for endpoint in members.iter().filter(untried) {
            match endpoint.health.standing(now) {
                Standing::InRotation => candidates += 1,
                Standing::TrialDue if endpoint.health.begin_trial(now) => {
                    return Some(Pick::new(self, Arc::clone(endpoint), true, false));
                }
                Standing::TrialDue | Standing::Out => {}
            }
        }
        if candidates == 0 {
            return self.pick_in_outage(&members, untried, now);
        }
        // The k-th candidate, found again by scanning rather than collected: fleets are
        // small, and this keeps the request path free of allocations. (A standing that
        // changed since the count only makes `nth` come up short, which is handled.)
        let nth = |k: usize| {
            members
                .iter()
                .filter(untried)
                .filter(|e| e.health.standing(now) == Standing::InRotation)
                .nth(k)
        };
        // One that vanished from the candidates since the count loses every comparison.
        let gone = Loaded {
            saturated: true,
            pending: usize::MAX,
        };
        let load = |k: usize| nth(k).map_or(gone, |e| e.service.load());
        let (mut chosen, loaded) = p2c(candidates, &self.rng, load)?;
        if loaded.saturated {
            // Both draws were saturated: any endpoint with room is better than a queue.
            if let Some((k, _)) = (0..candidates)
                .map(|k| (k, load(k)))
                .filter(|(_, l)| !l.saturated)
                .min_by_key(|(_, l)| l.pending)
            {
                chosen = k;
            }
        }
        let endpoint = nth(chosen)?;
        Some(Pick::new(self, Arc::clone(endpoint), false, false))
    }

    /// Records what an active health probe of `endpoint` found. A lone member is never
    /// ejected (as with passive health: there is nowhere else to go), so its probes are
    /// only counted by the caller.
    pub(crate) fn record_probe(&self, endpoint: &Endpoint<S>, alive: bool) {
        if endpoint.is_removed() || self.members().len() < 2 {
            return;
        }
        match endpoint.health.record_probe(alive, &self.rng) {
            health::Change::None => {}
            health::Change::Ejected(length) => tracing::warn!(
                backend = %endpoint.key,
                backoff_ms = millis(length),
                "FastCGI backend failed its health probes; out of the rotation"
            ),
            health::Change::Readmitted => {
                tracing::info!(backend = %endpoint.key, "FastCGI backend answered its health probe; back in the rotation");
            }
        }
    }

    /// Counts a retry the budget refused.
    pub(crate) fn count_over_budget(&self) {
        self.over_budget.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn over_budget(&self) -> u64 {
        self.over_budget.load(Ordering::Relaxed)
    }
}

impl<S> fmt::Display for Fleet<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.members().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", e.key)?;
        }
        Ok(())
    }
}

/// An endpoint chosen for one attempt. Its outcome must be reported with
/// [`settle`](Pick::settle); dropped unsettled (the request future was dropped), it
/// counts as saying nothing, which frees a trial for the next request.
#[derive(Debug)]
pub(crate) struct Pick<'a, S> {
    fleet: &'a Fleet<S>,
    endpoint: Arc<Endpoint<S>>,
    trial: bool,
    /// It was the only member when picked: a lone backend is never ejected.
    lone: bool,
    /// Sent to an ejected backend because none was in rotation (`outage`).
    panic: bool,
    settled: bool,
}

impl<'a, S> Pick<'a, S> {
    fn new(
        fleet: &'a Fleet<S>,
        endpoint: Arc<Endpoint<S>>,
        trial: bool,
        lone: bool,
    ) -> Pick<'a, S> {
        Pick {
            fleet,
            endpoint,
            trial,
            lone,
            panic: false,
            settled: false,
        }
    }

    pub(crate) fn endpoint(&self) -> &Arc<Endpoint<S>> {
        &self.endpoint
    }

    /// Whether this attempt is the trial of an ejected backend.
    pub(crate) fn is_trial(&self) -> bool {
        self.trial
    }

    /// Whether this attempt went to an ejected backend because none was in rotation.
    pub(crate) fn is_panic(&self) -> bool {
        self.panic
    }

    /// Reports what the attempt said about the backend.
    pub(crate) fn settle(mut self, verdict: Verdict) {
        self.settled = true;
        self.record(verdict);
    }

    fn record(&self, verdict: Verdict) {
        if self.lone {
            return;
        }
        let key = &self.endpoint.key;
        let health = &self.endpoint.health;
        let change = if self.panic && verdict == Verdict::Healthy {
            health.readmit()
        } else {
            health.record(verdict, self.trial, &self.fleet.rng)
        };
        match change {
            health::Change::None => {}
            health::Change::Ejected(length) => tracing::warn!(
                backend = %key,
                backoff_ms = millis(length),
                trial = self.trial,
                "FastCGI backend failed repeatedly; out of the rotation"
            ),
            health::Change::Readmitted if self.panic => {
                tracing::info!(backend = %key, "FastCGI backend answered while every backend was out; back in the rotation");
            }
            health::Change::Readmitted => {
                tracing::info!(backend = %key, "FastCGI backend answered its trial request; back in the rotation");
            }
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<S> Drop for Pick<'_, S> {
    fn drop(&mut self) {
        if !self.settled {
            self.record(Verdict::Unknown);
        }
    }
}

#[cfg(test)]
mod outage_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;
