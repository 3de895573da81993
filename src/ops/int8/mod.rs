//! int8 dense layers: `x @ W^T` with the weight quantized once at load
//! (symmetric, one scale per output channel, int8) and the activations
//! quantized on the fly, one scale per token (row). Products accumulate in
//! int32, exactly; the result is scaled back to float32 and the bias and
//! activation applied in the same pass.
//!
//! Activations are kept as int16 holding at most [`ACTIVATION_LEVELS`]
//! levels either side of zero. The AVX2 kernel multiplies int16 pairs
//! (`vpmaddwd`), which runs as many multiply-adds per cycle as the 8-bit
//! `vpmaddubsw` route on CPUs without VNNI, so the finer activation grid
//! costs no speed there and keeps the outlier tokens BERT-family models are
//! known for from flattening the rest of their row.
//!
//! Kernels, by instruction set (see [`kernel`]): `avx2` and `avx512-vnni`
//! (`avx2.rs`, one body) and the portable `scalar` one (`scalar.rs`). All
//! compute the same int32 sums, so their outputs agree up to the float32
//! rounding of the write-back.

mod avx2;
mod scalar;

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::kernels::{add_bias_and_activate, Activation};
use super::simd::{self, vectorized, Isa};
use super::{assume_init, unwritten};

/// Output columns per packed weight panel (two AVX2 registers of sums).
pub const PANEL: usize = 16;
/// Rows per micro-kernel call.
pub const ROW_BLOCK: usize = 6;
/// Activation levels either side of zero (12 bits with sign), lowered
/// where a long inner dimension could overflow the int32 sums.
pub const ACTIVATION_LEVELS: i32 = 2047;
/// Weight levels either side of zero.
const WEIGHT_LEVELS: f32 = 127.0;

/// An int8 weight in panels of [`PANEL`] output columns: for each pair of
/// input features `(2p, 2p + 1)`, the panel's columns in order, each as
/// its two values. Missing columns and the odd feature are zeros.
pub struct QuantizedWeight {
    data: Vec<i8>,
    /// One per output column: `w ≈ q * scale`.
    scales: Vec<f32>,
    out_features: usize,
    in_features: usize,
}

impl QuantizedWeight {
    /// Quantizes `weight`, `[out, in]` row-major as checkpoints store it.
    pub fn new(weight: &[f32], out_features: usize, in_features: usize) -> Self {
        assert_eq!(weight.len(), out_features * in_features);
        let pairs = in_features.div_ceil(2);
        let panels = out_features.div_ceil(PANEL);
        let scales: Vec<f32> = weight
            .chunks(in_features.max(1))
            .map(|row| simd::max_abs(row) / WEIGHT_LEVELS)
            .take(out_features)
            .collect();
        let mut data = vec![0i8; panels * pairs * PANEL * 2];
        data.par_chunks_mut(pairs * PANEL * 2)
            .enumerate()
            .for_each(|(panel, block)| {
                for c in 0..PANEL {
                    let n = panel * PANEL + c;
                    if n >= out_features || scales[n] == 0.0 {
                        continue;
                    }
                    let inv = 1.0 / scales[n];
                    for (k, &w) in weight[n * in_features..(n + 1) * in_features]
                        .iter()
                        .enumerate()
                    {
                        let q = (w * inv)
                            .round_ties_even()
                            .clamp(-WEIGHT_LEVELS, WEIGHT_LEVELS);
                        block[(k / 2) * PANEL * 2 + c * 2 + k % 2] = q as i8;
                    }
                }
            });
        Self {
            data,
            scales,
            out_features,
            in_features,
        }
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    fn pairs(&self) -> usize {
        self.in_features.div_ceil(2)
    }

    fn panel(&self, p: usize) -> &[i8] {
        let len = self.pairs() * PANEL * 2;
        &self.data[p * len..(p + 1) * len]
    }

    /// The float32 weight this one stands for, `[out, in]` (dequantized).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.out_features * self.in_features];
        for (n, row) in out.chunks_mut(self.in_features.max(1)).enumerate() {
            let panel = self.panel(n / PANEL);
            for (k, v) in row.iter_mut().enumerate() {
                *v = panel[(k / 2) * PANEL * 2 + (n % PANEL) * 2 + k % 2] as f32 * self.scales[n];
            }
        }
        out
    }

    /// Bytes the weight takes.
    pub fn bytes(&self) -> usize {
        self.data.len() + self.scales.len() * 4
    }
}

/// Activations quantized per row: `x[r] ≈ data[r] * scales[r]`, rows padded
/// with zeros to whole [`ROW_BLOCK`]s, each row `2 * pairs` long.
pub struct QuantizedRows {
    data: Vec<i16>,
    scales: Vec<f32>,
    width: usize,
}

impl QuantizedRows {
    /// Quantizes `x` (`[rows, in_features]`) for products whose inner
    /// dimension is `in_features`.
    pub fn new(x: &[f32], rows: usize, in_features: usize) -> Self {
        let width = in_features.div_ceil(2) * 2;
        let levels = activation_levels(width) as f32;
        let padded = rows.div_ceil(ROW_BLOCK) * ROW_BLOCK;
        let mut data = vec![0i16; padded * width];
        let mut scales = vec![0f32; padded];
        data.par_chunks_mut(width * ROW_BLOCK)
            .zip(scales.par_chunks_mut(ROW_BLOCK))
            .enumerate()
            .for_each(|(block, (q, s))| {
                for r in 0..ROW_BLOCK {
                    let row = block * ROW_BLOCK + r;
                    if row < rows {
                        let src = &x[row * in_features..(row + 1) * in_features];
                        s[r] =
                            quantize_row(src, &mut q[r * width..r * width + in_features], levels);
                    }
                }
            });
        Self {
            data,
            scales,
            width,
        }
    }

    fn block(&self, b: usize) -> &[i16] {
        &self.data[b * ROW_BLOCK * self.width..(b + 1) * ROW_BLOCK * self.width]
    }
}

/// The most activation levels an inner dimension of `width` allows
/// without overflowing int32: `width * levels * 127 < 2^31`.
pub fn activation_levels(width: usize) -> i32 {
    let bound = i32::MAX as i64 / (width.max(1) as i64 * WEIGHT_LEVELS as i64);
    (ACTIVATION_LEVELS as i64).min(bound).max(1) as i32
}

vectorized! {
    /// Quantizes one row to `±levels`, returning its scale.
    fn quantize_row(x: &[f32], q: &mut [i16], levels: f32) -> f32 {
        let amax = simd::max_abs(x);
        if amax == 0.0 || !amax.is_finite() {
            q.iter_mut().for_each(|v| *v = 0);
            return if amax.is_finite() { 0.0 } else { f32::NAN };
        }
        let inv = levels / amax;
        q.iter_mut()
            .zip(x)
            .for_each(|(q, &x)| *q = (x * inv).round_ties_even() as i16);
        amax / levels
    }
}

/// The int8 kernels, by instruction set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Scalar,
    Avx2,
    Avx512Vnni,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "int8 scalar",
            Kernel::Avx2 => "int8 avx2",
            Kernel::Avx512Vnni => "int8 avx512-vnni",
        }
    }
}

/// The int8 kernel for the path this process takes.
pub fn kernel() -> Kernel {
    kernel_for(simd::active_isa())
}

/// The int8 kernel that runs when kernels are capped at `isa` (AMX-INT8
/// has no kernel yet: AMX CPUs run the AVX-512 VNNI one).
pub fn kernel_for(isa: Isa) -> Kernel {
    match isa {
        Isa::Scalar => Kernel::Scalar,
        Isa::Avx2 => Kernel::Avx2,
        Isa::Avx512 | Isa::Amx if avx2::has_avx512_vnni() => Kernel::Avx512Vnni,
        Isa::Avx512 | Isa::Amx => Kernel::Avx2,
    }
}

/// int32 sums of one row block against one panel: `sums[r][c]`.
pub type BlockSums = [[i32; PANEL]; ROW_BLOCK];

/// `act(x @ W^T + bias)` for `x` `[rows, in]`, on the kernel for `isa`
/// (which the CPU must run), `[rows, out]`.
pub fn matmul_on(
    isa: Isa,
    x: &[f32],
    rows: usize,
    weight: &QuantizedWeight,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let n = weight.out_features;
    if rows == 0 || n == 0 {
        return vec![0f32; rows * n];
    }
    // Every task writes all columns of its rows (`run_task`).
    let mut out = unwritten(rows * n);
    simd::require(isa);
    let kernel = kernel_for(isa);
    let q = QuantizedRows::new(x, rows, weight.in_features);
    let blocks_per_task = row_blocks_per_task(rows);
    out.par_chunks_mut(blocks_per_task * ROW_BLOCK * n)
        .enumerate()
        .for_each(|(task, out)| {
            let rows = Rows {
                q: &q,
                first_block: task * blocks_per_task,
            };
            // SAFETY: MaybeUninit<f32> has f32's layout; the task writes
            // every element before anything reads it (`run_task`).
            let out: &mut [f32] = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
            match kernel {
                Kernel::Scalar => scalar::run(rows, weight, bias, act, out),
                Kernel::Avx2 => avx2::run(false, rows, weight, bias, act, out),
                Kernel::Avx512Vnni => avx2::run(true, rows, weight, bias, act, out),
            }
        });
    // SAFETY: every task wrote all of its slice, and the slices cover `out`.
    unsafe { assume_init(out) }
}

/// The quantized rows one task computes: whole row blocks from
/// `first_block` on, as many as its output slice holds.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    q: &'a QuantizedRows,
    first_block: usize,
}

/// One task's products, with a kernel's `block_sums` inlined: every panel
/// against every row block, each block written back (scaled, bias,
/// activation) while its sums are in cache.
#[inline(always)]
fn run_task(
    block_sums: impl Fn(&[i16], usize, &[i8], &mut BlockSums),
    rows: Rows<'_>,
    weight: &QuantizedWeight,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    let n = weight.out_features;
    let task_rows = out.len() / n;
    let pairs = rows.q.width / 2;
    let mut sums = [[0i32; PANEL]; ROW_BLOCK];
    for p in 0..n.div_ceil(PANEL) {
        let panel = weight.panel(p);
        let cols = p * PANEL..((p + 1) * PANEL).min(n);
        for b in 0..task_rows.div_ceil(ROW_BLOCK) {
            let block = rows.first_block + b;
            block_sums(rows.q.block(block), pairs, panel, &mut sums);
            for (r, sums) in sums.iter().enumerate().take(task_rows - b * ROW_BLOCK) {
                let row = b * ROW_BLOCK + r;
                let scale = rows.q.scales[block * ROW_BLOCK + r];
                let dst = &mut out[row * n + cols.start..row * n + cols.end];
                for ((o, &s), &w) in dst.iter_mut().zip(sums).zip(&weight.scales[cols.clone()]) {
                    *o = s as f32 * (scale * w);
                }
                add_bias_and_activate(act, dst, bias.map(|b| &b[cols.clone()]));
            }
        }
    }
}

/// `act(x @ W^T + bias)` on this process's kernel.
pub fn matmul(
    x: &[f32],
    rows: usize,
    weight: &QuantizedWeight,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    matmul_on(simd::active_isa(), x, rows, weight, bias, act)
}

/// Row blocks per parallel task: whole blocks, at least four tasks per
/// thread where the rows allow, at most 8 blocks (48 rows) so a task's
/// activations stay in L2.
fn row_blocks_per_task(rows: usize) -> usize {
    let blocks = rows.div_ceil(ROW_BLOCK);
    let tasks = 4 * rayon::current_num_threads();
    blocks.div_ceil(tasks).clamp(1, 8)
}

#[cfg(test)]
mod tests;
