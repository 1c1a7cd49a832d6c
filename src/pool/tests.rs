//! The pool on its own, with fake items: capacity, queueing, reuse, expiry, no leaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

/// A fake item: counts how many are alive, and lets a test say whether it is reusable
/// and whether its probe succeeds.
#[derive(Debug)]
struct Fake {
    id: usize,
    reusable: bool,
    alive: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
}

impl Poolable for Fake {
    fn can_reuse(&self) -> bool {
        self.reusable
    }
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Harness {
    pool: Pool<Fake>,
    live: Arc<AtomicUsize>,
    next: AtomicUsize,
}

fn config(max_open: usize) -> PoolConfig {
    PoolConfig {
        max_open,
        max_idle: max_open,
        idle_timeout: None,
        max_uses: None,
        queue_timeout: Some(Duration::from_secs(5)),
        reuse: true,
    }
}

impl Harness {
    fn new(cfg: PoolConfig) -> Harness {
        Harness {
            pool: Pool::new(cfg),
            live: Arc::new(AtomicUsize::new(0)),
            next: AtomicUsize::new(0),
        }
    }

    fn make(&self) -> Fake {
        self.live.fetch_add(1, Ordering::SeqCst);
        Fake {
            id: self.next.fetch_add(1, Ordering::SeqCst),
            reusable: true,
            alive: Arc::new(AtomicBool::new(true)),
            live: Arc::clone(&self.live),
        }
    }

    /// Checks out an item, opening one on a granted slot.
    async fn get(&self, reuse: Reuse) -> Result<(Pooled<Fake>, bool), Error> {
        Ok(match self.pool.checkout(reuse).await? {
            Checkout::Reused(item) => (item, true),
            Checkout::Open(slot) => (slot.fill(self.make()), false),
        })
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

const ANY: Reuse = Reuse::Idle { probe: true };

#[tokio::test]
async fn a_returned_item_is_reused_lifo() {
    let h = Harness::new(config(4));
    let (a, _) = h.get(ANY).await.unwrap();
    let (b, _) = h.get(ANY).await.unwrap();
    let (a_id, b_id) = (a.id, b.id);
    drop(a);
    drop(b);
    let (c, reused) = h.get(ANY).await.unwrap();
    assert!(reused && c.is_reused());
    assert_eq!(c.id, b_id, "the most recently returned item first");
    let (d, _) = h.get(ANY).await.unwrap();
    assert_eq!(d.id, a_id);
    let stats = h.pool.stats();
    assert_eq!((stats.open, stats.busy, stats.idle), (2, 2, 0));
    assert_eq!((stats.opened, stats.reused), (2, 2));
}

#[tokio::test]
async fn an_unreusable_item_is_closed_and_frees_its_capacity() {
    let h = Harness::new(config(1));
    let (mut a, _) = h.get(ANY).await.unwrap();
    a.reusable = false;
    drop(a);
    assert_eq!(h.live(), 0);
    assert_eq!(h.pool.stats().open, 0);
    let (_b, reused) = h.get(ANY).await.unwrap();
    assert!(!reused);
}

#[tokio::test]
async fn capacity_is_capped_and_waiters_are_served_in_order() {
    let h = Arc::new(Harness::new(config(1)));
    let (first, _) = h.get(ANY).await.unwrap();
    let first_id = first.id;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..3 {
        let (h, order) = (Arc::clone(&h), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let (item, _) = h.get(ANY).await.unwrap();
            order.lock().unwrap().push((n, item.id));
            tokio::task::yield_now().await;
        }));
        // Let each waiter enqueue before the next.
        tokio::task::yield_now().await;
    }
    assert_eq!(h.pool.stats().waiting, 3);
    drop(first);
    for task in tasks {
        task.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order, vec![(0, first_id), (1, first_id), (2, first_id)]);
    assert_eq!(h.live(), 1, "never more than max_open items");
}

#[tokio::test]
async fn a_dropped_slot_passes_its_capacity_to_a_waiter() {
    let h = Arc::new(Harness::new(config(1)));
    let Checkout::Open(slot) = h.pool.checkout(ANY).await.unwrap() else {
        panic!("empty pool grants capacity");
    };
    let waiter = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { h.get(ANY).await.map(|(item, reused)| (item.id, reused)) })
    };
    tokio::task::yield_now().await;
    drop(slot); // the open failed (e.g. connection refused)
    let (_, reused) = waiter.await.unwrap().unwrap();
    assert!(!reused);
    let stats = h.pool.stats();
    assert_eq!(
        (stats.open, stats.idle),
        (1, 1),
        "the waiter's item went idle"
    );
}

#[tokio::test(start_paused = true)]
async fn the_queue_times_out() {
    let mut cfg = config(1);
    cfg.queue_timeout = Some(Duration::from_millis(100));
    let h = Harness::new(cfg);
    let _busy = h.get(ANY).await.unwrap();
    let err = h.get(ANY).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Timeout::PoolWait));
    assert_eq!(
        h.pool.stats().waiting,
        0,
        "a waiter that gave up is not counted"
    );
}

#[tokio::test]
async fn abandoned_waiters_do_not_swallow_capacity() {
    let h = Arc::new(Harness::new(config(1)));
    let (busy, _) = h.get(ANY).await.unwrap();
    for _ in 0..3 {
        let h2 = Arc::clone(&h);
        let task = tokio::spawn(async move { h2.get(ANY).await.map(|_| ()) });
        tokio::task::yield_now().await;
        task.abort();
        let _ = task.await;
    }
    drop(busy);
    let (_item, reused) = h.get(ANY).await.unwrap();
    assert!(reused, "the returned item was not handed to a dead waiter");
}

#[tokio::test]
async fn a_grant_to_a_waiter_cancelled_before_it_ran_is_not_lost() {
    let h = Arc::new(Harness::new(config(1)));
    let (busy, _) = h.get(ANY).await.unwrap();
    let waiter = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { h.get(ANY).await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    assert_eq!(h.pool.stats().waiting, 1);
    // The item is sent into the waiter's channel, then the waiter dies unread.
    drop(busy);
    waiter.abort();
    let _ = waiter.await;
    let stats = h.pool.stats();
    assert_eq!(
        (stats.open, h.live()),
        (0, 0),
        "capacity freed, item closed"
    );
    let (_item, _) = h.get(ANY).await.unwrap();
}

#[tokio::test]
async fn a_failed_probe_closes_the_item_and_grants_its_capacity() {
    let h = Harness::new(config(1));
    let (a, _) = h.get(ANY).await.unwrap();
    let alive = Arc::clone(&a.alive);
    drop(a);
    alive.store(false, Ordering::SeqCst);
    let (b, reused) = h.get(ANY).await.unwrap();
    assert!(!reused && !b.is_reused());
    assert_eq!(h.live(), 1);
    // Without a probe the stale item would have been handed out.
    drop(b);
    let (c, reused) = h.get(Reuse::Idle { probe: false }).await.unwrap();
    assert!(reused);
    drop(c);
}

#[tokio::test]
async fn reuse_never_opens_fresh_and_keeps_idle_items_while_there_is_room() {
    let h = Harness::new(config(2));
    let (a, _) = h.get(ANY).await.unwrap();
    drop(a);
    let (fresh, reused) = h.get(Reuse::Never).await.unwrap();
    assert!(!reused);
    assert_eq!(h.pool.stats().idle, 1, "the idle item is left alone");
    // At capacity, Never closes an idle item and reuses its capacity.
    let (_other, _) = h.get(ANY).await.unwrap(); // takes the idle one
    drop(fresh);
    let (_again, reused) = h.get(Reuse::Never).await.unwrap();
    assert!(!reused);
    assert_eq!(h.live(), 2);
}

#[tokio::test]
async fn max_uses_and_reuse_off_mark_the_last_use() {
    let mut cfg = config(1);
    cfg.max_uses = Some(2);
    let h = Harness::new(cfg);
    let (a, _) = h.get(ANY).await.unwrap();
    assert!(!a.is_last_use());
    drop(a);
    let (b, reused) = h.get(ANY).await.unwrap();
    assert!(reused && b.is_last_use());
    drop(b);
    assert_eq!(h.live(), 0, "closed after its last use");

    let mut cfg = config(1);
    cfg.reuse = false;
    let h = Harness::new(cfg);
    let (a, _) = h.get(ANY).await.unwrap();
    assert!(a.is_last_use());
    drop(a);
    assert_eq!((h.live(), h.pool.stats().open), (0, 0));
}

#[tokio::test]
async fn idle_items_beyond_max_idle_are_closed() {
    let mut cfg = config(3);
    cfg.max_idle = 1;
    let h = Harness::new(cfg);
    let (a, _) = h.get(ANY).await.unwrap();
    let (b, _) = h.get(ANY).await.unwrap();
    drop(a);
    drop(b);
    let stats = h.pool.stats();
    assert_eq!((stats.open, stats.idle, h.live()), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn idle_items_expire() {
    let mut cfg = config(2);
    cfg.idle_timeout = Some(Duration::from_secs(10));
    let h = Harness::new(cfg);
    let (a, _) = h.get(ANY).await.unwrap();
    drop(a);
    assert_eq!(h.pool.stats().idle, 1);
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(
        (h.pool.stats().open, h.live()),
        (0, 0),
        "the reaper closed it"
    );
    // An item that expires between reaper runs is not handed out either.
    let (b, _) = h.get(ANY).await.unwrap();
    drop(b);
    tokio::time::advance(Duration::from_secs(10)).await;
    let (_c, reused) = h.get(ANY).await.unwrap();
    assert!(!reused);
    assert_eq!(h.pool.stats().open, 1);
}

#[tokio::test]
async fn dropping_the_pool_closes_idle_items() {
    let h = Harness::new(config(2));
    let (a, _) = h.get(ANY).await.unwrap();
    drop(a);
    assert_eq!(h.live(), 1);
    let live = Arc::clone(&h.live);
    drop(h);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "no reference cycle keeps idle items"
    );
}

#[tokio::test]
async fn a_busy_item_outlives_the_pool_handle() {
    let h = Harness::new(config(1));
    let (a, _) = h.get(ANY).await.unwrap();
    let live = Arc::clone(&h.live);
    drop(h);
    assert_eq!(live.load(Ordering::SeqCst), 1);
    drop(a); // returns to a pool nobody can reach; freed with it
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_retired_pool_closes_idle_items_now_and_busy_ones_when_returned() {
    let h = Harness::new(config(2));
    let (idle, _) = h.get(ANY).await.unwrap();
    let (busy, _) = h.get(ANY).await.unwrap();
    drop(idle);
    assert_eq!((h.live(), h.pool.stats().idle), (2, 1));
    h.pool.retire();
    assert_eq!(h.live(), 1, "the idle item closed at once");
    assert_eq!(h.pool.stats().open, 1);
    assert!(
        busy.is_last_use(),
        "the busy one is told it will not be kept"
    );
    drop(busy);
    assert_eq!((h.live(), h.pool.stats().open), (0, 0));
    // A checkout still works (a request queued here before the removal), but its item
    // closes after the use too.
    let (late, reused) = h.get(ANY).await.unwrap();
    assert!(!reused);
    drop(late);
    assert_eq!(
        (h.live(), h.pool.stats().open, h.pool.stats().idle),
        (0, 0, 0)
    );
}
