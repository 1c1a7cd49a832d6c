//! Every backend ejected: the early trial, then panic routing (`outage`).

use std::sync::Arc;

use super::tests::{FakeLoad, HEALTH, eject, fleet_with, index, set};
use super::*;

fn panicky(n: usize) -> Fleet<FakeLoad> {
    fleet_with(
        n,
        4,
        HealthConfig {
            route_when_all_ejected: true,
            ..HEALTH
        },
    )
}

fn out_until(f: &Fleet<FakeLoad>) -> Vec<u64> {
    f.members().iter().map(|e| e.health.out_until()).collect()
}

#[tokio::test(start_paused = true)]
async fn with_every_backend_out_requests_still_go_to_them_after_the_early_trials() {
    let f = panicky(3);
    for i in 0..3 {
        eject(&f, i);
    }
    let trials: Vec<_> = (0..3).map(|_| f.pick(&[]).unwrap()).collect();
    assert!(trials.iter().all(|t| t.is_trial()), "early trials first");
    // The trials run; the next requests are routed anyway, by load, not as trials.
    set(&f, 0, 3);
    let mut counts = [0; 3];
    for _ in 0..300 {
        let pick = f.pick(&[]).expect("panic routing: no 503");
        assert!(!pick.is_trial() && pick.panic);
        counts[index(&f, &pick)] += 1;
        // Said nothing: the backend stays out.
        drop(pick);
    }
    assert!(counts[0] < counts[1] && counts[0] < counts[2], "{counts:?}");
    assert!(f.members().iter().all(|e| !e.in_rotation()));
}

#[tokio::test(start_paused = true)]
async fn a_panic_routed_answer_readmits_and_a_failure_does_not_lengthen_the_backoff() {
    let f = panicky(2);
    eject(&f, 0);
    eject(&f, 1);
    let trials = [f.pick(&[]).unwrap(), f.pick(&[]).unwrap()];
    let before = out_until(&f);
    let failed = f.pick(&[]).unwrap();
    let i = index(&f, &failed);
    failed.settle(Verdict::Failed);
    assert_eq!(out_until(&f), before, "not the trial: no longer backoff");
    assert_eq!(f.members()[i].ejections(), 1);
    let answered = f.pick(&[]).unwrap();
    let j = index(&f, &answered);
    answered.settle(Verdict::Healthy);
    assert!(f.members()[j].in_rotation(), "readmitted by its answer");
    // Back to normal balancing: the readmitted one takes the requests, as a member.
    let next = f.pick(&[]).unwrap();
    assert!(!next.panic && index(&f, &next) == j);
    // The trial on it that answers later changes nothing; the other's failing trial
    // ejects it again, for longer.
    for t in trials {
        let k = index(&f, &t);
        t.settle(if k == j {
            Verdict::Healthy
        } else {
            Verdict::Failed
        });
    }
    assert!(f.members()[j].in_rotation());
    assert_eq!(f.members()[1 - j].ejections(), 2);
}

#[tokio::test(start_paused = true)]
async fn backends_whose_probe_failed_are_left_out_and_none_left_is_a_503() {
    let f = panicky(2);
    eject(&f, 0);
    eject(&f, 1);
    let probed_down = Arc::clone(&f.members()[0]);
    f.record_probe(&probed_down, false);
    let trial = f.pick(&[]).unwrap();
    assert_eq!(
        index(&f, &trial),
        1,
        "no early trial for a failed probe either"
    );
    for _ in 0..50 {
        let pick = f.pick(&[]).unwrap();
        assert_eq!(index(&f, &pick), 1);
    }
    let other = Arc::clone(&f.members()[1]);
    f.record_probe(&other, false);
    assert!(f.pick(&[]).is_none(), "every probe says down: 503 at once");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_tried_every_backend_is_not_routed_again() {
    let f = panicky(2);
    eject(&f, 0);
    eject(&f, 1);
    let tried: Vec<_> = f.members().iter().cloned().collect();
    assert!(f.pick(&tried).is_none());
    assert!(f.pick(&tried[..1]).is_some_and(|p| index(&f, &p) == 1));
}

#[tokio::test(start_paused = true)]
async fn off_means_a_503_until_a_trial_readmits() {
    let f = fleet_with(
        2,
        4,
        HealthConfig {
            route_when_all_ejected: false,
            ..HEALTH
        },
    );
    eject(&f, 0);
    eject(&f, 1);
    let _trials = [f.pick(&[]).unwrap(), f.pick(&[]).unwrap()];
    assert!(f.pick(&[]).is_none());
}
