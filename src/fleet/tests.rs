//! The fleet with fake endpoints whose load a test sets: balancing, ejection, trials.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

#[derive(Debug, Default)]
pub(super) struct FakeLoad {
    pending: AtomicUsize,
    cap: usize,
}

impl Load for FakeLoad {
    fn load(&self) -> Loaded {
        let pending = self.pending.load(Ordering::SeqCst);
        Loaded {
            saturated: pending >= self.cap,
            pending,
        }
    }
}

pub(super) const HEALTH: HealthConfig = HealthConfig {
    eject_after: 3,
    backoff: Duration::from_secs(1),
    max_backoff: Duration::from_secs(30),
    probe_eject_after: 2,
    route_when_all_ejected: false,
};

const BUDGET: BudgetConfig = BudgetConfig {
    percent: 20,
    min_per_sec: 10,
};

pub(super) fn fleet(n: usize, cap: usize) -> Fleet<FakeLoad> {
    fleet_with(n, cap, HEALTH)
}

pub(super) fn fleet_with(n: usize, cap: usize, health: HealthConfig) -> Fleet<FakeLoad> {
    Fleet::new(
        (0..n).map(|i| {
            let load = FakeLoad {
                pending: AtomicUsize::new(0),
                cap,
            };
            (Backend::tcp(format!("127.0.0.1:{}", 9000 + i)), load)
        }),
        health,
        BUDGET,
    )
}

pub(super) fn set(fleet: &Fleet<FakeLoad>, i: usize, pending: usize) {
    fleet.members()[i]
        .service
        .pending
        .store(pending, Ordering::SeqCst);
}

pub(super) fn index(fleet: &Fleet<FakeLoad>, pick: &Pick<'_, FakeLoad>) -> usize {
    fleet
        .members()
        .iter()
        .position(|e| Arc::ptr_eq(e, pick.endpoint()))
        .unwrap()
}

/// Picks `n` times (each settled healthy) and counts where they went.
fn spread(fleet: &Fleet<FakeLoad>, n: usize) -> Vec<usize> {
    let mut counts = vec![0; fleet.members().len()];
    for _ in 0..n {
        let pick = fleet.pick(&[]).unwrap();
        counts[index(fleet, &pick)] += 1;
        pick.settle(Verdict::Healthy);
    }
    counts
}

pub(super) fn eject(fleet: &Fleet<FakeLoad>, i: usize) {
    for _ in 0..HEALTH.eject_after {
        let pick = Pick::new(fleet, Arc::clone(&fleet.members()[i]), false, false);
        pick.settle(Verdict::Failed);
    }
    assert!(!fleet.members()[i].in_rotation());
}

#[test]
fn the_less_loaded_of_two_always_wins() {
    let f = fleet(2, 10);
    set(&f, 0, 5);
    assert_eq!(spread(&f, 200), [0, 200]);
}

#[test]
fn the_most_loaded_of_three_is_never_chosen() {
    let f = fleet(3, 10);
    set(&f, 0, 2);
    set(&f, 1, 0);
    set(&f, 2, 7);
    let counts = spread(&f, 3000);
    assert_eq!(counts[2], 0, "{counts:?}");
    assert!(counts[1] > counts[0], "{counts:?}");
}

#[test]
fn a_saturated_pool_loses_to_any_with_room() {
    let f = fleet(3, 4);
    // Endpoint 0 is saturated though it queues less than endpoint 2 holds.
    set(&f, 0, 4);
    set(&f, 1, 4);
    set(&f, 2, 3);
    assert_eq!(spread(&f, 300), [0, 0, 300]);
    // All saturated: the least loaded pairs still win (no endpoint is refused).
    set(&f, 2, 9);
    let counts = spread(&f, 300);
    assert_eq!(counts.iter().sum::<usize>(), 300);
    assert_eq!(counts[2], 0, "{counts:?}");
}

#[test]
fn tried_endpoints_are_skipped_until_none_is_left() {
    let f = fleet(2, 4);
    let first = f.pick(&[]).unwrap();
    let tried = vec![Arc::clone(first.endpoint())];
    first.settle(Verdict::Healthy);
    let second = f.pick(&tried).unwrap();
    assert!(!Arc::ptr_eq(second.endpoint(), &tried[0]));
    let tried = vec![Arc::clone(&tried[0]), Arc::clone(second.endpoint())];
    second.settle(Verdict::Healthy);
    assert!(f.pick(&tried).is_none());
}

#[tokio::test(start_paused = true)]
async fn an_ejected_endpoint_gets_no_requests_then_exactly_one_trial() {
    let f = fleet(3, 4);
    eject(&f, 1);
    assert_eq!(spread(&f, 300)[1], 0);
    assert_eq!(f.members()[1].ejections(), 1);

    tokio::time::advance(HEALTH.backoff).await;
    let trial = f.pick(&[]).unwrap();
    assert_eq!(index(&f, &trial), 1, "a due trial goes first");
    assert!(trial.is_trial());
    // While the trial runs, everything else goes elsewhere.
    let others: Vec<_> = (0..50).map(|_| f.pick(&[]).unwrap()).collect();
    assert!(others.iter().all(|p| !p.is_trial() && index(&f, p) != 1));
    drop(others);
    trial.settle(Verdict::Healthy);
    assert!(f.members()[1].in_rotation());
    assert!(spread(&f, 300)[1] > 0);
}

#[tokio::test(start_paused = true)]
async fn a_trial_dropped_unsettled_is_given_to_the_next_request() {
    let f = fleet(2, 4);
    eject(&f, 0);
    tokio::time::advance(HEALTH.backoff).await;
    let trial = f.pick(&[]).unwrap();
    assert!(trial.is_trial());
    drop(trial);
    let again = f.pick(&[]).unwrap();
    assert!(again.is_trial() && index(&f, &again) == 0);
}

#[tokio::test(start_paused = true)]
async fn everything_ejected_gets_one_early_trial_per_backend_per_backoff() {
    let f = fleet(2, 4);
    eject(&f, 0);
    eject(&f, 1);
    // Nothing in rotation and nothing due: the one whose backoff ends first is tried
    // now, then the other; while both trials run, nothing.
    let first = f.pick(&[]).unwrap();
    let second = f.pick(&[]).unwrap();
    assert!(first.is_trial() && second.is_trial());
    assert_ne!(index(&f, &first), index(&f, &second));
    let first_until = f.members()[index(&f, &first)].health.out_until();
    assert!(first_until <= f.members()[index(&f, &second)].health.out_until());
    assert!(f.pick(&[]).is_none());
    // Failed trials: no other attempt within the first backoff (the 503 comes at once).
    first.settle(Verdict::Failed);
    second.settle(Verdict::Failed);
    assert!(f.pick(&[]).is_none());
    // Trials run again after it; the one that answers readmits its backend.
    tokio::time::advance(HEALTH.backoff).await;
    let again = f.pick(&[]).unwrap();
    assert!(again.is_trial());
    let i = index(&f, &again);
    again.settle(Verdict::Healthy);
    assert!(f.members()[i].in_rotation());
}

#[test]
fn a_lone_endpoint_is_never_ejected() {
    let f = fleet(1, 4);
    for _ in 0..20 {
        f.pick(&[]).unwrap().settle(Verdict::Failed);
    }
    assert!(f.members()[0].in_rotation());
    assert!(f.pick(&[]).is_some());
}

#[test]
fn changes_insert_and_remove_endpoints() {
    let f = fleet(2, 4);
    let removed = Arc::clone(&f.members()[0]);
    f.apply(Change::Remove(removed.key().clone()));
    assert_eq!(f.members().len(), 1);
    // Whoever still holds the removed endpoint (a request in flight) can finish.
    assert_eq!(removed.service.load().pending, 0);
    f.apply(Change::Insert(
        Backend::unix("/run/a.sock"),
        FakeLoad::default(),
    ));
    f.apply(Change::Insert(
        Backend::unix("/run/a.sock"),
        FakeLoad::default(),
    ));
    assert_eq!(f.to_string(), "tcp://127.0.0.1:9001, unix:/run/a.sock");
}

#[test]
fn inserting_a_member_again_keeps_its_pool_and_health() {
    let f = fleet(2, 4);
    set(&f, 0, 3);
    let key = f.members()[0].key().clone();
    assert!(f.apply(Change::Insert(key, FakeLoad::default())).is_none());
    assert_eq!(f.members().len(), 2);
    assert_eq!(
        f.members()[0].service.load().pending,
        3,
        "the same endpoint"
    );
}

#[test]
fn a_removed_endpoint_is_never_picked_even_from_an_old_snapshot() {
    let f = fleet(3, 4);
    let before = f.members();
    let gone = f
        .apply(Change::Remove(before[1].key().clone()))
        .expect("a member was removed");
    assert!(gone.is_removed() && Arc::ptr_eq(&gone, &before[1]));
    assert_eq!(
        before.len(),
        3,
        "a snapshot does not change under its reader"
    );
    for _ in 0..200 {
        let pick = f.pick(&[]).unwrap();
        assert!(!Arc::ptr_eq(pick.endpoint(), &gone));
        pick.settle(Verdict::Healthy);
    }
    assert!(
        f.apply(Change::Remove(gone.key().clone())).is_none(),
        "already gone"
    );
}

#[test]
fn removed_endpoints_stay_in_the_draining_list_until_drained() {
    let f = fleet(2, 4);
    set(&f, 0, 1);
    let key = f.members()[0].key().clone();
    f.apply(Change::Remove(key.clone()));
    let busy = |s: &FakeLoad| s.load().pending == 0;
    let draining = f.draining(busy);
    assert_eq!(draining.len(), 1);
    assert_eq!(draining[0].key(), &key);
    draining[0].service.pending.store(0, Ordering::SeqCst);
    assert!(f.draining(busy).is_empty(), "drained: forgotten");
    // The last member removed leaves an empty fleet, which picks nothing.
    f.apply(Change::Remove(f.members()[0].key().clone()));
    assert!(f.pick(&[]).is_none());
}

#[test]
fn a_fleet_grown_from_one_member_starts_ejecting() {
    let f = fleet(1, 4);
    f.apply(Change::Insert(
        Backend::tcp("127.0.0.1:9100"),
        FakeLoad {
            pending: AtomicUsize::new(0),
            cap: 4,
        },
    ));
    eject(&f, 0);
}

// ---- active health (probes) ----

#[tokio::test(start_paused = true)]
async fn failed_probes_eject_and_one_success_readmits_before_the_backoff_ends() {
    let fleet = fleet(2, 4);
    let b = Arc::clone(&fleet.members()[1]);
    fleet.record_probe(&b, false);
    assert!(b.in_rotation(), "one failed probe is noise");
    fleet.record_probe(&b, true);
    fleet.record_probe(&b, false);
    assert!(b.in_rotation(), "a success in between resets the count");
    fleet.record_probe(&b, false);
    assert!(!b.in_rotation());
    assert_eq!(b.ejections(), 1);
    assert!(
        spread(&fleet, 20)[1] == 0,
        "an ejected backend gets nothing"
    );
    // Well before the backoff (at least 500 ms) ends, a probe answers: back at once.
    tokio::time::advance(Duration::from_millis(10)).await;
    fleet.record_probe(&b, true);
    assert!(b.in_rotation());
    assert!(spread(&fleet, 50)[1] > 0);
}

#[tokio::test(start_paused = true)]
async fn no_trial_request_while_the_latest_probe_fails() {
    let fleet = fleet(2, 4);
    let b = Arc::clone(&fleet.members()[1]);
    // Passive ejection, then the backoff runs out while the probes keep failing.
    eject(&fleet, 1);
    fleet.record_probe(&b, false);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(b.health.standing(Instant::now()), Standing::Out);
    assert_eq!(spread(&fleet, 20)[1], 0, "no request is spent as a trial");
    // A failed probe while already out does not eject again.
    assert_eq!(b.ejections(), 1);
    // The probe recovers: readmitted, no trial needed.
    fleet.record_probe(&b, true);
    assert!(b.in_rotation());
}

#[tokio::test(start_paused = true)]
async fn a_passive_ejection_still_readmits_on_its_trial_when_probes_say_nothing() {
    let fleet = fleet(2, 4);
    eject(&fleet, 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    let pick = fleet.pick(&[]).unwrap();
    assert!(pick.is_trial());
    // A probe readmits it while its trial runs; the trial's answer changes nothing more.
    fleet.record_probe(&fleet.members()[1], true);
    pick.settle(Verdict::Healthy);
    assert!(fleet.members()[1].in_rotation());
    assert_eq!(fleet.members()[1].ejections(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lone_backend_is_never_ejected_by_probes() {
    let fleet = fleet(1, 4);
    let only = Arc::clone(&fleet.members()[0]);
    for _ in 0..10 {
        fleet.record_probe(&only, false);
    }
    assert!(only.in_rotation());
    assert_eq!(only.ejections(), 0);
}
