//! Float32 matrix products on Intel AMX tiles (Sapphire Rapids and later).
//!
//! The tile unit multiplies bfloat16 and accumulates in float32, about
//! sixteen times the AVX-512 float32 rate. Float32 accuracy is kept by
//! splitting every f32 into three bf16 parts, `x = hi + mid + lo` exactly,
//! and summing the six part products down to order 2^-24 (`hi*hi`,
//! `hi*mid`, `mid*hi`, `hi*lo`, `mid*mid`, `lo*hi`); the three dropped ones
//! are below float32's own rounding. Weights are split and laid out in tile
//! order once, at load time; activations are split by each task, into a
//! buffer its thread keeps.
//!
//! Used only where the CPU has AMX and Linux grants the process the tile
//! state; `CROSSRANK_AMX=0` turns it off.
//!
//! Layout: `detect` asks the CPU and the OS, `pack` lays weights out in
//! tile order, `plan` cuts a product into parallel tasks, `split` splits
//! each task's activations, `lines` holds both in cache-line buffers,
//! `guard` releases the tile state however a task ends, and `kernel` runs
//! the tiles. Under `--cfg crossrank_portable` the kernel is left out and
//! AMX is never available (as on other architectures, where this module
//! is not built at all).

// Without the kernel (`crossrank_portable`), the task planning and the
// activation splitting that feed it go unused; they still build.
#![cfg_attr(crossrank_portable, allow(dead_code))]

mod detect;
mod guard;
#[cfg(not(crossrank_portable))]
mod kernel;
mod lines;
mod pack;
mod plan;
mod split;
#[cfg(test)]
mod tests;

pub use detect::{available, cpu_and_os_allow};
pub use pack::PackedWeight;

use super::kernels::Activation;
#[cfg(not(crossrank_portable))]
use super::{assume_init, unwritten};
#[cfg(not(crossrank_portable))]
use kernel::{band_product, with_tiles, Destination, Output};
#[cfg(not(crossrank_portable))]
use plan::{band_blocks, tasks, Task};
#[cfg(not(crossrank_portable))]
use rayon::prelude::*;
#[cfg(not(crossrank_portable))]
use split::{next_product_id, SplitBand, BAND_BUFFER, INNER_BUFFER};

/// Tile geometry: 16 rows of 64 bytes; a k-block is 32 bf16 values.
const TILE_ROWS: usize = 16;
const K_BLOCK: usize = 32;
const TILE_BYTES: usize = 1024;
const TILE_ELEMS: usize = TILE_BYTES / 2;
/// The micro-kernel computes 32x32 outputs in four accumulator tiles.
const M_BLOCK: usize = 32;
const N_BLOCK: usize = 32;
/// Rows per parallel task: the task's split activations stay in L2.
const M_BLOCKS_PER_TASK: usize = 4;
const PARTS: usize = 3;
/// Narrower layers (classifier heads) stay on the float32 path: padding
/// them to a 32-column block would waste the tiles.
pub const MIN_OUT_FEATURES: usize = 32;

/// `act(x @ W^T + bias)` for `x` of `rows x in_features`, returned
/// `rows x out_features`. The bias and activation are applied to each block
/// while it is in L1, saving a pass over the result.
#[cfg(not(crossrank_portable))]
pub fn matmul(
    x: &[f32],
    rows: usize,
    w: &PackedWeight,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    assert_eq!(x.len(), rows * w.in_features, "activation shape");
    assert!(
        cpu_and_os_allow(),
        "AMX products need the CPU's AMX and the OS's grant"
    );
    let mut out = unwritten(rows * w.out_features);
    let target = Output::whole(&mut out, rows, w.out_features, bias, act);
    let m_blocks = rows.div_ceil(M_BLOCK);
    let product = Some(next_product_id());
    tasks(m_blocks, w.n_blocks()).par_iter().for_each(|task| {
        let band_rows = task.m_blocks.start * M_BLOCK..task.m_blocks.end * M_BLOCK;
        BAND_BUFFER.with_borrow_mut(|buffer| {
            let band = SplitBand::fill(buffer, x, w.in_features, band_rows, w.k_blocks, product);
            // SAFETY: AMX runs here (asserted above); the kernel runs inside
            // `with_tiles`; tasks own disjoint output blocks; `band` holds
            // the task's rows and `w` its columns (both padded).
            unsafe { with_tiles(|| band_product(&band, w, task, &target)) };
        });
    });
    // SAFETY: the tasks wrote every element.
    unsafe { assume_init(out) }
}

/// `act(x @ W1^T + b1) @ W2^T`, a feed-forward block without its last bias,
/// one band of rows per task: the wide intermediate lives only in that
/// task's thread (in L2), never in memory. Few rows go through two
/// separate products instead, which spread over more cores.
#[cfg(not(crossrank_portable))]
pub fn feed_forward(
    x: &[f32],
    rows: usize,
    w1: &PackedWeight,
    b1: Option<&[f32]>,
    act: Activation,
    w2: &PackedWeight,
) -> Vec<f32> {
    assert_eq!(w1.out_features, w2.in_features, "feed-forward shapes");
    assert!(
        cpu_and_os_allow(),
        "AMX products need the CPU's AMX and the OS's grant"
    );
    let m_blocks = rows.div_ceil(M_BLOCK);
    let bands = m_blocks.div_ceil(M_BLOCKS_PER_TASK);
    if bands < 2 * rayon::current_num_threads() {
        let inner = matmul(x, rows, w1, b1, act);
        return matmul(&inner, rows, w2, None, Activation::Identity);
    }
    let mut out = unwritten(rows * w2.out_features);
    let target = Output::whole(&mut out, rows, w2.out_features, None, Activation::Identity);
    (0..bands).into_par_iter().for_each(|band| {
        let m = band_blocks(band, m_blocks);
        let band_rows = m.start * M_BLOCK..m.end * M_BLOCK;
        let (first, end) = (band_rows.start, band_rows.end.min(rows));
        BAND_BUFFER.with_borrow_mut(|split| {
            INNER_BUFFER.with_borrow_mut(|inner| {
                let inner = inner.prefix_mut(SplitBand::len(band_rows.len(), w2.k_blocks));
                let inner_out = Output {
                    dst: Destination::Parts {
                        tiles: inner.as_mut_ptr(),
                        k_blocks: w2.k_blocks,
                    },
                    first_row: first,
                    rows: end,
                    cols: w1.out_features,
                    bias: b1,
                    act,
                };
                let a = SplitBand::fill(
                    split,
                    x,
                    w1.in_features,
                    band_rows.clone(),
                    w1.k_blocks,
                    None,
                );
                let first_task = Task {
                    m_blocks: m.clone(),
                    n_blocks: 0..w1.n_blocks(),
                };
                // SAFETY: as in `matmul`; `inner` holds exactly this band's
                // tiles, and its k-blocks are `w1`'s column blocks.
                unsafe { with_tiles(|| band_product(&a, w1, &first_task, &inner_out)) };
                let a = SplitBand {
                    data: inner,
                    first_row: first,
                    k_blocks: w2.k_blocks,
                };
                let second_task = Task {
                    m_blocks: m,
                    n_blocks: 0..w2.n_blocks(),
                };
                // SAFETY: as in `matmul`: this band's rows of `target` are
                // its own, and `a` (the split intermediate) holds its rows.
                unsafe { with_tiles(|| band_product(&a, w2, &second_task, &target)) };
            });
        });
    });
    // SAFETY: the bands cover every row, each band every column.
    unsafe { assume_init(out) }
}

/// Never called: without the tile kernel [`available`] is false, so no
/// layer packs a [`PackedWeight`] to multiply.
#[cfg(crossrank_portable)]
pub fn matmul(
    _x: &[f32],
    _rows: usize,
    _w: &PackedWeight,
    _bias: Option<&[f32]>,
    _act: Activation,
) -> Vec<f32> {
    unreachable!("built without the AMX kernel (crossrank_portable)")
}

/// Never called, as [`matmul`].
#[cfg(crossrank_portable)]
pub fn feed_forward(
    _x: &[f32],
    _rows: usize,
    _w1: &PackedWeight,
    _b1: Option<&[f32]>,
    _act: Activation,
    _w2: &PackedWeight,
) -> Vec<f32> {
    unreachable!("built without the AMX kernel (crossrank_portable)")
}
