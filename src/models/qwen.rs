//! Qwen2 / Qwen3 decoders as rerankers, as HF transformers computes them:
//! token embeddings (no position table: rotary embeddings in every
//! attention), pre-norm layers with RMSNorm, causal grouped-query attention
//! (Qwen3: an RMSNorm over each query and key head), a SwiGLU feed-forward,
//! a final RMSNorm, then one of two heads on each sequence's last token:
//!
//! - `*ForSequenceClassification`: `score` (no bias), any `num_labels`;
//! - `*ForCausalLM`, as sentence-transformers' `LogitScore` reads it:
//!   `logit(true token) - logit(false token)`, only those two rows of the
//!   LM head computed (the embedding table when the embeddings are tied).
//!
//! Sequences are packed without padding, so "the last non-padding token"
//! of HF's head is each sequence's last token (unless it is the pad id).

use candle_core::Tensor;
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use super::encoder::{load_or_init_linear, Table};
use super::{CrossEncoderModel, LoadSpec, LogitTokens, ModelShape, PackedBatch};
use crate::error::{Error, Result};
use crate::ops::kernels::{add_residual_inplace, gated_activation, gather_rows, with_f32_mut};
use crate::ops::profile::{time, Op};
use crate::ops::rotary::{Rope, RopeTable};
use crate::ops::{
    matrix, packed_attention, to_vec, with_f32, Activation, AttentionSpec, Linear, Precision,
    ROWS_PER_TASK,
};

/// What differs between the members of the family.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    pub model_type: &'static str,
    /// Qwen3: an RMSNorm over every query and key head before the rotation.
    qk_norm: bool,
    /// Qwen2 always has biases on q/k/v; Qwen3 follows `attention_bias`
    /// (which then covers the output projection too).
    qkv_bias_always: bool,
    /// `head_dim` when the config does not say: Qwen3Config's default is
    /// 128, Qwen2 has none (hidden / heads).
    default_head_dim: Option<usize>,
}

pub const QWEN2: Family = Family {
    model_type: "qwen2",
    qk_norm: false,
    qkv_bias_always: true,
    default_head_dim: None,
};

pub const QWEN3: Family = Family {
    model_type: "qwen3",
    qk_norm: true,
    qkv_bias_always: false,
    default_head_dim: Some(128),
};

impl Family {
    pub fn of(model_type: &str) -> Option<Self> {
        [QWEN2, QWEN3]
            .into_iter()
            .find(|f| f.model_type == model_type)
    }
}

/// The keys of a Qwen2 / Qwen3 `config.json`, with the config classes'
/// defaults for what a config leaves out.
#[derive(Deserialize)]
struct Keys {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    /// transformers >= 5: `{"rope_theta": ..., "rope_type": ...}`.
    rope_parameters: Option<Value>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    #[serde(default)]
    use_sliding_window: bool,
    layer_types: Option<Vec<String>>,
    pad_token_id: Option<i64>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}
fn default_max_positions() -> usize {
    32768
}

impl Keys {
    /// The rotary theta; only the default RoPE is implemented, so scaled
    /// kinds are refused rather than computed unscaled.
    fn rope_theta(&self) -> Result<f64> {
        for params in [&self.rope_parameters, &self.rope_scaling]
            .into_iter()
            .flatten()
        {
            let kind = params
                .get("rope_type")
                .or_else(|| params.get("type"))
                .and_then(Value::as_str);
            if !params.is_null() && !matches!(kind, None | Some("default")) {
                return Err(Error::invalid_model(format!(
                    "rope_type {kind:?} is not supported; only the default RoPE is"
                )));
            }
        }
        let from_params = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64);
        Ok(from_params.or(self.rope_theta).unwrap_or(10_000.0))
    }

    /// Sliding-window layers are not implemented: refused, not run as full
    /// attention.
    fn check_full_attention(&self) -> Result<()> {
        let sliding = self.use_sliding_window
            || self
                .layer_types
                .iter()
                .flatten()
                .any(|t| t != "full_attention");
        match sliding {
            true => Err(Error::invalid_model(
                "sliding-window attention (use_sliding_window / layer_types) is not supported",
            )),
            false => Ok(()),
        }
    }
}

/// The sizes the layers need, read once.
#[derive(Clone, Copy, Debug)]
struct Dims {
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
}

impl Dims {
    fn from_keys(c: &Keys, family: Family) -> Result<Self> {
        let heads = c.num_attention_heads;
        let kv_heads = c.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(Error::invalid_model(format!(
                "{heads} attention heads cannot share {kv_heads} key/value heads"
            )));
        }
        let head_dim = match (c.head_dim, family.default_head_dim) {
            (Some(d), _) | (None, Some(d)) => d,
            (None, None) if heads > 0 && c.hidden_size.is_multiple_of(heads) => {
                c.hidden_size / heads
            }
            (None, None) => {
                return Err(Error::invalid_model(format!(
                    "hidden size {} is not a multiple of the {heads} attention heads",
                    c.hidden_size
                )))
            }
        };
        Ok(Self {
            hidden: c.hidden_size,
            intermediate: c.intermediate_size,
            layers: c.num_hidden_layers,
            heads,
            kv_heads,
            head_dim,
            eps: c.rms_norm_eps as f32,
        })
    }

    fn attention(&self) -> AttentionSpec {
        let mut spec = AttentionSpec::new(self.heads, self.head_dim);
        spec.kv_heads = self.kv_heads;
        spec.causal = true;
        spec
    }
}

/// `weight * x / sqrt(mean(x^2) + eps)` over each row (or head), as HF's
/// `Qwen3RMSNorm` / `Qwen2RMSNorm` (plain weight, not `1 + weight`).
struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn load(vb: &VarBuilder, size: usize, eps: f32) -> Result<Self> {
        Ok(Self {
            weight: to_vec(&vb.get(size, "weight")?)?,
            eps,
        })
    }

    #[inline]
    fn normalize(&self, row: &mut [f32]) {
        // The mean of squares summed in f64: within rounding of PyTorch's
        // float32 reduction, whatever the order.
        let mean = row.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / row.len() as f64;
        let inv = 1.0 / ((mean as f32) + self.eps).sqrt();
        row.iter_mut()
            .zip(&self.weight)
            .for_each(|(x, w)| *x = w * (*x * inv));
    }

    /// `norm(x)` into a new tensor (pre-norm layers keep `x` as the residual).
    fn forward_new(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, cols) = x.dims2()?;
        let mut out = with_f32(x, |d| d.to_vec())?;
        out.par_chunks_mut(cols * ROWS_PER_TASK)
            .for_each(|chunk| chunk.chunks_mut(cols).for_each(|r| self.normalize(r)));
        matrix(out, rows, cols)
    }

    fn forward_inplace(&self, x: &Tensor) -> Result<()> {
        let cols = x.dim(1)?;
        with_f32_mut(x, |data| {
            data.par_chunks_mut(cols * ROWS_PER_TASK)
                .for_each(|chunk| chunk.chunks_mut(cols).for_each(|r| self.normalize(r)))
        })
    }
}

/// Qwen3's per-head norms of the query and key blocks of a fused
/// projection, applied in place before the rotation.
struct HeadNorms {
    query: RmsNorm,
    key: RmsNorm,
}

impl HeadNorms {
    fn apply(&self, qkv: &Tensor, dims: &Dims) -> Result<()> {
        let cols = dims.attention().qkv_width();
        let d = dims.head_dim;
        let query_width = dims.heads * d;
        let key_end = query_width + dims.kv_heads * d;
        with_f32_mut(qkv, |data| {
            data.par_chunks_mut(cols * ROWS_PER_TASK).for_each(|chunk| {
                for row in chunk.chunks_mut(cols) {
                    let (queries, rest) = row.split_at_mut(query_width);
                    queries.chunks_mut(d).for_each(|h| self.query.normalize(h));
                    rest[..key_end - query_width]
                        .chunks_mut(d)
                        .for_each(|h| self.key.normalize(h));
                }
            })
        })
    }
}

/// One pre-norm decoder layer:
/// `x += o_proj(attn(input_norm(x))); x += down(silu(gate(n)) * up(n))`
/// with `n = post_attention_norm(x)`.
struct Layer {
    input_norm: RmsNorm,
    /// q | k | v in one product.
    qkv: Linear,
    head_norms: Option<HeadNorms>,
    attn_out: Linear,
    post_norm: RmsNorm,
    /// gate | up in one product.
    gate_up: Linear,
    down: Linear,
    act: Activation,
}

impl Layer {
    fn load(vb: &VarBuilder, dims: &Dims, family: Family, c: &Keys) -> Result<Self> {
        let (h, d) = (dims.hidden, dims.head_dim);
        let attn = vb.pp("self_attn");
        let mlp = vb.pp("mlp");
        let qkv_bias = family.qkv_bias_always || c.attention_bias;
        let parts = [
            ("q_proj", dims.heads * d),
            ("k_proj", dims.kv_heads * d),
            ("v_proj", dims.kv_heads * d),
        ];
        let qkv = load_stacked(&attn, &parts, h, qkv_bias)?;
        let head_norms = match family.qk_norm {
            true => Some(HeadNorms {
                query: RmsNorm::load(&attn.pp("q_norm"), d, dims.eps)?,
                key: RmsNorm::load(&attn.pp("k_norm"), d, dims.eps)?,
            }),
            false => None,
        };
        let out_bias = !family.qkv_bias_always && c.attention_bias;
        let intermediate = dims.intermediate;
        Ok(Self {
            input_norm: RmsNorm::load(&vb.pp("input_layernorm"), h, dims.eps)?,
            qkv,
            head_norms,
            attn_out: Linear::load_opt_bias(&attn.pp("o_proj"), dims.heads * d, h, out_bias)?,
            post_norm: RmsNorm::load(&vb.pp("post_attention_layernorm"), h, dims.eps)?,
            gate_up: load_stacked(
                &mlp,
                &[("gate_proj", intermediate), ("up_proj", intermediate)],
                h,
                false,
            )?,
            down: Linear::load_opt_bias(&mlp.pp("down_proj"), intermediate, h, false)?,
            act: Activation::from_name(&c.hidden_act)?,
        })
    }

    fn with_precision(self, precision: Precision) -> Result<Self> {
        Ok(Self {
            qkv: self.qkv.with_precision(precision)?,
            attn_out: self.attn_out.with_precision(precision)?,
            gate_up: self.gate_up.with_precision(precision)?,
            down: self.down.with_precision(precision)?,
            ..self
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        dims: &Dims,
        cu_seqlens: &[usize],
        rope: &RopeTable,
    ) -> Result<Tensor> {
        let normed = time(Op::ResidualNorm, || self.input_norm.forward_new(x))?;
        let qkv = self.qkv.forward(&normed)?;
        drop(normed);
        let spec = dims.attention();
        let context = time(Op::Attention, || {
            if let Some(norms) = &self.head_norms {
                norms.apply(&qkv, dims)?;
            }
            rope.apply_grouped_qk(&qkv, cu_seqlens, dims.heads, dims.kv_heads)?;
            packed_attention(&qkv, cu_seqlens, &spec)
        })?;
        drop(qkv);
        let attended = self.attn_out.matmul(&context)?;
        time(Op::ResidualNorm, || {
            add_residual_inplace(&attended, self.attn_out.bias.as_deref(), x)
        })?;
        let normed = time(Op::ResidualNorm, || self.post_norm.forward_new(&attended))?;
        let inner = self.gate_up.matmul(&normed)?;
        let gated = time(Op::BiasActivation, || {
            gated_activation(&inner, None, self.act)
        })?;
        drop(inner);
        let out = self.down.matmul(&gated)?;
        time(Op::ResidualNorm, || {
            add_residual_inplace(&out, None, &attended)
        })?;
        Ok(out)
    }
}

/// Layers that read the same input (q / k / v, gate / up), loaded as one
/// product: weights (and biases) stacked along `out`, packed once.
fn load_stacked(
    vb: &VarBuilder,
    parts: &[(&str, usize)],
    in_features: usize,
    with_bias: bool,
) -> Result<Linear> {
    let mut weights = Vec::with_capacity(parts.len());
    let mut biases = Vec::new();
    for &(name, out_features) in parts {
        let part = vb.pp(name);
        weights.push(part.get((out_features, in_features), "weight")?);
        if with_bias {
            biases.extend(to_vec(&part.get(out_features, "bias")?)?);
        }
    }
    let bias = with_bias.then_some(biases);
    Linear::from_weight(&Tensor::cat(&weights, 0)?, bias)
}

/// What the last token's hidden state becomes.
enum Head {
    /// `score` of `*ForSequenceClassification`.
    Classifier {
        score: Linear,
        pad_token_id: Option<u32>,
    },
    /// sentence-transformers' `LogitScore`: the LM head's rows for the
    /// true (and false) token.
    Logits {
        true_row: Vec<f32>,
        false_row: Option<Vec<f32>>,
    },
}

impl Head {
    fn load(spec: &mut LoadSpec<'_>, c: &Keys, embeddings: &Table) -> Result<Self> {
        let h = c.hidden_size;
        match spec.logit_tokens {
            Some(tokens) => Self::load_logits(spec, c, embeddings, tokens),
            None => {
                let score = load_or_init_linear_no_bias(spec, h)?;
                let pad_token_id = c.pad_token_id.and_then(|id| u32::try_from(id).ok());
                Ok(Head::Classifier {
                    score,
                    pad_token_id,
                })
            }
        }
    }

    fn load_logits(
        spec: &LoadSpec<'_>,
        c: &Keys,
        embeddings: &Table,
        tokens: LogitTokens,
    ) -> Result<Self> {
        let lm_head = match c.tie_word_embeddings {
            true => None,
            false => Some(Table::load(&spec.weights, "lm_head.weight", c.hidden_size)?),
        };
        let table = lm_head.as_ref().unwrap_or(embeddings);
        let row = |id: u32| -> Result<Vec<f32>> {
            match (id as usize) < table.rows {
                true => Ok(table.row(id as usize).to_vec()),
                false => Err(Error::invalid_model(format!(
                    "LogitScore token id {id} is outside the LM head's {} rows",
                    table.rows
                ))),
            }
        };
        Ok(Head::Logits {
            true_row: row(tokens.true_id)?,
            false_row: tokens.false_id.map(row).transpose()?,
        })
    }

    fn num_labels(&self) -> usize {
        match self {
            Head::Classifier { score, .. } => score.out_features,
            Head::Logits { .. } => 1,
        }
    }

    /// Raw scores, `[num_sequences * num_labels]`.
    fn forward(&self, x: &Tensor, batch: &PackedBatch) -> Result<Vec<f32>> {
        match self {
            Head::Classifier {
                score,
                pad_token_id,
            } => {
                let rows = last_tokens(batch, *pad_token_id);
                let logits = score.forward(&gather_rows(x, &rows)?)?;
                with_f32(&logits, |d| d.to_vec())
            }
            Head::Logits {
                true_row,
                false_row,
            } => {
                let rows = last_tokens(batch, None);
                let hidden = x.dim(1)?;
                with_f32(x, |data| {
                    rows.iter()
                        .map(|&r| {
                            let h = &data[r * hidden..(r + 1) * hidden];
                            let yes = dot(h, true_row);
                            match false_row {
                                Some(no) => yes - dot(h, no),
                                None => yes,
                            }
                        })
                        .collect()
                })
            }
        }
    }
}

/// `score.weight` (no bias), or a fresh one when the user asked for a new
/// head.
fn load_or_init_linear_no_bias(spec: &mut LoadSpec<'_>, hidden: usize) -> Result<Linear> {
    let vb = spec.weights.pp("score");
    if vb.contains_tensor("weight") {
        return Linear::load_opt_bias(&vb, hidden, spec.num_labels, false);
    }
    load_or_init_linear(
        &vb,
        hidden,
        spec.num_labels,
        spec.allow_new_head,
        spec.warnings,
    )
}

/// A float32 logit as PyTorch's product gives it, up to rounding: summed
/// in f64.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum::<f64>() as f32
}

/// The row of each sequence's last token that is not the pad id (HF's
/// "last non-padding token"; with left padding and no pad id, the last
/// position). A sequence of pad ids only gives its first token, as HF's
/// argmax over no match does.
fn last_tokens(batch: &PackedBatch, pad_token_id: Option<u32>) -> Vec<usize> {
    batch
        .cu_seqlens
        .windows(2)
        .map(|w| {
            let (start, end) = (w[0], w[1]);
            match pad_token_id {
                None => end - 1,
                Some(pad) => (start..end)
                    .rev()
                    .find(|&t| batch.ids[t] != pad)
                    .unwrap_or(start),
            }
        })
        .collect()
}

pub struct Qwen {
    embeddings: Table,
    layers: Vec<Layer>,
    final_norm: RmsNorm,
    head: Head,
    rope: Rope,
    dims: Dims,
    max_positions: usize,
}

impl Qwen {
    pub fn load(family: Family, mut spec: LoadSpec<'_>) -> Result<Self> {
        let c: &Keys = &spec.config.typed()?;
        c.check_full_attention()?;
        let dims = Dims::from_keys(c, family)?;
        let vb = spec.weights.pp("model");
        let embeddings = Table::load(&vb, "embed_tokens.weight", dims.hidden)?;
        let layers = (0..dims.layers)
            .map(|i| {
                Layer::load(&vb.pp(format!("layers.{i}")), &dims, family, c)?
                    .with_precision(spec.precision)
            })
            .collect::<Result<Vec<_>>>()?;
        let final_norm = RmsNorm::load(&vb.pp("norm"), dims.hidden, dims.eps)?;
        let head = Head::load(&mut spec, c, &embeddings)?;
        Ok(Self {
            embeddings,
            layers,
            final_norm,
            head,
            rope: Rope::new(dims.head_dim, c.rope_theta()?)?,
            dims,
            max_positions: c.max_position_embeddings,
        })
    }

    fn embed(&self, batch: &PackedBatch) -> Result<Tensor> {
        let table = &self.embeddings;
        if let Some(&id) = batch.ids.iter().find(|&&id| id as usize >= table.rows) {
            return Err(Error::invalid_input(format!(
                "token id {id} is outside the model's embedding table ({} rows): \
                 the tokenizer does not match the weights",
                table.rows
            )));
        }
        let mut out = vec![0f32; batch.num_tokens() * table.cols];
        out.par_chunks_mut(table.cols)
            .zip(&batch.ids)
            .for_each(|(row, &id)| row.copy_from_slice(table.row(id as usize)));
        matrix(out, batch.num_tokens(), table.cols)
    }
}

impl CrossEncoderModel for Qwen {
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        if batch.longest() > self.max_positions {
            return Err(Error::invalid_input(format!(
                "a sequence of {} tokens does not fit the model's {} positions; lower max_length",
                batch.longest(),
                self.max_positions
            )));
        }
        let mut x = time(Op::Embeddings, || self.embed(batch))?;
        let rope = self.rope.table(batch.longest());
        for layer in &self.layers {
            x = layer.forward(&x, &self.dims, &batch.cu_seqlens, &rope)?;
        }
        self.final_norm.forward_inplace(&x)?;
        time(Op::Head, || self.head.forward(&x, batch))
    }

    fn dense_layers(&self) -> Vec<&Linear> {
        self.layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.attn_out, &l.gate_up, &l.down])
            .collect()
    }

    fn shape(&self) -> ModelShape {
        ModelShape {
            vocab_size: self.embeddings.rows,
            max_positions: self.max_positions,
            num_layers: self.dims.layers,
            hidden_size: self.dims.hidden,
            num_labels: self.head.num_labels(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_tokens_skip_trailing_pad_ids_per_sequence() {
        let batch = PackedBatch {
            ids: vec![5, 6, 0, 7, 0, 0],
            type_ids: vec![0; 6],
            cu_seqlens: vec![0, 3, 4, 6],
        };
        assert_eq!(last_tokens(&batch, None), vec![2, 3, 5]);
        // Pad id 0: the last non-pad token; all pads give the first token.
        assert_eq!(last_tokens(&batch, Some(0)), vec![1, 3, 4]);
    }

    #[test]
    fn rms_norm_matches_its_definition() {
        let norm = RmsNorm {
            weight: vec![1.0, 2.0, 0.5, -1.0],
            eps: 1e-6,
        };
        let mut row = vec![1.0f32, -2.0, 3.0, 0.5];
        let ms = (1.0 + 4.0 + 9.0 + 0.25) / 4.0f64;
        let inv = 1.0 / (ms + 1e-6).sqrt();
        let want: Vec<f64> = [1.0, -4.0, 1.5, -0.5].iter().map(|x| x * inv).collect();
        norm.normalize(&mut row);
        for (g, w) in row.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{row:?} vs {want:?}");
        }
    }

    #[test]
    fn scaled_rope_kinds_and_sliding_windows_are_refused() {
        let keys = |extra: &str| -> Keys {
            serde_json::from_str(&format!(
                r#"{{"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                    "num_attention_heads": 2 {extra}}}"#
            ))
            .unwrap()
        };
        assert_eq!(keys("").rope_theta().unwrap(), 10_000.0);
        assert_eq!(keys(r#", "rope_theta": 1e6"#).rope_theta().unwrap(), 1e6);
        let params = r#", "rope_parameters": {"rope_theta": 5e5, "rope_type": "default"}"#;
        assert_eq!(keys(params).rope_theta().unwrap(), 5e5);
        let yarn = r#", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#;
        assert!(keys(yarn)
            .rope_theta()
            .unwrap_err()
            .to_string()
            .contains("yarn"));
        let sliding = r#", "use_sliding_window": true"#;
        assert!(keys(sliding).check_full_attention().is_err());
        assert!(keys("").check_full_attention().is_ok());
    }
}
