//! Scalar maths written so that LLVM vectorises the loops that call it
//! (libm's `expf` is an opaque call and keeps loops scalar).

/// `a * b + c`, fused. The callers are inlined into the AVX-512 / AVX2
/// builds of `vectorized!` loops, where this is one FMA instruction; the
/// baseline build (CPUs without FMA) calls libm's `fmaf`, slower but
/// exactly as rounded.
#[inline(always)]
fn madd(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// `e^x` for f32, relative error below 3e-7; saturates to 0 / +inf outside
/// the representable range. Branch-free and call-free, so loops vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer, which then sits in the low
    // mantissa bits: round() and a float-to-int conversion in one add.
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = madd(x, std::f32::consts::LOG2_E, ROUNDER);
    let n = shifted - ROUNDER;
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    // x = n ln2 + r, |r| <= ln2 / 2
    let r = x - n * LN2_HI - n * LN2_LO;
    // Degree-6 minimax polynomial for e^r on [-ln2/2, ln2/2].
    let p = 1.987_569_2e-4_f32;
    let p = madd(p, r, 1.398_199_9e-3);
    let p = madd(p, r, 8.333_452e-3);
    let p = madd(p, r, 4.166_579_6e-2);
    let p = madd(p, r, 1.666_666_5e-1);
    let p = madd(p, r, 0.5);
    let p = madd(p * r, r, r) + 1.0;
    // Scale by 2^n through the exponent bits.
    p * f32::from_bits(((n_int + 127) as u32) << 23)
}

/// `tanh(x)` through `exp`, accurate to a few ulp where it matters.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    // tanh(x) = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|}); no overflow.
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// `erf(x)`, absolute error below 4e-7 in f32 (measured; GELU built on it
/// is within 2.5e-7 of the exact one).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    // erf(x) = 1 - erfc(x); erfc(|x|) = t * exp(-x^2 + P(t)), t = 1/(1+|x|/2)
    // (Numerical Recipes' erfcc, fractional error < 1.2e-7).
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = 0.170_872_77_f32;
    let p = madd(p, t, -0.822_152_23);
    let p = madd(p, t, 1.488_515_9);
    let p = madd(p, t, -1.135_204);
    let p = madd(p, t, 0.278_868_07);
    let p = madd(p, t, -0.186_288_06);
    let p = madd(p, t, 0.096_784_18);
    let p = madd(p, t, 0.374_091_96);
    let p = madd(p, t, 1.000_023_7);
    let p = madd(p, t, -1.265_512_2);
    let erfc = t * exp(-z * z + p);
    (1.0 - erfc).copysign(x)
}

/// The exact (erf) GELU of PyTorch / HF `"gelu"`.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The tanh approximation of HF `"gelu_new"` / `"gelu_pytorch_tanh"`.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf_f64(x: f64) -> f64 {
        // Taylor series, exact enough for |x| < 3 in f64.
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0;
        while term.abs() > 1e-17 || n < 5 {
            sum += term / (2 * n + 1) as f64;
            n += 1;
            term *= -x * x / n as f64;
            if n > 200 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_matches_std() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.0137;
        }
        assert_eq!(exp(-200.0), exp(-87.3));
        assert!(exp(-200.0) < 1e-37);
    }

    #[test]
    fn tanh_and_erf_match_reference() {
        let mut x = -6.0f32;
        while x < 6.0 {
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 3e-7,
                "tanh({x})"
            );
            if x.abs() < 3.0 {
                assert!((erf(x) as f64 - erf_f64(x as f64)).abs() < 4e-7, "erf({x})");
            }
            x += 0.001;
        }
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }
}
