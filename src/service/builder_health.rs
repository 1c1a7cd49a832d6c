//! Active health checks: [`HealthCheck`] (what to ask each backend, how often) and the
//! builder setter that turns them on. (The defaults table is on the builder, in
//! `builder.rs`.)

use std::time::Duration;

use super::FcgiServiceBuilder;
use crate::defaults;

/// An active health check: each backend of the service is probed every
/// [`interval`](HealthCheck::interval), beside passive health (which watches real
/// requests). [`failures`](HealthCheck::failures) failed probes in a row eject a backend
/// (for the same growing [`ejection_backoff`](FcgiServiceBuilder::ejection_backoff) as a
/// passive ejection); one answered probe readmits an ejected backend at once, without
/// waiting for its backoff or a trial request. While its latest probe fails, an ejected
/// backend is not given a trial request either. A service with a single backend never
/// ejects it, probes or not; its probes are still counted
/// ([`BackendStats::probes`](crate::BackendStats::probes)).
///
/// A probe is skipped (counted, not judged) when it could only say something about the
/// service's own pool: a GET_VALUES probe while the backend's pool has every connection
/// it may open already open (php-fpm pins a worker to each kept-alive connection, so a
/// new connection would wait for a worker the pool itself holds), or that timed out
/// while the pool had idle connections (same reason: a cap above the backend's
/// workers); a ping while every pooled connection is busy (the ping would queue behind
/// real requests). A backend that really hangs is still caught by passive health, on
/// the requests it does not answer.
///
/// ```
/// use std::time::Duration;
/// use tower_fastcgi::{Backend, FcgiService, HealthCheck};
///
/// let php = FcgiService::builder()
///     .tcp("10.0.0.1:9000")
///     .add_backend(Backend::tcp("10.0.0.2:9000"))
///     // php-fpm pool: ping.path = /fpm-ping
///     .health_check(HealthCheck::ping("/fpm-ping").interval(Duration::from_secs(5)))
///     .build();
/// # let _ = php;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub(crate) probe: Probe,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) failures: u32,
}

/// What a probe asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// FCGI_GET_VALUES on a connection of its own: any answer, even an empty one or
    /// FCGI_UNKNOWN_TYPE, is alive.
    GetValues,
    /// A Responder request whose SCRIPT_NAME is this path, on a pooled connection:
    /// status 200 is alive.
    Ping(String),
}

impl HealthCheck {
    /// Probe with FCGI_GET_VALUES on a connection of its own, closed after the answer:
    /// the process is alive when it answers anything (an empty answer too, as flup
    /// gives under Python 3); refused, timed out, closed without an answer or garbage is
    /// a failure. It checks the FastCGI process, not the application (a PHP fatal error
    /// in every script still passes). Not for applications that serve one connection
    /// at a time (a single-process libfcgi app answers no query while it serves a
    /// kept-alive connection); use [`ping`](HealthCheck::ping) or passive health there.
    pub fn get_values() -> HealthCheck {
        HealthCheck::with(Probe::GetValues)
    }

    /// Probe php-fpm's `ping.path`: a GET whose SCRIPT_NAME (what php-fpm matches the
    /// ping path against) is `path`, sent on a pooled connection like a request; a 200
    /// answer is alive (php-fpm answers `pong`, its `ping.response`), anything else,
    /// including a 404 from a pool without `ping.path`, is a failure. The script file
    /// need not exist. Any other application answering 200 at `path` works the same way.
    pub fn ping(path: impl Into<String>) -> HealthCheck {
        HealthCheck::with(Probe::Ping(path.into()))
    }

    fn with(probe: Probe) -> HealthCheck {
        HealthCheck {
            probe,
            interval: defaults::HEALTH_CHECK_INTERVAL,
            timeout: defaults::HEALTH_CHECK_TIMEOUT,
            failures: defaults::HEALTH_CHECK_FAILURES,
        }
    }

    /// How often each backend is probed (all backends at once, each probe on its own).
    /// Zero is taken as one second. Default: 10 s
    /// ([`HEALTH_CHECK_INTERVAL`](defaults::HEALTH_CHECK_INTERVAL)).
    pub fn interval(mut self, every: Duration) -> HealthCheck {
        self.interval = if every.is_zero() {
            Duration::from_secs(1)
        } else {
            every
        };
        self
    }

    /// How long one probe may take, connecting included; then it failed. Default: 2 s
    /// ([`HEALTH_CHECK_TIMEOUT`](defaults::HEALTH_CHECK_TIMEOUT)).
    pub fn timeout(mut self, limit: Duration) -> HealthCheck {
        self.timeout = limit;
        self
    }

    /// Failed probes in a row that eject a backend; 0 never ejects (probes then only
    /// readmit and count). Default: 2
    /// ([`HEALTH_CHECK_FAILURES`](defaults::HEALTH_CHECK_FAILURES)): one late answer on a
    /// busy host is not an outage.
    pub fn failures(mut self, n: u32) -> HealthCheck {
        self.failures = n;
        self
    }
}

impl FcgiServiceBuilder {
    /// Active health checks (see [`HealthCheck`]): probe every backend at an interval,
    /// eject on failed probes, readmit on an answered one. They run in a task spawned
    /// at build (or by the first request, outside a runtime), which stops when the
    /// service and all its clones are dropped. Default: off (passive health only).
    pub fn health_check(mut self, check: HealthCheck) -> FcgiServiceBuilder {
        self.health.probe_eject_after = check.failures;
        self.health_check = Some(check);
        self
    }
}
