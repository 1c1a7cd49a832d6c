//! Publishing a service's counters through the [`metrics`](https://docs.rs/metrics) crate
//! facade (feature `metrics`), to Prometheus, StatsD or any other recorder.
//!
//! The request path keeps counting the way it always does, with relaxed atomics; a
//! [`Reporter`] reads [`FcgiService::stats`] and [`FcgiService::backend_stats`] and sets
//! the facade's counters (with `absolute`) and gauges from that snapshot. Nothing is
//! recorded per request, so the feature costs nothing until something reports.
//!
//! Two ways to refresh, both the same snapshot:
//!
//! - **Pull**: call [`Reporter::report_once`] in the `/metrics` handler right before
//!   rendering. Every scrape sees current figures and no task runs between scrapes
//!   (`examples/prometheus.rs`).
//! - **Push**: [`Reporter::spawn`] reports at an interval on the tokio runtime, for
//!   recorders that export on their own schedule; the task stops when the returned
//!   [`ReportTask`] is dropped.
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_fastcgi::{metrics::Reporter, FcgiService};
//!
//! # async fn run() {
//! let php = FcgiService::builder().unix("/run/php/php8.2-fpm.sock").build();
//! let reporter = Reporter::new(php.clone(), "/blog");
//! // Either, in the /metrics handler: `reporter.report_once(); render()`,
//! // or in the background, for as long as `task` lives:
//! let task = reporter.spawn(Duration::from_secs(10)).expect("inside a tokio runtime");
//! # drop(task);
//! # }
//! ```
//!
//! # Names
//!
//! Every series carries `mount` (the label given to [`Reporter::new`]); the
//! `fastcgi_backend_*` family also carries `backend` (the backend's `Display` form,
//! `tcp://10.0.0.1:9000` or `unix:/run/php/fpm.sock`), one series per backend of a fleet
//! (a one-backend service has one). The two families have distinct names so that summing
//! over backends never adds a request to its own attempts: a request retried on another
//! backend is one `fastcgi_requests_total` and two `fastcgi_backend_requests_total`.
//!
//! | name (`fastcgi_…` and `fastcgi_backend_…`) | type | extra label | from |
//! |---|---|---|---|
//! | `requests_total` | counter | | [`Stats::requests`] |
//! | `responses_total` | counter | `class` = `1xx` … `5xx` | [`Stats::responses_by_class`] |
//! | `failures_total` | counter | `cause` = `connect`, `queue_timeout`, `timeout`, `overloaded`, `broken`, `no_backend` | [`Stats::failures`] |
//! | `retries_total` | counter | | [`Stats::retries`] |
//! | `stale_retries_total` | counter | | [`PoolStats::stale_retries`] |
//! | `unserved_total` | counter | | [`Stats::unserved`] |
//! | `connections_opened_total` | counter | | [`PoolStats::connections_opened`] |
//! | `connections_reused_total` | counter | | [`PoolStats::connections_reused`] |
//! | `in_flight` | gauge | | [`PoolStats::busy`] (until the response body ends) |
//! | `connections_open` | gauge | | [`PoolStats::open`] |
//! | `connections_idle` | gauge | | [`PoolStats::idle`] |
//! | `queue_waiting` | gauge | | [`PoolStats::waiting`] |
//! | `queue_wait_seconds_count` | counter | | [`Stats::queue_wait`] `.count` |
//! | `queue_wait_seconds_sum` | gauge | | [`Stats::queue_wait`] `.total` |
//! | `queue_wait_seconds_max` | gauge | | [`Stats::queue_wait`] `.max` |
//! | `time_to_head_seconds_count` | counter | | [`Stats::time_to_head`] `.count` |
//! | `time_to_head_seconds_sum` | gauge | | [`Stats::time_to_head`] `.total` |
//! | `time_to_head_seconds_max` | gauge | | [`Stats::time_to_head`] `.max` |
//! | `fastcgi_retries_over_budget_total` (mount only) | counter | | [`Stats::retries_over_budget`] |
//! | `fastcgi_backend_in_rotation` (backend only) | gauge | | [`BackendStats::in_rotation`] (1 or 0) |
//! | `fastcgi_backend_ejections_total` (backend only) | counter | | [`BackendStats::ejections`] |
//! | `fastcgi_backend_connection_cap` (backend only) | gauge | | [`BackendStats::connection_cap`] |
//! | `fastcgi_backend_probes_total` (backend only) | counter | `result` = `ok`, `failed`, `skipped` | [`BackendStats::probes`] |
//!
//! The latency summaries are Prometheus-shaped (`rate(…_sum) / rate(…_count)` is the
//! mean over a window). `_sum` is a gauge because the facade's counters are integers;
//! it only grows. `_max` is the largest since the service was built, not per window.
//!
//! A backend that leaves a fleet (DNS, a discovery stream) is no longer reported; its
//! series keep their last values in the recorder unless the recorder forgets idle ones
//! (`metrics-exporter-prometheus`: `PrometheusBuilder::idle_timeout`).

mod publish;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::metrics::{Label, Recorder, SharedString};

use crate::FcgiService;
#[cfg(doc)]
use crate::{BackendStats, PoolStats, Stats};
use publish::{Scope, Sink};

/// Publishes one service's [`stats`](FcgiService::stats) and
/// [`backend_stats`](FcgiService::backend_stats) through the `metrics` facade, under a
/// `mount` label. Cheap to clone; see the [module docs](self) for the names.
#[derive(Clone)]
pub struct Reporter {
    service: FcgiService,
    mount: SharedString,
    /// Whether this reporter has given the recorder its help texts yet.
    described: Arc<AtomicBool>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("mount", &&*self.mount)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// A reporter for `service` (a clone of the one mounted), labelled `mount` (e.g. the
    /// prefix it is nested under, or any name that tells mounts apart).
    pub fn new(service: FcgiService, mount: impl Into<String>) -> Reporter {
        let mount: Arc<str> = Arc::from(mount.into());
        Reporter {
            service,
            mount: SharedString::from(mount),
            described: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The `mount` label.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// Takes one snapshot and sets every series from it, through the recorder in effect
    /// (the thread's local one, else the global one). The first call also describes the
    /// names (help text and unit); [`describe`](Reporter::describe) does that again,
    /// e.g. for a recorder installed later.
    pub fn report_once(&self) {
        ::metrics::with_recorder(|recorder| {
            if !self.described.swap(true, Ordering::Relaxed) {
                publish::describe(recorder);
            }
            self.report_to(recorder);
        });
    }

    /// Gives the recorder in effect a help text and unit for every name.
    pub fn describe(&self) {
        ::metrics::with_recorder(publish::describe);
        self.described.store(true, Ordering::Relaxed);
    }

    fn report_to(&self, recorder: &dyn Recorder) {
        let mount = [Label::new("mount", self.mount.clone())];
        let sink = Sink {
            recorder,
            labels: &mount,
        };
        sink.stats(Scope::Mount, &self.service.stats());
        for backend in self.service.backend_stats() {
            let labels = [
                Label::new("mount", self.mount.clone()),
                Label::new("backend", backend.backend.to_string()),
            ];
            let sink = Sink {
                recorder,
                labels: &labels,
            };
            sink.stats(Scope::Backend, &backend.stats);
            sink.health(
                backend.in_rotation,
                backend.ejections,
                backend.probes,
                backend.connection_cap,
            );
        }
    }

    /// Reports now and then every `period` on the current tokio runtime (to the global
    /// recorder), until the returned [`ReportTask`] is dropped. The task holds a clone
    /// of the service. A `period` of zero is taken as one second.
    ///
    /// # Errors
    ///
    /// When called outside a tokio runtime.
    pub fn spawn(self, period: Duration) -> Result<ReportTask, tokio::runtime::TryCurrentError> {
        let runtime = tokio::runtime::Handle::try_current()?;
        let period = if period.is_zero() {
            Duration::from_secs(1)
        } else {
            period
        };
        let task = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            // After a stall, one report is as good as several: do not catch up.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                self.report_once();
            }
        });
        Ok(ReportTask { task })
    }
}

/// The interval task of [`Reporter::spawn`]: it stops when this is dropped.
#[derive(Debug)]
#[must_use = "the reporting task stops when this is dropped"]
pub struct ReportTask {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReportTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}
