//! The two handles the pool gives out: [`Slot`] (capacity for one item) and [`Pooled`]
//! (a checked-out item that returns itself on drop).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::{Idle, Poolable, Shared};

/// One unit of pool capacity: the right to open one item. Dropping it hands the
/// capacity to the oldest waiter or frees it; [`fill`](Slot::fill) turns it into a
/// [`Pooled`] item.
pub(crate) struct Slot<T: Poolable> {
    /// `None` once disarmed: the capacity moved elsewhere (an idle item, a waiter).
    shared: Option<Arc<Shared<T>>>,
}

impl<T: Poolable> Slot<T> {
    pub(super) fn armed(shared: Arc<Shared<T>>) -> Slot<T> {
        Slot {
            shared: Some(shared),
        }
    }

    pub(super) fn disarm(&mut self) {
        self.shared = None;
    }

    /// A newly opened item on this capacity.
    pub(crate) fn fill(self, item: T) -> Pooled<T> {
        if let Some(shared) = &self.shared {
            shared.opened.fetch_add(1, Ordering::Relaxed);
        }
        Pooled::new(item, 0, self)
    }
}

impl<T: Poolable> Drop for Slot<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.release_capacity();
        }
    }
}

impl<T: Poolable> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("armed", &self.shared.is_some())
            .finish()
    }
}

/// A checked-out item. Derefs to the item; when dropped, the item goes back to the pool
/// if [`Poolable::can_reuse`] allows and it has uses left, else it is closed and its
/// capacity released.
pub(crate) struct Pooled<T: Poolable> {
    item: Option<T>,
    /// Uses completed before this one.
    uses: u32,
    slot: Slot<T>,
}

impl<T: Poolable> Pooled<T> {
    pub(super) fn new(item: T, uses: u32, slot: Slot<T>) -> Pooled<T> {
        Pooled {
            item: Some(item),
            uses,
            slot,
        }
    }

    /// Whether the item served earlier uses (only such a connection can be stale).
    pub(crate) fn is_reused(&self) -> bool {
        self.uses > 0
    }

    /// Whether the pool will close the item after this use whatever happens (reuse
    /// off, no idle room, or `max_uses` reached), so the peer can be told up front
    /// (FastCGI: BEGIN_REQUEST without KEEP_CONN), or the pool was retired.
    pub(crate) fn is_last_use(&self) -> bool {
        let Some(shared) = &self.slot.shared else {
            return true;
        };
        let cfg = &shared.cfg;
        shared.retired.load(Ordering::Acquire)
            || !cfg.reuse
            || cfg.max_idle == 0
            || cfg
                .max_uses
                .is_some_and(|max| self.uses.saturating_add(1) >= max)
    }
}

impl<T: Poolable> Drop for Pooled<T> {
    fn drop(&mut self) {
        let Some(item) = self.item.take() else {
            return;
        };
        if !item.can_reuse() || self.is_last_use() {
            // Close first, then release the capacity (the slot's own drop).
            drop(item);
            return;
        }
        if let Some(shared) = self.slot.shared.take() {
            shared.check_in(Idle {
                item,
                uses: self.uses.saturating_add(1),
                since: Instant::now(),
            });
        }
    }
}

impl<T: Poolable> Deref for Pooled<T> {
    type Target = T;

    #[allow(clippy::expect_used)]
    fn deref(&self) -> &T {
        // `item` is only taken in `drop` and `into_slot`, which consume the handle.
        self.item.as_ref().expect("pooled item present until drop")
    }
}

impl<T: Poolable> DerefMut for Pooled<T> {
    #[allow(clippy::expect_used)]
    fn deref_mut(&mut self) -> &mut T {
        self.item.as_mut().expect("pooled item present until drop")
    }
}

impl<T: Poolable + fmt::Debug> fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("item", &self.item)
            .field("uses", &self.uses)
            .finish()
    }
}
