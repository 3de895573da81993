//! The AVX2 int8 kernel: `vpmaddwd` multiplies int16 activation pairs by
//! int16 weight pairs (sign-extended from the packed int8 panel as they are
//! loaded) and adds each pair into int32, eight columns per register. A
//! block of 6 rows x 16 columns keeps its 12 accumulators in registers over
//! the whole inner dimension.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{Activation, BlockSums, QuantizedWeight, Rows, PANEL, ROW_BLOCK};

/// One task's rows against every panel (see [`super::matmul_on`]). The
/// caller has checked that the CPU runs AVX2 (`simd::require`).
pub fn run(
    rows: Rows<'_>,
    weight: &QuantizedWeight,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller checked that this CPU has AVX2 and FMA.
    unsafe {
        run_avx2(rows, weight, bias, act, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    super::scalar::run(rows, weight, bias, act, out)
}

/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(
    rows: Rows<'_>,
    weight: &QuantizedWeight,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    super::run_task(
        |a, pairs, panel, sums| {
            assert!(a.len() >= ROW_BLOCK * 2 * pairs && panel.len() >= pairs * 2 * PANEL);
            // SAFETY: this function runs only with AVX2 (its own contract);
            // the slices hold what the kernel reads (asserted above).
            unsafe { block_sums(a.as_ptr(), pairs, panel.as_ptr(), sums) }
        },
        rows,
        weight,
        bias,
        act,
        out,
    )
}

/// # Safety
/// The CPU must have AVX2; `a` must point at `ROW_BLOCK` rows of
/// `2 * pairs` int16 values and `panel` at `pairs * 2 * PANEL` int8 ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block_sums(a: *const i16, pairs: usize, panel: *const i8, sums: &mut BlockSums) {
    let width = 2 * pairs;
    let mut acc = [[_mm256_setzero_si256(); 2]; ROW_BLOCK];
    for p in 0..pairs {
        // SAFETY (whole loop body): p < pairs, r < ROW_BLOCK stay inside
        // the buffers the caller vouched for.
        let w = unsafe { panel.add(p * 2 * PANEL) };
        let w_lo = unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(w.cast())) };
        let w_hi = unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(PANEL).cast())) };
        for (r, acc) in acc.iter_mut().enumerate() {
            let pair = unsafe { a.add(r * width + 2 * p).cast::<i32>().read_unaligned() };
            let x = _mm256_set1_epi32(pair);
            acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(x, w_lo));
            acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(x, w_hi));
        }
    }
    for (acc, out) in acc.iter().zip(sums.iter_mut()) {
        // SAFETY: each row of sums holds 16 i32, two registers' worth.
        unsafe {
            _mm256_storeu_si256(out.as_mut_ptr().cast(), acc[0]);
            _mm256_storeu_si256(out.as_mut_ptr().add(8).cast(), acc[1]);
        }
    }
}
