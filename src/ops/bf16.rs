//! bfloat16 dense layers: `x @ W^T` with the weight rounded to bfloat16
//! once at load and the activations rounded per product, multiplied by
//! AVX-512 BF16's `vdpbf16ps` (Intel Cooper Lake, Sapphire Rapids and
//! later, AMD Zen 4 and later) with float32 sums. Half the weight memory of
//! float32 and twice its products per instruction; about three significant
//! digits per operand, like PyTorch's bfloat16 on these CPUs.
//!
//! Layout: the int8 kernel's (see [`super::int8`]): panels of [`PANEL`]
//! output columns, each pair of input features `(2p, 2p + 1)` stored as
//! the panel's columns in order, each as its two values, so that one
//! 512-bit load holds a pair step of the whole panel, and one 32-bit
//! broadcast an activation pair. A block of [`ROW_BLOCK`] rows keeps its
//! sums in registers over the whole inner dimension.
//!
//! Only where the CPU has AVX512_BF16 and the instruction-set path is
//! AVX-512 or wider ([`available`]); elsewhere precision "bfloat16" runs
//! float32 (see `Precision::effective`).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::kernels::{add_bias_and_activate, Activation};
use super::simd::{self, Isa};
use super::{assume_init, unwritten};

/// Output columns per panel: one 512-bit register of float32 sums.
pub const PANEL: usize = 16;
/// Rows per micro-kernel call.
pub const ROW_BLOCK: usize = 6;

/// Whether this process runs bfloat16 products: the CPU has AVX512_BF16
/// and the path (`CROSSRANK_ISA`) allows AVX-512.
pub fn available() -> bool {
    cpu_has_bf16() && simd::active_isa() >= Isa::Avx512
}

fn cpu_has_bf16() -> bool {
    #[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
    {
        std::is_x86_feature_detected!("avx512bf16") && std::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(all(target_arch = "x86_64", not(crossrank_portable))))]
    false
}

/// `x` rounded to the nearest bfloat16 (ties to even), as PyTorch rounds;
/// NaN stays NaN.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

pub fn from_bf16(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// A bfloat16 weight in panels (see the module comment); missing columns
/// and the odd feature are zeros.
pub struct PackedWeight {
    data: Vec<u16>,
    out_features: usize,
    in_features: usize,
}

impl PackedWeight {
    /// Rounds `weight`, `[out, in]` row-major as checkpoints store it.
    pub fn new(weight: &[f32], out_features: usize, in_features: usize) -> Self {
        assert_eq!(weight.len(), out_features * in_features);
        let pairs = in_features.div_ceil(2);
        let panels = out_features.div_ceil(PANEL);
        let mut data = vec![0u16; panels * pairs * PANEL * 2];
        data.par_chunks_mut(pairs * PANEL * 2)
            .enumerate()
            .for_each(|(panel, block)| {
                for c in 0..PANEL.min(out_features.saturating_sub(panel * PANEL)) {
                    let n = panel * PANEL + c;
                    let row = &weight[n * in_features..(n + 1) * in_features];
                    for (k, &w) in row.iter().enumerate() {
                        block[(k / 2) * PANEL * 2 + c * 2 + k % 2] = to_bf16(w);
                    }
                }
            });
        Self {
            data,
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

    fn panel(&self, p: usize) -> &[u16] {
        let len = self.pairs() * PANEL * 2;
        &self.data[p * len..(p + 1) * len]
    }

    /// The weight as float32, `[out, in]` (the bfloat16 values, widened).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.out_features * self.in_features];
        for (n, row) in out.chunks_mut(self.in_features.max(1)).enumerate() {
            let panel = self.panel(n / PANEL);
            for (k, v) in row.iter_mut().enumerate() {
                *v = from_bf16(panel[(k / 2) * PANEL * 2 + (n % PANEL) * 2 + k % 2]);
            }
        }
        out
    }

    /// Bytes the weight takes.
    pub fn bytes(&self) -> usize {
        self.data.len() * 2
    }
}

/// Activations rounded to bfloat16, one `u32` per feature pair (low half
/// the even feature), rows padded with zeros to whole [`ROW_BLOCK`]s.
struct Bf16Rows {
    pairs: Vec<u32>,
    width: usize,
}

impl Bf16Rows {
    fn new(x: &[f32], rows: usize, in_features: usize) -> Self {
        let width = in_features.div_ceil(2);
        let mut pairs = vec![0u32; rows.div_ceil(ROW_BLOCK) * ROW_BLOCK * width];
        pairs
            .par_chunks_mut(width.max(1))
            .take(rows)
            .enumerate()
            .for_each(|(r, dst)| {
                let src = &x[r * in_features..(r + 1) * in_features];
                for (d, two) in dst.iter_mut().zip(src.chunks(2)) {
                    let hi = two.get(1).map_or(0, |&v| to_bf16(v));
                    *d = to_bf16(two[0]) as u32 | (hi as u32) << 16;
                }
            });
        Self { pairs, width }
    }

    fn block(&self, b: usize) -> &[u32] {
        &self.pairs[b * ROW_BLOCK * self.width..(b + 1) * ROW_BLOCK * self.width]
    }
}

/// Float32 sums of one row block against one panel.
type BlockSums = [[f32; PANEL]; ROW_BLOCK];

/// `act(x @ W^T + bias)` for `x` `[rows, in]`, `[rows, out]`. The caller
/// has checked [`available`].
pub fn matmul(
    x: &[f32],
    rows: usize,
    weight: &PackedWeight,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    assert!(available(), "bfloat16 products need AVX512_BF16");
    let n = weight.out_features;
    if rows == 0 || n == 0 {
        return vec![0f32; rows * n];
    }
    let q = Bf16Rows::new(x, rows, weight.in_features);
    // Every task writes all columns of its rows.
    let mut out = unwritten(rows * n);
    let blocks_per_task = row_blocks_per_task(rows);
    out.par_chunks_mut(blocks_per_task * ROW_BLOCK * n)
        .enumerate()
        .for_each(|(task, out)| {
            // SAFETY: MaybeUninit<f32> has f32's layout; `run_task` writes
            // every element before anything reads it.
            let out: &mut [f32] = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
            run_task(&q, task * blocks_per_task, weight, bias, act, out);
        });
    // SAFETY: every task wrote all of its slice, and the slices cover `out`.
    unsafe { assume_init(out) }
}

/// Row blocks per parallel task: at least four tasks per thread where the
/// rows allow, at most 8 blocks so a task's activations stay in L2.
fn row_blocks_per_task(rows: usize) -> usize {
    let blocks = rows.div_ceil(ROW_BLOCK);
    blocks
        .div_ceil(4 * rayon::current_num_threads())
        .clamp(1, 8)
}

/// One task's rows (whole blocks from `first_block`) against every panel,
/// each block written back (bias, activation) while its sums are hot.
fn run_task(
    q: &Bf16Rows,
    first_block: usize,
    weight: &PackedWeight,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    let n = weight.out_features;
    let task_rows = out.len() / n;
    let mut sums = [[0f32; PANEL]; ROW_BLOCK];
    for p in 0..n.div_ceil(PANEL) {
        let panel = weight.panel(p);
        let cols = p * PANEL..((p + 1) * PANEL).min(n);
        for b in 0..task_rows.div_ceil(ROW_BLOCK) {
            block_sums(q.block(first_block + b), q.width, panel, &mut sums);
            for (r, sums) in sums.iter().enumerate().take(task_rows - b * ROW_BLOCK) {
                let row = b * ROW_BLOCK + r;
                let dst = &mut out[row * n + cols.start..row * n + cols.end];
                dst.copy_from_slice(&sums[..cols.len()]);
                add_bias_and_activate(act, dst, bias.map(|b| &b[cols.clone()]));
            }
        }
    }
}

/// The 6 x 16 block of sums on `vdpbf16ps`.
fn block_sums(a: &[u32], pairs: usize, panel: &[u16], sums: &mut BlockSums) {
    assert!(a.len() >= ROW_BLOCK * pairs && panel.len() >= pairs * 2 * PANEL);
    #[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
    // SAFETY: `matmul` asserted `available()` (AVX512_BF16 and BW on this
    // CPU); the lengths were asserted above.
    unsafe {
        block_sums_avx512(a, pairs, panel, sums)
    }
    #[cfg(not(all(target_arch = "x86_64", not(crossrank_portable))))]
    {
        let _ = (a, pairs, panel, sums);
        unreachable!("bfloat16 products are never available on this build")
    }
}

/// # Safety
/// The CPU has AVX-512 F, BW and BF16; `a` holds `ROW_BLOCK` rows of
/// `pairs` pairs, `panel` `pairs` steps of `2 * PANEL` values.
#[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn block_sums_avx512(a: &[u32], pairs: usize, panel: &[u16], sums: &mut BlockSums) {
    use std::arch::x86_64::*;
    let (a, panel) = (a.as_ptr(), panel.as_ptr());
    // SAFETY: the features are this function's contract; `p < pairs` and
    // `r < ROW_BLOCK` keep every load inside `a` and `panel`; each row of
    // `sums` holds 16 f32, one register. `__m512i` and `__m512bh` are the
    // same 512 bits.
    unsafe {
        let weights = |p: usize| -> __m512bh {
            std::mem::transmute(_mm512_loadu_si512(panel.add(p * 2 * PANEL).cast()))
        };
        let pair = |r: usize, p: usize| -> __m512bh {
            std::mem::transmute(_mm512_set1_epi32(a.add(r * pairs + p).read() as i32))
        };
        let mut even = [_mm512_setzero_ps(); ROW_BLOCK];
        let mut odd = [_mm512_setzero_ps(); ROW_BLOCK];
        let mut p = 0;
        while p + 1 < pairs {
            let (w0, w1) = (weights(p), weights(p + 1));
            for r in 0..ROW_BLOCK {
                even[r] = _mm512_dpbf16_ps(even[r], w0, pair(r, p));
                odd[r] = _mm512_dpbf16_ps(odd[r], w1, pair(r, p + 1));
            }
            p += 2;
        }
        if p < pairs {
            let w = weights(p);
            for (r, acc) in even.iter_mut().enumerate() {
                *acc = _mm512_dpbf16_ps(*acc, w, pair(r, p));
            }
        }
        for ((e, o), out) in even.iter().zip(&odd).zip(sums.iter_mut()) {
            _mm512_storeu_ps(out.as_mut_ptr(), _mm512_add_ps(*e, *o));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_noise;

    #[test]
    fn rounding_to_bfloat16_is_to_nearest_even() {
        for x in [
            1.0f32,
            -2.5,
            0.0,
            -0.0,
            65536.0,
            f32::from_bits(0x0001_0000),
            f32::INFINITY,
        ] {
            assert_eq!(from_bf16(to_bf16(x)), x, "{x} is a bfloat16 value");
        }
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to even (1).
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        // Relative rounding error at most half an ulp: 2^-8 (8 significant bits).
        for x in test_noise(1000, 3, 100.0) {
            let r = from_bf16(to_bf16(x));
            assert!(((r - x) / x).abs() <= 1.0 / 256.0, "{x} -> {r}");
        }
    }

    #[test]
    fn packing_keeps_every_weight_rounded() {
        let (n, k) = (37, 13);
        let w = test_noise(n * k, 4, 1.0);
        let packed = PackedWeight::new(&w, n, k);
        let back = packed.to_f32();
        for (b, x) in back.iter().zip(&w) {
            assert_eq!(*b, from_bf16(to_bf16(*x)));
        }
        assert_eq!(packed.bytes(), 3 * 7 * PANEL * 2 * 2);
    }

    /// `x @ W^T` in float64 from the bfloat16-rounded operands: the kernel
    /// may differ only by its float32 sums.
    fn rounded_product(x: &[f32], rows: usize, w: &PackedWeight) -> Vec<f64> {
        let (k, n) = (w.in_features(), w.out_features());
        let wf = w.to_f32();
        let mut out = vec![0f64; rows * n];
        for r in 0..rows {
            for c in 0..n {
                out[r * n + c] = (0..k)
                    .map(|i| from_bf16(to_bf16(x[r * k + i])) as f64 * wf[c * k + i] as f64)
                    .sum();
            }
        }
        out
    }

    /// Run only where the CPU has AVX512_BF16: ignored by a plain `cargo
    /// test`, run by `scripts/test.sh` with `--ignored isa_avx512` on AVX-512
    /// CPUs, where it says "skipped" if the CPU lacks BF16.
    mod isa_avx512 {
        use super::*;

        #[test]
        #[ignore = "needs AVX512_BF16: scripts/test.sh runs it on AVX-512 CPUs"]
        fn bf16_kernel_computes_the_rounded_product() {
            crate::ops::simd::require(Isa::Avx512);
            if !available() {
                eprintln!("SKIPPED: this CPU has no AVX512_BF16 (bfloat16 runs float32 here)");
                return;
            }
            for (rows, k, n) in [
                (1, 384, 1152),
                (7, 384, 384),
                (45, 1536, 384),
                (13, 3, 17),
                (6, 1, 1),
                (100, 70, 40),
            ] {
                let x = test_noise(rows * k, 11, 3.0);
                let w = PackedWeight::new(&test_noise(n * k, 12, 0.2), n, k);
                let bias = test_noise(n, 13, 1.0);
                let got = matmul(&x, rows, &w, Some(&bias), Activation::Identity);
                let want = rounded_product(&x, rows, &w);
                // Float32 sums of k exact products: rounding of order
                // k * 2^-24 of the terms' magnitudes.
                let scale: f64 = (0..k).map(|_| 3.0 * 0.2).sum::<f64>();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let w = w + bias[i % n] as f64;
                    assert!(
                        (*g as f64 - w).abs() <= 1e-6 * scale,
                        "{rows}x{k}x{n} [{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod micro {
    use super::*;
    use crate::ops::{matrix, test_noise, Linear};

    #[test]
    #[ignore = "micro-benchmark of bfloat16 and float32 products at a decoder's shapes: cargo test --release micro_ -- --ignored --nocapture"]
    fn micro_bf16_and_f32_products() {
        if !available() {
            eprintln!("SKIPPED: no AVX512_BF16 here");
            return;
        }
        for (rows, k, n) in [(512, 1024, 6144), (512, 3072, 1024)] {
            let x = test_noise(rows * k, 1, 1.0);
            let wf = test_noise(n * k, 2, 0.1);
            let w = PackedWeight::new(&wf, n, k);
            let dense = Linear::from_weight(&matrix(wf, n, k).unwrap(), None).unwrap();
            let xt = matrix(x.clone(), rows, k).unwrap();
            let reps = 5;
            let macs = (reps * rows * k * n) as f64;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                std::hint::black_box(matmul(&x, rows, &w, None, Activation::Identity));
            }
            let bf = macs / t.elapsed().as_secs_f64() / 1e9;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                std::hint::black_box(dense.matmul(&xt).unwrap());
            }
            let f = macs / t.elapsed().as_secs_f64() / 1e9;
            eprintln!("{rows}x{k}x{n}: bf16 {bf:.1} GMAC/s, f32 gemm {f:.1} GMAC/s");
        }
    }
}
