//! Turning one [`Stats`] snapshot into metric values, and the help text of every name.
//!
//! The names are `&'static str` built with `concat!`, so a report allocates only the
//! label vectors (whose values are reference-counted strings), never a name.

use ::metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};

use crate::{Failures, Latency, PoolStats, Probes, Stats};

/// Which series family a snapshot goes to: the whole service (`fastcgi_*`, labelled
/// `mount`) or one backend (`fastcgi_backend_*`, labelled `mount` and `backend`).
///
/// Separate names rather than one name with an optional `backend` label, so that
/// `sum by (mount) (fastcgi_requests_total)` never adds a request to its own attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Mount,
    Backend,
}

/// The full name of a series in a scope, as a `&'static str`.
macro_rules! name {
    ($scope:expr, $suffix:literal) => {
        match $scope {
            Scope::Mount => concat!("fastcgi_", $suffix),
            Scope::Backend => concat!("fastcgi_backend_", $suffix),
        }
    };
}

static METADATA: Metadata<'static> =
    Metadata::new("tower_fastcgi", Level::INFO, Some(module_path!()));

/// Where the values of one snapshot go: a recorder and the labels every series carries.
pub(super) struct Sink<'a> {
    pub(super) recorder: &'a dyn Recorder,
    pub(super) labels: &'a [Label],
}

impl Sink<'_> {
    fn key(&self, name: &'static str, extra: Option<Label>) -> Key {
        let mut labels = Vec::with_capacity(self.labels.len() + 1);
        labels.extend_from_slice(self.labels);
        labels.extend(extra);
        Key::from_parts(name, labels)
    }

    fn counter(&self, name: &'static str, extra: Option<Label>, value: u64) {
        let key = self.key(name, extra);
        self.recorder
            .register_counter(&key, &METADATA)
            .absolute(value);
    }

    fn gauge(&self, name: &'static str, value: f64) {
        let key = self.key(name, None);
        self.recorder.register_gauge(&key, &METADATA).set(value);
    }

    /// Publishes everything a [`Stats`] holds. The destructuring is exhaustive on
    /// purpose: a field added to `Stats` does not compile here until it is published
    /// (or deliberately skipped).
    pub(super) fn stats(&self, scope: Scope, stats: &Stats) {
        let Stats {
            pool,
            requests,
            responses_by_class,
            failures,
            queue_wait,
            time_to_head,
            retries,
            retries_over_budget,
            unserved,
        } = *stats;
        self.counter(name!(scope, "requests_total"), None, requests);
        for (class, count) in ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .into_iter()
            .zip(responses_by_class)
        {
            let label = Label::from_static_parts("class", class);
            self.counter(name!(scope, "responses_total"), Some(label), count);
        }
        self.failures(name!(scope, "failures_total"), failures);
        self.counter(name!(scope, "retries_total"), None, retries);
        // Only the service draws on the retry budget; the per-backend figure is always 0.
        if scope == Scope::Mount {
            self.counter(
                name!(scope, "retries_over_budget_total"),
                None,
                retries_over_budget,
            );
        }
        self.counter(name!(scope, "unserved_total"), None, unserved);
        self.pool(scope, pool);
        self.latency(
            [
                name!(scope, "queue_wait_seconds_count"),
                name!(scope, "queue_wait_seconds_sum"),
                name!(scope, "queue_wait_seconds_max"),
            ],
            queue_wait,
        );
        self.latency(
            [
                name!(scope, "time_to_head_seconds_count"),
                name!(scope, "time_to_head_seconds_sum"),
                name!(scope, "time_to_head_seconds_max"),
            ],
            time_to_head,
        );
    }

    /// What passive and active health know about one backend.
    pub(super) fn health(&self, in_rotation: bool, ejections: u64, probes: Probes, cap: usize) {
        self.gauge(
            "fastcgi_backend_connection_cap",
            u32::try_from(cap).map_or(f64::MAX, f64::from),
        );
        self.gauge(
            "fastcgi_backend_in_rotation",
            f64::from(u8::from(in_rotation)),
        );
        self.counter("fastcgi_backend_ejections_total", None, ejections);
        let Probes {
            ok,
            failed,
            skipped,
        } = probes;
        for (result, count) in [("ok", ok), ("failed", failed), ("skipped", skipped)] {
            let label = Label::from_static_parts("result", result);
            self.counter("fastcgi_backend_probes_total", Some(label), count);
        }
    }

    fn failures(&self, name: &'static str, failures: Failures) {
        let Failures {
            connect,
            queue_timeout,
            timeout,
            overloaded,
            broken,
            no_backend,
        } = failures;
        for (cause, count) in [
            ("connect", connect),
            ("queue_timeout", queue_timeout),
            ("timeout", timeout),
            ("overloaded", overloaded),
            ("broken", broken),
            ("no_backend", no_backend),
        ] {
            self.counter(name, Some(Label::from_static_parts("cause", cause)), count);
        }
    }

    fn pool(&self, scope: Scope, pool: PoolStats) {
        let PoolStats {
            open,
            busy,
            idle,
            waiting,
            connections_opened,
            connections_reused,
            stale_retries,
        } = pool;
        // Pool sizes are small integers: exact as f64.
        let size = |n: usize| u32::try_from(n).map_or(f64::MAX, f64::from);
        self.gauge(name!(scope, "in_flight"), size(busy));
        self.gauge(name!(scope, "connections_open"), size(open));
        self.gauge(name!(scope, "connections_idle"), size(idle));
        self.gauge(name!(scope, "queue_waiting"), size(waiting));
        self.counter(
            name!(scope, "connections_opened_total"),
            None,
            connections_opened,
        );
        self.counter(
            name!(scope, "connections_reused_total"),
            None,
            connections_reused,
        );
        self.counter(name!(scope, "stale_retries_total"), None, stale_retries);
    }

    /// A latency summary as Prometheus expects one: `_count` is a counter; `_sum` is a
    /// gauge only because the facade's counters are integers (it only grows, and its
    /// `_sum` suffix keeps PromQL's `rate()` from warning); `_max` is the largest since
    /// the service was built.
    fn latency(&self, [count, sum, max]: [&'static str; 3], latency: Latency) {
        let Latency {
            count: measured,
            total,
            max: largest,
        } = latency;
        self.counter(count, None, measured);
        self.gauge(sum, total.as_secs_f64());
        self.gauge(max, largest.as_secs_f64());
    }
}

/// Which kind of series a name is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Every series suffix: its kind, unit, help text, and whether the mount family has it
/// (`Some` = the mount help text) and the backend family (`Some` = its help text).
type Described = (
    &'static str,
    Kind,
    Option<Unit>,
    Option<&'static str>,
    Option<&'static str>,
);

#[rustfmt::skip]
const DESCRIBED: &[Described] = &[
    ("requests_total", Kind::Counter, None,
        Some("Requests handed to the backends (retries count once)"),
        Some("Attempts sent to this backend (a retried request counts on each)")),
    ("responses_total", Kind::Counter, None,
        Some("Response heads received, by status class"),
        Some("Response heads received from this backend, by status class")),
    ("failures_total", Kind::Counter, None,
        Some("Requests that failed before a response head, by cause"),
        Some("Attempts on this backend that failed before a response head, by cause")),
    ("retries_total", Kind::Counter, None,
        Some("Requests sent again on another backend"),
        Some("Attempts on this backend that failed and moved to another")),
    ("retries_over_budget_total", Kind::Counter, None,
        Some("Retries not made because the retry budget was empty"), None),
    ("unserved_total", Kind::Counter, None,
        Some("New connections left unserved while workers sat on idle ones (a worker was freed)"),
        Some("New connections to this backend left unserved while its workers sat on idle ones")),
    ("connection_cap", Kind::Gauge, None, None,
        Some("Connections this backend may have open now (lowered while unserved connections are seen)")),
    ("stale_retries_total", Kind::Counter, None,
        Some("Requests retried on a fresh connection after a stale pooled one"),
        Some("Requests retried on a fresh connection to this backend after a stale one")),
    ("connections_opened_total", Kind::Counter, None,
        Some("Backend connections opened"), Some("Connections opened to this backend")),
    ("connections_reused_total", Kind::Counter, None,
        Some("Requests sent on a kept-alive connection"),
        Some("Requests sent on a kept-alive connection to this backend")),
    ("in_flight", Kind::Gauge, None,
        Some("Requests holding a backend connection, until their response body ends"),
        Some("Requests holding a connection to this backend, until their body ends")),
    ("connections_open", Kind::Gauge, None,
        Some("Backend connections open or being opened"),
        Some("Connections to this backend open or being opened")),
    ("connections_idle", Kind::Gauge, None,
        Some("Idle backend connections kept for reuse"),
        Some("Idle connections to this backend kept for reuse")),
    ("queue_waiting", Kind::Gauge, None,
        Some("Requests waiting for a backend connection"),
        Some("Requests waiting for a connection to this backend")),
    ("queue_wait_seconds_count", Kind::Counter, None,
        Some("Waits for a backend connection measured (one per attempt)"),
        Some("Waits for a connection to this backend measured")),
    ("queue_wait_seconds_sum", Kind::Gauge, Some(Unit::Seconds),
        Some("Total time spent waiting for a backend connection"),
        Some("Total time spent waiting for a connection to this backend")),
    ("queue_wait_seconds_max", Kind::Gauge, Some(Unit::Seconds),
        Some("Longest wait for a backend connection"),
        Some("Longest wait for a connection to this backend")),
    ("time_to_head_seconds_count", Kind::Counter, None,
        Some("Response heads whose latency was measured"),
        Some("Response heads from this backend whose latency was measured")),
    ("time_to_head_seconds_sum", Kind::Gauge, Some(Unit::Seconds),
        Some("Total time from request start to complete response head"),
        Some("Total time from request start to this backend's complete response head")),
    ("time_to_head_seconds_max", Kind::Gauge, Some(Unit::Seconds),
        Some("Longest time from request start to complete response head"),
        Some("Longest time from request start to this backend's complete response head")),
    ("in_rotation", Kind::Gauge, None, None,
        Some("1 while this backend takes requests, 0 while health checks eject it")),
    ("ejections_total", Kind::Counter, None, None,
        Some("How often passive or active health ejected this backend")),
    ("probes_total", Kind::Counter, None, None,
        Some("Active health probes of this backend, by result (ok, failed, skipped)")),
];

/// Gives the recorder a help text (and unit) for every name (Prometheus `# HELP`).
pub(super) fn describe(recorder: &dyn Recorder) {
    for &(suffix, kind, unit, mount, backend) in DESCRIBED {
        for (prefix, help) in [("fastcgi_", mount), ("fastcgi_backend_", backend)] {
            let Some(help) = help else { continue };
            let name = KeyName::from(format!("{prefix}{suffix}"));
            let help = SharedString::const_str(help);
            match kind {
                Kind::Counter => recorder.describe_counter(name, unit, help),
                Kind::Gauge => recorder.describe_gauge(name, unit, help),
            }
        }
    }
}
