//! Passive health: a backend that fails several requests in a row leaves the rotation
//! for a while, and comes back when one trial request succeeds.
//!
//! What counts ([`Verdict`]) is decided by the caller from the attempt's outcome, at the
//! response head (a body that breaks later is not counted); this module only keeps
//! score. The rules, and why:
//! - `eject_after` *consecutive* failures eject (nginx counts `max_fails` within
//!   `fail_timeout`; consecutive is simpler and does not eject a busy backend for a
//!   scattering of errors among thousands of answers);
//! - the first ejection lasts `backoff`, each further one in a row twice as long, up to
//!   `max_backoff`, so a backend that stays down is probed less and less often;
//! - each duration is jittered to between half and all of it ("equal jitter"), so the
//!   backends of a fleet that failed together (a network blip) do not return together,
//!   nor do several gateways probe a backend in lockstep;
//! - when the backoff expires, exactly one live request is sent as the trial; while it
//!   runs the backend stays out. Success readmits it and resets the backoff; failure
//!   ejects it again for longer; an attempt that says nothing about the backend (the
//!   client went away, its body failed) just frees the trial for the next request.
//!
//! Active health (optional, `record_probe`) runs beside it, fed by a probe task:
//! - `probe_eject_after` probe failures in a row eject a backend in rotation, with the
//!   same growing, jittered backoff as passive ejections (they share the streak);
//! - one probe success readmits an ejected backend at once, without waiting for its
//!   backoff or a trial request (the probe *is* the trial, and a cheaper one);
//! - while the latest probe failed, an ejected backend gets no trial request either,
//!   even after its backoff: the probe already says it is down, so a real request
//!   would only be spent to learn it again. A trial is due again once a probe stops
//!   failing (it readmits anyway) or when probes are off.
//!
//! Reads on the request path are one atomic load; the mutex is only taken to record an
//! outcome that changes something, or to claim a trial.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::balance::Rng;

/// Passive health settings (the builder documents their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthConfig {
    /// Consecutive failures that eject a backend; 0 never ejects.
    pub(crate) eject_after: u32,
    /// The first ejection's length (before jitter).
    pub(crate) backoff: Duration,
    /// The longest ejection (before jitter).
    pub(crate) max_backoff: Duration,
    /// Consecutive failed probes that eject a backend (active health; unused without
    /// probes); 0 never ejects on probes.
    pub(crate) probe_eject_after: u32,
    /// With every backend out, send requests to the ejected ones anyway
    /// (`fleet::outage`).
    pub(crate) route_when_all_ejected: bool,
}

/// What one attempt says about its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It answered (whatever the status): it is alive.
    Healthy,
    /// Refused, timed out, broke the protocol or the connection.
    Failed,
    /// Nothing either way (the client gave up, its request body failed).
    Unknown,
}

/// Where a backend stands right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    InRotation,
    /// Ejected, backoff still running (or its trial is in flight).
    Out,
    /// Ejected, backoff over: the next request may be its trial.
    TrialDue,
}

#[derive(Debug)]
pub(crate) struct Health {
    cfg: HealthConfig,
    epoch: Instant,
    /// 0 while in rotation; otherwise 1 + the millisecond (since `epoch`) when the
    /// backoff ends.
    out_until: AtomicU64,
    /// Outside the mutex: every success touches it, and only to read it.
    consecutive_failures: AtomicU32,
    /// Probes failed in a row (active health).
    probe_failures: AtomicU32,
    /// The latest probe failed: no trial request while ejected.
    probe_failing: AtomicBool,
    ejections: AtomicU64,
    state: Mutex<Score>,
}

#[derive(Debug, Default)]
struct Score {
    /// Ejections in a row without a success in between (the backoff's exponent).
    streak: u32,
    trial_in_flight: bool,
    /// When the latest trial began: early trials come at most once per `backoff`.
    last_trial: Option<Instant>,
}

impl Health {
    pub(crate) fn new(cfg: HealthConfig) -> Health {
        Health {
            cfg,
            epoch: Instant::now(),
            out_until: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            probe_failing: AtomicBool::new(false),
            ejections: AtomicU64::new(0),
            state: Mutex::new(Score::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Score> {
        // Nothing panics under this lock; a poisoned score is still a usable score.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn standing(&self, now: Instant) -> Standing {
        match self.out_until.load(Ordering::Acquire) {
            0 => Standing::InRotation,
            _ if self.probe_failing.load(Ordering::Acquire) => Standing::Out,
            until if self.millis(now) + 1 >= until => Standing::TrialDue,
            _ => Standing::Out,
        }
    }

    /// How many times the backend was ejected.
    pub(crate) fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Claims the trial of an ejected backend whose backoff is over; false if it is not
    /// due or another request already holds it.
    pub(crate) fn begin_trial(&self, now: Instant) -> bool {
        let mut score = self.lock();
        if score.trial_in_flight || self.standing(now) != Standing::TrialDue {
            return false;
        }
        score.trial_in_flight = true;
        score.last_trial = Some(now);
        true
    }

    /// Claims a trial before the backoff is over, for when no backend of the fleet is in
    /// rotation or due (see `Fleet::pick`); false if the backend is in rotation, its
    /// latest probe failed, a trial already runs, or one began less than the first
    /// `backoff` ago (so a fleet that stays down gets one attempt per backend per
    /// `backoff`, not one per request).
    pub(crate) fn begin_early_trial(&self, now: Instant) -> bool {
        let mut score = self.lock();
        let recent = score
            .last_trial
            .is_some_and(|at| now.saturating_duration_since(at) < self.cfg.backoff);
        if score.trial_in_flight
            || recent
            || self.out_until.load(Ordering::Acquire) == 0
            || self.probe_failing.load(Ordering::Acquire)
        {
            return false;
        }
        score.trial_in_flight = true;
        score.last_trial = Some(now);
        true
    }

    /// The latest active health probe failed.
    pub(crate) fn probe_failing(&self) -> bool {
        self.probe_failing.load(Ordering::Acquire)
    }

    /// A request routed to the backend while it was out (panic routing) was answered:
    /// that readmits it as a trial's answer would.
    pub(crate) fn readmit(&self) -> Change {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if self.out_until.load(Ordering::Acquire) == 0 {
            return Change::None;
        }
        let mut score = self.lock();
        if self.out_until.load(Ordering::Acquire) == 0 {
            return Change::None;
        }
        score.streak = 0;
        self.out_until.store(0, Ordering::Release);
        Change::Readmitted
    }

    /// When the backoff ends (milliseconds since this health's epoch, plus one); 0 in
    /// rotation. Only compared between backends to find whose backoff ends first.
    pub(crate) fn out_until(&self) -> u64 {
        self.out_until.load(Ordering::Acquire)
    }

    /// Records an attempt's verdict; `trial` says it was the trial request. Returns
    /// what changed, for the caller to log with the backend's name.
    pub(crate) fn record(&self, verdict: Verdict, trial: bool, rng: &Rng) -> Change {
        let out = self.out_until.load(Ordering::Acquire) != 0;
        match verdict {
            Verdict::Healthy if !out && !trial => {
                // The hot path: one load, no lock, no write unless there is a count.
                if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                    self.consecutive_failures.store(0, Ordering::Relaxed);
                }
                Change::None
            }
            Verdict::Healthy => {
                self.consecutive_failures.store(0, Ordering::Relaxed);
                let mut score = self.lock();
                if trial {
                    score.trial_in_flight = false;
                }
                // A request that was already running when the backend was ejected
                // answered: encouraging, but only the trial readmits. A trial that
                // answers after a probe readmitted the backend changes nothing either.
                if !trial || self.out_until.load(Ordering::Acquire) == 0 {
                    return Change::None;
                }
                score.streak = 0;
                self.out_until.store(0, Ordering::Release);
                Change::Readmitted
            }
            Verdict::Unknown => {
                if trial {
                    self.lock().trial_in_flight = false;
                }
                Change::None
            }
            Verdict::Failed => {
                let failures = self
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                let mut score = self.lock();
                if trial {
                    score.trial_in_flight = false;
                } else if out || self.cfg.eject_after == 0 || failures < self.cfg.eject_after {
                    return Change::None;
                }
                self.eject(&mut score, rng)
            }
        }
    }

    /// Starts an ejection (the `streak`-th in a row) under the score's lock.
    fn eject(&self, score: &mut Score, rng: &Rng) -> Change {
        score.streak = score.streak.saturating_add(1);
        let length = self.backoff(score.streak, rng);
        let until = Instant::now() + length;
        self.out_until
            .store(self.millis(until).saturating_add(1), Ordering::Release);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        Change::Ejected(length)
    }

    /// Records a probe's result (active health; see the module docs for how it meets
    /// passive health).
    pub(crate) fn record_probe(&self, alive: bool, rng: &Rng) -> Change {
        let mut score = self.lock();
        let out = self.out_until.load(Ordering::Acquire) != 0;
        if alive {
            self.probe_failures.store(0, Ordering::Relaxed);
            self.probe_failing.store(false, Ordering::Release);
            if !out {
                return Change::None;
            }
            // Passive failures from before the ejection are old news now.
            self.consecutive_failures.store(0, Ordering::Relaxed);
            score.streak = 0;
            self.out_until.store(0, Ordering::Release);
            return Change::Readmitted;
        }
        self.probe_failing.store(true, Ordering::Release);
        let failures = self
            .probe_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if out || self.cfg.probe_eject_after == 0 || failures < self.cfg.probe_eject_after {
            return Change::None;
        }
        self.eject(&mut score, rng)
    }

    /// The `streak`-th ejection in a row: doubling from `backoff`, capped, jittered to
    /// between half and all of it.
    fn backoff(&self, streak: u32, rng: &Rng) -> Duration {
        let doublings = streak.saturating_sub(1).min(20);
        let full = self
            .cfg
            .backoff
            .saturating_mul(1 << doublings)
            .min(self.cfg.max_backoff);
        let half = full / 2;
        let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let extra = rng.below(
            usize::try_from(spread)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        half + Duration::from_millis(extra as u64)
    }
}

/// What recording a verdict changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// Left the rotation for this long.
    Ejected(Duration),
    /// Its trial succeeded: back in the rotation.
    Readmitted,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(eject_after: u32) -> Health {
        Health::new(HealthConfig {
            eject_after,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            probe_eject_after: 2,
            route_when_all_ejected: true,
        })
    }

    fn ejected_for(change: Change) -> Duration {
        match change {
            Change::Ejected(d) => d,
            other => panic!("expected an ejection, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn three_failures_in_a_row_eject_and_a_trial_readmits() {
        let rng = Rng::new(5);
        let h = health(3);
        assert_eq!(h.record(Verdict::Failed, false, &rng), Change::None);
        assert_eq!(h.record(Verdict::Failed, false, &rng), Change::None);
        // A success in between resets the count.
        h.record(Verdict::Healthy, false, &rng);
        h.record(Verdict::Failed, false, &rng);
        h.record(Verdict::Failed, false, &rng);
        assert_eq!(h.standing(Instant::now()), Standing::InRotation);
        let length = ejected_for(h.record(Verdict::Failed, false, &rng));
        assert!(length >= Duration::from_millis(500) && length <= Duration::from_secs(1));
        assert_eq!(h.standing(Instant::now()), Standing::Out);
        assert!(
            !h.begin_trial(Instant::now()),
            "no trial before the backoff ends"
        );
        assert_eq!(h.ejections(), 1);

        tokio::time::advance(length).await;
        assert_eq!(h.standing(Instant::now()), Standing::TrialDue);
        assert!(h.begin_trial(Instant::now()));
        assert!(!h.begin_trial(Instant::now()), "one trial at a time");
        assert_eq!(h.record(Verdict::Healthy, true, &rng), Change::Readmitted);
        assert_eq!(h.standing(Instant::now()), Standing::InRotation);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_trials_double_the_backoff_up_to_the_cap() {
        let rng = Rng::new(9);
        let h = health(1);
        let mut lengths = Vec::new();
        let mut change = h.record(Verdict::Failed, false, &rng);
        for _ in 0..6 {
            let length = ejected_for(change);
            lengths.push(length);
            tokio::time::advance(length).await;
            assert!(h.begin_trial(Instant::now()));
            change = h.record(Verdict::Failed, true, &rng);
        }
        // Full lengths 1, 2, 4, 8, 8, 8 s, each jittered to [half, full].
        for (length, full) in lengths.iter().zip([1u64, 2, 4, 8, 8, 8]) {
            let full = Duration::from_secs(full);
            assert!(*length >= full / 2 && *length <= full, "{lengths:?}");
        }
        assert_eq!(h.ejections(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_trial_frees_the_trial_for_the_next_request() {
        let rng = Rng::new(2);
        let h = health(1);
        let length = ejected_for(h.record(Verdict::Failed, false, &rng));
        tokio::time::advance(length).await;
        assert!(h.begin_trial(Instant::now()));
        h.record(Verdict::Unknown, true, &rng);
        assert_eq!(h.standing(Instant::now()), Standing::TrialDue);
        assert!(h.begin_trial(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn late_answers_do_not_readmit_and_late_failures_do_not_extend() {
        let rng = Rng::new(4);
        let h = health(1);
        ejected_for(h.record(Verdict::Failed, false, &rng));
        // Requests that were in flight when it was ejected finish now.
        assert_eq!(h.record(Verdict::Healthy, false, &rng), Change::None);
        assert_eq!(h.record(Verdict::Failed, false, &rng), Change::None);
        assert_eq!(h.standing(Instant::now()), Standing::Out);
        assert_eq!(h.ejections(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_never_ejects() {
        let rng = Rng::new(4);
        let h = health(0);
        for _ in 0..100 {
            assert_eq!(h.record(Verdict::Failed, false, &rng), Change::None);
        }
        assert_eq!(h.standing(Instant::now()), Standing::InRotation);
    }
}
