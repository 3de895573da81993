//! The numeric precision of the dense layers, chosen at load time.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Exact: the products agree with float32 references to about 1e-6.
    #[default]
    Float32,
    /// bfloat16 products with float32 sums where the CPU has them natively.
    Bfloat16,
    /// int8 weights (per output channel), activations quantized per token,
    /// int32 sums (see [`super::int8`]).
    Int8,
}

impl Precision {
    pub const NAMES: [&'static str; 3] = ["float32", "bfloat16", "int8"];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Bfloat16 => "bfloat16",
            Precision::Int8 => "int8",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "float32" => Ok(Precision::Float32),
            "bfloat16" => Ok(Precision::Bfloat16),
            "int8" => Ok(Precision::Int8),
            other => Err(Error::invalid_input(format!(
                "precision {other:?} is not one of {}",
                Precision::NAMES.join(", ")
            ))),
        }
    }

    /// The precision the dense layers really run at on this CPU: bfloat16
    /// needs AVX512_BF16 (and the AVX-512 path); elsewhere it runs float32
    /// (exact, and faster than emulated bfloat16).
    pub fn effective(self) -> Precision {
        match self {
            Precision::Bfloat16 if !super::bf16::available() => Precision::Float32,
            other => other,
        }
    }

    /// A warning for the user when the precision asked for does not run
    /// as asked on this CPU.
    pub fn warning(self) -> Option<String> {
        (self == Precision::Bfloat16 && self.effective() != self).then(|| {
            format!(
                "precision='bfloat16': {}; crossrank runs its float32 kernels instead (exact, \
                 and at least as fast here as emulated bfloat16). precision='int8' is the \
                 reduced precision that is faster on this CPU.",
                if native_bf16() {
                    "this CPU multiplies bfloat16 natively only with AMX-BF16, which crossrank \
                     has no bfloat16 kernel for yet, or the instruction-set path was capped \
                     below AVX-512 (CROSSRANK_ISA)"
                } else {
                    "this CPU has no native bfloat16 products (AVX512_BF16 or AMX-BF16)"
                }
            )
        })
    }
}

/// Whether the CPU multiplies bfloat16 natively (AVX512_BF16 or AMX-BF16).
pub fn native_bf16() -> bool {
    #[cfg(all(target_arch = "x86_64", not(crossrank_portable)))]
    {
        if std::is_x86_feature_detected!("avx512bf16") {
            return true;
        }
        #[cfg(target_os = "linux")]
        if super::amx::cpu_and_os_allow() {
            return true;
        }
    }
    false
}
