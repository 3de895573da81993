//! Buffers of bf16 values in whole cache lines, as tile loads want them.

/// bf16 values in 64-byte lines: tile rows must not straddle cache lines.
pub(super) struct Lines(Vec<Line>);

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 32]);

impl Lines {
    /// No lines (thread-local buffers start so).
    pub(super) const fn empty() -> Self {
        Self(Vec::new())
    }

    pub(super) fn zeroed(elems: usize) -> Self {
        // Weights and band buffers live long and are streamed over and over.
        Self(crate::alloc::long_lived(|| {
            vec![Line([0; 32]); elems.div_ceil(32)]
        }))
    }

    pub(super) fn as_slice(&self) -> &[u16] {
        // SAFETY: `Line` is 32 u16 with no padding (64 bytes, align 64).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len() * 32) }
    }

    /// The first `len` elements, the buffer grown (zeroed) first if it is
    /// shorter: per-thread buffers reused from call to call.
    pub(super) fn prefix_mut(&mut self, len: usize) -> &mut [u16] {
        if self.0.len() * 32 < len {
            *self = Lines::zeroed(len);
        }
        &mut self.as_mut_slice()[..len]
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [u16] {
        // SAFETY: as in `as_slice`; the borrow is unique through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), self.0.len() * 32) }
    }
}
