//! Storage of the pended creates ([`super::pended`]): a dense array of entries (removal
//! swaps the last one in) plus an index by sequence (open addressing, linear probing,
//! backward-shift deletion), so that a verdict finds its create in O(1) expected time
//! instead of scanning every pended create.
//!
//! Pure data structure over caller-provided storage: no allocation, no lock, no FFI. The
//! caller holds the cancel-safe queue's spin lock (any IRQL <= `DISPATCH_LEVEL`).
//! Every probe loop is bounded by the index length, and the index is at least one slot
//! larger than the entry array, so a probe always meets an empty slot.

use portfilter_bindings::FLT_CALLBACK_DATA;

/// One pended create.
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    /// Its callback data.
    pub(crate) cbd: *mut FLT_CALLBACK_DATA,
    /// Its request's sequence (unique among pended creates).
    pub(crate) sequence: u64,
    /// Absolute system time (100 ns units).
    pub(crate) deadline: i64,
    /// The decider connection it was sent to.
    pub(crate) connection_id: u32,
}

/// A view of the storage: `entries[..*len]` are the pended creates; `index` holds, for
/// each occupied slot, the entry's position + 1 (0 = empty).
pub(crate) struct Set<'a> {
    entries: &'a mut [Entry],
    len: &'a mut usize,
    index: &'a mut [u16],
}

/// Home slot of `sequence` in an index of `2^bits` slots (Fibonacci hashing: consecutive
/// sequences spread over the whole index).
fn home(sequence: u64, mask: usize) -> usize {
    let bits = mask.count_ones();
    let hashed = sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // `bits` is 1..=63 (checked in `Set::new`), so the shift is in range.
    (hashed >> (64 - bits)) as usize & mask
}

impl<'a> Set<'a> {
    /// The view, or `None` if the storage cannot work: `index.len()` must be a power of two
    /// (at least 2) larger than `entries.len()`, `entries.len()` must fit the index's
    /// `u16` positions, and `*len <= entries.len()`.
    pub(crate) fn new(
        entries: &'a mut [Entry],
        len: &'a mut usize,
        index: &'a mut [u16],
    ) -> Option<Self> {
        let ok = index.len().is_power_of_two()
            && index.len() >= 2
            && index.len() > entries.len()
            && entries.len() < usize::from(u16::MAX)
            && *len <= entries.len();
        ok.then_some(Self {
            entries,
            len,
            index,
        })
    }

    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    /// The pended creates, in storage order.
    pub(crate) fn entries(&self) -> &[Entry] {
        self.entries.get(..*self.len).unwrap_or(&[])
    }

    /// Adds `entry`; its position, or `None` when full.
    pub(crate) fn insert(&mut self, entry: Entry) -> Option<usize> {
        let at = *self.len;
        let value = u16::try_from(at + 1).ok()?;
        *self.entries.get_mut(at)? = entry;
        let mask = self.mask();
        let mut slot = home(entry.sequence, mask);
        for _ in 0..self.index.len() {
            let cell = self.index.get_mut(slot)?;
            if *cell == 0 {
                *cell = value;
                *self.len = at + 1;
                return Some(at);
            }
            slot = (slot + 1) & mask;
        }
        None
    }

    /// Position of the pended create with `sequence`.
    pub(crate) fn find(&self, sequence: u64) -> Option<usize> {
        let mask = self.mask();
        let mut slot = home(sequence, mask);
        for _ in 0..self.index.len() {
            let value = usize::from(*self.index.get(slot)?);
            let position = value.checked_sub(1)?;
            if self.entries().get(position)?.sequence == sequence {
                return Some(position);
            }
            slot = (slot + 1) & mask;
        }
        None
    }

    /// Position of the pended create with callback data `cbd`, trying `hint` first (the
    /// position the peek routine just returned), else a scan.
    pub(crate) fn position_of(&self, cbd: *mut FLT_CALLBACK_DATA, hint: usize) -> Option<usize> {
        let entries = self.entries();
        if entries.get(hint).is_some_and(|e| e.cbd == cbd) {
            return Some(hint);
        }
        entries.iter().position(|e| e.cbd == cbd)
    }

    /// The index slot holding position `position` (whose entry has `sequence`).
    fn slot_of(&self, sequence: u64, position: usize) -> Option<usize> {
        let mask = self.mask();
        let want = u16::try_from(position + 1).ok()?;
        let mut slot = home(sequence, mask);
        for _ in 0..self.index.len() {
            let value = *self.index.get(slot)?;
            if value == want {
                return Some(slot);
            }
            if value == 0 {
                return None;
            }
            slot = (slot + 1) & mask;
        }
        None
    }

    /// Empties index slot `hole`, shifting back the entries of its probe run that may
    /// move (so that no lookup meets an empty slot before its entry).
    fn delete_slot(&mut self, mut hole: usize) {
        let mask = self.mask();
        let mut next = hole;
        for _ in 0..self.index.len() {
            next = (next + 1) & mask;
            let value = self.index.get(next).copied().unwrap_or(0);
            let Some(position) = usize::from(value).checked_sub(1) else {
                break;
            };
            let Some(entry) = self.entries.get(position) else {
                break;
            };
            let start = home(entry.sequence, mask);
            // The entry at `next` may fill the hole if the hole lies on its probe path,
            // i.e. cyclically within [start, next).
            if (next.wrapping_sub(start) & mask) >= (next.wrapping_sub(hole) & mask) {
                if let Some(cell) = self.index.get_mut(hole) {
                    *cell = value;
                }
                hole = next;
            }
        }
        if let Some(cell) = self.index.get_mut(hole) {
            *cell = 0;
        }
    }

    /// Removes the entry at `position`; returns it. The last entry moves into its place.
    pub(crate) fn remove_at(&mut self, position: usize) -> Option<Entry> {
        let len = *self.len;
        if position >= len {
            return None;
        }
        let entry = *self.entries.get(position)?;
        if let Some(slot) = self.slot_of(entry.sequence, position) {
            self.delete_slot(slot);
        }
        let last = len - 1;
        if position != last {
            let moved = *self.entries.get(last)?;
            if let Some(slot) = self.slot_of(moved.sequence, last)
                && let (Some(cell), Ok(value)) =
                    (self.index.get_mut(slot), u16::try_from(position + 1))
            {
                *cell = value;
            }
            *self.entries.get_mut(position)? = moved;
        }
        *self.len = last;
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn entry(sequence: u64) -> Entry {
        Entry {
            // A distinct fake pointer per entry (never dereferenced).
            cbd: core::ptr::without_provenance_mut(usize::try_from(sequence).unwrap() * 16 + 16),
            sequence,
            deadline: 0,
            connection_id: 1,
        }
    }

    struct Storage {
        entries: Vec<Entry>,
        len: usize,
        index: Vec<u16>,
    }

    impl Storage {
        fn new(capacity: usize, index: usize) -> Self {
            Self {
                entries: vec![entry(0); capacity],
                len: 0,
                index: vec![0; index],
            }
        }
        fn set(&mut self) -> Set<'_> {
            Set::new(&mut self.entries, &mut self.len, &mut self.index).unwrap()
        }
    }

    /// Every pended sequence is found at its position; nothing else is found.
    fn check(set: &Set<'_>, present: &[u64], absent: &[u64]) {
        assert_eq!(set.entries().len(), present.len());
        for &s in present {
            let at = set.find(s).unwrap_or_else(|| panic!("{s} not found"));
            assert_eq!(set.entries()[at].sequence, s);
            assert_eq!(set.position_of(entry(s).cbd, usize::MAX), Some(at));
        }
        for &s in absent {
            assert_eq!(set.find(s), None, "{s} found after removal");
        }
    }

    #[test]
    fn rejects_unusable_storage() {
        let mut entries = vec![entry(0); 8];
        let mut len = 0;
        assert!(
            Set::new(&mut entries, &mut len, &mut [0u16; 8]).is_none(),
            "index not larger"
        );
        assert!(
            Set::new(&mut entries, &mut len, &mut [0u16; 12]).is_none(),
            "not a power of two"
        );
        let mut too_long = 9;
        assert!(Set::new(&mut entries, &mut too_long, &mut [0u16; 16]).is_none());
        assert!(Set::new(&mut entries, &mut len, &mut [0u16; 16]).is_some());
    }

    #[test]
    fn full_set_refuses_more_and_keeps_the_rest() {
        let mut storage = Storage::new(8, 16);
        let mut set = storage.set();
        for s in 1..=8 {
            assert!(set.insert(entry(s)).is_some());
        }
        assert_eq!(set.insert(entry(9)), None);
        check(&set, &(1..=8).collect::<Vec<_>>(), &[9]);
    }

    #[test]
    fn removals_in_any_order_keep_every_other_entry_findable() {
        // A small index (many collisions and wrap-arounds) and a pseudo-random order of
        // inserts and removals, checked against a plain list after every step.
        let mut storage = Storage::new(64, 128);
        let mut set = storage.set();
        let mut present: Vec<u64> = Vec::new();
        let mut removed: Vec<u64> = Vec::new();
        let mut next = 1u64;
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let insert = present.is_empty() || (present.len() < 64 && !rng.is_multiple_of(3));
            if insert {
                // Sequences with gaps, some spaced by the index length (same home slot).
                let s = next + (rng % 4) * 128;
                next += 1 + rng % 3;
                if present.contains(&s) {
                    continue;
                }
                assert!(set.insert(entry(s)).is_some());
                present.push(s);
                removed.retain(|&r| r != s);
            } else {
                let victim =
                    present.swap_remove(usize::try_from(rng >> 32).unwrap() % present.len());
                let at = set.find(victim).unwrap();
                let e = set.remove_at(at).unwrap();
                assert_eq!(e.sequence, victim);
                removed.push(victim);
                if removed.len() > 32 {
                    removed.remove(0);
                }
            }
            check(&set, &present, &removed);
        }
    }

    #[test]
    fn remove_at_out_of_range_is_none() {
        let mut storage = Storage::new(4, 8);
        let mut set = storage.set();
        set.insert(entry(5)).unwrap();
        assert!(set.remove_at(1).is_none());
        assert!(set.remove_at(0).is_some());
        assert!(set.remove_at(0).is_none());
        check(&set, &[], &[5]);
    }
}
