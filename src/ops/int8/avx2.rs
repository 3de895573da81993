//! The x86 vector int8 kernels, one body for two instruction sets:
//!
//! - `avx2`: `vpmaddwd` multiplies int16 activation pairs by int16 weight
//!   pairs and adds each pair into int32, then `vpaddd` accumulates;
//! - `avx512-vnni`: `vpdpwssd` on 512-bit registers does both in one
//!   instruction, for a panel's 16 columns at once (Intel Ice Lake /
//!   Cascade Lake and later, AMD Zen 4 and later): twice the products per
//!   instruction of the AVX2 body, on the same packed weights.
//!
//! Weights are sign-extended from the packed int8 panel as they are
//! loaded. A block of 6 rows x 16 columns keeps its 12 accumulators in
//! registers over the whole inner dimension (AVX-512: two sets of 6, for
//! even and odd pairs, so that consecutive multiply-adds do not wait on
//! each other). Both give exactly the sums of the scalar kernel (no
//! overflow by construction, see `activation_levels`).

#[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
use std::arch::x86_64::*;

use super::{Activation, QuantizedWeight, Rows};
#[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
use super::{BlockSums, PANEL, ROW_BLOCK};

/// Whether this CPU has the AVX-512 VNNI kernel's instructions.
pub fn has_avx512_vnni() -> bool {
    #[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
    {
        std::is_x86_feature_detected!("avx512vnni") && std::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(all(target_arch = "x86_64", not(crossrank_portable))))]
    false
}

/// One task's rows against every panel (see [`super::matmul_on`]), with
/// `vpdpwssd` when `vnni` is set, else `vpmaddwd`. The caller has checked
/// that the CPU runs AVX2 and FMA, and [`has_avx512_vnni`] for `vnni`.
pub fn run(
    vnni: bool,
    rows: Rows<'_>,
    weight: &QuantizedWeight,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    #[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
    // SAFETY: the caller checked the features (`matmul_on` asserts that
    // the CPU runs the kernel's ISA, and `kernel_for` picks VNNI only where
    // `has_avx512_vnni` found it).
    unsafe {
        match vnni {
            true => run_avx512_vnni(rows, weight, bias, act, out),
            false => run_avx2(rows, weight, bias, act, out),
        }
    }
    // Portable builds have only the scalar kernel (and `matmul_on`, which
    // requires the ISA, never gets here: they run no ISA but scalar).
    #[cfg(not(all(target_arch = "x86_64", not(crossrank_portable))))]
    {
        let _ = vnni;
        super::scalar::run(rows, weight, bias, act, out)
    }
}

/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(
    rows: Rows<'_>,
    weight: &QuantizedWeight,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    let sums = |a: &[i16], pairs: usize, panel: &[i8], sums: &mut BlockSums| {
        // SAFETY: AVX2 is this function's contract; the multiply-add is
        // plain AVX2.
        unsafe {
            block_sums(a, pairs, panel, sums, |acc, x, w| {
                _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
            })
        }
    };
    super::run_task(sums, rows, weight, bias, act, out)
}

/// # Safety
/// The CPU must have AVX2, FMA, AVX-512 F, BW and VNNI.
#[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vnni")]
unsafe fn run_avx512_vnni(
    rows: Rows<'_>,
    weight: &QuantizedWeight,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    let sums = |a: &[i16], pairs: usize, panel: &[i8], sums: &mut BlockSums| {
        // SAFETY: the features are this function's contract.
        unsafe { block_sums_512(a, pairs, panel, sums) }
    };
    super::run_task(sums, rows, weight, bias, act, out)
}

/// [`block_sums`] on 512-bit registers: one register holds a panel's 16
/// columns, so one `vpdpwssd` per row and pair.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; inlined into a caller
/// compiled for them.
#[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
#[inline(always)]
unsafe fn block_sums_512(a: &[i16], pairs: usize, panel: &[i8], sums: &mut BlockSums) {
    let width = 2 * pairs;
    assert!(a.len() >= ROW_BLOCK * width && panel.len() >= pairs * 2 * PANEL);
    let (a, panel) = (a.as_ptr(), panel.as_ptr());
    // SAFETY: the features are the caller's contract; `p < pairs` and
    // `r < ROW_BLOCK` keep every load inside `a` and `panel` (lengths
    // asserted above); each row of `sums` holds 16 i32, one register.
    unsafe {
        let weights =
            |p: usize| _mm512_cvtepi8_epi16(_mm256_loadu_si256(panel.add(p * 2 * PANEL).cast()));
        let pair = |r: usize, p: usize| {
            _mm512_set1_epi32(a.add(r * width + 2 * p).cast::<i32>().read_unaligned())
        };
        let mut even = [_mm512_setzero_si512(); ROW_BLOCK];
        let mut odd = [_mm512_setzero_si512(); ROW_BLOCK];
        let mut p = 0;
        while p + 1 < pairs {
            let (w0, w1) = (weights(p), weights(p + 1));
            for r in 0..ROW_BLOCK {
                even[r] = _mm512_dpwssd_epi32(even[r], w0, pair(r, p));
                odd[r] = _mm512_dpwssd_epi32(odd[r], w1, pair(r, p + 1));
            }
            p += 2;
        }
        if p < pairs {
            let w = weights(p);
            for (r, acc) in even.iter_mut().enumerate() {
                *acc = _mm512_dpwssd_epi32(*acc, w, pair(r, p));
            }
        }
        for ((e, o), out) in even.iter().zip(&odd).zip(sums.iter_mut()) {
            _mm512_storeu_si512(out.as_mut_ptr().cast(), _mm512_add_epi32(*e, *o));
        }
    }
}

/// The 6 x 16 block of sums; `mac(acc, x, w)` adds the pairwise products
/// of `x` and `w` to `acc`.
///
/// # Safety
/// The CPU must have AVX2 and whatever `mac` uses; inlined into callers
/// compiled for those.
#[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
#[inline(always)]
unsafe fn block_sums(
    a: &[i16],
    pairs: usize,
    panel: &[i8],
    sums: &mut BlockSums,
    mac: impl Fn(__m256i, __m256i, __m256i) -> __m256i,
) {
    let width = 2 * pairs;
    assert!(a.len() >= ROW_BLOCK * width && panel.len() >= pairs * 2 * PANEL);
    let (a, panel) = (a.as_ptr(), panel.as_ptr());
    // SAFETY: AVX2 (and `mac`'s features) is the caller's contract;
    // `p < pairs` and `r < ROW_BLOCK` keep every load inside `a` and
    // `panel`, whose lengths were asserted above; each row of `sums` holds
    // 16 i32, two registers' worth.
    unsafe {
        let mut acc = [[_mm256_setzero_si256(); 2]; ROW_BLOCK];
        for p in 0..pairs {
            let w = panel.add(p * 2 * PANEL);
            let w_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.cast()));
            let w_hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(PANEL).cast()));
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair = a.add(r * width + 2 * p).cast::<i32>().read_unaligned();
                let x = _mm256_set1_epi32(pair);
                acc[0] = mac(acc[0], x, w_lo);
                acc[1] = mac(acc[1], x, w_hi);
            }
        }
        for (acc, out) in acc.iter().zip(sums.iter_mut()) {
            _mm256_storeu_si256(out.as_mut_ptr().cast(), acc[0]);
            _mm256_storeu_si256(out.as_mut_ptr().add(8).cast(), acc[1]);
        }
    }
}
