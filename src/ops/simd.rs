//! Run-time dispatch to AVX-512 / AVX2 builds of plain Rust loops.
//!
//! The wheel is built for baseline x86-64 (SSE2) so that it runs anywhere;
//! the hot elementwise loops are compiled again with wider vector features
//! and picked once per call by what the CPU supports.

/// Defines `pub fn $name(args)` whose body is compiled three times: for
/// AVX-512, for AVX2 + FMA and for the baseline, the best one chosen at run
/// time. The body must be plain safe Rust.
macro_rules! vectorized {
    ($(#[$meta:meta])* $vis:vis fn $name:ident $(<$lt:lifetime>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[inline]
        $vis fn $name $(<$lt>)? ($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body $(<$lt>)? ($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
            {
                /// # Safety
                /// The CPU has AVX-512 F, VL, BW and DQ.
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                unsafe fn avx512 $(<$lt>)? ($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                /// # Safety
                /// The CPU has AVX2 and FMA.
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2 $(<$lt>)? ($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match $crate::ops::simd::level() {
                    // SAFETY: `level` found AVX-512 F/VL/BW/DQ on this CPU
                    // (std's detection), capped only downwards.
                    $crate::ops::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: `level` found AVX2 and FMA on this CPU.
                    $crate::ops::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::ops::simd::Level::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use vectorized;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Avx512,
    Avx2,
    Baseline,
}

/// The instruction-set paths crossrank has kernels for, narrowest first.
/// `CROSSRANK_ISA=scalar|avx2|avx512|amx` caps the path every kernel takes
/// (to test each one on a CPU that has them all); the CPU's own limit
/// still applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
    Amx,
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Amx];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Amx => "amx",
        }
    }

    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }
}

/// The widest path kernels may take: what the CPU runs, capped by
/// `CROSSRANK_ISA` (read once). AMX itself also needs the OS's permission,
/// which `amx::available` asks for.
#[inline]
pub fn isa_cap() -> Isa {
    static CAP: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("CROSSRANK_ISA") {
        Ok(name) => Isa::from_name(name.trim().to_ascii_lowercase().as_str()).unwrap_or(Isa::Amx),
        Err(_) => Isa::Amx,
    })
}

/// The vector level this CPU runs, capped by [`isa_cap`].
#[inline]
pub fn level() -> Level {
    let cpu = cpu_level();
    match isa_cap() {
        Isa::Scalar => Level::Baseline,
        Isa::Avx2 if cpu == Level::Avx512 => Level::Avx2,
        _ => cpu,
    }
}

/// The widest vector level this CPU runs (cached by std's detection);
/// always `Baseline` off x86_64 and under `--cfg crossrank_portable`.
#[inline]
pub fn cpu_level() -> Level {
    #[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
    {
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512dq")
        {
            return Level::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// The paths this CPU (and OS) can run, narrowest first, ignoring
/// `CROSSRANK_ISA`.
pub fn runnable_isas() -> Vec<Isa> {
    let mut isas = vec![Isa::Scalar];
    match cpu_level() {
        Level::Avx512 => isas.extend([Isa::Avx2, Isa::Avx512]),
        Level::Avx2 => isas.push(Isa::Avx2),
        Level::Baseline => {}
    }
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if super::amx::cpu_and_os_allow() {
        isas.push(Isa::Amx);
    }
    isas
}

/// Panics unless this CPU runs `isa`: for tests of one path, which must
/// fail (not pass) where they cannot run.
pub fn require(isa: Isa) {
    assert!(
        runnable_isas().contains(&isa),
        "this CPU cannot run the {} path",
        isa.name()
    );
}

/// The path kernels take in this process.
pub fn active_isa() -> Isa {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if super::amx::available() {
        return Isa::Amx;
    }
    match level() {
        Level::Avx512 => Isa::Avx512,
        Level::Avx2 => Isa::Avx2,
        Level::Baseline => Isa::Scalar,
    }
}

/// Sum of a slice with independent partial sums, so it vectorises (a plain
/// `iter().sum()` is a strict sequential chain of additions).
#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Sum of squared deviations from `mean`, vectorised like [`sum`].
#[inline(always)]
pub fn sum_sq_dev(xs: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += (x - mean) * (x - mean);
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>()
}

/// Largest element (NaN-free input), vectorised like [`sum`].
#[inline(always)]
pub fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    let m = acc
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    rest.iter().fold(m, |m, &x| if x > m { x } else { m })
}

/// Largest absolute value (0 for an empty slice; NaN-free input),
/// vectorised like [`sum`].
#[inline(always)]
pub fn max_abs(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x.abs() > *a { x.abs() } else { *a };
        }
    }
    let m = acc.iter().fold(0f32, |m, &x| if x > m { x } else { m });
    rest.iter()
        .fold(m, |m, &x| if x.abs() > m { x.abs() } else { m })
}

#[cfg(all(test, not(all(target_arch = "x86_64", not(crossrank_portable)))))]
mod tests {
    use super::*;

    /// Off x86_64, and under `--cfg crossrank_portable`, only the scalar
    /// path exists, whatever the CPU.
    #[test]
    fn portable_builds_run_scalar_only() {
        assert_eq!(cpu_level(), Level::Baseline);
        assert_eq!(runnable_isas(), vec![Isa::Scalar]);
        assert_eq!(active_isa(), Isa::Scalar);
        assert!(!super::super::precision::native_bf16());
    }
}
