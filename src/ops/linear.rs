//! Dense layers: the one interface to every matrix-product kernel. Which
//! kernel a layer runs is decided once, at load, from the precision asked
//! for and the instruction set this process runs ([`Linear::kernel`] names
//! it):
//!
//! | precision | amx | avx512 | avx2 | scalar |
//! |---|---|---|---|---|
//! | float32 | `amx` (bf16 x 3 split, float32 accuracy) | gemm | gemm | gemm |
//! | int8 | `int8` avx512-vnni | `int8` avx512-vnni (else avx2) | `int8` avx2 | `int8` scalar |
//! | bfloat16 | `bf16` avx512-bf16 (AVX512_BF16 CPUs) | `bf16` avx512-bf16, else float32 | float32 | float32 |
//!
//! (candle's `gemm` picks its own SIMD level at run time.)

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::bf16;
use super::int8::{self, QuantizedWeight};
use super::kernels::{bias_activation, Activation};
use super::precision::Precision;
use super::profile::{time, Op};
use super::{to_vec, with_f32};
use crate::error::Result;

pub struct Linear {
    weight: Weight,
    pub bias: Option<Vec<f32>>,
    pub out_features: usize,
}

/// How the weight is kept for the product this CPU runs best.
enum Weight {
    /// `[in, out]`, contiguous: HF stores `[out, in]`; transposing once at
    /// load time gives gemm a row-major right-hand side.
    Dense(Tensor),
    /// Split into bf16 parts in tile order, for AMX at float32 accuracy.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    Tiles(super::amx::PackedWeight),
    /// int8, per output channel, in the int8 kernels' panels.
    Int8(QuantizedWeight),
    /// bfloat16 in panels, for AVX512_BF16.
    Bf16(bf16::PackedWeight),
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

    /// Several layers that read the same input (query, key and value),
    /// loaded as one product: weights concatenated along `out` and packed
    /// once.
    pub fn load_fused(vbs: &[VarBuilder], in_features: usize, out_features: usize) -> Result<Self> {
        let weights = vbs
            .iter()
            .map(|vb| vb.get((out_features, in_features), "weight"))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let biases = vbs
            .iter()
            .map(|vb| to_vec(&vb.get(out_features, "bias")?))
            .collect::<Result<Vec<_>>>()?;
        Self::from_weight(&Tensor::cat(&weights, 0)?, Some(biases.concat()))
    }

    /// Several loaded layers that read the same input, fused into one
    /// product: weights concatenated along `out`. For layers also used
    /// alone; otherwise [`Self::load_fused`] saves packing the weights twice.
    pub fn fuse(parts: &[Linear]) -> Result<Self> {
        let weights = parts
            .iter()
            .map(Linear::weight)
            .collect::<Result<Vec<_>>>()?;
        let weight = Tensor::cat(&weights, 0)?;
        // A part without a bias adds zeros: dropping every part's bias
        // because one has none would change the others' outputs.
        let bias = parts.iter().any(|p| p.bias.is_some()).then(|| {
            parts
                .iter()
                .flat_map(|p| match &p.bias {
                    Some(bias) => bias.clone(),
                    None => vec![0.0; p.out_features],
                })
                .collect()
        });
        Self::from_weight(&weight, bias)
    }

    /// `weight` is `[out, in]`, as checkpoints store it.
    pub fn from_weight(weight: &Tensor, bias: Option<Vec<f32>>) -> Result<Self> {
        let (out_features, in_features) = weight.dims2()?;
        let weight = weight.to_dtype(DType::F32)?;
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if super::amx::available() && out_features >= super::amx::MIN_OUT_FEATURES {
            let data = to_vec(&weight)?;
            return Ok(Self {
                weight: Weight::Tiles(super::amx::PackedWeight::new(
                    &data,
                    out_features,
                    in_features,
                )),
                bias,
                out_features,
            });
        }
        Ok(Self {
            weight: Weight::Dense(transposed(&weight)?),
            bias,
            out_features,
        })
    }

    /// The layer at `precision` (weights converted once, here).
    pub fn with_precision(self, precision: Precision) -> Result<Self> {
        match precision.effective() {
            Precision::Int8 if !matches!(self.weight, Weight::Int8(_)) => {
                let weight = self.weight()?;
                let (out_features, in_features) = weight.dims2()?;
                let data = to_vec(&weight)?;
                Ok(Self {
                    weight: Weight::Int8(QuantizedWeight::new(&data, out_features, in_features)),
                    ..self
                })
            }
            Precision::Bfloat16 if !matches!(self.weight, Weight::Bf16(_)) => {
                let weight = self.weight()?;
                let (out_features, in_features) = weight.dims2()?;
                let data = to_vec(&weight)?;
                Ok(Self {
                    weight: Weight::Bf16(bf16::PackedWeight::new(&data, out_features, in_features)),
                    ..self
                })
            }
            _ => Ok(self),
        }
    }

    /// The kernel this layer's products run on.
    pub fn kernel(&self) -> &'static str {
        match &self.weight {
            Weight::Dense(_) => "float32 gemm",
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Weight::Tiles(_) => "float32 amx",
            Weight::Int8(_) => int8::kernel().name(),
            Weight::Bf16(_) => "bfloat16 avx512-bf16",
        }
    }

    /// Bytes the weight takes in memory.
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::Dense(w) => w.elem_count() * 4,
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Weight::Tiles(packed) => packed.in_features() * packed.out_features() * 6,
            Weight::Int8(q) => q.bytes(),
            Weight::Bf16(w) => w.bytes(),
        }
    }

    /// The float32 weight `[out, in]`, exactly as loaded (dequantized for
    /// int8).
    fn weight(&self) -> Result<Tensor> {
        match &self.weight {
            Weight::Int8(q) => super::matrix(q.to_f32(), q.out_features(), q.in_features()),
            Weight::Bf16(w) => super::matrix(w.to_f32(), w.out_features(), w.in_features()),
            Weight::Dense(weight_t) => transposed(weight_t),
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Weight::Tiles(packed) => {
                super::matrix(packed.to_f32(), packed.out_features(), packed.in_features())
            }
        }
    }

    /// `x @ W^T` without the bias.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        self.product(x, None, Activation::Identity)
    }

    /// `x @ W^T + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_activation(x, Activation::Identity)
    }

    /// `act(x @ W^T + b)`.
    pub fn forward_activation(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        self.product(x, self.bias.as_deref(), act)
    }

    /// `act(x @ W1^T + b1) @ W2^T` for `W1 = self`, `W2 = second`: a
    /// feed-forward block without its last bias (the residual add that
    /// follows takes it). With AMX the intermediate never leaves the cache.
    pub fn feed_forward(&self, act: Activation, second: &Linear, x: &Tensor) -> Result<Tensor> {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if let (Weight::Tiles(w1), Weight::Tiles(w2)) = (&self.weight, &second.weight) {
            return on_rows(x, second.out_features, |data, rows| {
                super::amx::feed_forward(data, rows, w1, self.bias.as_deref(), act, w2)
            });
        }
        let inner = self.forward_activation(x, act)?;
        second.matmul(&inner)
    }

    fn product(&self, x: &Tensor, bias: Option<&[f32]>, act: Activation) -> Result<Tensor> {
        match &self.weight {
            Weight::Dense(weight_t) => {
                let y = time(Op::Matmul, || {
                    Ok::<_, crate::error::Error>(x.matmul(weight_t)?)
                })?;
                if bias.is_some() || act != Activation::Identity {
                    time(Op::BiasActivation, || bias_activation(&y, bias, act))?;
                }
                Ok(y)
            }
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Weight::Tiles(packed) => on_rows(x, self.out_features, |data, rows| {
                super::amx::matmul(data, rows, packed, bias, act)
            }),
            Weight::Int8(q) => on_rows(x, self.out_features, |data, rows| {
                int8::matmul(data, rows, q, bias, act)
            }),
            Weight::Bf16(w) => on_rows(x, self.out_features, |data, rows| {
                bf16::matmul(data, rows, w, bias, act)
            }),
        }
    }
}

/// `w^T`, contiguous: tiles of 32 x 32 (a tile's rows and columns both
/// stay in cache), row bands in parallel. Candle's strided copy walks the
/// source a column at a time, which made loading a 0.6B-parameter model
/// seconds slower.
fn transposed(w: &Tensor) -> Result<Tensor> {
    const TILE: usize = 32;
    let (rows, cols) = w.dims2()?;
    let w = w.contiguous()?;
    let mut out = vec![0f32; rows * cols];
    with_f32(&w, |src| {
        // Each task writes TILE output rows (= source columns) in full.
        out.par_chunks_mut(TILE * rows.max(1))
            .enumerate()
            .for_each(|(band, dst)| {
                let c0 = band * TILE;
                let band_cols = dst.len() / rows.max(1);
                for r0 in (0..rows).step_by(TILE) {
                    for r in r0..(r0 + TILE).min(rows) {
                        let src_row = &src[r * cols + c0..r * cols + c0 + band_cols];
                        for (c, &v) in src_row.iter().enumerate() {
                            dst[c * rows + r] = v;
                        }
                    }
                }
            })
    })?;
    super::matrix(out, cols, rows)
}

/// Runs a product of ours (not gemm's) over the rows of `x` (`[rows,
/// in]`), giving `[rows, out_features]`.
fn on_rows(
    x: &Tensor,
    out_features: usize,
    product: impl FnOnce(&[f32], usize) -> Vec<f32>,
) -> Result<Tensor> {
    time(Op::Matmul, || {
        let (rows, _) = x.dims2()?;
        let x = x.contiguous()?;
        let out = with_f32(&x, |data| product(data, rows))?;
        super::matrix(out, rows, out_features)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::matrix;

    fn part(seed: f32, bias: Option<Vec<f32>>) -> Linear {
        let data: Vec<f32> = (0..12).map(|i| (i as f32 * seed).sin()).collect();
        Linear::from_weight(&matrix(data, 3, 4).unwrap(), bias).unwrap()
    }

    #[test]
    fn transposing_moves_every_element() {
        for (rows, cols) in [(1, 1), (3, 70), (70, 3), (33, 65), (64, 32)] {
            let data: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = to_vec(&transposed(&matrix(data, rows, cols).unwrap()).unwrap()).unwrap();
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], (r * cols + c) as f32, "{rows}x{cols}");
                }
            }
        }
    }

    #[test]
    fn fusing_keeps_each_parts_bias_when_one_part_has_none() {
        let with_bias = || part(0.7, Some(vec![1.0, -2.0, 3.0]));
        let without = || part(1.3, None);
        let x = matrix((0..8).map(|i| i as f32 / 8.0).collect(), 2, 4).unwrap();
        let fused = Linear::fuse(&[with_bias(), without()]).unwrap();
        let got = to_vec(&fused.forward(&x).unwrap()).unwrap();
        let a = to_vec(&with_bias().forward(&x).unwrap()).unwrap();
        let b = to_vec(&without().forward(&x).unwrap()).unwrap();
        for row in 0..2 {
            let want = [&a[row * 3..row * 3 + 3], &b[row * 3..row * 3 + 3]].concat();
            for (g, w) in got[row * 6..row * 6 + 6].iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "row {row}: {got:?} vs {want:?}");
            }
        }
    }
}
