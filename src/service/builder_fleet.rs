//! The fleet settings of [`FcgiServiceBuilder`]: several backends, passive health and
//! retries on another backend. (The defaults table is on the builder, in `builder.rs`.)

use std::time::Duration;

use super::FcgiServiceBuilder;
use crate::client::Backend;
#[cfg(doc)]
use crate::defaults;

impl FcgiServiceBuilder {
    /// Serve from all of `backends` (TCP and Unix sockets may be mixed), replacing any
    /// set before; see "Several backends" above. Each gets its own pool of
    /// [`max_connections`](FcgiServiceBuilder::max_connections). Listing one twice is a
    /// [`BuildError`](super::BuildError).
    pub fn backends<I>(mut self, backends: I) -> FcgiServiceBuilder
    where
        I: IntoIterator<Item = Backend>,
    {
        self.backends = backends.into_iter().collect();
        self
    }

    /// Add one more backend to those set with [`tcp`](FcgiServiceBuilder::tcp),
    /// [`unix`](FcgiServiceBuilder::unix), [`backend`](FcgiServiceBuilder::backend) or
    /// earlier calls; with two or more the service balances between them.
    pub fn add_backend(mut self, backend: Backend) -> FcgiServiceBuilder {
        self.backends.push(backend);
        self
    }

    /// Most connections open to `backend` (one of this service's), instead of
    /// [`max_connections`](FcgiServiceBuilder::max_connections): a fleet whose php-fpm
    /// pools differ in size needs each cap at or below that pool's `pm.max_children`,
    /// since php-fpm pins a worker to every kept-alive connection and a connection
    /// beyond its workers waits for one that never comes. Naming a backend the service
    /// does not have is a [`BuildError`](super::BuildError). Default: = `max_connections`.
    pub fn backend_max_connections(mut self, backend: &Backend, n: usize) -> FcgiServiceBuilder {
        self.backend_caps.push((backend.clone(), n.max(1)));
        self
    }

    /// The "accepted but unserved" bound. php-fpm (and php-cgi) keep a worker on every
    /// kept-alive connection until it closes, so a pool allowed more connections than
    /// the backend has workers ends up with connections the kernel accepted but no
    /// worker will read, and their requests would wait for the whole
    /// [`response_head_timeout`](FcgiServiceBuilder::response_head_timeout). When a
    /// request on a *new* connection has had no response byte for this long while the
    /// same backend has idle connections, and more of its connections are open than it
    /// has been seen serving at once, the service logs a warning once (naming the
    /// backend, its cap and the connections it serves), closes one idle connection so
    /// that its worker picks up the waiting one, and lowers that backend's cap to the
    /// connections it was seen serving, for a minute at a time.
    ///
    /// The waiting request is never moved to another connection: from outside, a
    /// request still in the listen queue and one running a slow script look the same
    /// (accepted, silent), so replaying it could run it twice. Freeing the worker serves
    /// it where it is. A slow script mistaken for a waiting one costs a reconnect and,
    /// at worst, a lower cap for a minute, never below what the backend served at once.
    /// `None` turns the check off. Default: 1 s
    /// ([`UNSERVED_AFTER`](defaults::UNSERVED_AFTER)).
    pub fn unserved_after(mut self, after: Option<Duration>) -> FcgiServiceBuilder {
        self.unserved_after = after.filter(|d| !d.is_zero());
        self
    }

    /// Passive health: after this many failures in a row (connection refused, connect,
    /// response-head and read timeouts, protocol errors, broken connections,
    /// FCGI_OVERLOADED), a backend leaves the rotation for an
    /// [`ejection_backoff`](FcgiServiceBuilder::ejection_backoff), then one trial request
    /// decides whether it comes back. 0 turns ejection off. A service with a single
    /// backend never ejects it (there is nowhere else to send requests; nginx ignores
    /// `max_fails` for a lone server too). Default: 3
    /// ([`EJECT_AFTER_FAILURES`](defaults::EJECT_AFTER_FAILURES)): one failure is noise,
    /// three in a row with no success between is a backend that is down.
    pub fn eject_after_failures(mut self, n: u32) -> FcgiServiceBuilder {
        self.health.eject_after = n;
        self
    }

    /// How long an ejected backend stays out: `initial` the first time, twice as long
    /// for each further ejection without a success between, at most `max`; each time
    /// jittered to between half and all of it, so backends (and gateways) do not retry
    /// in lockstep. Default: 1 s, doubling up to 30 s
    /// ([`EJECTION_BACKOFF`](defaults::EJECTION_BACKOFF),
    /// [`EJECTION_BACKOFF_MAX`](defaults::EJECTION_BACKOFF_MAX)).
    pub fn ejection_backoff(mut self, initial: Duration, max: Duration) -> FcgiServiceBuilder {
        self.health.backoff = initial;
        self.health.max_backoff = max.max(initial);
        self
    }

    /// When every backend of the fleet is ejected, send requests to them anyway, by
    /// load ("panic routing"), instead of answering 503: one that answers is readmitted
    /// at once, one that fails is not held out longer for it, and the request moves to
    /// another within the [`retry_budget`](FcgiServiceBuilder::retry_budget). Backends
    /// whose latest [`health_check`](FcgiServiceBuilder::health_check) probe failed are
    /// left out (when that leaves none, the 503 comes at once). Either way, the backend
    /// whose backoff ends first gets an early trial request first. Off: 503 until a
    /// trial readmits a backend (HAProxy's behaviour). Default: on
    /// ([`ROUTE_WHEN_ALL_EJECTED`](defaults::ROUTE_WHEN_ALL_EJECTED)), because ejections
    /// outlive the faults that caused them: after a reload, or a kill that a supervisor
    /// repaired, "all ejected" mostly means "some back already" (nginx, with every peer
    /// down, forgets the failures and tries again).
    pub fn route_when_all_ejected(mut self, on: bool) -> FcgiServiceBuilder {
        self.health.route_when_all_ejected = on;
        self
    }

    /// How many requests may be retried on another backend, as `tower::retry::budget`:
    /// each successful request earns `percent`/100 of a retry, `min_per_sec` retries are
    /// earned every second regardless, and at most 10 seconds of that floor (and no
    /// fewer than 10) can be saved up. When the budget is spent, a failure is returned
    /// as it is, so a dying fleet is not hammered by retries. Default: 20% of
    /// successful requests + 10/s ([`RETRY_BUDGET_PERCENT`](defaults::RETRY_BUDGET_PERCENT),
    /// [`RETRY_BUDGET_MIN_PER_SEC`](defaults::RETRY_BUDGET_MIN_PER_SEC)).
    pub fn retry_budget(mut self, percent: u32, min_per_sec: u32) -> FcgiServiceBuilder {
        self.budget.percent = percent;
        self.budget.min_per_sec = min_per_sec;
        self
    }

    /// Also replay requests with a non-idempotent method (POST, PATCH) on another
    /// backend after the first one took them and died before answering, when the
    /// script may already have run (nginx's `fastcgi_next_upstream non_idempotent`).
    /// Requests no backend processed (connection refused, FCGI_OVERLOADED) move
    /// whatever their method. Default: off
    /// ([`RETRY_NON_IDEMPOTENT`](defaults::RETRY_NON_IDEMPOTENT)): only GET, HEAD,
    /// OPTIONS, PUT, DELETE and TRACE are replayed.
    pub fn retry_non_idempotent(mut self, on: bool) -> FcgiServiceBuilder {
        self.retry_non_idempotent = on;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(b: FcgiServiceBuilder) -> Vec<usize> {
        let svc = b.try_build().expect("a valid configuration");
        let members = svc.inner.fleet.members();
        members.iter().map(|m| m.service.cap).collect()
    }

    #[test]
    fn each_backend_gets_max_connections_unless_capped_itself() {
        let small = Backend::tcp("127.0.0.1:9001");
        let b = FcgiServiceBuilder::new()
            .tcp("127.0.0.1:9000")
            .add_backend(small.clone())
            .add_backend(Backend::unix("/run/c.sock"))
            .max_connections(6)
            .backend_max_connections(&small, 1);
        assert_eq!(caps(b), [6, 1, 6]);
    }

    #[test]
    fn a_backend_listed_twice_or_a_cap_for_a_stranger_is_a_build_error() {
        let twice = FcgiServiceBuilder::new()
            .tcp("127.0.0.1:9000")
            .add_backend(Backend::tcp("127.0.0.1:9000"))
            .try_build()
            .unwrap_err();
        assert!(twice.to_string().contains("listed twice"), "{twice}");
        let stranger = FcgiServiceBuilder::new()
            .tcp("127.0.0.1:9000")
            .backend_max_connections(&Backend::tcp("127.0.0.1:9001"), 2)
            .try_build()
            .unwrap_err();
        assert!(stranger.to_string().contains("not a backend"), "{stranger}");
    }

    #[test]
    fn backends_replaces_and_add_backend_appends() {
        let b = FcgiServiceBuilder::new()
            .tcp("127.0.0.1:1")
            .backends([Backend::tcp("127.0.0.1:2"), Backend::tcp("127.0.0.1:3")])
            .add_backend(Backend::tcp("127.0.0.1:4"));
        assert_eq!(caps(b).len(), 3);
        let one = FcgiServiceBuilder::new()
            .backends([Backend::tcp("127.0.0.1:2"), Backend::tcp("127.0.0.1:3")])
            .tcp("127.0.0.1:1");
        assert_eq!(caps(one).len(), 1, ".tcp() still means the one backend");
    }
}
