//! Per-thread hardware state held for a piece of work and released after
//! it however the work ends: on return, and while a panic unwinds through
//! it. The tile kernel holds the AMX tile state so (`kernel::with_tiles`);
//! kept apart from the tiles so that the release is tested on any CPU.

/// State that a scope acquires on entry and must release on exit.
pub(super) trait ScopedState {
    /// Sets the state up on this thread.
    fn acquire(&mut self);
    /// Gives it back; runs once per [`acquire`](Self::acquire), unwinding
    /// included.
    fn release(&mut self);
}

/// Releases its state when dropped: at the end of the scope, or during
/// the unwinding of a panic raised inside it.
struct Release<'a, S: ScopedState>(&'a mut S);

impl<S: ScopedState> Drop for Release<'_, S> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Runs `f` with `state` acquired, and releases it after `f` returns or
/// panics (the panic then goes on unwinding).
pub(super) fn with_state<S: ScopedState, R>(state: &mut S, f: impl FnOnce() -> R) -> R {
    state.acquire();
    let _release = Release(state);
    f()
}
