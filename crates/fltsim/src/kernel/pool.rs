//! Pool allocations (`ExAllocatePool2` / `ExFreePoolWithTag`) with tag accounting.
//!
//! Every live allocation is recorded with its tag and size. Double frees, frees of
//! unknown addresses and frees with the wrong tag are verifier violations (each is a
//! `BAD_POOL_CALLER` bugcheck on Windows; the model records them and keeps going). At
//! unload, whatever is still allocated is reported by tag as a leak.
//! Allocations not asked to be zeroed are filled with 0xCD so code that relies on
//! zeroed memory shows up. [`fail_next`] makes the next allocations fail, for testing
//! the driver's failure paths.

use crate::verifier::{self, rule};
use parking_lot::Mutex;
use portfilter_bindings::{POOL_FLAG_NON_PAGED, POOL_FLAG_PAGED, POOL_FLAG_UNINITIALIZED};
use std::alloc::Layout;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::c_void;

/// Pool alignment on x64.
const POOL_ALIGN: usize = 16;
/// Flags the model understands (`POOL_FLAG_USE_QUOTA`, `RAISE_ON_FAILURE`, … are not).
const KNOWN_FLAGS: u64 = POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED | POOL_FLAG_UNINITIALIZED;
/// How many freed addresses are remembered to tell a double free from a wild free.
const FREED_MEMORY: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Allocation {
    tag: u32,
    size: usize,
}

struct Pool {
    live: BTreeMap<usize, Allocation>,
    freed: BTreeSet<usize>,
    freed_order: VecDeque<usize>,
    fail_next: u32,
    total_allocations: u64,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    live: BTreeMap::new(),
    freed: BTreeSet::new(),
    freed_order: VecDeque::new(),
    fail_next: 0,
    total_allocations: 0,
});

/// What one tag holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagUsage {
    /// The tag, as its four characters (e.g. `"PfFl"`).
    pub tag: String,
    /// The tag as a number.
    pub tag_value: u32,
    /// Live allocations.
    pub count: usize,
    /// Live bytes.
    pub bytes: usize,
}

/// A tag's four characters, as pool tools print them.
#[must_use]
pub fn tag_name(tag: u32) -> String {
    tag.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.max(1), POOL_ALIGN).ok()
}

/// What is allocated now, by tag.
#[must_use]
pub fn outstanding() -> Vec<TagUsage> {
    let pool = POOL.lock();
    let mut by_tag: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for a in pool.live.values() {
        let e = by_tag.entry(a.tag).or_default();
        e.0 += 1;
        e.1 += a.size;
    }
    by_tag
        .into_iter()
        .map(|(tag, (count, bytes))| TagUsage {
            tag: tag_name(tag),
            tag_value: tag,
            count,
            bytes,
        })
        .collect()
}

/// Live bytes under `tag`.
#[must_use]
pub fn live_bytes(tag: u32) -> usize {
    POOL.lock()
        .live
        .values()
        .filter(|a| a.tag == tag)
        .map(|a| a.size)
        .sum()
}

/// Live allocations (all tags).
#[must_use]
pub fn live_count() -> usize {
    POOL.lock().live.len()
}

/// Allocations made since boot (all tags).
#[must_use]
pub fn total_allocations() -> u64 {
    POOL.lock().total_allocations
}

/// Makes the next `count` allocations return null (`STATUS_INSUFFICIENT_RESOURCES` paths).
pub fn fail_next(count: u32) {
    POOL.lock().fail_next = count;
}

/// Whether `address` is the start of a live allocation with `tag`.
pub(crate) fn is_live(address: usize, tag: u32) -> bool {
    POOL.lock().live.get(&address).is_some_and(|a| a.tag == tag)
}

/// Allocates (the body of `ExAllocatePool2`).
pub(crate) fn allocate(flags: u64, size: usize, tag: u32) -> *mut c_void {
    if flags & !KNOWN_FLAGS != 0
        || (flags & POOL_FLAG_NON_PAGED != 0) == (flags & POOL_FLAG_PAGED != 0)
        || tag == 0
    {
        verifier::report(
            rule::POOL_BAD_CALLER,
            format!("flags {flags:#x}, tag {tag:#x} ({})", tag_name(tag)),
        );
        return std::ptr::null_mut();
    }
    if crate::faults::enter(crate::faults::Routine::ExAllocatePool2).is_some() {
        return std::ptr::null_mut();
    }
    {
        let mut pool = POOL.lock();
        if pool.fail_next > 0 {
            pool.fail_next -= 1;
            return std::ptr::null_mut();
        }
    }
    let Some(layout) = layout(size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        return std::ptr::null_mut();
    }
    let fill = if flags & POOL_FLAG_UNINITIALIZED != 0 {
        0xCD
    } else {
        0
    };
    // SAFETY: `p` points to `layout.size()` freshly allocated bytes.
    unsafe { p.write_bytes(fill, layout.size()) };
    let mut pool = POOL.lock();
    pool.total_allocations += 1;
    pool.freed.remove(&(p as usize));
    pool.live.insert(p as usize, Allocation { tag, size });
    p.cast()
}

/// Frees (the body of `ExFreePoolWithTag`).
pub(crate) fn free(p: *mut c_void, tag: u32) {
    let address = p as usize;
    let mut pool = POOL.lock();
    let Some(a) = pool.live.remove(&address) else {
        let double = pool.freed.contains(&address);
        drop(pool);
        if double {
            verifier::report(
                rule::POOL_DOUBLE_FREE,
                format!("{address:#x} with tag {}", tag_name(tag)),
            );
        } else {
            verifier::report(
                rule::POOL_BAD_FREE,
                format!("{address:#x} with tag {}", tag_name(tag)),
            );
        }
        return;
    };
    pool.freed.insert(address);
    pool.freed_order.push_back(address);
    if pool.freed_order.len() > FREED_MEMORY
        && let Some(old) = pool.freed_order.pop_front()
    {
        pool.freed.remove(&old);
    }
    drop(pool);
    if a.tag != tag {
        verifier::report(
            rule::POOL_WRONG_TAG,
            format!(
                "{address:#x} allocated as {} freed as {}",
                tag_name(a.tag),
                tag_name(tag)
            ),
        );
    }
    if let Some(layout) = layout(a.size) {
        // Poison, so a use after free reads garbage rather than the old contents.
        // SAFETY: `p` is a live allocation of this layout, now removed from the table.
        unsafe {
            p.cast::<u8>().write_bytes(0xDD, layout.size());
            std::alloc::dealloc(p.cast(), layout);
        }
    }
}

/// Reports every live allocation as a leak (at unload); returns whether there was one.
pub(crate) fn report_leaks(when: &str) -> bool {
    let leaks = outstanding();
    if leaks.is_empty() {
        return false;
    }
    let detail = leaks
        .iter()
        .map(|t| {
            format!(
                "tag {}: {} allocation(s), {} bytes",
                t.tag, t.count, t.bytes
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    verifier::report(rule::POOL_LEAK, format!("{when}: {detail}"));
    true
}

pub(crate) fn reset() {
    let mut pool = POOL.lock();
    // Allocations a previous machine leaked are forgotten (their memory stays allocated).
    pool.live.clear();
    pool.freed.clear();
    pool.freed_order.clear();
    pool.fail_next = 0;
    pool.total_allocations = 0;
}

/// `ExAllocatePool2`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn ExAllocatePool2(
    flags: u64,
    number_of_bytes: usize,
    tag: u32,
) -> *mut c_void {
    super::counts::bump(super::counts::Routine::ExAllocatePool2);
    allocate(flags, number_of_bytes, tag)
}

/// `ExFreePoolWithTag`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    super::counts::bump(super::counts::Routine::ExFreePoolWithTag);
    if p.is_null() {
        verifier::report(rule::POOL_BAD_FREE, "ExFreePoolWithTag(NULL)");
        return;
    }
    free(p, tag);
}
