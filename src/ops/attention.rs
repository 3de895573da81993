//! Multi-head self-attention over packed sequences: no padding, no mask.
//! Each (sequence, head) is an independent task: two small gemms and a
//! softmax, run in parallel with rayon.

use candle_core::Tensor;
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

#[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
use super::attention_avx512;
use super::profile::{time, Op};
use super::simd::{self, vectorized};
use super::{assume_init, math, matrix, unwritten, with_f32};
use crate::error::Result;

pub struct AttentionSpec {
    pub heads: usize,
    /// Key / value heads: fewer than `heads` for grouped-query attention,
    /// where query head `h` reads key / value head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies `q . k` (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    /// Sliding-window attention: token `i` sees `j` only when
    /// `|i - j| <= half_window` (ModernBERT's local layers).
    pub half_window: Option<usize>,
    /// Causal attention (decoders): token `i` sees `j` only when `j <= i`.
    pub causal: bool,
}

impl AttentionSpec {
    /// Columns of the fused projection: query | key | value blocks.
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    /// Offsets within a projection row of query head `head`'s query, key
    /// and value.
    fn offsets(&self, head: usize) -> (usize, usize, usize) {
        let d = self.head_dim;
        let kv = head / (self.heads / self.kv_heads);
        let keys = self.heads * d;
        let values = keys + self.kv_heads * d;
        (head * d, keys + kv * d, values + kv * d)
    }

    pub fn new(heads: usize, head_dim: usize) -> Self {
        Self {
            heads,
            kv_heads: heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            half_window: None,
            causal: false,
        }
    }
}

/// The keys `lo..hi` that query `i` of a `len`-token sequence attends to,
/// under an optional sliding window and an optional causal mask.
#[inline]
pub(crate) fn visible_keys(
    i: usize,
    len: usize,
    half_window: Option<usize>,
    causal: bool,
) -> (usize, usize) {
    let (lo, hi) = match half_window {
        Some(w) => (i.saturating_sub(w), (i + w + 1).min(len)),
        None => (0, len),
    };
    match causal {
        true => (lo, hi.min(i + 1)),
        false => (lo, hi),
    }
}

/// A raw pointer that may cross threads: tasks write disjoint regions.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub(crate) *mut f32);
// SAFETY: only a pointer; the tasks it is shared with write disjoint
// rows and columns of its buffer (see `attention_on`).
unsafe impl Send for SharedOut {}
// SAFETY: as for `Send`: no two tasks write the same element.
unsafe impl Sync for SharedOut {}

/// `qkv`: `[tokens, (heads + 2 * kv_heads) * head_dim]`, query | key |
/// value blocks, biases already added. `cu_seqlens`: sequence boundaries, starting at 0
/// and ending at `tokens`. Returns the context `[tokens, heads * head_dim]`.
pub fn packed_attention(
    qkv: &Tensor,
    cu_seqlens: &[usize],
    spec: &AttentionSpec,
) -> Result<Tensor> {
    attention_on(Kernel::best_for(spec.head_dim), qkv, cu_seqlens, spec)
}

/// How each (sequence, head) is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// The AVX-512 register kernel (`attention_avx512`), x86_64 only.
    #[cfg_attr(
        not(all(target_arch = "x86_64", not(crossrank_portable))),
        allow(dead_code)
    )]
    Registers,
    /// Two `gemm` calls and a softmax per block of rows: any CPU, any head.
    Gemm,
}

impl Kernel {
    fn best_for(head_dim: usize) -> Self {
        #[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
        if attention_avx512::supported(head_dim) {
            return Kernel::Registers;
        }
        let _ = head_dim;
        Kernel::Gemm
    }
}

fn attention_on(
    kernel: Kernel,
    qkv: &Tensor,
    cu_seqlens: &[usize],
    spec: &AttentionSpec,
) -> Result<Tensor> {
    let tokens = qkv.dim(0)?;
    let hidden = spec.heads * spec.head_dim;
    if spec.kv_heads == 0 || !spec.heads.is_multiple_of(spec.kv_heads) {
        return Err(crate::error::Error::invalid_model(format!(
            "{} attention heads cannot share {} key/value heads",
            spec.heads, spec.kv_heads
        )));
    }
    if qkv.dim(1)? != spec.qkv_width() {
        return Err(crate::error::Error::invalid_model(format!(
            "fused qkv has {} columns, expected {}",
            qkv.dim(1)?,
            spec.qkv_width()
        )));
    }
    // Every (sequence, head) task writes its rows' columns of that head, and
    // the sequences cover every token: the output needs no zeroing.
    assert_eq!(
        cu_seqlens.last(),
        Some(&tokens),
        "sequences must cover the tokens"
    );
    let mut out = unwritten(tokens * hidden);
    let out_ptr = SharedOut(out.as_mut_ptr().cast::<f32>());
    with_f32(qkv, |qkv| {
        let tasks: Vec<(usize, usize)> = (0..cu_seqlens.len() - 1)
            .flat_map(|s| (0..spec.heads).map(move |h| (s, h)))
            .collect();
        match kernel {
            #[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
            Kernel::Registers => {
                tasks
                    .par_iter()
                    .for_each_init(Default::default, |scratch, &(s, h)| {
                        let (start, end) = (cu_seqlens[s], cu_seqlens[s + 1]);
                        let head = register_head(qkv, out_ptr, start, end - start, h, spec);
                        // SAFETY: `best_for` checked the CPU; the task writes
                        // only rows start..end, columns of head h.
                        unsafe { attention_avx512::attend(&head, scratch) }
                    })
            }
            _ => tasks.par_iter().for_each_init(Vec::new, |scores, &(s, h)| {
                let (start, end) = (cu_seqlens[s], cu_seqlens[s + 1]);
                // SAFETY: each task writes only rows start..end, columns of
                // head h.
                unsafe { attend_one(qkv, out_ptr, start, end - start, h, hidden, spec, scores) }
            }),
        }
    })?;
    // SAFETY: see above; every element was written.
    matrix(unsafe { assume_init(out) }, tokens, hidden)
}

/// Head `head` of the sequence at tokens `start..start + len`, for the
/// AVX-512 kernel.
#[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
fn register_head(
    qkv: &[f32],
    out: SharedOut,
    start: usize,
    len: usize,
    head: usize,
    spec: &AttentionSpec,
) -> attention_avx512::Head {
    let (d, hidden) = (spec.head_dim, spec.heads * spec.head_dim);
    let row = qkv[start * spec.qkv_width()..].as_ptr();
    let (q, k, v) = spec.offsets(head);
    attention_avx512::Head {
        q: row.wrapping_add(q),
        k: row.wrapping_add(k),
        v: row.wrapping_add(v),
        stride: spec.qkv_width(),
        len,
        head_dim: d,
        scale: spec.scale,
        half_window: spec.half_window,
        causal: spec.causal,
        out: out.0.wrapping_add(start * hidden + head * d),
        out_stride: hidden,
    }
}

/// Query rows per block: a block's scores (`ROW_BLOCK x len`, at most
/// 256 KiB) stay in the L2 cache between the two products and the softmax,
/// memory per task grows with the sequence length, not its square, and the
/// keys are packed for gemm once per 128 queries (32 was 9% slower on long
/// pairs, measured with `cargo bench --bench forward`).
const ROW_BLOCK: usize = 128;

/// One (sequence, head): `softmax(scale Q K^T) V`, a block of query rows at
/// a time.
///
/// # Safety
/// `out` is valid for writes of `tokens x hidden` floats (`qkv`'s
/// rows), `start + len` is at most `qkv`'s rows, and no other thread
/// writes rows `start..start + len` of head `head`'s columns.
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
    // SAFETY: the pointers stay inside `qkv` (rows `start..start + len`
    // of head `head`) and inside the output rows and head columns that the
    // caller gave this task.
    unsafe {
        let d = spec.head_dim;
        let row = spec.qkv_width();
        let first_row = qkv.as_ptr().add(start * row);
        let (q, k, v) = spec.offsets(head);
        let (q, k, v) = (first_row.add(q), first_row.add(k), first_row.add(v));
        let mut inverse_sums = [0f32; ROW_BLOCK];
        for first in (0..len).step_by(ROW_BLOCK) {
            let rows = ROW_BLOCK.min(len - first);
            // Only the keys some row of the block sees (all of them, or
            // under a causal mask or a window the span of its rows' ranges).
            let window = |i: usize| visible_keys(i, len, spec.half_window, spec.causal);
            let (keys_lo, keys_hi) = (window(first).0, window(first + rows - 1).1);
            let width = keys_hi - keys_lo;
            // Every score is written by the product below: no need to zero.
            if scores.len() < rows * width {
                scores.resize(rows * width, 0.0);
            }
            let scores = &mut scores[..rows * width];
            // scores = scale * Q K^T for this block (K^T is K read column-wise).
            time(Op::AttentionScores, || {
                scaled_dot_products(
                    rows,
                    width,
                    d,
                    scores.as_mut_ptr(),
                    q.add(first * row),
                    row,
                    k.add(keys_lo * row),
                    row,
                    spec.scale,
                )
            });
            time(Op::AttentionSoftmax, || {
                for (i, r) in (first..).zip(scores.chunks_mut(width)) {
                    let (lo, hi) = window(i);
                    let (lo, hi) = (lo - keys_lo, hi - keys_lo);
                    inverse_sums[i - first] = exp_shifted(&mut r[lo..hi]);
                    r[..lo].fill(0.0);
                    r[hi..].fill(0.0);
                }
            });
            // out = P V, written into this head's columns of the block's rows,
            // then each row divided by its softmax sum.
            time(Op::AttentionValues, || {
                let dst = out.0.add((start + first) * hidden + head * d);
                let values = v.add(keys_lo * row);
                weighted_rows(rows, d, width, scores.as_ptr(), values, row, dst, hidden);
                for (i, &inv) in inverse_sums[..rows].iter().enumerate() {
                    // Only this head's columns: other tasks write the rest.
                    let out_row = std::slice::from_raw_parts_mut(dst.add(i * hidden), d);
                    out_row.iter_mut().for_each(|x| *x *= inv);
                }
            });
        }
    }
}

/// `dst[m, n] = scale * a[m, k] . b[n, k]^T` (one small single-threaded
/// gemm): `a` and `b` rows `a_rs` / `b_rs` apart, `dst` row-major `n` wide.
///
/// # Safety
/// `a` is valid for reads of `m` rows of `k` floats `a_rs` apart, `b`
/// of `n` rows of `k` floats `b_rs` apart, and `dst` for writes of `m x n`
/// floats that nothing else accesses meanwhile.
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
    // SAFETY: the caller's contract is the one `gemm` needs for these
    // shapes and strides.
    unsafe {
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
}

/// `dst[m, n] = p[m, k] v[k, n]`: attention weights `p` (row-major, `k`
/// wide) times value rows `v_rs` apart, into rows `dst_rs` apart.
///
/// # Safety
/// `p` is valid for reads of `m x k` floats, `v` of `k` rows of `n`
/// floats `v_rs` apart, and `dst` for writes of `m` rows of `n` floats
/// `dst_rs` apart that nothing else accesses meanwhile.
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
    // SAFETY: the caller's contract is the one `gemm` needs for these
    // shapes and strides.
    unsafe {
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Float64 attention of one sequence, `[len, heads * head_dim]`.
    fn reference(qkv: &[f32], start: usize, len: usize, spec: &AttentionSpec) -> Vec<f64> {
        let (d, hidden) = (spec.head_dim, spec.heads * spec.head_dim);
        let groups = spec.heads / spec.kv_heads;
        let at = |t: usize, part: usize, h: usize, c: usize| {
            let (block, head) = match part {
                0 => (0, h),
                p => (hidden + (p - 1) * spec.kv_heads * d, h / groups),
            };
            qkv[(start + t) * spec.qkv_width() + block + head * d + c] as f64
        };
        let mut out = vec![0f64; len * hidden];
        for h in 0..spec.heads {
            for i in 0..len {
                let seen: Vec<usize> = (0..len)
                    .filter(|&j| spec.half_window.is_none_or(|w| i.abs_diff(j) <= w))
                    .filter(|&j| !spec.causal || j <= i)
                    .collect();
                let scores: Vec<f64> = seen
                    .iter()
                    .map(|&j| (0..d).map(|c| at(i, 0, h, c) * at(j, 1, h, c)).sum::<f64>())
                    .map(|s| s * spec.scale as f64)
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for c in 0..d {
                    let value: f64 = seen
                        .iter()
                        .zip(&weights)
                        .map(|(&j, p)| p * at(j, 2, h, c))
                        .sum();
                    out[i * hidden + h * d + c] = value / total;
                }
            }
        }
        out
    }

    fn noise(len: usize, seed: u64) -> Vec<f32> {
        crate::ops::test_noise(len, seed, 1.0)
    }

    #[test]
    fn every_kernel_matches_float64() {
        // Lengths around the row and column blocks; a window narrower than
        // a block and one wider than some sequences.
        let lens = [1, 7, 8, 9, 31, 33, 77, 130, 300];
        let cu: Vec<usize> = std::iter::once(0)
            .chain(lens.iter().scan(0, |end, len| {
                *end += len;
                Some(*end)
            }))
            .collect();
        let tokens = *cu.last().unwrap();
        for head_dim in [8, 32, 64] {
            // (heads, kv_heads): plain and grouped-query (decoders).
            for (half_window, causal, (heads, kv_heads)) in [
                (None, false, (2, 2)),
                (Some(3), false, (2, 2)),
                (Some(40), false, (2, 2)),
                (None, true, (2, 2)),
                (None, true, (4, 2)),
                (Some(3), true, (4, 1)),
            ] {
                let mut spec = AttentionSpec::new(heads, head_dim);
                spec.kv_heads = kv_heads;
                spec.half_window = half_window;
                spec.causal = causal;
                let width = spec.qkv_width();
                let qkv = noise(tokens * width, head_dim as u64);
                let want: Vec<f64> = lens
                    .iter()
                    .zip(&cu)
                    .flat_map(|(&len, &start)| reference(&qkv, start, len, &spec))
                    .collect();
                let qkv = Tensor::from_vec(qkv, (tokens, width), &Device::Cpu).unwrap();
                // The gemm kernel always; the best one where it differs.
                let mut kernels = vec![Kernel::Gemm, Kernel::best_for(head_dim)];
                kernels.dedup();
                for kernel in kernels {
                    let got = attention_on(kernel, &qkv, &cu, &spec).unwrap();
                    let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    let worst = got
                        .iter()
                        .zip(&want)
                        .map(|(g, w)| (*g as f64 - w).abs() / w.abs().max(1.0))
                        .fold(0.0, f64::max);
                    assert!(
                        worst < 1e-6,
                        "{kernel:?}, head_dim {head_dim}, heads {heads}/{kv_heads}, window \
                         {half_window:?}, causal {causal}: {worst:.2e}"
                    );
                }
            }
        }
    }
}
