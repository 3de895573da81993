//! Attention for one (sequence, head) on AVX-512 registers, for head sizes
//! that are multiples of 32 (MiniLM's 32, BERT-base's 64).
//!
//! Both products run through one register-blocked micro-kernel (8 rows x
//! 32 columns of sums in 16 vector registers), and a block of 8 query rows
//! goes through scores, softmax and values while its scores are still in
//! L1. The keys are transposed once per (sequence, head). Against the
//! generic path (two `gemm` calls per block of 128 rows) this saves the
//! per-call packing, which dominates at a depth of 32, and the trips of a
//! 128-row score block through L2.
//!
//! x86_64 only; left out of `--cfg crossrank_portable` builds.

#![cfg(all(target_arch = "x86_64", not(crossrank_portable)))]

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_cvtps_epi32, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_mask_add_ps, _mm512_mask_i32gather_ps, _mm512_mask_max_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_mul_ps, _mm512_mullo_epi32, _mm512_permutexvar_ps,
    _mm512_reduce_add_ps, _mm512_reduce_max_ps, _mm512_roundscale_ps, _mm512_scalef_ps,
    _mm512_set1_epi32, _mm512_set1_ps, _mm512_setr_epi32, _mm512_setzero_ps, _mm512_storeu_ps,
    _mm512_sub_ps, _mm_prefetch, _MM_FROUND_NO_EXC, _MM_FROUND_TO_NEAREST_INT, _MM_HINT_T0,
};

use super::attention::visible_keys;
use super::profile::{time, Op};
use super::simd::{level, Level};

/// Query rows per block: 8 rows x 2 vectors of sums fill 16 of the 32
/// vector registers, leaving room for the loaded operands.
const ROWS: usize = 8;
/// Columns per micro-kernel call: two vectors of 16.
const COLS: usize = 32;

/// Whether this path serves heads of `head_dim` on this CPU.
pub fn supported(head_dim: usize) -> bool {
    head_dim > 0 && head_dim.is_multiple_of(COLS) && level() == Level::Avx512
}

/// Per-thread buffers, reused from task to task.
#[derive(Default)]
pub struct Scratch {
    /// The head's keys transposed, in panels of 32 keys: `[width / 32]
    /// [head_dim][32]`. Panels keep the micro-kernel's loads contiguous
    /// (rows `width` apart would fall into the same few L1 sets).
    keys_t: Vec<f32>,
    /// The head's values, contiguous: `len x head_dim`.
    values: Vec<f32>,
    /// Scores, then attention weights, of one row block: `ROWS x width`.
    weights: Vec<f32>,
}

/// One (sequence, head) of attention.
pub struct Head {
    /// Query, key and value of the sequence's first token, each `head_dim`
    /// wide; token `t`'s are `stride` floats further.
    pub q: *const f32,
    pub k: *const f32,
    pub v: *const f32,
    pub stride: usize,
    pub len: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub half_window: Option<usize>,
    /// Causal: token `i` sees keys `0..=i` only.
    pub causal: bool,
    /// Where the context of the first token goes; rows `out_stride` apart.
    pub out: *mut f32,
    pub out_stride: usize,
}

/// `softmax(scale Q K^T) V` for one head, written to `head.out`.
///
/// # Safety
/// The CPU has AVX-512F ([`supported`]); the pointers of `head` are valid
/// for `len` rows of `head_dim` values each, and no other thread writes the
/// output rows' `head_dim` columns.
#[target_feature(enable = "avx512f")]
pub unsafe fn attend(head: &Head, scratch: &mut Scratch) {
    // SAFETY: AVX-512F is this function's contract (and enabled on it);
    // every pointer below stays inside `head`'s rows (the contract) or
    // inside `scratch`'s buffers, sized first.
    unsafe {
        let (len, d) = (head.len, head.head_dim);
        let width = len.next_multiple_of(COLS);
        transpose_keys(head, width, &mut scratch.keys_t);
        gather_values(head, &mut scratch.values);
        let keys_t = scratch.keys_t.as_ptr();
        let values = scratch.values.as_ptr();
        if scratch.weights.len() < ROWS * width {
            scratch.weights.resize(ROWS * width, 0.0);
        }
        let weights = scratch.weights.as_mut_ptr();
        for first in (0..len).step_by(ROWS) {
            let rows = ROWS.min(len - first);
            // The keys any row of the block sees (all, or the union of windows).
            let window = |i: usize| visible_keys(i, len, head.half_window, head.causal);
            let (lo, hi) = (window(first).0, window(first + rows - 1).1);
            let column_blocks = lo / COLS * COLS..hi.next_multiple_of(COLS);
            time(Op::AttentionScores, || {
                // Scores in sixteenths of a power of two (see `exp2_sixteenths`).
                let scales = [head.scale * SIXTEENTHS_PER_E; ROWS];
                let q = head.q.add(first * head.stride);
                for j in column_blocks.clone().step_by(COLS) {
                    let scores = Operands {
                        a: q,
                        a_stride: head.stride,
                        b: keys_t.add(j * d),
                        b_stride: COLS,
                        depth: d,
                        c: weights.add(j),
                        c_stride: width,
                    };
                    multiply(rows, &scores, &scales);
                }
            });
            let mut inverse_sums = [0f32; ROWS];
            time(Op::AttentionSoftmax, || {
                for (r, inverse_sum) in inverse_sums[..rows].iter_mut().enumerate() {
                    let (row_lo, row_hi) = window(first + r);
                    let row = std::slice::from_raw_parts_mut(weights.add(r * width), width);
                    *inverse_sum = exp_shifted(&mut row[row_lo..row_hi]);
                    // Keys outside this row's window but inside the block's.
                    row[lo..row_lo].fill(0.0);
                    row[row_hi..hi].fill(0.0);
                }
            });
            time(Op::AttentionValues, || {
                for c in (0..d).step_by(COLS) {
                    let context = Operands {
                        a: weights.add(lo),
                        a_stride: width,
                        b: values.add(lo * d + c),
                        b_stride: d,
                        depth: hi - lo,
                        c: head.out.add(first * head.out_stride + c),
                        c_stride: head.out_stride,
                    };
                    multiply(rows, &context, &inverse_sums);
                }
            });
        }
    }
}

/// `keys_t[j / 32][t][j % 32] = k[j][t]`, keys past `len` zero: each
/// panel row is gathered, 16 keys at a time.
///
/// # Safety
/// The CPU has AVX-512F; `head.k` is valid for `head.len` rows
/// `head.stride` apart, each `head_dim` wide.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_keys(head: &Head, width: usize, keys_t: &mut Vec<f32>) {
    // SAFETY: AVX-512F is the caller's; the gathers read only keys below
    // `len` (masked lanes read nothing), the stores stay inside `keys_t`,
    // resized to `d * width` above.
    unsafe {
        let d = head.head_dim;
        keys_t.resize(d * width, 0.0);
        let stride = head.stride as i32;
        let offsets = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(stride),
        );
        let dst = keys_t.as_mut_ptr();
        for first in (0..width).step_by(16) {
            // Keys past the end read nothing and give zeros.
            let present = head.len.saturating_sub(first).min(16);
            let mask = ((1u32 << present) - 1) as u16;
            let panel = dst.add(first / COLS * COLS * d + first % COLS);
            // The next 16 keys, still in memory: one page each.
            for j in first + 16..(first + 32).min(head.len) {
                prefetch_row(head.k.add(j * head.stride), d);
            }
            for t in 0..d {
                let src = head.k.add(first.min(head.len) * head.stride + t);
                let keys =
                    _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, offsets, src.cast());
                _mm512_storeu_ps(panel.add(t * COLS), keys);
            }
        }
    }
}

/// The head's value rows side by side: in the activations they lie more
/// than a page apart, out of reach of the hardware prefetcher.
///
/// # Safety
/// The CPU has AVX-512F; `head.v` is valid for `head.len` rows
/// `head.stride` apart, each `head_dim` (a multiple of 32) wide.
#[target_feature(enable = "avx512f")]
unsafe fn gather_values(head: &Head, values: &mut Vec<f32>) {
    // SAFETY: AVX-512F is the caller's; loads stay inside `head.v`'s rows
    // (`c + 16 <= d`, `d` a multiple of 32), stores inside `values`, resized
    // to `len * d` above; prefetches never fault.
    unsafe {
        let d = head.head_dim;
        values.resize(head.len * d, 0.0);
        let dst = values.as_mut_ptr();
        for j in 0..head.len {
            let src = head.v.add(j * head.stride);
            prefetch_row(src.wrapping_add(AHEAD * head.stride), d);
            for c in (0..d).step_by(16) {
                _mm512_storeu_ps(dst.add(j * d + c), _mm512_loadu_ps(src.add(c)));
            }
        }
    }
}

/// Multiplies a natural exponent into sixteenths of a power of two:
/// `e^x = 2^(x * 16 log2(e) / 16)`. Scores are scaled so in the product's
/// last step, which leaves the exp a table lookup and a rounding.
const SIXTEENTHS_PER_E: f32 = 16.0 * std::f32::consts::LOG2_E;

/// `row = 2^((row - max) / 16)`, returning `1 / sum`: a softmax of scores
/// in sixteenths of a power of two, whose division the caller applies to
/// the (fewer) output values.
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn exp_shifted(row: &mut [f32]) -> f32 {
    // SAFETY: AVX-512F is the caller's; the unmasked loads and stores stay
    // below `full <= len`, the masked ones cover only the `len - full` lanes
    // left of `row`.
    unsafe {
        let (len, p) = (row.len(), row.as_mut_ptr());
        let full = len / 16 * 16;
        let tail: __mmask16 = ((1u32 << (len - full)) - 1) as u16;
        let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..full).step_by(16) {
            max = _mm512_max_ps(max, _mm512_loadu_ps(p.add(i)));
        }
        let rest = _mm512_maskz_loadu_ps(tail, p.add(full));
        max = _mm512_mask_max_ps(max, tail, max, rest);
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        let mut sum = _mm512_setzero_ps();
        for i in (0..full).step_by(16) {
            let e = exp2_sixteenths(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), max));
            _mm512_storeu_ps(p.add(i), e);
            sum = _mm512_add_ps(sum, e);
        }
        let e = exp2_sixteenths(_mm512_sub_ps(rest, max));
        _mm512_mask_storeu_ps(p.add(full), tail, e);
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
        1.0 / _mm512_reduce_add_ps(sum)
    }
}

/// `2^(i / 16)`, rounded to float32 (checked by a test).
const EXP2_SIXTEENTHS: [f32; 16] = [
    1.0,
    1.044_273_7,
    1.090_507_7,
    1.138_788_6,
    1.189_207_1,
    1.241_857_8,
    1.296_839_6,
    1.354_255_6,
    std::f32::consts::SQRT_2,
    1.476_826_2,
    1.542_210_8,
    1.610_490_3,
    1.681_792_9,
    1.756_252_2,
    1.834_008_1,
    1.915_206_6,
];

/// `2^(t / 16)` for t <= 0 in 16 lanes, relative error below 3e-7: with
/// `n = round(t)`, `2^(t / 16) = 2^floor(n / 16) * 2^((n mod 16) / 16) *
/// 2^((t - n) / 16)`: a power of two, the table, and a cubic for
/// `|t - n| <= 1/2` (exact subtraction: no split constant as for base e).
///
/// # Safety
/// The CPU has AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn exp2_sixteenths(t: __m512) -> __m512 {
    // SAFETY: AVX-512F is the caller's; the one load reads the 16 floats
    // of `EXP2_SIXTEENTHS`.
    unsafe {
        // ln(2) / 16: the cubic is e^(r ln2 / 16).
        const C1: f32 = std::f32::consts::LN_2 / 16.0;
        const C2: f32 = C1 * C1 / 2.0;
        const C3: f32 = C1 * C1 * C1 / 6.0;
        // Below this the result is under float32's smallest normal.
        let t = _mm512_max_ps(t, _mm512_set1_ps(-16.0 * 126.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
        let r = _mm512_sub_ps(t, n);
        let cubic = _mm512_fmadd_ps(_mm512_set1_ps(C3), r, _mm512_set1_ps(C2));
        let cubic = _mm512_fmadd_ps(cubic, r, _mm512_set1_ps(C1));
        let cubic = _mm512_fmadd_ps(cubic, r, _mm512_set1_ps(1.0));
        // The permute reads the low 4 bits of the index: n mod 16.
        let table = _mm512_loadu_ps(EXP2_SIXTEENTHS.as_ptr());
        let fraction = _mm512_permutexvar_ps(_mm512_cvtps_epi32(n), table);
        // scalef multiplies by 2^floor(second operand).
        _mm512_scalef_ps(
            _mm512_mul_ps(cubic, fraction),
            _mm512_mul_ps(n, _mm512_set1_ps(1.0 / 16.0)),
        )
    }
}

/// Rows fetched ahead of their copy.
const AHEAD: usize = 8;

/// Asks for the `len` floats at `row` in L1 (prefetches never fault).
///
/// # Safety
/// The CPU has AVX-512F (a prefetch never faults: any `row` will do).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn prefetch_row(row: *const f32, len: usize) {
    for c in (0..len).step_by(16) {
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(c).cast());
    }
}

/// `c[r][0..32] = scales[r] * sum_t a[r][t] * b[t][0..32]` for the first
/// `rows` rows of `o`.
///
/// # Safety
/// As [`micro_kernel`] for `R = rows` (1 to [`ROWS`]).
#[target_feature(enable = "avx512f")]
unsafe fn multiply(rows: usize, o: &Operands, scales: &[f32; ROWS]) {
    // SAFETY: the caller's contract is `micro_kernel`'s for `R = rows`,
    // which the match picks.
    unsafe {
        // One build per row count keeps every sum in a register.
        match rows {
            8 => micro_kernel::<8>(o, scales),
            7 => micro_kernel::<7>(o, scales),
            6 => micro_kernel::<6>(o, scales),
            5 => micro_kernel::<5>(o, scales),
            4 => micro_kernel::<4>(o, scales),
            3 => micro_kernel::<3>(o, scales),
            2 => micro_kernel::<2>(o, scales),
            1 => micro_kernel::<1>(o, scales),
            _ => unreachable!("row blocks hold 1 to {ROWS} rows"),
        }
    }
}

/// The operands of one micro-kernel call: `a` rows `a_stride` apart, `b`
/// rows `b_stride` apart, `c` rows `c_stride` apart, `depth` terms.
struct Operands {
    a: *const f32,
    a_stride: usize,
    b: *const f32,
    b_stride: usize,
    depth: usize,
    c: *mut f32,
    c_stride: usize,
}

/// # Safety
/// The CPU has AVX-512F; `o.a` is valid for reads of `R` rows of
/// `o.depth` values `o.a_stride` apart, `o.b` of `o.depth` rows of 32
/// values `o.b_stride` apart, and `o.c` for writes of `R` rows of 32
/// values `o.c_stride` apart.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn micro_kernel<const R: usize>(o: &Operands, scales: &[f32; ROWS]) {
    // SAFETY: AVX-512F is the caller's; every access is inside the
    // operands the caller vouched for (`r < R`, `t < depth`, 32 columns).
    unsafe {
        let mut sums: [[__m512; 2]; R] = [[_mm512_setzero_ps(); 2]; R];
        for t in 0..o.depth {
            let b = o.b.add(t * o.b_stride);
            let (b_left, b_right) = (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16)));
            for (r, sum) in sums.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*o.a.add(r * o.a_stride + t));
                sum[0] = _mm512_fmadd_ps(x, b_left, sum[0]);
                sum[1] = _mm512_fmadd_ps(x, b_right, sum[1]);
            }
        }
        for (r, sum) in sums.iter().enumerate() {
            let scale = _mm512_set1_ps(scales[r]);
            let c = o.c.add(r * o.c_stride);
            _mm512_storeu_ps(c, _mm512_mul_ps(sum[0], scale));
            _mm512_storeu_ps(c.add(16), _mm512_mul_ps(sum[1], scale));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_exp2_of_sixteenths() {
        for (i, &x) in EXP2_SIXTEENTHS.iter().enumerate() {
            assert_eq!(x, (i as f64 / 16.0).exp2() as f32, "{i}");
        }
    }

    /// AVX-512 kernels, run only where the CPU has them: ignored by a plain
    /// `cargo test`, run by `scripts/test.sh` with `--ignored isa_avx512`.
    mod isa_avx512 {
        use super::*;

        fn require_avx512() {
            crate::ops::simd::require(crate::ops::simd::Isa::Avx512);
            assert!(supported(32), "AVX-512 is off (CROSSRANK_ISA)");
        }

        #[test]
        #[ignore = "needs AVX-512: scripts/test.sh runs it where the CPU has it"]
        fn exp2_sixteenths_matches_float64() {
            require_avx512();
            // Down to float32's smallest normals, in steps that sample every
            // table entry at many remainders.
            let ts: Vec<f32> = (0..200_000)
                .map(|i| -2000.0 * i as f32 / 200_000.0)
                .collect();
            for chunk in ts.chunks_exact(16) {
                let mut got = [0f32; 16];
                // SAFETY: AVX-512F checked above; `chunk` and `got` hold 16
                // floats each.
                unsafe {
                    let e = exp2_sixteenths(_mm512_loadu_ps(chunk.as_ptr()));
                    _mm512_storeu_ps(got.as_mut_ptr(), e)
                };
                for (&t, &e) in chunk.iter().zip(&got) {
                    let want = (t as f64 / 16.0).exp2();
                    assert!(
                        ((e as f64 - want) / want).abs() < 3e-7,
                        "2^({t}/16): {e} vs {want}"
                    );
                }
            }
        }

        #[test]
        #[ignore = "needs AVX-512: scripts/test.sh runs it where the CPU has it"]
        fn exp_shifted_is_a_softmax_numerator() {
            require_avx512();
            for len in [1, 15, 16, 17, 40] {
                let row: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 80.0).collect();
                let mut got = row.clone();
                // SAFETY: AVX-512F checked above; `exp_shifted` stays inside
                // the slice it is given.
                let inverse_sum = unsafe { exp_shifted(&mut got) };
                let max = row.iter().cloned().fold(f32::MIN, f32::max);
                // The shift is a float32 subtraction in both.
                let want: Vec<f64> = row
                    .iter()
                    .map(|&x| ((x - max) as f64 / 16.0).exp2())
                    .collect();
                let total: f64 = want.iter().sum();
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() < 3e-7 * w.max(1e-30),
                        "{len}: {g} vs {w}"
                    );
                }
                assert!((inverse_sum as f64 * total - 1.0).abs() < 1e-6, "{len}");
            }
        }
    }
}
