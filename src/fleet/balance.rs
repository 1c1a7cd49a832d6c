//! Choosing a backend: power of two choices over load (tower's `balance::p2c`), and the
//! cheap random numbers it needs.
//!
//! Why p2c rather than round robin or least-loaded: round robin ignores that one backend
//! has six workers and another one (the small one queues, the big one idles), and a
//! strict least-loaded scan sends every request of a burst to the same backend before
//! any of them has registered as load. Comparing two backends drawn at random avoids
//! both: the more loaded of any pair never wins, yet no single backend is herded onto.

use std::sync::atomic::{AtomicU64, Ordering};

/// The golden-ratio increment of splitmix64: consecutive states never repeat within 2^64.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A lock-free splitmix64 generator shared by all requests of a fleet.
///
/// Not cryptographic, and it need not be: it only has to spread requests evenly. One
/// relaxed `fetch_add` per number keeps it free of locks and of a dependency.
#[derive(Debug)]
pub(crate) struct Rng {
    state: AtomicU64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng {
            state: AtomicU64::new(seed),
        }
    }

    /// Seeded from the clock and an address, so that several gateways started together
    /// do not make the same choices in lockstep.
    pub(crate) fn from_entropy() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let marker = 0u8;
        let address = std::ptr::addr_of!(marker) as usize as u64;
        // Only the low bits of the clock vary between runs; fold the high ones in too.
        Rng::new((nanos as u64) ^ ((nanos >> 64) as u64) ^ address.rotate_left(32))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0), without modulo bias worth speaking of.
    pub(crate) fn below(&self, n: usize) -> usize {
        let wide = u128::from(self.next_u64()) * n as u128;
        usize::try_from(wide >> 64).unwrap_or(0)
    }
}

/// Power of two choices among `n` candidates: two distinct ones at random, the one
/// with the smaller `load` wins (a tie goes to the first drawn, itself random).
/// Returns the winner and its load; `None` when there are no candidates.
pub(crate) fn p2c<L: PartialOrd>(
    n: usize,
    rng: &Rng,
    load: impl Fn(usize) -> L,
) -> Option<(usize, L)> {
    match n {
        0 => None,
        1 => Some((0, load(0))),
        _ => {
            let a = rng.below(n);
            // Draw the second from the other n - 1, so the pair is always distinct.
            let mut b = rng.below(n - 1);
            if b >= a {
                b += 1;
            }
            let (load_a, load_b) = (load(a), load(b));
            Some(if load_b < load_a {
                (b, load_b)
            } else {
                (a, load_a)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let rng = Rng::new(7);
        let mut seen = [0usize; 5];
        for _ in 0..10_000 {
            seen[rng.below(5)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 1500), "{seen:?}");
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn p2c_never_picks_the_most_loaded_of_three() {
        let rng = Rng::new(1);
        let loads = [5, 0, 9];
        let mut picks = [0usize; 3];
        for _ in 0..3000 {
            let (i, _) = p2c(3, &rng, |i| loads[i]).unwrap();
            picks[i] += 1;
        }
        assert_eq!(picks[2], 0, "{picks:?}");
        // The idle one wins every pair it is in: two pairs of three.
        assert!(picks[1] > 1800, "{picks:?}");
        assert!(picks[0] > 700, "{picks:?}");
    }

    #[test]
    fn p2c_handles_zero_and_one_candidate() {
        let rng = Rng::new(3);
        assert_eq!(p2c(0, &rng, |_| 0), None);
        assert_eq!(p2c(1, &rng, |_| 7), Some((0, 7)));
    }

    #[test]
    fn equal_loads_spread_evenly() {
        let rng = Rng::from_entropy();
        let mut picks = [0usize; 4];
        for _ in 0..8000 {
            picks[p2c(4, &rng, |_| 0).unwrap().0] += 1;
        }
        assert!(picks.iter().all(|&c| c > 1500), "{picks:?}");
    }
}
