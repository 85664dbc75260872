//! The bounded, non-paged queue of events for queued-notify observers.
//!
//! The create path only pushes (a few instructions under the queue's push lock; it never
//! waits for user mode); the worker thread pops. When the queue is full the *new* event
//! is dropped and counted; the count since the last batch goes out in the next batch's
//! `dropped_before`. Events are the pool buffers the create path built, moved in and out
//! without copying. Capacity changes (`SetConfig`) reallocate the ring and keep the oldest
//! events that fit.

use crate::event::EventMessage;
use crate::pool::{PoolArray, PoolBytes};
use crate::sync::PushLock;
use core::sync::atomic::{AtomicU64, Ordering};
use portfilter_bindings::{NTSTATUS, STATUS_INSUFFICIENT_RESOURCES};

#[derive(Clone, Copy)]
struct Entry {
    ptr: *mut u8,
    len: usize,
}

struct Ring {
    entries: Option<PoolArray<Entry>>,
    head: usize,
    len: usize,
    /// Events lost (queue full, allocation failure) since the last batch was taken.
    dropped_since_batch: u64,
}

impl Ring {
    fn capacity(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    fn pop(&mut self) -> Option<PoolBytes> {
        let capacity = self.capacity();
        if self.len == 0 || capacity == 0 {
            return None;
        }
        let entry = self.entries.as_ref()?.get(self.head).copied()?;
        self.head = (self.head + 1) % capacity;
        self.len -= 1;
        // SAFETY: every entry between head and head+len came from PoolBytes::into_raw in
        // `push`, and is reclaimed exactly once here.
        unsafe { PoolBytes::from_raw(entry.ptr, entry.len) }
    }
}

/// What happened to a pushed event.
pub(crate) enum Push {
    /// Queued; `was_empty`: the worker may be asleep and must be woken.
    Queued {
        /// The queue was empty before this push.
        was_empty: bool,
    },
    /// The queue is full (or has no ring): the event is handed back to be freed; the
    /// drop has been counted for the next batch.
    Full(EventMessage),
}

/// The queue.
pub(crate) struct EventQueue {
    ring: PushLock<Ring>,
    depth: AtomicU64,
    high_water: AtomicU64,
}

// SAFETY: the ring's raw entry pointers are owned pool buffers, touched only under the
// push lock.
unsafe impl Send for Ring {}
// SAFETY: shared access (the push lock held shared) only reads the capacity; the entry
// pointers are followed or reclaimed only through `&mut Ring`, under the exclusive lock.
unsafe impl Sync for Ring {}

impl EventQueue {
    /// An empty queue without storage; call [`EventQueue::init`] at its final address,
    /// then [`EventQueue::set_capacity`].
    pub(crate) const fn new() -> Self {
        Self {
            ring: PushLock::new(Ring {
                entries: None,
                head: 0,
                len: 0,
                dropped_since_batch: 0,
            }),
            depth: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
        }
    }

    /// Initialises the lock in place.
    pub(crate) fn init(&self) {
        self.ring.init();
    }

    /// Frees every queued event and the ring, and deletes the lock. Returns how many
    /// events were still queued. Call when no thread can use the queue any more.
    pub(crate) fn destroy(&self) -> u64 {
        let dropped = self.clear();
        self.ring.write().entries = None;
        self.ring.delete();
        dropped
    }

    /// Resizes the ring to `capacity` events (≥ 1). Keeps the oldest queued events that
    /// fit; returns how many were dropped (also counted for the next batch).
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` when the new ring cannot be allocated (the old one
    /// stays).
    pub(crate) fn set_capacity(&self, capacity: usize) -> Result<u64, NTSTATUS> {
        if self.ring.read().capacity() == capacity {
            return Ok(0);
        }
        // SAFETY: an Entry of zeros is a null pointer and a zero length: a valid value.
        let mut fresh = unsafe { PoolArray::<Entry>::new_zeroed(capacity) }
            .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        let mut dropped = 0u64;
        let old = {
            let mut ring = self.ring.write();
            let mut kept = 0;
            while let Some(bytes) = ring.pop() {
                if let Some(slot) = fresh.get_mut(kept) {
                    let (ptr, len) = bytes.into_raw();
                    *slot = Entry { ptr, len };
                    kept += 1;
                } else {
                    drop(bytes);
                    dropped += 1;
                }
            }
            ring.head = 0;
            ring.len = kept;
            ring.dropped_since_batch += dropped;
            self.depth.store(kept as u64, Ordering::Relaxed);
            ring.entries.replace(fresh)
        };
        drop(old);
        Ok(dropped)
    }

    /// Appends an event (create path).
    pub(crate) fn push(&self, event: EventMessage) -> Push {
        let mut ring = self.ring.write();
        let capacity = ring.capacity();
        if ring.len >= capacity {
            ring.dropped_since_batch += 1;
            return Push::Full(event);
        }
        let was_empty = ring.len == 0;
        let at = (ring.head + ring.len) % capacity;
        let (ptr, len) = event.into_bytes().into_raw();
        if let Some(slot) = ring.entries.as_mut().and_then(|e| e.get_mut(at)) {
            *slot = Entry { ptr, len };
        }
        ring.len += 1;
        let depth = ring.len as u64;
        drop(ring);
        self.depth.store(depth, Ordering::Relaxed);
        self.high_water.fetch_max(depth, Ordering::Relaxed);
        Push::Queued { was_empty }
    }

    /// Counts an event lost before it reached the queue (allocation failure).
    pub(crate) fn note_dropped(&self) {
        self.ring.write().dropped_since_batch += 1;
    }

    /// Removes the oldest event (worker).
    pub(crate) fn pop(&self) -> Option<EventMessage> {
        let mut ring = self.ring.write();
        let bytes = ring.pop()?;
        let depth = ring.len as u64;
        drop(ring);
        self.depth.store(depth, Ordering::Relaxed);
        Some(EventMessage::from_bytes(bytes))
    }

    /// The number of events lost since the previous call, and resets it (worker, when it
    /// starts a batch).
    pub(crate) fn take_dropped(&self) -> u64 {
        core::mem::take(&mut self.ring.write().dropped_since_batch)
    }

    /// Frees every queued event; returns how many there were.
    pub(crate) fn clear(&self) -> u64 {
        let mut n = 0;
        while self.pop().is_some() {
            n += 1;
        }
        n
    }

    /// Events queued now.
    pub(crate) fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Most events ever queued at once.
    pub(crate) fn high_water(&self) -> u64 {
        self.high_water.load(Ordering::Relaxed)
    }
}
