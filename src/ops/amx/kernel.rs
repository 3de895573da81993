//! The tile kernel: tile configuration, the 32x32 block product in inline
//! assembly, and the write-back of finished blocks (bias, activation).

use std::arch::asm;
use std::mem::MaybeUninit;

use super::super::kernels::{add_bias_and_activate, Activation};
use super::guard::{with_state, ScopedState};
use super::pack::PackedWeight;
use super::plan::Task;
use super::split::{split_row, SplitBand};
use super::{K_BLOCK, M_BLOCK, N_BLOCK, TILE_BYTES, TILE_ROWS};

/// The six part products `(a, b)` whose orders sum to at most 2, in an
/// order where each step changes one side: 14 tile loads per k-block
/// instead of 18.
const PRODUCTS: [(usize, usize); 6] = [(2, 0), (1, 0), (1, 1), (0, 1), (0, 0), (0, 2)];

/// Where a task writes its `rows x cols` result, and what is applied on
/// the way.
pub(super) struct Output<'a> {
    pub(super) dst: Destination,
    /// The result's row that `dst` starts at.
    pub(super) first_row: usize,
    /// The end of the rows that exist (not padding).
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) bias: Option<&'a [f32]>,
    pub(super) act: Activation,
}

pub(super) enum Destination {
    /// Row-major float32.
    Rows(*mut MaybeUninit<f32>),
    /// Split into bf16 parts in [`SplitBand`]'s layout, as the activations
    /// of a following product whose k-blocks are this result's column
    /// blocks (`K_BLOCK == N_BLOCK`). Padding rows and columns are written
    /// too (finite, zero past `cols`) since that product reads them.
    Parts { tiles: *mut u16, k_blocks: usize },
}

impl<'a> Output<'a> {
    /// The whole `rows x cols` result in `buffer`.
    pub(super) fn whole(
        buffer: &mut [MaybeUninit<f32>],
        rows: usize,
        cols: usize,
        bias: Option<&'a [f32]>,
        act: Activation,
    ) -> Self {
        Self {
            dst: Destination::Rows(buffer.as_mut_ptr()),
            first_row: 0,
            rows,
            cols,
            bias,
            act,
        }
    }

    /// Asks for the lines of the block at (`row`, `col`) in L1, writable,
    /// ahead of its write-back: the stores then do not wait for the lines.
    fn prefetch_block(&self, row: usize, col: usize) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
        let Destination::Rows(ptr) = self.dst else {
            return;
        };
        let cols = N_BLOCK.min(self.cols - col);
        for r in row..(row + M_BLOCK).min(self.rows) {
            let at = (r - self.first_row) * self.cols + col;
            // Prefetches never fault; `wrapping_add` keeps the pointer
            // arithmetic defined whatever the offset.
            let line = ptr.wrapping_add(at).cast::<i8>();
            // SAFETY: `_mm_prefetch` needs SSE, part of every x86_64 CPU; a
            // prefetch is a hint that reads and writes nothing.
            unsafe {
                _mm_prefetch::<_MM_HINT_ET0>(line);
                _mm_prefetch::<_MM_HINT_ET0>(line.wrapping_add(4 * cols - 1));
            }
        }
    }
}

// SAFETY: tasks write disjoint blocks (see `matmul`).
unsafe impl Sync for Output<'_> {}

/// Writes rows `part` of a finished block at (`row`, `col`) from `block` to
/// `out`, bias and activation applied on the way. Inlined into
/// `band_product`, which is compiled for AVX-512.
#[inline(always)]
fn write_block(
    block: &mut Block,
    out: &Output,
    row: usize,
    col: usize,
    part: std::ops::Range<usize>,
) {
    let cols = N_BLOCK.min(out.cols - col);
    let bias = out.bias.map(|b| &b[col..col + cols]);
    let rows = match out.dst {
        Destination::Rows(_) => M_BLOCK.min(out.rows - row),
        Destination::Parts { .. } => M_BLOCK,
    };
    for r in part.start..part.end.min(rows) {
        let values: &mut [f32; N_BLOCK] = (&mut block.0[r * N_BLOCK..(r + 1) * N_BLOCK])
            .try_into()
            .unwrap();
        add_bias_and_activate(out.act, values, bias);
        let at = row + r - out.first_row;
        // SAFETY: `out` holds rows `first_row..rows` of `cols` columns
        // (as parts: of every row of the band), and the task owns this
        // block.
        unsafe {
            match out.dst {
                Destination::Rows(ptr) => {
                    let dst = ptr.add(at * out.cols + col).cast::<f32>();
                    if cols == N_BLOCK {
                        // A fixed-size copy stays two vector stores.
                        dst.cast::<[f32; N_BLOCK]>().write_unaligned(*values);
                    } else {
                        std::ptr::copy_nonoverlapping(values.as_ptr(), dst, cols);
                    }
                }
                Destination::Parts { tiles, k_blocks } => {
                    values[cols..].fill(0.0);
                    let tile = |p: usize| {
                        let offset = SplitBand::offset(at, p, col / K_BLOCK, k_blocks);
                        &mut *tiles.add(offset).cast::<[u16; K_BLOCK]>()
                    };
                    split_row(values, tile(0), tile(1), tile(2));
                }
            }
        }
    }
}

/// The tile configuration of every product: tiles 0 to 7 of 16 rows x 64
/// bytes, in `ldtilecfg`'s 64-byte memory layout.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    fn new() -> Self {
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for t in 0..8 {
            config.colsb[t] = 64;
            config.rows[t] = TILE_ROWS as u8;
        }
        config
    }
}

/// This thread's tile state as a [`ScopedState`]: configured by
/// `ldtilecfg`, released by `tilerelease`.
struct Tiles {
    config: TileConfig,
}

impl Tiles {
    /// # Safety
    /// The CPU has AMX and the OS granted this process the tile state
    /// ([`cpu_and_os_allow`](super::cpu_and_os_allow)): the tile
    /// instructions fault otherwise.
    unsafe fn new() -> Self {
        Self {
            config: TileConfig::new(),
        }
    }
}

impl ScopedState for Tiles {
    fn acquire(&mut self) {
        // SAFETY: AMX runs here (`Tiles::new`'s contract); the config is
        // valid for palette 1 (8 tiles within its 16 rows x 64 bytes) and
        // is the 64 aligned bytes that `ldtilecfg` reads.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &self.config, options(nostack, readonly));
        }
    }

    fn release(&mut self) {
        // SAFETY: AMX runs here (`Tiles::new`'s contract); `tilerelease`
        // takes no operands and only resets the tile state.
        unsafe {
            asm!("tilerelease", options(nostack, nomem));
        }
    }
}

/// Configures the tiles on this thread for `f` and releases them after,
/// also when `f` panics: context switches then do not carry 8 KiB of tile
/// state, and a panic leaves no tiles configured on a pool thread.
///
/// # Safety
/// The CPU has AMX and the OS granted this process the tile state
/// ([`cpu_and_os_allow`](super::cpu_and_os_allow)).
pub(super) unsafe fn with_tiles<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: the caller's guarantee is `Tiles::new`'s.
    let mut tiles = unsafe { Tiles::new() };
    with_state(&mut tiles, f)
}

macro_rules! tile_load {
    ($tile:literal, $ptr:expr, $stride:expr) => {
        asm!(
            concat!("tileloadd tmm", $tile, ", [{ptr} + {stride}*1]"),
            ptr = in(reg) $ptr,
            stride = in(reg) $stride,
            options(nostack, readonly)
        )
    };
}

macro_rules! tile_store {
    ($tile:literal, $ptr:expr, $stride:expr) => {
        asm!(
            concat!("tilestored [{ptr} + {stride}*1], tmm", $tile),
            ptr = in(reg) $ptr,
            stride = in(reg) $stride,
            options(nostack)
        )
    };
}

/// The products of one task's row band and column range, one 32x32 block
/// at a time over the whole of K: the sums stay in the tiles, so the tile
/// unit drains once per block. Each block's write-back (bias, activation,
/// store to `out`) runs while the tile unit works on the next block, a few
/// rows after each k-block: small enough pieces that the out-of-order
/// window holds them together with the queued tile work.
///
/// Compiled for AVX-512 (every CPU with AMX has it; `available` checks),
/// so the inlined write-back needs no dispatch per call.
///
/// # Safety
/// The caller runs it inside [`with_tiles`] (tiles configured on this
/// thread, so AMX and AVX-512 run here); `a` holds the split rows of every
/// m-block of `task` and `w` every column block of it (both padded to
/// whole blocks); and no other thread writes `task`'s blocks of `out`,
/// whose destination holds them.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
pub(super) unsafe fn band_product(a: &SplitBand, w: &PackedWeight, task: &Task, out: &Output) {
    let mut scratch = [const { Block([0.0; M_BLOCK * N_BLOCK]) }; 2];
    let scratch = scratch.as_mut_ptr();
    let rows_per_step = M_BLOCK.div_ceil(w.k_blocks);
    // The finished block waiting for its write-back: (sums, row, column).
    let mut pending: Option<(*mut Block, usize, usize)> = None;
    let blocks = task
        .n_blocks
        .clone()
        .flat_map(|nb| task.m_blocks.clone().map(move |mb| (mb, nb)));
    for (i, (mb, nb)) in blocks.enumerate() {
        // Alternate scratch blocks: the other one holds `pending`.
        // SAFETY: `i % 2` is 0 or 1, inside the two-block `scratch`.
        let sum = unsafe { scratch.add(i % 2) };
        let write_finished = |kb: usize| {
            if kb == 0 {
                out.prefetch_block(mb * M_BLOCK, nb * N_BLOCK);
            }
            let first = kb * rows_per_step;
            if let Some((finished, row, col)) = pending.filter(|_| first < M_BLOCK) {
                // SAFETY: `finished` is the other scratch block than `sum`
                // (which the tiles store into), so this is its only borrow.
                write_block(
                    unsafe { &mut *finished },
                    out,
                    row,
                    col,
                    first..first + rows_per_step,
                );
            }
        };
        // SAFETY: tiles configured and `a`, `w` hold the blocks (this
        // function's contract); `sum` is a scratch block of this frame.
        unsafe { block_product(a, w, mb, nb, sum, write_finished) };
        pending = Some((sum, mb * M_BLOCK, nb * N_BLOCK));
    }
    if let Some((finished, row, col)) = pending {
        // SAFETY: a scratch block of this frame, no longer otherwise used.
        write_block(unsafe { &mut *finished }, out, row, col, 0..M_BLOCK);
    }
}

/// One 32x32 block of results, aligned for tile stores.
#[repr(C, align(64))]
struct Block([f32; M_BLOCK * N_BLOCK]);

/// One 32x32 output block over all of K, stored into `sum`: accumulators
/// tmm0..3, activations tmm4..5, weights tmm6..7. `meanwhile(kb)` runs
/// once k-block `kb`'s products are queued, overlapping them.
///
/// # Safety
/// Tiles are configured on this thread as [`with_tiles`] does; `a` holds
/// the split rows of m-block `mb` and `w` column blocks `2 nb` and
/// `2 nb + 1`, over all `w.k_blocks`; `sum` is valid for writes and
/// `meanwhile` does not touch it.
#[inline(always)]
unsafe fn block_product(
    a: &SplitBand,
    w: &PackedWeight,
    mb: usize,
    nb: usize,
    sum: *mut Block,
    mut meanwhile: impl FnMut(usize),
) {
    let row = mb * M_BLOCK;
    let (left, right) = (2 * nb, 2 * nb + 1);
    let stride = TILE_BYTES / TILE_ROWS;
    // SAFETY: the tiles are configured (this function's contract) and
    // the tile instructions touch only them; every `tileloadd` reads one
    // 1 KiB tile (16 rows of 64 bytes, `stride` apart) that `a` or `w`
    // holds (their `tile` bounds-checks its start, the contract covers
    // the rest); the stores write the four 16x16 quarters of `*sum`.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for kb in 0..w.k_blocks {
            let mut loaded = (usize::MAX, usize::MAX);
            for (pa, pb) in PRODUCTS {
                if loaded.0 != pa {
                    tile_load!("4", a.tile(row, pa, kb), stride);
                    tile_load!("5", a.tile(row + TILE_ROWS, pa, kb), stride);
                }
                if loaded.1 != pb {
                    tile_load!("6", w.tile(left, pb, kb), stride);
                    tile_load!("7", w.tile(right, pb, kb), stride);
                }
                loaded = (pa, pb);
                asm!(
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    options(nostack, nomem)
                );
            }
            meanwhile(kb);
        }
        let c = (*sum).0.as_mut_ptr();
        let c_low = c.add(TILE_ROWS * N_BLOCK);
        let c_stride = N_BLOCK * 4;
        tile_store!("0", c, c_stride);
        tile_store!("1", c.add(TILE_ROWS), c_stride);
        tile_store!("2", c_low, c_stride);
        tile_store!("3", c_low.add(TILE_ROWS), c_stride);
    }
}
