//! One backend of a service as the fleet sees it: its connection pool and its counters
//! ([`BackendPool`]), and the per-backend and aggregate snapshots built from them.

use crate::client::conn::Connection;
use crate::client::mux::set::MuxSet;
use crate::fleet::{Endpoint, Load, Loaded};
use crate::pool::{Pool, PoolConfig, Snapshot};

use super::capabilities::Capabilities;
use super::stats::{BackendStats, Counters, ProbeCounters, Stats};
use super::unserved::Unserved;
use super::{FcgiService, Inner};

/// A fleet member of this service.
pub(crate) type Member = Endpoint<BackendPool>;

/// What a service keeps per backend: each has its own cap and queue
/// (`max_connections` applies per backend), so a slow backend's queue never holds up
/// requests another could serve.
#[derive(Debug)]
pub(crate) struct BackendPool {
    pub(crate) pool: Pool<Connection>,
    /// The pool's `max_open`, to tell a saturated pool from one with room.
    pub(crate) cap: usize,
    pub(crate) counters: Counters,
    /// Active health probes of this backend.
    pub(crate) probes: ProbeCounters,
    /// The "accepted but unserved" check: a lowered cap and its parked capacity.
    pub(crate) unserved: Unserved,
    /// What the backend said about itself (FCGI_GET_VALUES) and the capacity its
    /// `FCGI_MAX_CONNS` parks.
    pub(crate) capabilities: Capabilities,
    /// Its multiplexed connections, when requests share them (empty otherwise).
    pub(crate) mux: MuxSet,
}

impl BackendPool {
    pub(crate) fn new(cfg: PoolConfig) -> BackendPool {
        BackendPool {
            cap: cfg.max_open,
            pool: Pool::new(cfg),
            counters: Counters::default(),
            probes: ProbeCounters::default(),
            unserved: Unserved::default(),
            capabilities: Capabilities::default(),
            mux: MuxSet::default(),
        }
    }

    /// Slots parked by a lowered cap or by `FCGI_MAX_CONNS`: counted by the pool as
    /// open and busy, but no connection holds them.
    pub(crate) fn parked(&self) -> usize {
        self.unserved.parked() + self.capabilities.parked()
    }

    /// The pool's state without the parked capacity, plus the multiplexed
    /// connections: each counts as open, each request on one as busy, a request waiting
    /// for room on them as waiting, and every stream after a connection's first as a
    /// reuse.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = self.pool.stats();
        let parked = self.parked();
        s.open = s.open.saturating_sub(parked);
        s.busy = s.busy.saturating_sub(parked);
        let mux = self.mux.stats();
        s.open += mux.conns;
        s.busy += mux.in_flight;
        s.waiting += mux.waiting;
        s.opened += mux.opened_conns;
        s.reused += mux.opened_streams.saturating_sub(mux.opened_conns);
        s
    }

    /// A removed backend is drained once no connection to it is open and no request
    /// uses or waits for one (its idle multiplexed connections close when it is
    /// dropped).
    pub(crate) fn drained(&self) -> bool {
        let pool = self.pool.stats();
        let (in_flight, waiting) = self.mux.load();
        pool.open <= self.parked() && pool.waiting == 0 && in_flight == 0 && waiting == 0
    }
}

impl Load for BackendPool {
    /// Connections held by requests (from checkout until the response body ends, which
    /// is when a FastCGI worker is free again) plus requests queued for one; with
    /// multiplexing, requests on its connections plus those waiting for room.
    fn load(&self) -> Loaded {
        let mut pool = self.pool.stats();
        let parked = self.parked();
        pool.busy = pool.busy.saturating_sub(parked);
        let (in_flight, waiting) = self.mux.load();
        Loaded {
            saturated: pool.busy >= self.effective_cap() || waiting > 0,
            pending: pool.busy + pool.waiting + in_flight + waiting,
        }
    }
}

/// The pools of all backends, added up (those draining too: their connections are
/// still open).
fn total(inner: &Inner) -> Snapshot {
    let mut sum = Snapshot::default();
    let members = inner.fleet.members();
    let draining = inner.fleet.draining(BackendPool::drained);
    for member in members.iter().chain(&draining) {
        let s = member.service.snapshot();
        sum.open += s.open;
        sum.busy += s.busy;
        sum.idle += s.idle;
        sum.waiting += s.waiting;
        sum.opened += s.opened;
        sum.reused += s.reused;
    }
    sum
}

impl FcgiService {
    /// The state of the connection pools (added up over all backends).
    pub fn pool_stats(&self) -> super::PoolStats {
        self.inner.counters.pool_stats(total(&self.inner))
    }

    /// Everything the service counts about its backends: the pools, requests sent,
    /// response heads by status class, failures by cause, queue wait, time to head and
    /// retries. A request is counted once however many backends it tried; see
    /// [`backend_stats`](FcgiService::backend_stats) for each backend's share.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.counters.stats(total(&self.inner));
        stats.retries_over_budget = self.inner.fleet.over_budget();
        stats
    }

    /// The same counters for each backend, in the order they joined (configured ones
    /// first): every attempt on a backend counts there (a request retried elsewhere
    /// counts on both), plus whether it is in the rotation and how often it was
    /// ejected. Backends removed by discovery follow, marked `draining`, until their
    /// last connection has closed; then they are no longer listed.
    pub fn backend_stats(&self) -> Vec<BackendStats> {
        let members = self.inner.fleet.members();
        let draining = self.inner.fleet.draining(BackendPool::drained);
        members
            .iter()
            .chain(&draining)
            .map(|member| BackendStats {
                backend: member.key().clone(),
                stats: member.service.counters.stats(member.service.snapshot()),
                connection_cap: member.service.effective_cap(),
                in_rotation: member.in_rotation() && !member.is_removed(),
                ejections: member.ejections(),
                draining: member.is_removed(),
                probes: member.service.probes.snapshot(),
            })
            .collect()
    }
}
