//! Dense layers: one matrix product through candle (gemm, threaded), with
//! the bias left to the fused kernel that follows where there is one.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::{to_vec, with_f32};
use crate::error::Result;
use rayon::prelude::*;

pub struct Linear {
    /// `[in, out]`, contiguous: HF stores `[out, in]`; transposing once at
    /// load time gives gemm a row-major right-hand side.
    weight_t: Tensor,
    pub bias: Option<Vec<f32>>,
    pub out_features: usize,
}

impl Linear {
    pub fn load(vb: &VarBuilder, in_features: usize, out_features: usize) -> Result<Self> {
        Self::load_opt_bias(vb, in_features, out_features, true)
    }

    pub fn load_opt_bias(
        vb: &VarBuilder,
        in_features: usize,
        out_features: usize,
        with_bias: bool,
    ) -> Result<Self> {
        let weight = vb.get((out_features, in_features), "weight")?;
        let bias = if with_bias {
            Some(to_vec(&vb.get(out_features, "bias")?)?)
        } else {
            None
        };
        Self::from_weight(&weight, bias)
    }

    /// Several layers that read the same input, fused into one product
    /// (query, key and value): weights concatenated along `out`.
    pub fn fuse(parts: &[Linear]) -> Result<Self> {
        let weights: Vec<&Tensor> = parts.iter().map(|p| &p.weight_t).collect();
        let weight_t = Tensor::cat(&weights, 1)?.contiguous()?;
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            Some(parts.iter().flat_map(|p| p.bias.clone().unwrap()).collect())
        } else {
            None
        };
        let out_features = parts.iter().map(|p| p.out_features).sum();
        Ok(Self {
            weight_t,
            bias,
            out_features,
        })
    }

    pub fn from_weight(weight: &Tensor, bias: Option<Vec<f32>>) -> Result<Self> {
        let out_features = weight.dim(0)?;
        let weight_t = weight.to_dtype(DType::F32)?.t()?.contiguous()?;
        Ok(Self {
            weight_t,
            bias,
            out_features,
        })
    }

    /// `x @ W^T` without the bias.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        super::profile::time(super::profile::Op::Matmul, || Ok(x.matmul(&self.weight_t)?))
    }

    /// `x @ W^T + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.matmul(x)?;
        match &self.bias {
            None => Ok(y),
            Some(bias) => add_row_vector(&y, bias),
        }
    }
}

/// `y[r, :] += v` for every row, in parallel; returns a new tensor.
pub fn add_row_vector(y: &Tensor, v: &[f32]) -> Result<Tensor> {
    let (rows, cols) = y.dims2()?;
    let mut out = with_f32(y, |d| d.to_vec())?;
    out.par_chunks_mut(cols * super::ROWS_PER_TASK)
        .for_each(|chunk| {
            for row in chunk.chunks_mut(cols) {
                for (x, b) in row.iter_mut().zip(v) {
                    *x += b;
                }
            }
        });
    super::matrix(out, rows, cols)
}
