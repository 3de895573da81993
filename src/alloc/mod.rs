//! Memory for the forward pass's large buffers.
//!
//! The Rust library uses the system allocator. The Python extension (cargo
//! feature `keeping-allocator`, which maturin turns on) installs
//! [`keeping::KeepingAllocator`] as its global allocator: on Linux it keeps
//! a predict call's large freed blocks on transparent huge pages and hands
//! them out again, which measured 3-7% faster on the forward bench (AMD EPYC
//! Zen 2, paired runs); candle's tensors own their buffers, so this reuse
//! cannot be had from a workspace the forward pass plans itself. It is off
//! with `CROSSRANK_ALLOCATOR=system`.
//!
//! The rest of the crate marks calls ([`CallScope`]) and long-lived buffers
//! ([`long_lived`]) the same way in both builds, and [`release_memory`]
//! gives back what is kept.

#[cfg(all(target_os = "linux", feature = "keeping-allocator"))]
pub mod keeping;

#[cfg(all(target_os = "linux", feature = "keeping-allocator"))]
pub use keeping::{long_lived, CallScope};

/// Marks a predict call (the keeping allocator reuses its large blocks).
#[cfg(not(all(target_os = "linux", feature = "keeping-allocator")))]
pub struct CallScope(());

#[cfg(not(all(target_os = "linux", feature = "keeping-allocator")))]
impl CallScope {
    pub fn enter() -> Self {
        CallScope(())
    }
}

/// Runs `f`, whose large allocations are long-lived (packed weights).
#[cfg(not(all(target_os = "linux", feature = "keeping-allocator")))]
pub fn long_lived<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Gives memory that is free but still mapped back to the system: the
/// keeping allocator's blocks, and (glibc) the heap's free pages. Calls
/// running at the same time keep what they hold.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", feature = "keeping-allocator"))]
    keeping::release_kept_blocks();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
