//! Building blocks shared by the encoder families: absolute-position
//! embeddings, the post-norm transformer layer (BERT-like families and
//! DeBERTa), the first-token classification head and its fresh-head rule,
//! all on packed tokens.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::{LoadSpec, ModelShape, PackedBatch};
use crate::error::{Error, Result};
use crate::ops::kernels::gather_rows;
use crate::ops::profile::{time, Op};
use crate::ops::{
    matrix, packed_attention, to_vec, with_f32, Activation, AttentionSpec, LayerNorm, Linear,
    Precision,
};

/// An embedding table kept as a plain row-major buffer for gathers.
pub struct Table {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Table {
    pub fn load(vb: &VarBuilder, name: &str, cols: usize) -> Result<Self> {
        let t = vb.get_unchecked_dtype(name, DType::F32)?;
        let (rows, c) = t.dims2()?;
        if c != cols {
            return Err(Error::invalid_model(format!(
                "{}{name} has {c} columns, config says {cols}",
                prefix_of(vb)
            )));
        }
        Ok(Self {
            rows,
            cols,
            data: to_vec(&t)?,
        })
    }

    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

fn prefix_of(vb: &VarBuilder) -> String {
    let p = vb.prefix();
    if p.is_empty() {
        p
    } else {
        p + "."
    }
}

/// Word + absolute position (+ token type) embeddings, then LayerNorm.
pub struct Embeddings {
    pub word: Table,
    pub position: Option<Table>,
    pub token_type: Option<Table>,
    pub norm: LayerNorm,
    /// Added to every position index (RoBERTa: `padding_idx + 1`).
    pub position_offset: usize,
}

impl Embeddings {
    /// Loads embeddings stored under BERT's names (`word_embeddings`,
    /// `position_embeddings`, `token_type_embeddings` when present,
    /// `LayerNorm`), `width` columns wide. BERT, RoBERTa, ELECTRA and
    /// DistilBERT (which has no token types) all store them so.
    pub fn load_bert_names(
        vb: &VarBuilder,
        width: usize,
        eps: f64,
        position_offset: usize,
    ) -> Result<Self> {
        let token_type = if vb.contains_tensor("token_type_embeddings.weight") {
            Some(Table::load(vb, "token_type_embeddings.weight", width)?)
        } else {
            None
        };
        Ok(Self {
            word: Table::load(vb, "word_embeddings.weight", width)?,
            position: Some(Table::load(vb, "position_embeddings.weight", width)?),
            token_type,
            norm: LayerNorm::load(&vb.pp("LayerNorm"), width, eps)?,
            position_offset,
        })
    }

    /// The longest sequence the position table allows (all of it for
    /// tables without positions).
    pub fn max_positions(&self) -> usize {
        self.position
            .as_ref()
            .map_or(usize::MAX, |t| t.rows.saturating_sub(self.position_offset))
    }

    pub fn forward(&self, batch: &PackedBatch) -> Result<Tensor> {
        let positions = batch.positions(self.position_offset);
        self.forward_at(batch, &positions, &batch.type_ids)
    }

    /// Embeds with the caller's position indices and token types, for
    /// families that do not use `0..len` and the tokenizer's types (RoBERTa:
    /// positions skip padding ids, token types are always 0).
    pub fn forward_at(
        &self,
        batch: &PackedBatch,
        positions: &[usize],
        type_ids: &[u32],
    ) -> Result<Tensor> {
        time(Op::Embeddings, || self.gather(batch, positions, type_ids))
    }

    fn gather(&self, batch: &PackedBatch, positions: &[usize], type_ids: &[u32]) -> Result<Tensor> {
        let cols = self.word.cols;
        for &id in &batch.ids {
            if id as usize >= self.word.rows {
                return Err(Error::invalid_input(format!(
                    "token id {id} is outside the model's embedding table ({} rows): \
                     the tokenizer does not match the weights",
                    self.word.rows
                )));
            }
        }
        if let (Some(table), Some(&ty)) = (&self.token_type, type_ids.iter().max()) {
            if ty as usize >= table.rows {
                return Err(Error::invalid_input(format!(
                    "token type id {ty} is outside the model's token-type table ({} rows): \
                     the tokenizer does not match the model",
                    table.rows
                )));
            }
        }
        if let (Some(table), Some(&last)) = (&self.position, positions.iter().max()) {
            if last >= table.rows {
                return Err(Error::invalid_input(format!(
                    "a sequence of {} tokens does not fit the model's {} positions; \
                     lower max_length",
                    last + 1 - self.position_offset,
                    table.rows - self.position_offset
                )));
            }
        }
        let mut out = vec![0f32; batch.num_tokens() * cols];
        out.par_chunks_mut(cols).enumerate().for_each(|(t, row)| {
            row.copy_from_slice(self.word.row(batch.ids[t] as usize));
            if let Some(table) = &self.position {
                add(row, table.row(positions[t]));
            }
            if let Some(table) = &self.token_type {
                add(row, table.row(type_ids[t] as usize));
            }
            self.norm.normalize_row(row);
        });
        matrix(out, batch.num_tokens(), cols)
    }
}

#[inline]
fn add(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

/// A post-norm transformer layer: attention, add & norm, feed-forward,
/// add & norm. Query, key and value run as one fused product.
pub struct PostNormLayer {
    pub qkv: Linear,
    pub attn_out: Linear,
    pub attn_norm: LayerNorm,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub ffn_norm: LayerNorm,
    pub act: Activation,
    pub attention: AttentionSpec,
}

/// The four sizes most encoder configs name alike (DistilBERT has its own
/// names), read beside a family's other keys: not flattened into them,
/// since serde then loses the name of a key that fails.
#[derive(serde::Deserialize)]
pub struct EncoderSizes {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
}

impl EncoderSizes {
    pub fn dims(&self, eps: f64, act: Activation) -> EncoderDims {
        EncoderDims {
            hidden: self.hidden_size,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            layers: self.num_hidden_layers,
            eps,
            act,
        }
    }
}

/// The dimensions of a BERT-like encoder, read from its config.
#[derive(Clone, Debug)]
pub struct EncoderDims {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub eps: f64,
    pub act: Activation,
}

impl EncoderDims {
    /// The model's shape, given its embeddings and position limit.
    pub fn shape(
        &self,
        embeddings: &Embeddings,
        max_positions: usize,
        num_labels: usize,
    ) -> ModelShape {
        ModelShape {
            vocab_size: embeddings.word.rows,
            max_positions,
            num_layers: self.layers,
            hidden_size: self.hidden,
            num_labels,
        }
    }

    pub fn head_dim(&self) -> Result<usize> {
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return Err(Error::invalid_model(format!(
                "hidden size {} is not a multiple of the {} attention heads",
                self.hidden, self.heads
            )));
        }
        Ok(self.hidden / self.heads)
    }
}

/// Runs `x` through a stack of layers.
pub fn run_layers(layers: &[PostNormLayer], mut x: Tensor, cu_seqlens: &[usize]) -> Result<Tensor> {
    for layer in layers {
        x = layer.forward(&x, cu_seqlens)?;
    }
    Ok(x)
}

/// Where a post-norm layer's weights are, below the layer's prefix.
pub struct LayerNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attn_out: &'static str,
    pub attn_norm: &'static str,
    pub ffn_in: &'static str,
    pub ffn_out: &'static str,
    pub ffn_norm: &'static str,
}

impl PostNormLayer {
    /// Loads a layer stored under `names`; query, key and value become one
    /// fused product.
    pub fn load(
        vb: &VarBuilder,
        names: &LayerNames,
        dims: &EncoderDims,
        attention: AttentionSpec,
    ) -> Result<Self> {
        let h = dims.hidden;
        let qkv = [names.query, names.key, names.value].map(|name| vb.pp(name));
        Ok(Self {
            qkv: Linear::load_fused(&qkv, h, h)?,
            attn_out: Linear::load(&vb.pp(names.attn_out), h, h)?,
            attn_norm: LayerNorm::load(&vb.pp(names.attn_norm), h, dims.eps)?,
            ffn_in: Linear::load(&vb.pp(names.ffn_in), h, dims.intermediate)?,
            ffn_out: Linear::load(&vb.pp(names.ffn_out), dims.intermediate, h)?,
            ffn_norm: LayerNorm::load(&vb.pp(names.ffn_norm), h, dims.eps)?,
            act: dims.act,
            attention,
        })
    }

    /// The layer with its dense products at `precision`.
    pub fn with_precision(self, precision: Precision) -> Result<Self> {
        Ok(Self {
            qkv: self.qkv.with_precision(precision)?,
            attn_out: self.attn_out.with_precision(precision)?,
            ffn_in: self.ffn_in.with_precision(precision)?,
            ffn_out: self.ffn_out.with_precision(precision)?,
            ..self
        })
    }

    pub fn dense_layers(&self) -> [&Linear; 4] {
        [&self.qkv, &self.attn_out, &self.ffn_in, &self.ffn_out]
    }

    pub fn forward(&self, x: &Tensor, cu_seqlens: &[usize]) -> Result<Tensor> {
        let qkv = self.qkv.forward(x)?;
        let context = time(Op::Attention, || {
            packed_attention(&qkv, cu_seqlens, &self.attention)
        })?;
        drop(qkv);
        self.after_attention(x, &context)
    }

    /// What follows the attention (`context`, per token) in the layer whose
    /// input was `x`: output projection, add & norm, feed-forward, add &
    /// norm. Families with their own attention (DeBERTa) share it.
    pub fn after_attention(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let attended = self.attn_out.matmul(context)?;
        time(Op::ResidualNorm, || {
            self.attn_norm
                .add_residual_inplace(&attended, self.attn_out.bias.as_deref(), x)
        })?;
        let out = self
            .ffn_in
            .feed_forward(self.act, &self.ffn_out, &attended)?;
        time(Op::ResidualNorm, || {
            self.ffn_norm
                .add_residual_inplace(&out, self.ffn_out.bias.as_deref(), &attended)
        })?;
        Ok(out)
    }
}

/// A dense layer that may be missing from a checkpoint: the classifier of a
/// bare encoder. Created with HF's init (normal, std 0.02, zero bias) only
/// when the caller allows it.
pub fn load_or_init_linear(
    vb: &VarBuilder,
    in_features: usize,
    out_features: usize,
    allow_init: bool,
    warnings: &mut Vec<String>,
) -> Result<Linear> {
    if vb.contains_tensor("weight") {
        return Linear::load(vb, in_features, out_features);
    }
    if !allow_init {
        return Err(Error::invalid_model(format!(
            "the checkpoint has no classification head ({}weight is missing): it is a bare \
             encoder, not a cross-encoder, and a new random head would give meaningless scores. \
             Pass num_labels explicitly to create one anyway (e.g. before fine-tuning elsewhere).",
            prefix_of(vb)
        )));
    }
    warnings.push(format!(
        "{}weight was not in the checkpoint and was newly initialised at random: \
         scores are meaningless until the model is trained",
        prefix_of(vb)
    ));
    let weight = seeded_normal(out_features * in_features, 0.02);
    let weight = Tensor::from_vec(
        weight,
        (out_features, in_features),
        &candle_core::Device::Cpu,
    )?;
    Linear::from_weight(&weight, Some(vec![0.0; out_features]))
}

/// Deterministic N(0, std) samples (Box-Muller over a 64-bit LCG), so a
/// fresh head is the same on every load.
fn seeded_normal(n: usize, std: f32) -> Vec<f32> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}

/// The sequence-classification head of the BERT-like families, on each
/// sequence's first token: `out(act(dense(x[first])))`. RoBERTa's
/// `classifier.dense` / `out_proj` use tanh, ELECTRA's exact GELU,
/// DistilBERT's `pre_classifier` / `classifier` ReLU.
pub struct ClassificationHead {
    pub dense: Linear,
    pub act: Activation,
    pub out: Linear,
}

impl ClassificationHead {
    /// Loads both layers; each may be missing from a bare encoder and then
    /// follows [`load_or_init_linear`]'s rule.
    pub fn load(
        dense: &VarBuilder,
        out: &VarBuilder,
        hidden: usize,
        act: Activation,
        spec: &mut LoadSpec<'_>,
    ) -> Result<Self> {
        let allow = spec.allow_new_head;
        Ok(Self {
            dense: load_or_init_linear(dense, hidden, hidden, allow, spec.warnings)?,
            act,
            out: load_or_init_linear(out, hidden, spec.num_labels, allow, spec.warnings)?,
        })
    }

    /// Raw logits, `[num_sequences * num_labels]`.
    pub fn forward(&self, x: &Tensor, batch: &PackedBatch) -> Result<Vec<f32>> {
        let first = gather_rows(x, &batch.first_tokens())?;
        let hidden = self.dense.forward_activation(&first, self.act)?;
        let logits = self.out.forward(&hidden)?;
        with_f32(&logits, |d| d.to_vec())
    }

    pub fn num_labels(&self) -> usize {
        self.out.out_features
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize, cols: usize) -> Table {
        Table {
            rows,
            cols,
            data: (0..rows * cols).map(|i| i as f32).collect(),
        }
    }

    fn embeddings() -> Embeddings {
        Embeddings {
            word: table(10, 4),
            position: Some(table(8, 4)),
            token_type: Some(table(2, 4)),
            norm: LayerNorm {
                weight: vec![1.0; 4],
                bias: Some(vec![0.0; 4]),
                eps: 1e-12,
            },
            position_offset: 0,
        }
    }

    fn batch(type_ids: &[u32]) -> PackedBatch {
        PackedBatch {
            ids: vec![1; type_ids.len()],
            type_ids: type_ids.to_vec(),
            cu_seqlens: vec![0, type_ids.len()],
        }
    }

    #[test]
    fn token_types_inside_the_table_embed() {
        assert!(embeddings().forward(&batch(&[0, 0, 1, 1])).is_ok());
    }

    #[test]
    fn a_token_type_beyond_the_table_is_an_error_not_the_last_row() {
        // PyTorch raises an index error; clamping would hide a tokenizer
        // that does not match the model.
        let err = embeddings().forward(&batch(&[0, 1, 2])).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("token type id 2"), "{message}");
        assert!(message.contains("2 rows"), "{message}");
    }
}
