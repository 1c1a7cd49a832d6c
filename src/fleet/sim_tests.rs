//! A discrete-event simulation behind the choice of the balancing signal: power of two
//! choices over in-flight requests (what `Fleet::pick` uses) against peak-EWMA latency ×
//! in-flight (`tower::balance`'s `PeakEwma`), on fleets shaped like the ones the fleet
//! issue names. Closed loop like wrk: `clients` each send the next request when the
//! previous one answers. Deterministic (seeded), so it can assert what it found; run
//! `cargo test --lib sim_tests -- --nocapture` to see the table.
//!
//! Finding (2026-12-01, the table is printed; 60 s simulated per cell):
//!
//! | fleet | in-flight: share, mean, p99 | peak-EWMA: share, mean, p99 |
//! |---|---|---|
//! | 1 vs 6 workers, 20 ms, 16 clients | 14/86 %, 45.7 ms, 165 ms | 14/86 %, 45.7 ms, 102 ms |
//! | 3 × 4 workers, one 3× slower, 12 clients | 42/42/15 %, 7.0 ms, 21.7 ms | 44/44/11 %, 6.9 ms, 16.2 ms |
//! | 3 × 4 workers, equal, 32 clients | 33 % each, 13.3 ms, 15.4 ms | 33 % each, 13.3 ms, 15.5 ms |
//!
//! The two place load the same way and give the same mean; peak-EWMA has the better
//! tail on uneven fleets (it remembers that the small backend answers slowly while it
//! queues). In-flight counting stays the default: it needs no clock read and no latency
//! sample per request, and a latency signal is fooled by long streamed responses (a
//! 50 MiB download is not a slow backend) unless it is measured to the head, where it
//! misses the body's load. A latency-weighted option is future work; this simulation is
//! where to try one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::balance::{Rng, p2c};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Policy {
    InFlight,
    PeakEwma,
}

/// One backend: `workers` requests at a time, each taking `service_us` (±10 %).
struct Backend {
    workers: usize,
    service_us: u64,
    busy: usize,
    queue: VecDeque<(u64, usize)>,
    /// Peak-EWMA estimate of the round trip, in µs, and when it was last updated.
    ewma_us: f64,
    ewma_at: u64,
    served: u64,
}

impl Backend {
    fn new(workers: usize, service_us: u64) -> Backend {
        Backend {
            workers,
            service_us,
            busy: 0,
            queue: VecDeque::new(),
            ewma_us: service_us as f64,
            ewma_at: 0,
            served: 0,
        }
    }

    fn in_flight(&self) -> usize {
        self.busy + self.queue.len()
    }

    /// tower's PeakEwma: a sample above the estimate replaces it, one below decays
    /// into it with a 10 s time constant.
    fn observe(&mut self, now: u64, rtt_us: u64) {
        let rtt = rtt_us as f64;
        if rtt > self.ewma_us {
            self.ewma_us = rtt;
        } else {
            let elapsed = now.saturating_sub(self.ewma_at) as f64;
            let w = (-elapsed / 10_000_000.0).exp();
            self.ewma_us = self.ewma_us * w + rtt * (1.0 - w);
        }
        self.ewma_at = now;
    }
}

struct Outcome {
    share: Vec<f64>,
    mean_ms: f64,
    p99_ms: f64,
}

/// Runs `clients` closed-loop clients for `duration_us` of simulated time.
fn run(policy: Policy, shape: &[(usize, u64)], clients: usize, duration_us: u64) -> Outcome {
    let rng = Rng::new(42);
    let mut backends: Vec<Backend> = shape.iter().map(|&(w, s)| Backend::new(w, s)).collect();
    // Completions: (time, backend, request start).
    let mut events: BinaryHeap<Reverse<(u64, usize, u64)>> = BinaryHeap::new();
    let mut latencies: Vec<u64> = Vec::new();

    let jitter = |base: u64| base * 9 / 10 + (rng.next_u64() % (base / 5 + 1));
    let send = |now: u64, backends: &mut Vec<Backend>, events: &mut BinaryHeap<_>| {
        let chosen = match policy {
            Policy::InFlight => p2c(backends.len(), &rng, |i| backends[i].in_flight()).map(|c| c.0),
            Policy::PeakEwma => p2c(backends.len(), &rng, |i| {
                backends[i].ewma_us * (backends[i].in_flight() + 1) as f64
            })
            .map(|c| c.0),
        }
        .unwrap_or(0);
        let b = &mut backends[chosen];
        if b.busy < b.workers {
            b.busy += 1;
            events.push(Reverse((now + jitter(b.service_us), chosen, now)));
        } else {
            b.queue.push_back((now, chosen));
        }
    };
    for _ in 0..clients {
        send(0, &mut backends, &mut events);
    }
    while let Some(Reverse((now, i, started))) = events.pop() {
        if now > duration_us {
            break;
        }
        latencies.push(now - started);
        let b = &mut backends[i];
        b.served += 1;
        b.observe(now, now - started);
        b.busy -= 1;
        if let Some((queued_at, _)) = b.queue.pop_front() {
            b.busy += 1;
            let done = now + jitter(b.service_us);
            events.push(Reverse((done, i, queued_at)));
        }
        send(now, &mut backends, &mut events);
    }
    let total: u64 = backends.iter().map(|b| b.served).sum();
    latencies.sort_unstable();
    let mean = latencies.iter().sum::<u64>() as f64 / latencies.len().max(1) as f64;
    let p99 = latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or(0);
    Outcome {
        share: backends
            .iter()
            .map(|b| b.served as f64 / total.max(1) as f64)
            .collect(),
        mean_ms: mean / 1000.0,
        p99_ms: p99 as f64 / 1000.0,
    }
}

/// A simulated fleet: a name, its backends as (workers, µs per request), its clients.
type Scenario = (&'static str, &'static [(usize, u64)], usize);

#[test]
fn in_flight_places_load_as_well_as_peak_ewma_on_the_fleets_that_matter() {
    // (name, backends as (workers, µs per request), clients)
    let scenarios: [Scenario; 3] = [
        ("1 vs 6 workers, 20 ms", &[(1, 20_000), (6, 20_000)], 16),
        (
            "3 x 4 workers, one 3x slower",
            &[(4, 5_000), (4, 5_000), (4, 15_000)],
            12,
        ),
        (
            "3 x 4 workers, equal",
            &[(4, 5_000), (4, 5_000), (4, 5_000)],
            32,
        ),
    ];
    for (name, shape, clients) in scenarios {
        let fl = run(Policy::InFlight, shape, clients, 60_000_000);
        let ew = run(Policy::PeakEwma, shape, clients, 60_000_000);
        let pct = |o: &Outcome| {
            o.share
                .iter()
                .map(|s| format!("{:.0}%", s * 100.0))
                .collect::<Vec<_>>()
                .join("/")
        };
        println!(
            "{name:32} in-flight: share {} mean {:.1} ms p99 {:.1} ms | peak-EWMA: share {} mean {:.1} ms p99 {:.1} ms",
            pct(&fl),
            fl.mean_ms,
            fl.p99_ms,
            pct(&ew),
            ew.mean_ms,
            ew.p99_ms
        );
        // What the choice rests on: in-flight counting is never clearly worse.
        assert!(
            fl.mean_ms <= ew.mean_ms * 1.25,
            "{name}: in-flight {:.1} ms against peak-EWMA {:.1} ms",
            fl.mean_ms,
            ew.mean_ms
        );
    }
    // The fleet issue's requirement, in the simulation too: 6 workers get ≥ 2x the load.
    let uneven = run(
        Policy::InFlight,
        &[(1, 20_000), (6, 20_000)],
        16,
        60_000_000,
    );
    assert!(
        uneven.share[1] >= 2.0 * uneven.share[0],
        "{:?}",
        uneven.share
    );
}
