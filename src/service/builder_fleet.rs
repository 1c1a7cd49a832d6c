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
