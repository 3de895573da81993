//! Rotary position embeddings (RoPE, "rotate half" layout as in HF's
//! `apply_rotary_pos_emb`), applied in place to the query and key blocks of
//! a fused `[tokens, 3 * heads * head_dim]` projection of packed sequences.

use candle_core::Tensor;
use rayon::prelude::*;

use super::kernels::with_f32_mut;
use super::ROWS_PER_TASK;
use crate::error::{Error, Result};

/// The inverse frequencies of one rotary embedding (one `rope_theta`).
#[derive(Clone, Debug)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    /// HF's default RoPE: `1 / theta^(2i / head_dim)` in float32. The power
    /// is taken in f64 and rounded once, which reproduces PyTorch's float32
    /// values for the usual sizes (positions multiply these, so an ulp here
    /// becomes a visible angle error on long sequences).
    pub fn new(head_dim: usize, theta: f64) -> Result<Self> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(Error::invalid_model(format!(
                "rotary embeddings need an even head size, got {head_dim}"
            )));
        }
        let inv_freq = (0..head_dim / 2)
            .map(|i| {
                let exponent = (2 * i) as f32 / head_dim as f32;
                1.0 / theta.powf(exponent as f64) as f32
            })
            .collect();
        Ok(Self { inv_freq })
    }

    /// Position interpolation (`rope_type: "linear"`): every frequency
    /// divided by `factor`.
    pub fn linear(mut self, factor: f32) -> Self {
        self.inv_freq.iter_mut().for_each(|f| *f /= factor);
        self
    }

    /// Llama 3.1's frequency-dependent scaling (`rope_type: "llama3"`):
    /// wavelengths beyond `original / low` are divided by `factor`, those
    /// under `original / high` kept, the band between interpolated. Each
    /// step in float32, in the order HF computes it (`2 pi / f` is
    /// PyTorch's `reciprocal(f) * 2 pi`).
    pub fn llama3(mut self, factor: f32, low: f32, high: f32, original: f32) -> Self {
        let (low_wavelen, high_wavelen) = (original / low, original / high);
        let two_pi = 2.0 * std::f64::consts::PI as f32;
        for f in &mut self.inv_freq {
            let wavelen = (1.0 / *f) * two_pi;
            let scaled = if wavelen > low_wavelen {
                *f / factor
            } else {
                *f
            };
            // Frequencies are finite and positive: the band is a plain range.
            let medium = (high_wavelen..=low_wavelen).contains(&wavelen);
            *f = match medium {
                true => {
                    let smooth = (original * (1.0 / wavelen) - low) / (high - low);
                    (1.0 - smooth) * scaled / factor + smooth * scaled
                }
                false => scaled,
            };
        }
        self
    }

    /// The inverse frequencies, one per pair of head columns.
    pub fn frequencies(&self) -> &[f32] {
        &self.inv_freq
    }

    /// cos / sin for positions `0..len`, computed once per batch and shared
    /// by every layer that uses this theta.
    pub fn table(&self, len: usize) -> RopeTable {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in 0..len {
            for &f in &self.inv_freq {
                // One float32 product, as PyTorch's outer product computes it.
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        RopeTable { cos, sin, half }
    }
}

/// cos / sin of every (position, frequency), row-major by position.
pub struct RopeTable {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl RopeTable {
    /// Rotates the query and key blocks of `qkv` (`[tokens, 3 * heads *
    /// head_dim]`, query | key | value) in place; positions restart at 0 at
    /// every boundary of `cu_seqlens`.
    pub fn apply_qk(&self, qkv: &Tensor, cu_seqlens: &[usize], heads: usize) -> Result<()> {
        self.apply_grouped_qk(qkv, cu_seqlens, heads, heads)
    }

    /// [`Self::apply_qk`] for grouped-query projections: `[tokens, (heads +
    /// 2 * kv_heads) * head_dim]`, query | key | value.
    pub fn apply_grouped_qk(
        &self,
        qkv: &Tensor,
        cu_seqlens: &[usize],
        heads: usize,
        kv_heads: usize,
    ) -> Result<()> {
        let cols = qkv.dim(1)?;
        let head_dim = 2 * self.half;
        if cols != (heads + 2 * kv_heads) * head_dim {
            return Err(Error::invalid_model(format!(
                "fused qkv has {cols} columns, expected ({heads} + 2 x {kv_heads}) heads x {head_dim}"
            )));
        }
        let max_len = cu_seqlens
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0);
        if max_len * self.half > self.cos.len() {
            return Err(Error::invalid_model(
                "rotary table shorter than the sequence",
            ));
        }
        let positions: Vec<usize> = cu_seqlens.windows(2).flat_map(|w| 0..w[1] - w[0]).collect();
        with_f32_mut(qkv, |data| {
            data.par_chunks_mut(cols * ROWS_PER_TASK)
                .enumerate()
                .for_each(|(chunk_idx, chunk)| {
                    for (r, row) in chunk.chunks_mut(cols).enumerate() {
                        let pos = positions[chunk_idx * ROWS_PER_TASK + r];
                        let cos = &self.cos[pos * self.half..(pos + 1) * self.half];
                        let sin = &self.sin[pos * self.half..(pos + 1) * self.half];
                        // Query and key heads: the blocks before the values.
                        for head in row[..(heads + kv_heads) * head_dim].chunks_mut(head_dim) {
                            rotate_half(head, cos, sin);
                        }
                    }
                })
        })
    }
}

/// `x * cos + rotate_half(x) * sin` for one head, where `rotate_half(x) =
/// [-x2, x1]` and cos / sin repeat over both halves.
#[inline]
fn rotate_half(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    let (x1, x2) = head.split_at_mut(cos.len());
    for (((a, b), c), s) in x1.iter_mut().zip(x2.iter_mut()).zip(cos).zip(sin) {
        let (u, v) = (*a, *b);
        *a = u * c - v * s;
        *b = v * c + u * s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{matrix, with_f32};

    #[test]
    fn rotates_query_and_key_only_and_restarts_per_sequence() {
        let rope = Rope::new(4, 10000.0).unwrap();
        let table = rope.table(3);
        // 1 head of size 4: qkv has 12 columns; tokens: [seq0: 2, seq1: 1].
        let row: Vec<f32> = (0..12).map(|i| i as f32 + 1.0).collect();
        let data: Vec<f32> = row.iter().cycle().take(36).copied().collect();
        let qkv = matrix(data, 3, 12).unwrap();
        table.apply_qk(&qkv, &[0, 2, 3], 1).unwrap();
        let out = with_f32(&qkv, |d| d.to_vec()).unwrap();
        // Position 0 is the identity, for every sequence's first token.
        assert_eq!(&out[..12], &row[..]);
        assert_eq!(&out[24..], &row[..]);
        // Position 1, frequency 0 (angle 1 rad): x1' = x1 cos - x3 sin.
        let (c, s) = (1f32.cos(), 1f32.sin());
        assert!((out[12] - (1.0 * c - 3.0 * s)).abs() < 1e-6);
        assert!((out[14] - (3.0 * c + 1.0 * s)).abs() < 1e-6);
        // Values are untouched.
        assert_eq!(&out[20..24], &row[8..]);
    }
}
