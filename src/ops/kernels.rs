//! Fused row-wise kernels, parallel over rows with rayon.

use candle_core::{CpuStorage, Layout, Tensor};
use rayon::prelude::*;

use super::simd::{self, vectorized};
use super::{math, to_vec, with_f32, ROWS_PER_TASK};
use crate::error::{Error, Result};

/// Runs `f` on the contiguous f32 buffer of a CPU tensor, mutably, in place.
pub fn with_f32_mut(t: &Tensor, f: impl Fn(&mut [f32]) + Send + Sync) -> Result<()> {
    t.inplace_op1(&InPlace(f))?;
    Ok(())
}

struct InPlace<F>(F);

impl<F: Fn(&mut [f32])> candle_core::InplaceOp1 for InPlace<F> {
    fn name(&self) -> &'static str {
        "crossrank-inplace"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("crossrank kernels need float32 tensors")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("crossrank kernels need contiguous tensors")
        };
        (self.0)(&mut data[start..end]);
        Ok(())
    }
}

/// Hidden activations, by their HF `hidden_act` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// No activation: a plain bias add.
    Identity,
    /// `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    Relu,
    Silu,
    Tanh,
}

impl Activation {
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "linear" | "identity" => Activation::Identity,
            "gelu" | "gelu_python" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            "tanh" => Activation::Tanh,
            other => {
                return Err(Error::invalid_model(format!(
                    "hidden_act {other:?} is not supported; supported: gelu, gelu_new, \
                     gelu_pytorch_tanh, gelu_fast, relu, silu, tanh"
                )))
            }
        })
    }

    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Gelu => math::gelu_erf(x),
            Activation::GeluTanh => math::gelu_tanh(x),
            Activation::Relu => x.max(0.0),
            Activation::Silu => x / (1.0 + math::exp(-x)),
            Activation::Tanh => math::tanh(x),
        }
    }
}

vectorized! {
    /// `row = act(row + bias)`.
    pub(crate) fn activation_row(act: Activation, row: &mut [f32], bias: Option<&[f32]>) {
        add_bias_and_activate(act, row, bias);
    }
}

/// `xs = act(xs + bias)`, inlined into vectorised callers (no dispatch per
/// call, which short rows cannot afford).
#[inline(always)]
pub(crate) fn add_bias_and_activate(act: Activation, xs: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        xs.iter_mut().zip(b).for_each(|(x, b)| *x += b);
    }
    apply_activation(act, xs);
}

/// `xs = act(xs)`: one branch per call, so the inner loop is a straight,
/// vectorisable map.
#[inline(always)]
fn apply_activation(act: Activation, xs: &mut [f32]) {
    macro_rules! map {
        ($f:expr) => {
            xs.iter_mut().for_each(|x| *x = $f(*x))
        };
    }
    match act {
        Activation::Identity => {}
        Activation::Gelu => map!(math::gelu_erf),
        Activation::GeluTanh => map!(math::gelu_tanh),
        Activation::Relu => map!(|x: f32| x.max(0.0)),
        Activation::Silu => map!(|x: f32| x / (1.0 + math::exp(-x))),
        Activation::Tanh => map!(math::tanh),
    }
}

vectorized! {
    /// Layer norm of one row in place, in f32 with a two-pass variance as
    /// PyTorch does; `residual` and `bias` are added first when given.
    pub fn norm_row(
        norm: &LayerNorm,
        row: &mut [f32],
        residual: Option<&[f32]>,
        bias: Option<&[f32]>,
    ) {
        match (residual, bias) {
            (Some(r), Some(b)) => row
                .iter_mut()
                .zip(r)
                .zip(b)
                .for_each(|((x, r), b)| *x += r + b),
            (Some(r), None) => row.iter_mut().zip(r).for_each(|(x, r)| *x += r),
            (None, Some(b)) => row.iter_mut().zip(b).for_each(|(x, b)| *x += b),
            (None, None) => {}
        }
        let n = row.len() as f32;
        let mean = simd::sum(row) / n;
        let var = simd::sum_sq_dev(row, mean) / n;
        let inv = 1.0 / (var + norm.eps).sqrt();
        match &norm.bias {
            Some(b) => {
                for ((x, w), b) in row.iter_mut().zip(&norm.weight).zip(b) {
                    *x = (*x - mean) * inv * w + b;
                }
            }
            None => {
                for (x, w) in row.iter_mut().zip(&norm.weight) {
                    *x = (*x - mean) * inv * w;
                }
            }
        }
    }
}

/// `x = act(x + bias)` in place, rows in parallel.
pub fn bias_activation(x: &Tensor, bias: Option<&[f32]>, act: Activation) -> Result<()> {
    let cols = x.dim(1)?;
    with_f32_mut(x, |data| {
        data.par_chunks_mut(cols * ROWS_PER_TASK).for_each(|chunk| {
            for row in chunk.chunks_mut(cols) {
                activation_row(act, row, bias);
            }
        })
    })
}

/// Layer normalisation over the last dimension.
pub struct LayerNorm {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub eps: f32,
}

impl LayerNorm {
    pub fn load(vb: &candle_nn::VarBuilder, size: usize, eps: f64) -> Result<Self> {
        // Old TF-converted checkpoints name the parameters gamma / beta.
        let (w, b) = if vb.contains_tensor("weight") {
            ("weight", "bias")
        } else {
            ("gamma", "beta")
        };
        Ok(Self {
            weight: to_vec(&vb.get(size, w)?)?,
            bias: Some(to_vec(&vb.get(size, b)?)?),
            eps: eps as f32,
        })
    }

    pub fn load_no_bias(vb: &candle_nn::VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: to_vec(&vb.get(size, "weight")?)?,
            bias: None,
            eps: eps as f32,
        })
    }

    /// Normalises one row in place.
    #[inline]
    pub fn normalize_row(&self, row: &mut [f32]) {
        norm_row(self, row, None, None)
    }

    /// `x = norm(x)` in place.
    pub fn forward_inplace(&self, x: &Tensor) -> Result<()> {
        let cols = x.dim(1)?;
        with_f32_mut(x, |data| {
            data.par_chunks_mut(cols * ROWS_PER_TASK).for_each(|chunk| {
                chunk
                    .chunks_mut(cols)
                    .for_each(|row| self.normalize_row(row))
            })
        })
    }

    /// `y = norm(y + bias + residual)` in place on `y`: the end of every
    /// post-norm transformer sub-layer in one pass over memory.
    pub fn add_residual_inplace(
        &self,
        y: &Tensor,
        bias: Option<&[f32]>,
        residual: &Tensor,
    ) -> Result<()> {
        for_rows_with_residual(y, residual, |row, res_row| {
            norm_row(self, row, Some(res_row), bias)
        })
    }
}

/// Gathers whole rows: `out[i] = x[rows[i]]` (the first token of each
/// sequence, for poolers).
pub fn gather_rows(x: &Tensor, rows: &[usize]) -> Result<Tensor> {
    let cols = x.dim(1)?;
    let out = with_f32(x, |data| {
        let mut out = Vec::with_capacity(rows.len() * cols);
        for &r in rows {
            out.extend_from_slice(&data[r * cols..(r + 1) * cols]);
        }
        out
    })?;
    super::matrix(out, rows.len(), cols)
}

/// `act(x[:, :n] + b[:n]) * (x[:, n:] + b[n:])` for `x` of width `2n`: the
/// gated linear unit of GeGLU / SwiGLU feed-forwards (ModernBERT's `Wi`
/// output chunked into input and gate). Returns a new `[rows, n]` tensor.
pub fn gated_activation(x: &Tensor, bias: Option<&[f32]>, act: Activation) -> Result<Tensor> {
    let (rows, cols) = x.dims2()?;
    if !cols.is_multiple_of(2) {
        return Err(Error::invalid_model(format!(
            "a gated activation needs an even width, got {cols}"
        )));
    }
    let n = cols / 2;
    let (input_bias, gate_bias) = match bias {
        Some(b) => (Some(&b[..n]), Some(&b[n..])),
        None => (None, None),
    };
    let mut out = vec![0f32; rows * n];
    with_f32(x, |data| {
        out.par_chunks_mut(n * ROWS_PER_TASK)
            .zip(data.par_chunks(cols * ROWS_PER_TASK))
            .for_each(|(out_chunk, in_chunk)| {
                for (o, row) in out_chunk.chunks_mut(n).zip(in_chunk.chunks(cols)) {
                    o.copy_from_slice(&row[..n]);
                    activation_row(act, o, input_bias);
                    match gate_bias {
                        Some(b) => o
                            .iter_mut()
                            .zip(&row[n..])
                            .zip(b)
                            .for_each(|((o, g), b)| *o *= g + b),
                        None => o.iter_mut().zip(&row[n..]).for_each(|(o, g)| *o *= g),
                    }
                }
            })
    })?;
    super::matrix(out, rows, n)
}

/// `y += bias + residual` in place: the residual connection of pre-norm
/// layers, where no normalisation follows.
pub fn add_residual_inplace(y: &Tensor, bias: Option<&[f32]>, residual: &Tensor) -> Result<()> {
    for_rows_with_residual(y, residual, |row, res_row| match bias {
        Some(b) => row
            .iter_mut()
            .zip(res_row)
            .zip(b)
            .for_each(|((x, r), b)| *x += r + b),
        None => row.iter_mut().zip(res_row).for_each(|(x, r)| *x += r),
    })
}

/// Runs `f(row of y, same row of residual)` for every row, in parallel,
/// writing `y` in place.
fn for_rows_with_residual(
    y: &Tensor,
    residual: &Tensor,
    f: impl Fn(&mut [f32], &[f32]) + Send + Sync,
) -> Result<()> {
    let cols = y.dim(1)?;
    if residual.dims() != y.dims() {
        return Err(Error::invalid_model("residual shape mismatch"));
    }
    with_f32(residual, |res| {
        with_f32_mut(y, |data| {
            data.par_chunks_mut(cols * ROWS_PER_TASK)
                .zip(res.par_chunks(cols * ROWS_PER_TASK))
                .for_each(|(chunk, res_chunk)| {
                    for (row, res_row) in chunk.chunks_mut(cols).zip(res_chunk.chunks(cols)) {
                        f(row, res_row);
                    }
                })
        })
    })?
}

impl LayerNorm {
    /// `norm(x)` into a new tensor, leaving `x` as it is (pre-norm layers
    /// keep `x` as their residual).
    pub fn forward_new(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, cols) = x.dims2()?;
        let mut out = with_f32(x, |d| d.to_vec())?;
        out.par_chunks_mut(cols * ROWS_PER_TASK).for_each(|chunk| {
            chunk
                .chunks_mut(cols)
                .for_each(|row| self.normalize_row(row))
        });
        super::matrix(out, rows, cols)
    }
}

/// The mean of each sequence's rows: `out[i] = mean(x[cu[i]..cu[i + 1]])`
/// (mean pooling over the real tokens of packed sequences).
pub fn mean_rows(x: &Tensor, cu_seqlens: &[usize]) -> Result<Tensor> {
    let cols = x.dim(1)?;
    let sequences = cu_seqlens.len().saturating_sub(1);
    let mut out = vec![0f32; sequences * cols];
    with_f32(x, |data| {
        out.par_chunks_mut(cols).enumerate().for_each(|(s, acc)| {
            let (start, end) = (cu_seqlens[s], cu_seqlens[s + 1]);
            for row in data[start * cols..end * cols].chunks(cols) {
                acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
            }
            let n = (end - start).max(1) as f32;
            acc.iter_mut().for_each(|a| *a /= n);
        })
    })?;
    super::matrix(out, sequences, cols)
}
