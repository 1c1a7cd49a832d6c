//! Retrying on another backend: which failures allow it ([`classify`]) and how many
//! retries the fleet can afford ([`Budget`]).
//!
//! A failure is retried elsewhere only before any response byte, only when the request
//! body can be sent again, and only in two cases:
//! - [`Retry::Unprocessed`]: no application saw the request (connection refused, connect
//!   timeout, FCGI_OVERLOADED, FCGI_CANT_MPX_CONN; a stale kept-alive connection is
//!   retried on the same backend first, by the layer below). Always safe.
//! - [`Retry::MaybeProcessed`]: the backend took the request and then died without
//!   answering (EOF, reset, garbage before the head). The script may have run, so only
//!   idempotent methods are replayed unless the user opted in (nginx's
//!   `non_idempotent`).
//!
//! Timeouts of a request that is running (head, read) are not retried: the script is
//! probably still busy, and sending it a second time doubles the load that made it slow.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use super::health::Verdict;
use crate::error::{Error, ErrorKind, Timeout};

/// Whether a failed attempt may go to another backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// No application saw the request.
    Unprocessed,
    /// A backend took it and died before answering: it may have run.
    MaybeProcessed,
    /// Not on another backend.
    No,
}

/// What a failure says about its backend's health, and whether it may be retried
/// elsewhere. FCGI_OVERLOADED counts against health too: a backend that sheds every
/// request is as useless to the rotation as one that refuses connections.
pub(crate) fn classify(err: &Error) -> (Verdict, Retry) {
    match err.kind() {
        ErrorKind::Connect
        | ErrorKind::Timeout(Timeout::Connect)
        | ErrorKind::Overloaded
        | ErrorKind::CantMultiplex => (Verdict::Failed, Retry::Unprocessed),
        ErrorKind::Io | ErrorKind::Protocol => (Verdict::Failed, Retry::MaybeProcessed),
        ErrorKind::Timeout(Timeout::ResponseHead | Timeout::Read) => (Verdict::Failed, Retry::No),
        // It answered, badly: the application's fault, not the backend's availability.
        ErrorKind::InvalidResponseHead
        | ErrorKind::ResponseHeadTooLarge
        | ErrorKind::UnknownRole => (Verdict::Healthy, Retry::No),
        _ => (Verdict::Unknown, Retry::No),
    }
}

/// Retry budget settings (the builder documents their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetConfig {
    /// Retries earned per 100 successful requests.
    pub(crate) percent: u32,
    /// Retries allowed per second whatever the traffic, so a quiet fleet can fail over.
    pub(crate) min_per_sec: u32,
}

/// Seconds of the `min_per_sec` floor the bucket holds at most: the largest burst of
/// retries after a quiet spell, as tower's budget keeps deposits for 10 s.
const WINDOW_SECS: u64 = 10;

/// Fewest tokens the bucket holds when full, so a floor of 0 still allows a burst.
const MIN_CAPACITY: u64 = 10;

/// A token bucket in the manner of `tower::retry::budget`: each successful request
/// deposits `percent`/100 of a token, time deposits `min_per_sec` tokens a second, and
/// each retry withdraws one. When a fleet is dying there are few successes, so retries
/// fall to the floor instead of multiplying the load on what is left.
///
/// Lock-free: tokens are counted in thousandths in one atomic. A full bucket is not
/// written to, so busy fleets with no failures share the cache line read-only.
#[derive(Debug)]
pub(crate) struct Budget {
    cfg: BudgetConfig,
    epoch: Instant,
    /// Thousandths of a token.
    tokens: AtomicU64,
    /// Milliseconds since `epoch` up to which the floor has been paid in.
    refilled: AtomicU64,
    capacity: u64,
}

impl Budget {
    /// A full bucket.
    pub(crate) fn new(cfg: BudgetConfig) -> Budget {
        let capacity = (u64::from(cfg.min_per_sec) * WINDOW_SECS).max(MIN_CAPACITY) * 1000;
        Budget {
            cfg,
            epoch: Instant::now(),
            tokens: AtomicU64::new(capacity),
            refilled: AtomicU64::new(0),
            capacity,
        }
    }

    fn add(&self, milli: u64) {
        let cap = self.capacity;
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t < cap).then(|| t.saturating_add(milli).min(cap))
            });
    }

    /// A request succeeded.
    pub(crate) fn deposit(&self) {
        self.add(u64::from(self.cfg.percent) * 10);
    }

    /// Takes one retry from the bucket; false when it is empty.
    pub(crate) fn withdraw(&self) -> bool {
        let now = u64::try_from(
            Instant::now()
                .saturating_duration_since(self.epoch)
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let before = self.refilled.load(Ordering::Relaxed);
        if now > before
            && self
                .refilled
                .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // `min_per_sec` tokens a second is `min_per_sec` thousandths a millisecond.
            self.add((now - before).saturating_mul(u64::from(self.cfg.min_per_sec)));
        }
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                t.checked_sub(1000)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_allows_a_burst_then_the_floor() {
        let budget = Budget::new(BudgetConfig {
            percent: 20,
            min_per_sec: 2,
        });
        // 2/s × 10 s = 20 tokens, floored at 10: 20.
        let burst = (0..100).take_while(|_| budget.withdraw()).count();
        assert_eq!(burst, 20);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(budget.withdraw());
        assert!(budget.withdraw());
        assert!(!budget.withdraw(), "two a second once the burst is spent");
    }

    #[tokio::test(start_paused = true)]
    async fn successes_earn_retries_at_the_percentage() {
        let budget = Budget::new(BudgetConfig {
            percent: 20,
            min_per_sec: 0,
        });
        while budget.withdraw() {}
        for _ in 0..50 {
            budget.deposit();
        }
        // 50 × 0.2 = 10 retries, no more.
        let earned = (0..100).take_while(|_| budget.withdraw()).count();
        assert_eq!(earned, 10);
        // Time alone earns nothing with a zero floor.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!budget.withdraw());
    }

    #[test]
    fn failures_classify_by_whether_the_request_ran() {
        let (v, r) = classify(&Error::new(ErrorKind::Connect));
        assert_eq!((v, r), (Verdict::Failed, Retry::Unprocessed));
        let (v, r) = classify(&Error::new(ErrorKind::Overloaded));
        assert_eq!((v, r), (Verdict::Failed, Retry::Unprocessed));
        let eof = Error::io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert_eq!(classify(&eof), (Verdict::Failed, Retry::MaybeProcessed));
        let head = Error::timeout(Timeout::ResponseHead);
        assert_eq!(classify(&head), (Verdict::Failed, Retry::No));
        let bad = Error::new(ErrorKind::InvalidResponseHead);
        assert_eq!(classify(&bad), (Verdict::Healthy, Retry::No));
        let body = Error::new(ErrorKind::RequestBody);
        assert_eq!(classify(&body), (Verdict::Unknown, Retry::No));
        let queue = Error::timeout(Timeout::PoolWait);
        assert_eq!(classify(&queue), (Verdict::Unknown, Retry::No));
    }
}
