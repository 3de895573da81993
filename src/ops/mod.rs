//! The CPU hot path shared by every model family: dense layers on packed
//! tokens (no padding), attention per sequence, and fused, multithreaded
//! elementwise kernels. Activations are candle tensors of shape
//! `[tokens, features]`; kernels work on their contiguous f32 buffers.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod amx;
pub mod attention;
#[cfg(target_arch = "x86_64")]
pub mod attention_avx512;
pub mod bf16;
pub mod int8;
pub mod kernels;
pub mod linear;
pub mod math;
pub mod precision;
pub mod profile;
pub mod rotary;
pub mod simd;

use candle_core::{CpuStorage, Device, Storage, Tensor};

use crate::error::{Error, Result};

pub use attention::{packed_attention, AttentionSpec};
pub use kernels::{Activation, LayerNorm};
pub use linear::Linear;
pub use precision::Precision;

/// Rows per rayon task in row-wise kernels: big enough to amortise the
/// task, small enough to balance two to many cores.
pub(crate) const ROWS_PER_TASK: usize = 16;

/// A result buffer that parallel tasks fill completely: not zeroed first
/// (a zeroing pass over a large fresh buffer also faults its pages in).
pub(crate) fn unwritten(len: usize) -> Vec<std::mem::MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    v.resize_with(len, std::mem::MaybeUninit::uninit);
    v
}

/// # Safety
/// Every element of `v` must be initialised.
pub(crate) unsafe fn assume_init(v: Vec<std::mem::MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: MaybeUninit<f32> has f32's layout, so the allocation, length
    // and capacity carry over; the elements are initialised (the caller's
    // contract), and `ManuallyDrop` keeps the old vector from freeing it.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}

/// Runs `f` on the contiguous f32 buffer of a CPU tensor.
pub fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
        return Err(Error::invalid_model(format!(
            "expected a float32 CPU tensor, got {:?} on {:?}",
            t.dtype(),
            t.device()
        )));
    };
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::invalid_model("expected a contiguous tensor"))?;
    Ok(f(&data[start..end]))
}

/// Copies a (small) tensor into a plain vector: biases, norms.
pub fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?)
}

/// Wraps a buffer as a `[rows, cols]` tensor without copying.
pub fn matrix(data: Vec<f32>, rows: usize, cols: usize) -> Result<Tensor> {
    Ok(Tensor::from_vec(data, (rows, cols), &Device::Cpu)?)
}

/// `x @ w^T` in float64 for `x` `[rows, k]` and `w` `[n, k]`: the
/// reference the product kernels are tested against.
#[cfg(test)]
pub(crate) fn reference_product(x: &[f32], w: &[f32], rows: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0f64; rows * n];
    for r in 0..rows {
        for c in 0..n {
            out[r * n + c] = (0..k)
                .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                .sum();
        }
    }
    out
}

/// Deterministic test values, uniform in `[-amplitude, amplitude)` (a
/// 64-bit LCG, so every run and machine sees the same ones).
#[cfg(test)]
pub(crate) fn test_noise(len: usize, seed: u64, amplitude: f32) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * amplitude
        })
        .collect()
}
