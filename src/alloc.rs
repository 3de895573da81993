//! The library's global allocator: the system's, except for large blocks
//! (megabytes) allocated during a predict call (a batch's activations) or
//! marked long-lived (the packed weights, [`long_lived`]). Those are mapped
//! on transparent huge pages, and the ones of calls are kept when freed and
//! handed out again.
//!
//! Why: the products stream activations and weights megabytes wide, and on
//! 4 KiB pages they spend a share of their time on TLB misses; but every
//! layer allocates fresh outputs, and a fresh huge page is zeroed when first
//! touched. Huge pages that are reused pay neither: the forward bench ran
//! 5-8% faster with both (huge pages alone were slower than neither, since
//! glibc unmaps large blocks on free; reuse alone changed nothing), and the
//! weights' share of that is about 4% of a rerank batch.
//!
//! Kept blocks are bounded: blocks freed during a call stay for the next
//! call (the same batch shapes come again), and those the next call does not
//! take are unmapped when it ends. Other large blocks (a model load's
//! temporaries) stay with the system allocator.

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

pub struct KeepingAllocator;

/// What a large block's first bytes record.
#[derive(Clone, Copy)]
#[repr(C)]
struct Header {
    /// The mapping's length, header included; 0 for a block of the system
    /// allocator.
    len: usize,
    /// Allocated during a call: kept for reuse once freed.
    keep: bool,
}

/// A freed mapping waiting for reuse.
#[derive(Clone, Copy)]
struct Kept {
    start: usize,
    len: usize,
    /// The value of [`CALLS_ENDED`] when it was freed.
    freed_in: usize,
}

static KEPT: Mutex<[Option<Kept>; KEPT_SLOTS]> = Mutex::new([None; KEPT_SLOTS]);
/// Calls running now (several Python threads may predict at once).
static ACTIVE_CALLS: AtomicUsize = AtomicUsize::new(0);
/// Calls ended so far: dates kept blocks.
static CALLS_ENDED: AtomicUsize = AtomicUsize::new(0);

/// Marks a predict call: large blocks allocated while one runs are kept
/// for reuse. When the last running call ends, blocks kept from before it
/// that it did not take are released.
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
            let ended = CALLS_ENDED.fetch_add(1, Ordering::Relaxed);
            release_kept(|block| block.freed_in < ended);
        }
    }
}

/// Unmaps the kept blocks for which `stale` holds.
fn release_kept(stale: impl Fn(&Kept) -> bool) {
    let mut released = [None; KEPT_SLOTS];
    {
        let mut kept = lock_kept();
        for (slot, out) in kept.iter_mut().zip(&mut released) {
            if slot.as_ref().is_some_and(&stale) {
                *out = slot.take();
            }
        }
    }
    for block in released.into_iter().flatten() {
        unmap(block.start, block.len);
    }
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
            .filter(|&i| kept[i].is_some_and(|b| b.len >= len && b.len <= 2 * len))
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
    let block = Kept {
        start,
        len,
        freed_in: CALLS_ENDED.load(Ordering::Relaxed),
    };
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
    let before = LONG_LIVED.replace(true);
    let result = f();
    LONG_LIVED.set(before);
    result
}

/// A large block of `size` bytes, and whether its memory is zero.
fn alloc_large(size: usize, zeroed: bool) -> (*mut u8, bool) {
    let in_call = ACTIVE_CALLS.load(Ordering::Relaxed) > 0;
    let (start, header, zero) = if in_call || LONG_LIVED.get() {
        let (start, len, fresh) = take_mapping(size + HEADER);
        let header = Header { len, keep: in_call };
        (start, header, fresh)
    } else {
        let layout = system_layout(size);
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

/// The system allocator's layout for a large block of `size` bytes.
fn system_layout(size: usize) -> Layout {
    Layout::from_size_align(size + HEADER, HEADER).expect("block size")
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
        Header { len: 0, .. } => System.dealloc(start, system_layout(size)),
        Header { len, keep: true } => keep_mapping(start as usize, len),
        Header { len, keep: false } => unmap(start as usize, len),
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
    fn blocks_outlive_their_call() {
        let block = {
            let _call = CallScope::enter();
            vec![5u16; 2 * LARGE]
        };
        // Freed after the call ended: kept until the next one ends.
        assert!(block.iter().all(|&x| x == 5));
        drop(block);
        let _next = CallScope::enter();
        let again = vec![0u16; 2 * LARGE];
        assert!(again.iter().all(|&x| x == 0));
    }
}
