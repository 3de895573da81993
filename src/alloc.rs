//! The library's global allocator: the system's, except for large blocks
//! (megabytes) allocated during a predict call (a batch's activations) or
//! marked long-lived (the packed weights, [`long_lived`]). Those are mapped
//! on transparent huge pages, and those of calls are kept when freed and
//! handed out again until the call ends.
//!
//! Why: the products stream activations and weights megabytes wide, and on
//! 4 KiB pages they presumably spend a share of their time on TLB misses
//! (this VM exposes no TLB counters; the gain needs huge pages); but every
//! layer allocates fresh outputs, and a fresh huge page is zeroed when first
//! touched. Huge pages that are reused pay neither: the forward bench ran
//! 2-8% faster with both (huge pages alone were slower than neither, since
//! glibc unmaps large blocks on free; reuse alone changed nothing), and the
//! weights' share of that is about 4% of a rerank batch.
//!
//! Kept blocks are bounded ([`KEPT_SLOTS`]), and when the last running call
//! ends only [`KEPT_BETWEEN_CALLS`] bytes of them stay mapped: enough for
//! the next rerank call to start without faults (a huge page's first touch
//! cost about 1 ms on the machine measured: 25 of them added 2-12% to a
//! rerank batch), little enough that a long call's buffers go back. Other
//! large blocks (a model load's temporaries) stay with the system
//! allocator.

// TODO(issue 14): remove when the replacement allocator lands, clean under the
// crate's unsafe lints (Cargo.toml [lints]).
#![allow(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Blocks from this size up take the large path.
const LARGE: usize = 1 << 20;
/// Mappings are whole huge pages.
const GRANULE: usize = 2 << 20;
/// Bytes in front of each large block, holding its [`Header`]; also the
/// largest alignment the large path serves (a cache line).
const HEADER: usize = 64;
/// Freed blocks kept at most.
const KEPT_SLOTS: usize = 16;
/// Bytes of kept blocks that stay mapped between calls, the smallest blocks
/// first: a rerank call's buffers (batches of 32 pairs of ~120 tokens on a
/// MiniLM) take about 50 MiB.
const KEPT_BETWEEN_CALLS: usize = 64 << 20;

pub struct KeepingAllocator;

/// What a large block's first bytes record.
#[derive(Clone, Copy)]
#[repr(C)]
struct Header {
    /// The mapping's length, header included; 0 for a block of the system
    /// allocator.
    len: usize,
    /// Allocated during a call: kept for reuse if freed during one.
    keep: bool,
}

/// A freed mapping waiting for reuse.
#[derive(Clone, Copy)]
struct Kept {
    start: usize,
    len: usize,
}

static KEPT: Mutex<[Option<Kept>; KEPT_SLOTS]> = Mutex::new([None; KEPT_SLOTS]);
/// Calls running now (several Python threads may predict at once).
static ACTIVE_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Marks a predict call: large blocks allocated while one runs are kept
/// for reuse when freed. When the last running call ends, kept blocks
/// beyond [`KEPT_BETWEEN_CALLS`] are released.
pub struct CallScope(());

impl CallScope {
    pub fn enter() -> Self {
        ACTIVE_CALLS.fetch_add(1, Ordering::Relaxed);
        CallScope(())
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        if ACTIVE_CALLS.fetch_sub(1, Ordering::Relaxed) == 1 {
            release_kept(KEPT_BETWEEN_CALLS);
        }
    }
}

/// Unmaps kept blocks, the largest first, until at most `budget` bytes
/// stay.
fn release_kept(budget: usize) {
    let released = take_beyond(&mut lock_kept(), budget);
    for block in released.into_iter().flatten() {
        unmap(block.start, block.len);
    }
}

/// Takes blocks out of `kept`, the largest first, until at most `budget`
/// bytes stay; returns them.
fn take_beyond(kept: &mut [Option<Kept>; KEPT_SLOTS], budget: usize) -> [Option<Kept>; KEPT_SLOTS] {
    let mut taken = [None; KEPT_SLOTS];
    let mut smallest_first: [usize; KEPT_SLOTS] = std::array::from_fn(|i| i);
    smallest_first.sort_unstable_by_key(|&i| kept[i].map_or(usize::MAX, |b| b.len));
    let mut staying = 0;
    for i in smallest_first {
        match kept[i] {
            Some(block) if staying + block.len <= budget => staying += block.len,
            _ => taken[i] = kept[i].take(),
        }
    }
    taken
}

fn lock_kept() -> std::sync::MutexGuard<'static, [Option<Kept>; KEPT_SLOTS]> {
    // The slots hold plain numbers: a panic elsewhere leaves them valid.
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

fn unmap(start: usize, len: usize) {
    // SAFETY: a mapping of this allocator that nothing refers to any more.
    unsafe { libc::munmap(start as *mut libc::c_void, len) };
}

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= HEADER
}

/// A kept mapping for `len` bytes (the smallest that fits, at most twice
/// as long: a much longer one is left for a larger request), or a new one;
/// and whether it is fresh (all zero). Null when the system has no memory.
fn take_mapping(len: usize) -> (*mut u8, usize, bool) {
    {
        let mut kept = lock_kept();
        let best = (0..KEPT_SLOTS)
            .filter(|&i| kept[i].is_some_and(|b| b.len >= len && b.len / 2 <= len))
            .min_by_key(|&i| kept[i].map(|b| b.len));
        if let Some(block) = best.and_then(|i| kept[i].take()) {
            return (block.start as *mut u8, block.len, false);
        }
    }
    let len = len.next_multiple_of(GRANULE);
    // SAFETY: a new anonymous private mapping; no existing memory changes.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return (std::ptr::null_mut(), 0, true);
        }
        // Advice only: without it (or without THP) the pages are 4 KiB.
        libc::madvise(p, len, libc::MADV_HUGEPAGE);
        (p.cast(), len, true)
    }
}

/// Keeps a freed mapping, in place of the smallest kept one when every slot
/// is taken (or unmaps it, when it is the smallest).
fn keep_mapping(start: usize, len: usize) {
    let block = Kept { start, len };
    let evicted = {
        let mut kept = lock_kept();
        let slot = (0..KEPT_SLOTS)
            .min_by_key(|&i| kept[i].map_or(0, |b| b.len))
            .expect("slots");
        match kept[slot] {
            Some(smallest) if smallest.len >= len => Some(block),
            other => {
                kept[slot] = Some(block);
                other
            }
        }
    };
    if let Some(block) = evicted {
        unmap(block.start, block.len);
    }
}

thread_local! {
    static LONG_LIVED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, whose large allocations on this thread are long-lived buffers
/// streamed over and over (packed weights): mapped on huge pages even
/// outside calls.
pub fn long_lived<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag even if `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            LONG_LIVED.set(self.0);
        }
    }
    let _restore = Restore(LONG_LIVED.replace(true));
    f()
}

/// A large block of `size` bytes, and whether its memory is zero. Null
/// when the system has no memory, or for a size no layout can hold (a
/// global allocator must not panic).
fn alloc_large(size: usize, zeroed: bool) -> (*mut u8, bool) {
    let Some(layout) = system_layout(size) else {
        return (std::ptr::null_mut(), false);
    };
    let in_call = ACTIVE_CALLS.load(Ordering::Relaxed) > 0;
    let (start, header, zero) = if in_call || LONG_LIVED.get() {
        let (start, len, fresh) = take_mapping(layout.size());
        let header = Header { len, keep: in_call };
        (start, header, fresh)
    } else {
        // SAFETY: `layout` is not zero-sized.
        let start = unsafe {
            if zeroed {
                System.alloc_zeroed(layout)
            } else {
                System.alloc(layout)
            }
        };
        (
            start,
            Header {
                len: 0,
                keep: false,
            },
            zeroed,
        )
    };
    if start.is_null() {
        return (start, zero);
    }
    // SAFETY: the block is `size + HEADER` bytes or more, aligned to HEADER.
    unsafe {
        start.cast::<Header>().write(header);
        (start.add(HEADER), zero)
    }
}

/// The layout of a large block of `size` bytes with its header.
fn system_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, HEADER).ok()
}

/// # Safety
/// `ptr` came from [`alloc_large`].
unsafe fn header_of(ptr: *mut u8) -> Header {
    ptr.sub(HEADER).cast::<Header>().read()
}

/// # Safety
/// `ptr` came from [`alloc_large`] for `size` bytes and is not used after.
unsafe fn free_large(ptr: *mut u8, size: usize) {
    let header = header_of(ptr);
    let start = ptr.sub(HEADER);
    match header {
        Header { len: 0, .. } => {
            // The layout existed when the block was allocated.
            let layout = Layout::from_size_align_unchecked(size + HEADER, HEADER);
            System.dealloc(start, layout)
        }
        Header { len, keep } if keep && ACTIVE_CALLS.load(Ordering::Relaxed) > 0 => {
            keep_mapping(start as usize, len)
        }
        Header { len, .. } => unmap(start as usize, len),
    }
}

unsafe impl GlobalAlloc for KeepingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            alloc_large(layout.size(), false).0
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !is_large(&layout) {
            return System.alloc_zeroed(layout);
        }
        let (ptr, zero) = alloc_large(layout.size(), true);
        if !zero && !ptr.is_null() {
            ptr.write_bytes(0, layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(&layout) {
            free_large(ptr, layout.size())
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (is_large(&layout), is_large(&new_layout)) {
            (false, false) => System.realloc(ptr, layout, new_size),
            // Still fits its mapping: nothing moves (0 for system blocks).
            (true, true) if new_size + HEADER <= header_of(ptr).len => ptr,
            _ => {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_blocks_are_zeroed_when_asked() {
        let _call = CallScope::enter();
        for round in 0..20u8 {
            // Same size each round: the freed block comes back.
            let zeros = vec![0u8; 3 * LARGE + 17];
            assert!(zeros.iter().all(|&b| b == 0), "round {round}");
            let mut dirty = zeros;
            dirty.fill(round + 1);
            drop(dirty);
        }
    }

    #[test]
    fn realloc_keeps_contents_across_sizes() {
        realloc_round_trip();
        let _call = CallScope::enter();
        realloc_round_trip();
        long_lived(realloc_round_trip);
    }

    /// Small -> large -> larger -> smaller -> small, contents checked.
    fn realloc_round_trip() {
        let counting = |v: &Vec<u32>| v.iter().enumerate().all(|(i, &x)| x == i as u32);
        let mut v: Vec<u32> = (0..1000).collect();
        v.reserve_exact(LARGE);
        assert!(counting(&v));
        v.extend(1000..(LARGE as u32));
        v.reserve_exact(4 * LARGE);
        assert!(counting(&v));
        v.truncate(LARGE / 8);
        v.shrink_to_fit();
        assert!(counting(&v));
        v.truncate(1000);
        v.shrink_to_fit();
        assert!(counting(&v));
    }

    #[test]
    fn between_calls_the_smallest_blocks_stay_within_budget() {
        let mb = |n: usize| n << 20;
        let mut kept = [None; KEPT_SLOTS];
        for (i, len) in [30, 2, 50, 8, 4].into_iter().enumerate() {
            kept[2 * i] = Some(Kept {
                start: i,
                len: mb(len),
            });
        }
        let taken = take_beyond(&mut kept, mb(20));
        let lens = |slots: &[Option<Kept>]| {
            let mut l: Vec<usize> = slots.iter().flatten().map(|b| b.len >> 20).collect();
            l.sort();
            l
        };
        assert_eq!(lens(&kept), [2, 4, 8]);
        assert_eq!(lens(&taken), [30, 50]);
        assert!(take_beyond(&mut kept, 0).iter().flatten().count() == 3);
        assert!(kept.iter().all(Option::is_none));
    }

    #[test]
    fn impossible_sizes_fail_without_panicking() {
        let _call = CallScope::enter();
        let mut v: Vec<u8> = Vec::new();
        assert!(v.try_reserve_exact(isize::MAX as usize).is_err());
        assert!(v.try_reserve_exact(isize::MAX as usize - 10).is_err());
        assert!(v.try_reserve_exact(1 << 46).is_err()); // 64 TiB: mmap refuses
    }

    #[test]
    fn blocks_outlive_their_call() {
        let block = {
            let _call = CallScope::enter();
            vec![5u16; 2 * LARGE]
        };
        // Only freed blocks are released when a call ends.
        assert!(block.iter().all(|&x| x == 5));
        drop(block);
        let _next = CallScope::enter();
        let again = vec![0u16; 2 * LARGE];
        assert!(again.iter().all(|&x| x == 0));
    }
}
