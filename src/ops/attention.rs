//! Multi-head self-attention over packed sequences: no padding, no mask.
//! Each (sequence, head) is an independent task: two small gemms and a
//! softmax, run in parallel with rayon.

use candle_core::Tensor;
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::profile::{time, Op};
use super::simd::{self, vectorized};
use super::{math, matrix, with_f32};
use crate::error::Result;

pub struct AttentionSpec {
    pub heads: usize,
    pub head_dim: usize,
    /// Multiplies `q . k` (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    /// Sliding-window attention: token `i` sees `j` only when
    /// `|i - j| <= half_window` (ModernBERT's local layers).
    pub half_window: Option<usize>,
}

impl AttentionSpec {
    pub fn new(heads: usize, head_dim: usize) -> Self {
        Self {
            heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            half_window: None,
        }
    }
}

/// A raw pointer that may cross threads: tasks write disjoint regions.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub(crate) *mut f32);
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// `qkv`: `[tokens, 3 * heads * head_dim]`, query | key | value blocks,
/// biases already added. `cu_seqlens`: sequence boundaries, starting at 0
/// and ending at `tokens`. Returns the context `[tokens, heads * head_dim]`.
pub fn packed_attention(
    qkv: &Tensor,
    cu_seqlens: &[usize],
    spec: &AttentionSpec,
) -> Result<Tensor> {
    let tokens = qkv.dim(0)?;
    let hidden = spec.heads * spec.head_dim;
    let mut out = vec![0f32; tokens * hidden];
    let out_ptr = SharedOut(out.as_mut_ptr());
    with_f32(qkv, |qkv| {
        let tasks: Vec<(usize, usize)> = (0..cu_seqlens.len() - 1)
            .flat_map(|s| (0..spec.heads).map(move |h| (s, h)))
            .collect();
        tasks.par_iter().for_each_init(Vec::new, |scores, &(s, h)| {
            let (start, end) = (cu_seqlens[s], cu_seqlens[s + 1]);
            // SAFETY: each task writes only rows start..end, columns of head h.
            unsafe { attend_one(qkv, out_ptr, start, end - start, h, hidden, spec, scores) }
        });
    })?;
    matrix(out, tokens, hidden)
}

/// Query rows per block: a block's scores (`ROW_BLOCK x len`, at most
/// 256 KiB) stay in the L2 cache between the two products and the softmax,
/// memory per task grows with the sequence length, not its square, and the
/// keys are packed for gemm once per 128 queries (32 was 9% slower on long
/// pairs, measured with `cargo bench --bench forward`).
const ROW_BLOCK: usize = 128;

/// One (sequence, head): `softmax(scale Q K^T) V`, a block of query rows at
/// a time.
#[allow(clippy::too_many_arguments)]
unsafe fn attend_one(
    qkv: &[f32],
    out: SharedOut,
    start: usize,
    len: usize,
    head: usize,
    hidden: usize,
    spec: &AttentionSpec,
    scores: &mut Vec<f32>,
) {
    let d = spec.head_dim;
    let row = 3 * hidden;
    let q = qkv.as_ptr().add(start * row + head * d);
    let k = q.add(hidden);
    let v = q.add(2 * hidden);
    let mut inverse_sums = [0f32; ROW_BLOCK];
    for first in (0..len).step_by(ROW_BLOCK) {
        let rows = ROW_BLOCK.min(len - first);
        // Every score is written by the product below: no need to zero.
        if scores.len() < rows * len {
            scores.resize(rows * len, 0.0);
        }
        let scores = &mut scores[..rows * len];
        // scores = scale * Q K^T for this block (K^T is K read column-wise).
        time(Op::AttentionScores, || {
            scaled_dot_products(
                rows,
                len,
                d,
                scores.as_mut_ptr(),
                q.add(first * row),
                row,
                k,
                row,
                spec.scale,
            )
        });
        time(Op::AttentionSoftmax, || {
            for (i, r) in (first..).zip(scores.chunks_mut(len)) {
                let (lo, hi) = match spec.half_window {
                    Some(w) => (i.saturating_sub(w), (i + w + 1).min(len)),
                    None => (0, len),
                };
                inverse_sums[i - first] = exp_shifted(&mut r[lo..hi]);
                r[..lo].fill(0.0);
                r[hi..].fill(0.0);
            }
        });
        // out = P V, written into this head's columns of the block's rows,
        // then each row divided by its softmax sum.
        time(Op::AttentionValues, || {
            let dst = out.0.add((start + first) * hidden + head * d);
            weighted_rows(rows, d, len, scores.as_ptr(), v, row, dst, hidden);
            for (i, &inv) in inverse_sums[..rows].iter().enumerate() {
                // Only this head's columns: other tasks write the rest.
                let out_row = std::slice::from_raw_parts_mut(dst.add(i * hidden), d);
                out_row.iter_mut().for_each(|x| *x *= inv);
            }
        });
    }
}

/// `dst[m, n] = scale * a[m, k] . b[n, k]^T` (one small single-threaded
/// gemm): `a` and `b` rows `a_rs` / `b_rs` apart, `dst` row-major `n` wide.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn scaled_dot_products(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    a: *const f32,
    a_rs: usize,
    b: *const f32,
    b_rs: usize,
    scale: f32,
) {
    gemm(
        m,
        n,
        k,
        dst,
        1,
        n as isize,
        false,
        a,
        1,
        a_rs as isize,
        b,
        b_rs as isize,
        1,
        0.0,
        scale,
        false,
        false,
        false,
        Parallelism::None,
    );
}

/// `dst[m, n] = p[m, k] v[k, n]`: attention weights `p` (row-major, `k`
/// wide) times value rows `v_rs` apart, into rows `dst_rs` apart.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn weighted_rows(
    m: usize,
    n: usize,
    k: usize,
    p: *const f32,
    v: *const f32,
    v_rs: usize,
    dst: *mut f32,
    dst_rs: usize,
) {
    gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        p,
        1,
        k as isize,
        v,
        1,
        v_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    );
}

vectorized! {
    /// Numerically stable softmax of one row, in place.
    pub fn softmax_in_place(row: &mut [f32]) {
        let inv = exp_shifted_row(row);
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

vectorized! {
    /// A softmax without its last step: `row = e^(row - max)`, returning
    /// `1 / sum` for the caller to apply where there are fewer values (to
    /// the attention output rather than to the scores).
    pub fn exp_shifted(row: &mut [f32]) -> f32 {
        exp_shifted_row(row)
    }
}

#[inline(always)]
fn exp_shifted_row(row: &mut [f32]) -> f32 {
    let max = simd::max(row);
    let mut acc = [0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c.iter_mut()) {
            *x = math::exp(*x - max);
            *a += *x;
        }
    }
    let mut total = acc.iter().sum::<f32>();
    for x in chunks.into_remainder() {
        *x = math::exp(*x - max);
        total += *x;
    }
    1.0 / total
}
