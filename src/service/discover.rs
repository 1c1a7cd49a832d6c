//! Changing a running service's backends: applying a [`Change`] (a pool built for a
//! backend that joins, a drain for one that leaves), and the tasks that produce changes
//! (a user's discovery stream, DNS re-resolution).
//!
//! The tasks hold the fleet, never the service: they stop when the last clone of the
//! service is dropped (its `Discovery` drops the `stop` sender, which wakes them), and
//! then release the fleet. They are spawned at build when a tokio runtime is current,
//! else by the first request (which runs in one).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::watch;

use super::backend::BackendPool;
use crate::client::Backend;
use crate::discover::{Change, Resolve, backends_for, diff};
use crate::error::BoxError;
use crate::fleet::{self, Fleet};
use crate::pool::PoolConfig;

/// A user's discovery stream, its error type boxed.
pub(crate) type Changes = Pin<Box<dyn Stream<Item = Result<Change, BoxError>> + Send>>;

/// How a backend that joins gets its pool: the builder's pool settings, and its caps.
#[derive(Debug)]
pub(crate) struct Factory {
    /// The pool of a backend without a cap of its own.
    pub(crate) base: PoolConfig,
    /// `max_idle` as set (`None`: follow each pool's `max_open`).
    pub(crate) max_idle: Option<usize>,
    /// `backend_max_connections`, latest last. A cap naming a DNS name applies to each
    /// of its addresses.
    pub(crate) caps: Vec<(Backend, usize)>,
}

impl Factory {
    pub(crate) fn pool(&self, backend: &Backend, origin: Option<&Backend>) -> BackendPool {
        let cap = |b: &Backend| {
            self.caps
                .iter()
                .rev()
                .find(|(c, _)| c == b)
                .map(|(_, n)| *n)
        };
        let mut cfg = self.base.clone();
        if let Some(n) = cap(backend).or_else(|| origin.and_then(cap)) {
            cfg.max_open = n;
            cfg.max_idle = self.max_idle.unwrap_or(n).min(n);
        }
        BackendPool::new(cfg)
    }
}

/// A source of changes, not yet started.
pub(crate) enum Watcher {
    Stream(Changes),
    Dns {
        /// The `tcp://name:port` backend, a member until the first answer replaces it.
        name: Backend,
        host: String,
        port: u16,
        every: Duration,
        resolver: Arc<dyn Resolve>,
    },
    /// Active health checks (not a source of changes, but a task with the same life:
    /// it holds the fleet and stops with the service).
    Probe(super::HealthCheck),
}

/// The service's side of discovery.
pub(crate) struct Discovery {
    pub(crate) factory: Arc<Factory>,
    /// Never sent on: dropping it (with the service) stops the tasks.
    stop: watch::Sender<()>,
    started: AtomicBool,
    pending: Mutex<Vec<Watcher>>,
}

impl Discovery {
    pub(crate) fn new(factory: Factory, watchers: Vec<Watcher>) -> Discovery {
        Discovery {
            factory: Arc::new(factory),
            stop: watch::channel(()).0,
            started: AtomicBool::new(watchers.is_empty()),
            pending: Mutex::new(watchers),
        }
    }

    /// Discovery tasks running (each holds a receiver of `stop`).
    #[cfg(test)]
    pub(crate) fn tasks(&self) -> usize {
        self.stop.receiver_count()
    }

    /// Spawns the watchers if that has not happened yet and a runtime is current. On
    /// the request path this is one atomic load.
    pub(crate) fn start(&self, fleet: &Arc<Fleet<BackendPool>>) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        for watcher in pending.drain(..) {
            let task = Task {
                fleet: Arc::clone(fleet),
                factory: Arc::clone(&self.factory),
            };
            let stop = self.stop.subscribe();
            match watcher {
                Watcher::Stream(changes) => {
                    runtime.spawn(until_stopped(stop, task.follow(changes)))
                }
                Watcher::Dns {
                    name,
                    host,
                    port,
                    every,
                    resolver,
                } => runtime.spawn(until_stopped(
                    stop,
                    task.resolve(name, host, port, every, resolver),
                )),
                Watcher::Probe(check) => {
                    runtime.spawn(until_stopped(stop, super::probe::run(task.fleet, check)))
                }
            };
        }
    }
}

/// Runs `work` until it ends or the service is dropped, whichever is first.
async fn until_stopped(mut stop: watch::Receiver<()>, work: impl Future<Output = ()>) {
    let mut work = pin!(work);
    let mut stopped = pin!(stop.changed());
    poll_fn(|cx| {
        if stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        work.as_mut().poll(cx)
    })
    .await;
}

struct Task {
    fleet: Arc<Fleet<BackendPool>>,
    factory: Arc<Factory>,
}

impl Task {
    async fn follow(self, mut changes: Changes) {
        while let Some(item) = poll_fn(|cx| changes.as_mut().poll_next(cx)).await {
            match item {
                Ok(change) => apply(&self.fleet, &self.factory, change, None),
                // The stream decides whether an error ends it; the set stays as it is.
                Err(err) => {
                    tracing::warn!(error = %err, "FastCGI discovery stream error; backends unchanged")
                }
            }
        }
        tracing::info!(backends = %self.fleet, "FastCGI discovery stream ended; keeping the current backends");
    }

    async fn resolve(
        self,
        name: Backend,
        host: String,
        port: u16,
        every: Duration,
        resolver: Arc<dyn Resolve>,
    ) {
        // Until the first answer the name itself is the member (resolved by the system
        // at each connect), so the service works from the first request.
        let mut current = vec![name.clone()];
        loop {
            match resolver.resolve(&host).await {
                Ok(answer) if !answer.is_empty() => {
                    let next = backends_for(&answer, port);
                    for change in diff(&current, &next) {
                        apply(&self.fleet, &self.factory, change, Some(&name));
                    }
                    current = next;
                }
                // A failed or empty lookup keeps the last set (as nginx does): draining
                // every backend on a DNS hiccup would turn it into an outage.
                Ok(_) => {
                    tracing::warn!(backend = %name, "DNS answer is empty; keeping the current addresses")
                }
                Err(err) => {
                    tracing::warn!(backend = %name, error = %err, "DNS lookup failed; keeping the current addresses")
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Applies one change: a pool for a backend that joins, a drain for one that leaves.
/// `origin` is the DNS name an address came from (for its cap and the log).
pub(crate) fn apply(
    fleet: &Fleet<BackendPool>,
    factory: &Factory,
    change: Change,
    origin: Option<&Backend>,
) {
    match change {
        Change::Insert(backend) => {
            if fleet.members().iter().any(|m| m.key() == &backend) {
                return;
            }
            tracing::info!(backend = %backend, from = origin.map(tracing::field::display), "FastCGI backend joined");
            let pool = factory.pool(&backend, origin);
            fleet.apply(fleet::Change::Insert(backend, pool));
        }
        Change::Remove(backend) => {
            if let Some(gone) = fleet.apply(fleet::Change::Remove(backend)) {
                gone.service.pool.retire();
                tracing::info!(backend = %gone.key(), from = origin.map(tracing::field::display), "FastCGI backend left; draining it");
            }
        }
    }
    // Forget those that finished draining, so the list stays as short as it is true.
    fleet.draining(BackendPool::drained);
}

#[cfg(test)]
#[path = "discover_tests.rs"]
mod tests;
