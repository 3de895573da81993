use super::*;
use crate::ops::{reference_product, test_noise};

/// `x @ W^T` in float64 from the quantized operands: what every kernel
/// must reproduce (its int32 sums are exact).
fn dequantized_product(x: &[f32], rows: usize, w: &QuantizedWeight) -> Vec<f64> {
    let (k, n) = (w.in_features(), w.out_features());
    let q = QuantizedRows::new(x, rows, k);
    let wf = w.to_f32();
    let mut out = vec![0f64; rows * n];
    for r in 0..rows {
        for c in 0..n {
            out[r * n + c] = (0..k)
                .map(|i| q.data[r * q.width + i] as f64 * q.scales[r] as f64 * wf[c * k + i] as f64)
                .sum();
        }
    }
    out
}

fn worst_relative(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().map(|v| v.abs()).fold(1e-30, f64::max);
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max)
        / scale
}

const SHAPES: [(usize, usize, usize); 7] = [
    (1, 384, 1152),
    (7, 384, 384),
    (45, 1536, 384),
    (100, 384, 1536),
    (13, 3, 17),
    (6, 1, 1),
    (1000, 70, 40),
];

fn check_kernel(isa: Isa) {
    for (rows, k, n) in SHAPES {
        let x = test_noise(rows * k, 1, 2.0);
        let w = QuantizedWeight::new(&test_noise(n * k, 2, 0.1), n, k);
        let got = matmul_on(isa, &x, rows, &w, None, Activation::Identity);
        let want = dequantized_product(&x, rows, &w);
        let err = worst_relative(&got, &want);
        assert!(err < 1e-6, "{isa:?} {rows}x{k}x{n}: {err}");
    }
}

#[test]
fn scalar_kernel_computes_the_quantized_product() {
    check_kernel(Isa::Scalar);
}

#[test]
fn quantized_product_is_close_to_float() {
    for (rows, k, n) in SHAPES {
        let x = test_noise(rows * k, 3, 1.0);
        let w = test_noise(n * k, 4, 0.05);
        let got = matmul_on(
            Isa::Scalar,
            &x,
            rows,
            &QuantizedWeight::new(&w, n, k),
            None,
            Activation::Identity,
        );
        let want = reference_product(&x, &w, rows, k, n);
        // int8 weights (per channel) dominate: about 1/254 of a row's
        // largest weight per term, averaging out over k.
        let err = worst_relative(&got, &want);
        assert!(err < 0.02, "{rows}x{k}x{n}: {err}");
    }
}

#[test]
fn outlier_token_keeps_the_rest_of_its_row() {
    // One feature 200x the others (BERT's outlier dimensions): with 2047
    // levels the rest of the row stays resolved.
    let (k, n) = (384, 64);
    let mut x = test_noise(k, 5, 1.0);
    x[17] = 200.0;
    let q = QuantizedWeight::new(&test_noise(n * k, 6, 0.05), n, k);
    // Against the dequantized weight: only the activations' rounding counts.
    let w = q.to_f32();
    let got = matmul_on(Isa::Scalar, &x, 1, &q, None, Activation::Identity);
    let mut without = x.clone();
    without[17] = 0.0;
    let want = reference_product(&x, &w, 1, k, n);
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max);
    let small = reference_product(&without, &w, 1, k, n);
    let typical = small.iter().map(|v| v.abs()).sum::<f64>() / n as f64;
    // (127 levels would give about 0.6 of typical here.)
    assert!(err < 0.25 * typical, "{err} vs typical {typical}");
}

#[test]
fn long_inner_dimension_does_not_overflow() {
    let (rows, k, n) = (6, 40_000, 16);
    assert!(activation_levels(k) < ACTIVATION_LEVELS);
    let x = vec![3.0f32; rows * k];
    let w = vec![-0.5f32; n * k];
    let got = matmul_on(
        Isa::Scalar,
        &x,
        rows,
        &QuantizedWeight::new(&w, n, k),
        None,
        Activation::Identity,
    );
    for g in got {
        assert!((g as f64 + 60_000.0).abs() < 1.0, "{g}");
    }
}

#[test]
fn bias_and_activation_are_applied() {
    let (rows, k, n) = (20, 64, 40);
    let x = test_noise(rows * k, 7, 1.0);
    let w = QuantizedWeight::new(&test_noise(n * k, 8, 0.1), n, k);
    let bias = test_noise(n, 9, 1.0);
    let got = matmul_on(Isa::Scalar, &x, rows, &w, Some(&bias), Activation::Gelu);
    let plain = matmul_on(Isa::Scalar, &x, rows, &w, None, Activation::Identity);
    for (i, (g, p)) in got.iter().zip(&plain).enumerate() {
        let want = Activation::Gelu.apply(p + bias[i % n]);
        assert!(
            (g - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{i}: {g} vs {want}"
        );
    }
}

#[test]
fn weight_round_trip_is_within_half_a_step() {
    let (n, k) = (37, 71);
    let w = test_noise(n * k, 10, 1.0);
    let q = QuantizedWeight::new(&w, n, k);
    for (c, (a, b)) in w.chunks(k).zip(q.to_f32().chunks(k)).enumerate() {
        let step = q.scales[c];
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 0.5 * step * 1.0001, "{x} vs {y}");
        }
    }
    assert!(q.bytes() < n.div_ceil(PANEL) * PANEL * k.div_ceil(2) * 2 + 4 * n + 1);
}

#[test]
fn zero_rows_and_zero_weights() {
    let w = QuantizedWeight::new(&[0.0; 32 * 8], 32, 8);
    assert!(matmul_on(Isa::Scalar, &[], 0, &w, None, Activation::Identity).is_empty());
    let out = matmul_on(
        Isa::Scalar,
        &[0.0; 8],
        1,
        &w,
        Some(&[1.0; 32]),
        Activation::Identity,
    );
    assert_eq!(out, vec![1.0; 32]);
}

fn same_sums_as_scalar(isa: Isa) {
    check_kernel(isa);
    for (rows, k, n) in SHAPES {
        let x = test_noise(rows * k, 11, 3.0);
        let w = QuantizedWeight::new(&test_noise(n * k, 12, 0.2), n, k);
        let b = test_noise(n, 13, 1.0);
        let scalar = matmul_on(Isa::Scalar, &x, rows, &w, Some(&b), Activation::Identity);
        let got = matmul_on(isa, &x, rows, &w, Some(&b), Activation::Identity);
        let err = worst_relative(&got, &scalar.iter().map(|&v| v as f64).collect::<Vec<_>>());
        assert!(err < 1e-6, "{isa:?} {rows}x{k}x{n}: {err}");
    }
}

/// Kernels for other instruction sets, each run only where the CPU has
/// it: ignored by a plain `cargo test`, run by `scripts/test.sh` with
/// `--ignored isa_<name>` on CPUs that can (and failing, not passing, on
/// one that cannot).
mod isa_avx2 {
    use super::*;

    #[test]
    #[ignore = "needs AVX2: scripts/test.sh runs it where the CPU has it"]
    fn int8_kernel_computes_the_same_sums_as_scalar() {
        crate::ops::simd::require(Isa::Avx2);
        assert_eq!(kernel_for(Isa::Avx2), Kernel::Avx2);
        same_sums_as_scalar(Isa::Avx2);
    }
}

mod isa_avx512 {
    use super::*;

    #[test]
    #[ignore = "needs AVX-512: scripts/test.sh runs it where the CPU has it"]
    fn int8_kernel_computes_the_same_sums_as_scalar() {
        crate::ops::simd::require(Isa::Avx512);
        eprintln!(
            "int8 kernel on the avx512 path: {:?}",
            kernel_for(Isa::Avx512)
        );
        same_sums_as_scalar(Isa::Avx512);
    }
}

/// The block kernel's rate, one thread: `vnni` picks the AVX-512 VNNI body.
fn micro_block_rate(vnni: bool) {
    let pairs = 192;
    let a = vec![3i16; ROW_BLOCK * 2 * pairs];
    let q = QuantizedRows {
        data: a,
        scales: vec![1.0; ROW_BLOCK],
        width: 2 * pairs,
    };
    let w = QuantizedWeight::new(&vec![0.5f32; 16 * 2 * pairs], 16, 2 * pairs);
    let mut out = vec![0f32; ROW_BLOCK * 16];
    let iters = 200_000;
    let t = std::time::Instant::now();
    for _ in 0..iters {
        let rows = Rows {
            q: &q,
            first_block: 0,
        };
        avx2::run(vnni, rows, &w, None, Activation::Identity, &mut out);
    }
    let dt = t.elapsed().as_secs_f64();
    let macs = (iters * ROW_BLOCK * 16 * 2 * pairs) as f64;
    eprintln!(
        "vnni {vnni}: {:.1} GMAC/s one thread ({:.2} ns per pair step)",
        macs / dt / 1e9,
        dt / (iters * pairs) as f64 * 1e9
    );
}

#[test]
#[ignore = "micro-benchmark of the AVX2 block kernel: cargo test --release micro_ -- --ignored --nocapture"]
fn micro_avx2_block_rate() {
    crate::ops::simd::require(Isa::Avx2);
    micro_block_rate(false);
}

#[test]
#[ignore = "micro-benchmark of the AVX-512 VNNI block kernel: cargo test --release micro_ -- --ignored --nocapture"]
fn micro_avx512_vnni_block_rate() {
    crate::ops::simd::require(Isa::Avx512);
    assert!(avx2::has_avx512_vnni(), "this CPU has no AVX-512 VNNI");
    micro_block_rate(true);
}

#[test]
#[ignore = "micro-benchmark of whole int8 products at a decoder's shapes: cargo test --release micro_ -- --ignored --nocapture"]
fn micro_int8_products_by_isa() {
    for (rows, k, n) in [(512, 1024, 6144), (512, 3072, 1024)] {
        let x = test_noise(rows * k, 1, 1.0);
        let w = QuantizedWeight::new(&test_noise(n * k, 2, 0.1), n, k);
        for isa in crate::ops::simd::runnable_isas() {
            if isa == Isa::Scalar {
                continue;
            }
            let t = std::time::Instant::now();
            let reps = 5;
            for _ in 0..reps {
                std::hint::black_box(matmul_on(isa, &x, rows, &w, None, Activation::Identity));
            }
            let macs = (reps * rows * k * n) as f64;
            let rate = macs / t.elapsed().as_secs_f64() / 1e9;
            eprintln!(
                "{rows}x{k}x{n} {isa:?} ({:?}): {rate:.1} GMAC/s",
                kernel_for(isa)
            );
        }
    }
}
