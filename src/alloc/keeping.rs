//! The keeping allocator: the system's, except for large blocks
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

//! Installed only where the `keeping-allocator` feature asks for it (the
//! Python extension), and switched off at run time by
//! `CROSSRANK_ALLOCATOR=system`. Its one lock is taken around `fork()`
//! (`pthread_atfork`), so a child never inherits it held.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

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

/// A lock that spins: held only to scan 16 slots, never across a system
/// call, and lockable from the `fork()` handlers (a `Mutex` guard cannot
/// be held from one handler to the next).
struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is reached only through `lock`, one thread at a time.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    fn acquire(&self) {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }

    fn release(&self) {
        self.locked.store(false, Ordering::Release);
    }

    fn lock(&self) -> SpinGuard<'_, T> {
        self.acquire();
        SpinGuard(self)
    }
}

struct SpinGuard<'a, T>(&'a SpinLock<T>);

impl<T> std::ops::Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock.
        unsafe { &*self.0.value.get() }
    }
}

impl<T> std::ops::DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the lock.
        unsafe { &mut *self.0.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.0.release();
    }
}

static KEPT: SpinLock<[Option<Kept>; KEPT_SLOTS]> = SpinLock::new([None; KEPT_SLOTS]);
/// Calls running now (several Python threads may predict at once).
static ACTIVE_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Marks a predict call: large blocks allocated while one runs are kept
/// for reuse when freed. When the last running call ends, kept blocks
/// beyond [`KEPT_BETWEEN_CALLS`] are released.
pub struct CallScope(bool);

impl CallScope {
    pub fn enter() -> Self {
        let on = enabled();
        if on {
            ACTIVE_CALLS.fetch_add(1, Ordering::Relaxed);
        }
        CallScope(on)
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        if self.0 && ACTIVE_CALLS.fetch_sub(1, Ordering::Relaxed) == 1 {
            release_kept(KEPT_BETWEEN_CALLS);
        }
    }
}

/// Unmaps every kept block now (calls running at the same time keep
/// theirs until they free them).
pub fn release_kept_blocks() {
    release_kept(0);
}

/// Whether the keeping path is on (`CROSSRANK_ALLOCATOR` is not `system`).
/// Read outside the allocator (reading the environment allocates), the
/// first time a call or a long-lived load starts; the fork handlers are
/// registered then.
///
/// Never blocks: a thread that finds another one deciding gets `false`
/// (that call uses the system allocator). A lock here (`OnceLock`) would
/// deadlock a child forked while its parent was deciding: the child would
/// wait forever for a thread it does not have.
fn enabled() -> bool {
    const UNKNOWN: u8 = 0;
    const DECIDING: u8 = 1;
    const ON: u8 = 2;
    const OFF: u8 = 3;
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    match STATE.compare_exchange(UNKNOWN, DECIDING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            let on = std::env::var("CROSSRANK_ALLOCATOR").map_or(true, |v| v != "system");
            if on {
                // SAFETY: the handlers only take and drop the slot lock.
                unsafe {
                    libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork))
                };
            }
            STATE.store(if on { ON } else { OFF }, Ordering::Release);
            on
        }
        Err(state) => state == ON,
    }
}

/// Holds the slot lock across `fork()`: the child then starts with
/// consistent slots and the lock free, whatever other threads were doing.
extern "C" fn before_fork() {
    KEPT.acquire();
}

extern "C" fn after_fork() {
    KEPT.release();
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

fn lock_kept() -> SpinGuard<'static, [Option<Kept>; KEPT_SLOTS]> {
    KEPT.lock()
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
    let _restore = Restore(LONG_LIVED.replace(enabled()));
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
    // SAFETY: `alloc_large` wrote the header HEADER bytes before `ptr`.
    unsafe { ptr.sub(HEADER).cast::<Header>().read() }
}

/// # Safety
/// `ptr` came from [`alloc_large`] for `size` bytes and is not used after.
unsafe fn free_large(ptr: *mut u8, size: usize) {
    // SAFETY: as the caller guarantees; the block starts HEADER bytes
    // before `ptr`.
    let (header, start) = unsafe { (header_of(ptr), ptr.sub(HEADER)) };
    match header {
        Header { len: 0, .. } => {
            // SAFETY: a system block allocated with this layout (it existed
            // then), freed once.
            unsafe {
                let layout = Layout::from_size_align_unchecked(size + HEADER, HEADER);
                System.dealloc(start, layout)
            }
        }
        Header { len, keep } if keep && ACTIVE_CALLS.load(Ordering::Relaxed) > 0 => {
            keep_mapping(start as usize, len)
        }
        Header { len, .. } => unmap(start as usize, len),
    }
}

// SAFETY: small and over-aligned blocks go to the system allocator
// unchanged; large ones are whole mappings or system blocks with a header
// in front, each returned once, at least `size` bytes and HEADER-aligned
// (the largest alignment the large path accepts).
unsafe impl GlobalAlloc for KeepingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            alloc_large(layout.size(), false).0
        } else {
            // SAFETY: the caller's layout, as GlobalAlloc requires.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !is_large(&layout) {
            // SAFETY: the caller's layout, as GlobalAlloc requires.
            return unsafe { System.alloc_zeroed(layout) };
        }
        let (ptr, zero) = alloc_large(layout.size(), true);
        if !zero && !ptr.is_null() {
            // SAFETY: a fresh block of at least `layout.size()` bytes.
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe {
            if is_large(&layout) {
                free_large(ptr, layout.size())
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: `ptr` came from this allocator
        // with `layout`, and `new_size` rounded to the alignment does not
        // overflow; the old block is freed only after its bytes are copied.
        unsafe {
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

    /// A child forked while other threads take and free kept blocks can
    /// still allocate: the slot lock is never inherited held.
    #[test]
    fn a_fork_while_other_threads_allocate_does_not_deadlock_the_child() {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let _call = CallScope::enter();
                    while !stop.load(Ordering::Relaxed) {
                        drop(vec![1u8; 2 * LARGE]);
                    }
                })
            })
            .collect();
        for _ in 0..20 {
            // SAFETY: the child only allocates, frees and exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let _call = CallScope::enter();
                let block = vec![2u8; 3 * LARGE];
                drop(block);
                // SAFETY: leaves the child without running the parent's
                // test harness.
                unsafe { libc::_exit(0) };
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut status = 0;
            loop {
                // SAFETY: polls our own child.
                let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if done == pid {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    // SAFETY: our own child, stuck.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    panic!("the forked child deadlocked");
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().for_each(|w| w.join().unwrap());
    }
}
