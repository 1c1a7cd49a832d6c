//! When to restart a process that exited: at once, after a growing backoff, or not
//! until later (a crash loop). Pure: it is given the times, so it is tested without
//! processes or clocks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The restart settings of [`SpawnConfig`](super::SpawnConfig).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartConfig {
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) crash_failures: u32,
    pub(crate) crash_window: Duration,
    pub(crate) crash_retry: Duration,
    /// A clean exit sooner than this after the start waits out the rest.
    pub(crate) min_uptime: Duration,
}

/// How a process ended, as far as restarting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Status 0: the program retired itself on purpose (php-cgi after
    /// `PHP_FCGI_MAX_REQUESTS`, an application that recycles). Never a failure.
    Clean,
    /// A non-zero status, a signal nobody here sent, or a start that failed.
    Failed,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Start the process again now.
    Now,
    /// Start it again after this long.
    After(Duration),
    /// A crash loop: stop, and try one more start after this long.
    Stop(Duration),
}

/// One process slot's restart history.
#[derive(Debug)]
pub(crate) struct RestartPolicy {
    cfg: RestartConfig,
    /// Failures within the crash-loop window, oldest first.
    failures: VecDeque<Instant>,
    /// Failures in a row (the backoff grows with it).
    streak: u32,
}

impl RestartPolicy {
    pub(crate) fn new(cfg: RestartConfig) -> RestartPolicy {
        RestartPolicy {
            cfg,
            failures: VecDeque::new(),
            streak: 0,
        }
    }

    /// A process started at `started` ended at `now` with `exit`.
    pub(crate) fn on_exit(&mut self, started: Instant, now: Instant, exit: Exit) -> Next {
        let lived = now.saturating_duration_since(started);
        // A process that stayed up longer than the window was healthy: whatever came
        // before it no longer says anything about the next start.
        if lived >= self.cfg.crash_window {
            self.streak = 0;
        }
        match exit {
            Exit::Clean => {
                self.streak = 0;
                match self.cfg.min_uptime.checked_sub(lived) {
                    Some(rest) if !rest.is_zero() => Next::After(rest),
                    _ => Next::Now,
                }
            }
            Exit::Failed => {
                self.failures.push_back(now);
                while let Some(&first) = self.failures.front() {
                    if now.saturating_duration_since(first) > self.cfg.crash_window {
                        self.failures.pop_front();
                    } else {
                        break;
                    }
                }
                if self.failures.len() >= self.cfg.crash_failures as usize {
                    self.failures.clear();
                    self.streak = 0;
                    return Next::Stop(self.cfg.crash_retry);
                }
                self.streak += 1;
                match self.backoff() {
                    Some(wait) => Next::After(wait),
                    None => Next::Now,
                }
            }
        }
    }

    /// The wait before the next start: none for the first failure in a row (a process
    /// killed once comes back at once), then `backoff`, doubling, at most `max_backoff`.
    fn backoff(&self) -> Option<Duration> {
        let doublings = self.streak.checked_sub(2)?;
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        Some(
            self.cfg
                .backoff
                .checked_mul(factor)
                .unwrap_or(self.cfg.max_backoff)
                .min(self.cfg.max_backoff),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RestartConfig {
        RestartConfig {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            crash_failures: 5,
            crash_window: Duration::from_secs(10),
            crash_retry: Duration::from_secs(30),
            min_uptime: Duration::from_millis(100),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn failures_back_off_growing_and_a_crash_loop_stops() {
        let mut p = RestartPolicy::new(cfg());
        let t0 = Instant::now();
        let mut now = t0;
        let mut next = Vec::new();
        for _ in 0..5 {
            let started = now;
            now += MS;
            next.push(p.on_exit(started, now, Exit::Failed));
        }
        assert_eq!(
            next,
            [
                Next::Now,
                Next::After(100 * MS),
                Next::After(200 * MS),
                Next::After(300 * MS), // capped
                Next::Stop(Duration::from_secs(30)),
            ]
        );
        // After the stop the history starts over.
        assert_eq!(p.on_exit(now, now + MS, Exit::Failed), Next::Now);
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_stop() {
        let mut p = RestartPolicy::new(cfg());
        let mut now = Instant::now();
        for _ in 0..20 {
            let started = now;
            now += Duration::from_secs(3);
            assert_ne!(
                p.on_exit(started, now, Exit::Failed),
                Next::Stop(Duration::from_secs(30))
            );
        }
    }

    #[test]
    fn a_long_healthy_run_resets_the_backoff() {
        let mut p = RestartPolicy::new(cfg());
        let t = Instant::now();
        assert_eq!(p.on_exit(t, t + MS, Exit::Failed), Next::Now);
        assert_eq!(
            p.on_exit(t, t + 2 * MS, Exit::Failed),
            Next::After(100 * MS)
        );
        let later = t + Duration::from_secs(60);
        assert_eq!(p.on_exit(t, later, Exit::Failed), Next::Now);
    }

    #[test]
    fn clean_exits_restart_at_once_but_never_in_a_hot_loop() {
        let mut p = RestartPolicy::new(cfg());
        let t = Instant::now();
        for i in 1..100 {
            let started = t + Duration::from_secs(i);
            assert_eq!(
                p.on_exit(started, started + 150 * MS, Exit::Clean),
                Next::Now
            );
        }
        assert_eq!(p.on_exit(t, t + 30 * MS, Exit::Clean), Next::After(70 * MS));
        // Clean exits end a failure streak.
        assert_eq!(p.on_exit(t, t + MS, Exit::Failed), Next::Now);
        assert_eq!(
            p.on_exit(t, t + 2 * MS, Exit::Failed),
            Next::After(100 * MS)
        );
        assert_eq!(p.on_exit(t, t + 200 * MS, Exit::Clean), Next::Now);
        assert_eq!(p.on_exit(t, t + 201 * MS, Exit::Failed), Next::Now);
    }
}
