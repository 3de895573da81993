//! Decoder-only language models as rerankers (Qwen2, Qwen3, Llama,
//! Mistral, Gemma), as HF transformers computes them: token embeddings (no
//! position table: rotary embeddings in every attention), pre-norm layers
//! with RMSNorm, causal grouped-query attention (Qwen3: an RMSNorm over each
//! query and key head; Mistral and Qwen2's later layers: a sliding window), a
//! gated feed-forward, a final RMSNorm, then one of two heads on each
//! sequence's last token:
//!
//! - `*ForSequenceClassification`: `score` (no bias), any `num_labels`;
//! - `*ForCausalLM`, as sentence-transformers' `LogitScore` reads it:
//!   `logit(true token) - logit(false token)`, only those two rows of the
//!   LM head computed (the embedding table when the embeddings are tied).
//!
//! The families differ in a few switches ([`Family`]); one implementation
//! serves them all, as text-embeddings-inference's one BERT serves its
//! relatives. Sequences are packed without padding, so "the last
//! non-padding token" of HF's head is each sequence's last token (unless it
//! is the pad id).

use candle_core::Tensor;
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use super::encoder::{load_or_init_linear, Table};
use super::{CrossEncoderModel, LoadSpec, LogitTokens, ModelShape, PackedBatch};
use crate::error::{Error, Result};
use crate::ops::bf16::{from_bf16, to_bf16};
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
    /// Qwen2 always has biases on q/k/v (and none on the output); the
    /// others follow `attention_bias`, which covers the output too.
    qkv_bias_always: bool,
    /// `head_dim` when the config does not say: Qwen3Config's default is
    /// 128, Gemma's 256; the others use hidden / heads.
    default_head_dim: Option<usize>,
    /// Gemma: norms scale by `1 + weight`, and the embeddings are
    /// multiplied by `sqrt(hidden_size)`.
    gemma: bool,
    /// Which layers slide when `layer_types` is not saved.
    sliding: Sliding,
    default_act: &'static str,
    default_tied: bool,
}

/// How a config without `layer_types` says which layers use a sliding
/// window (of `sliding_window` tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sliding {
    /// Never (Llama, Gemma).
    Never,
    /// Layers from `max_window_layers` on, when `use_sliding_window`
    /// (Qwen2, Qwen3).
    FromMaxWindowLayers,
    /// Every layer, whenever `sliding_window` is set (Mistral).
    Always,
}

const QWEN: Family = Family {
    model_type: "",
    qk_norm: false,
    qkv_bias_always: false,
    default_head_dim: None,
    gemma: false,
    sliding: Sliding::FromMaxWindowLayers,
    default_act: "silu",
    default_tied: false,
};

pub const FAMILIES: [Family; 5] = [
    Family {
        model_type: "qwen2",
        qkv_bias_always: true,
        ..QWEN
    },
    Family {
        model_type: "qwen3",
        qk_norm: true,
        default_head_dim: Some(128),
        ..QWEN
    },
    Family {
        model_type: "llama",
        sliding: Sliding::Never,
        ..QWEN
    },
    Family {
        model_type: "mistral",
        sliding: Sliding::Always,
        ..QWEN
    },
    Family {
        model_type: "gemma",
        default_head_dim: Some(256),
        gemma: true,
        sliding: Sliding::Never,
        default_act: "gelu_pytorch_tanh",
        default_tied: true,
        ..QWEN
    },
];

impl Family {
    pub fn of(model_type: &str) -> Option<Self> {
        FAMILIES.into_iter().find(|f| f.model_type == model_type)
    }
}

/// The keys of a decoder's `config.json`, with the config classes'
/// defaults for what a config leaves out (family-dependent ones as
/// `Option`s).
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
    hidden_act: Option<String>,
    #[serde(default)]
    attention_bias: bool,
    /// Llama: biases on the feed-forward's three projections.
    #[serde(default)]
    mlp_bias: bool,
    tie_word_embeddings: Option<bool>,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    /// transformers >= 5: `{"rope_theta": ..., "rope_type": ...}`.
    rope_parameters: Option<Value>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    partial_rotary_factor: Option<f64>,
    #[serde(default)]
    use_sliding_window: bool,
    sliding_window: Option<usize>,
    max_window_layers: Option<usize>,
    layer_types: Option<Vec<String>>,
    /// Gemma: an encoder-style (non-causal) attention.
    use_bidirectional_attention: Option<bool>,
    pad_token_id: Option<i64>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    32768
}

impl Keys {
    /// The rotary embedding: the default, or the scaled kinds that need
    /// nothing but the frequencies (`linear`, `llama3`); kinds that change
    /// with the sequence length or the attention scale are refused rather
    /// than computed unscaled.
    fn rope(&self, head_dim: usize) -> Result<Rope> {
        if self.partial_rotary_factor.is_some_and(|f| f != 1.0) {
            return Err(Error::invalid_model(
                "partial rotary embeddings (partial_rotary_factor) are not supported",
            ));
        }
        let theta = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64)
            .or(self.rope_theta)
            .unwrap_or(10_000.0);
        let rope = Rope::new(head_dim, theta)?;
        let scaling = [&self.rope_parameters, &self.rope_scaling]
            .into_iter()
            .flatten()
            .find(|p| !matches!(rope_kind(p), None | Some("default")));
        let Some(params) = scaling else {
            return Ok(rope);
        };
        let number = |key: &str| -> Result<f32> {
            params
                .get(key)
                .and_then(Value::as_f64)
                .map(|v| v as f32)
                .ok_or_else(|| {
                    Error::invalid_model(format!("rope scaling {params} has no number {key:?}"))
                })
        };
        match rope_kind(params) {
            Some("linear") => Ok(rope.linear(number("factor")?)),
            Some("llama3") => {
                let original = number("original_max_position_embeddings")
                    .unwrap_or(self.max_position_embeddings as f32);
                let (low, high) = (number("low_freq_factor")?, number("high_freq_factor")?);
                Ok(rope.llama3(number("factor")?, low, high, original))
            }
            kind => Err(Error::invalid_model(format!(
                "rope_type {kind:?} is not supported; the default, \"linear\" and \"llama3\" are"
            ))),
        }
    }

    /// Each layer's sliding window in tokens (`None`: full attention), from
    /// `layer_types` or the family's rule.
    fn windows(&self, family: Family) -> Result<Vec<Option<usize>>> {
        let n = self.num_hidden_layers;
        let sliding: Vec<bool> = match &self.layer_types {
            Some(types) => types
                .iter()
                .map(|t| match t.as_str() {
                    "full_attention" => Ok(false),
                    "sliding_attention" => Ok(true),
                    other => Err(Error::invalid_model(format!(
                        "layer type {other:?} is not supported (full_attention and \
                         sliding_attention are)"
                    ))),
                })
                .collect::<Result<_>>()?,
            None => (0..n)
                .map(|i| match family.sliding {
                    Sliding::Never => false,
                    Sliding::Always => true,
                    Sliding::FromMaxWindowLayers => {
                        self.use_sliding_window && i >= self.max_window_layers.unwrap_or(28)
                    }
                })
                .collect(),
        };
        if sliding.len() != n {
            return Err(Error::invalid_model(format!(
                "layer_types names {} layers, the model has {n}",
                sliding.len()
            )));
        }
        // Qwen's configs drop the window unless use_sliding_window is set.
        let window = match family.sliding {
            Sliding::FromMaxWindowLayers if !self.use_sliding_window => None,
            _ => self.sliding_window,
        };
        Ok(sliding.into_iter().map(|s| window.filter(|_| s)).collect())
    }
}

fn rope_kind(params: &Value) -> Option<&str> {
    params
        .get("rope_type")
        .or_else(|| params.get("type"))
        .and_then(Value::as_str)
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
    causal: bool,
    gemma_norms: bool,
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
            (None, None) if c.hidden_size.is_multiple_of(heads) => c.hidden_size / heads,
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
            causal: !(family.gemma && c.use_bidirectional_attention == Some(true)),
            gemma_norms: family.gemma,
        })
    }

    /// The attention of a layer with sliding window `window` (HF: query
    /// `i` sees keys `j > i - window`).
    fn attention(&self, window: Option<usize>) -> AttentionSpec {
        let mut spec = AttentionSpec::new(self.heads, self.head_dim);
        spec.kv_heads = self.kv_heads;
        spec.causal = self.causal;
        spec.half_window = window.map(|w| w.saturating_sub(1));
        spec
    }
}

/// `weight * x / sqrt(mean(x^2) + eps)` over each row (or head), as HF's
/// `Qwen3RMSNorm` / `LlamaRMSNorm`; Gemma's scales by `1 + weight` (added
/// once here, in float32 as `GemmaRMSNorm` adds it).
struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn load(vb: &VarBuilder, size: usize, dims: &Dims) -> Result<Self> {
        let mut weight = to_vec(&vb.get(size, "weight")?)?;
        if dims.gemma_norms {
            weight.iter_mut().for_each(|w| *w += 1.0);
        }
        Ok(Self {
            weight,
            eps: dims.eps,
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
        let cols = dims.attention(None).qkv_width();
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
    /// Heads, window, causal mask.
    attention: AttentionSpec,
}

impl Layer {
    fn load(
        vb: &VarBuilder,
        dims: &Dims,
        family: Family,
        c: &Keys,
        window: Option<usize>,
    ) -> Result<Self> {
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
                query: RmsNorm::load(&attn.pp("q_norm"), d, dims)?,
                key: RmsNorm::load(&attn.pp("k_norm"), d, dims)?,
            }),
            false => None,
        };
        let out_bias = !family.qkv_bias_always && c.attention_bias;
        let intermediate = dims.intermediate;
        Ok(Self {
            input_norm: RmsNorm::load(&vb.pp("input_layernorm"), h, dims)?,
            qkv,
            head_norms,
            attn_out: Linear::load_opt_bias(&attn.pp("o_proj"), dims.heads * d, h, out_bias)?,
            post_norm: RmsNorm::load(&vb.pp("post_attention_layernorm"), h, dims)?,
            gate_up: load_stacked(
                &mlp,
                &[("gate_proj", intermediate), ("up_proj", intermediate)],
                h,
                c.mlp_bias,
            )?,
            down: Linear::load_opt_bias(&mlp.pp("down_proj"), intermediate, h, c.mlp_bias)?,
            act: Activation::from_name(c.hidden_act.as_deref().unwrap_or(family.default_act))?,
            attention: dims.attention(window),
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
        let spec = &self.attention;
        let context = time(Op::Attention, || {
            if let Some(norms) = &self.head_norms {
                norms.apply(&qkv, dims)?;
            }
            rope.apply_grouped_qk(&qkv, cu_seqlens, dims.heads, dims.kv_heads)?;
            packed_attention(&qkv, cu_seqlens, spec)
        })?;
        drop(qkv);
        let attended = self.attn_out.matmul(&context)?;
        time(Op::ResidualNorm, || {
            add_residual_inplace(&attended, self.attn_out.bias.as_deref(), x)
        })?;
        let normed = time(Op::ResidualNorm, || self.post_norm.forward_new(&attended))?;
        let inner = self.gate_up.matmul(&normed)?;
        let gated = time(Op::BiasActivation, || {
            gated_activation(&inner, self.gate_up.bias.as_deref(), self.act)
        })?;
        drop(inner);
        let out = self.down.matmul(&gated)?;
        time(Op::ResidualNorm, || {
            add_residual_inplace(&out, self.down.bias.as_deref(), &attended)
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
    fn load(
        spec: &mut LoadSpec<'_>,
        c: &Keys,
        tied: bool,
        embeddings: &TokenTable,
    ) -> Result<Self> {
        let h = c.hidden_size;
        match spec.logit_tokens {
            Some(tokens) => Self::load_logits(spec, c, tied, embeddings, tokens),
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
        tied: bool,
        embeddings: &TokenTable,
        tokens: LogitTokens,
    ) -> Result<Self> {
        let lm_head = match tied {
            true => None,
            false => Some(TokenTable::load(
                &spec.weights,
                "lm_head.weight",
                c.hidden_size,
            )?),
        };
        let table = lm_head.as_ref().unwrap_or(embeddings);
        let row = |id: u32| -> Result<Vec<f32>> {
            match (id as usize) < table.rows {
                true => Ok(table.row(id as usize)),
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

/// The token embeddings (and an untied LM head): bfloat16 when every value
/// is one, as in a bfloat16 checkpoint (exact, half the memory: 300 MiB of
/// Qwen3-0.6B's 600), else float32.
struct TokenTable {
    rows: usize,
    cols: usize,
    values: TableValues,
}

enum TableValues {
    Float32(Vec<f32>),
    Bfloat16(Vec<u16>),
}

impl TokenTable {
    fn load(vb: &VarBuilder, name: &str, cols: usize) -> Result<Self> {
        let Table { rows, cols, data } = Table::load(vb, name, cols)?;
        let exact = data.par_iter().all(|x| x.to_bits() & 0xffff == 0);
        let values = match exact {
            true => TableValues::Bfloat16(data.par_iter().map(|&x| to_bf16(x)).collect()),
            false => TableValues::Float32(data),
        };
        Ok(Self { rows, cols, values })
    }

    /// Row `i` written into `dst` (`cols` long).
    fn row_into(&self, i: usize, dst: &mut [f32]) {
        let range = i * self.cols..(i + 1) * self.cols;
        match &self.values {
            TableValues::Float32(data) => dst.copy_from_slice(&data[range]),
            TableValues::Bfloat16(data) => dst
                .iter_mut()
                .zip(&data[range])
                .for_each(|(d, &b)| *d = from_bf16(b)),
        }
    }

    fn row(&self, i: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.cols];
        self.row_into(i, &mut out);
        out
    }
}

pub struct Decoder {
    embeddings: TokenTable,
    embedding_scale: Option<f32>,
    layers: Vec<Layer>,
    final_norm: RmsNorm,
    head: Head,
    rope: Rope,
    dims: Dims,
    max_positions: usize,
}

impl Decoder {
    pub fn load(family: Family, mut spec: LoadSpec<'_>) -> Result<Self> {
        let c: &Keys = &spec.config.typed()?;
        let dims = Dims::from_keys(c, family)?;
        let rope = c.rope(dims.head_dim)?;
        let windows = c.windows(family)?;
        let vb = spec.weights.pp("model");
        let embeddings = TokenTable::load(&vb, "embed_tokens.weight", dims.hidden)?;
        let layers = windows
            .iter()
            .enumerate()
            .map(|(i, &window)| {
                Layer::load(&vb.pp(format!("layers.{i}")), &dims, family, c, window)?
                    .with_precision(spec.precision)
            })
            .collect::<Result<Vec<_>>>()?;
        let final_norm = RmsNorm::load(&vb.pp("norm"), dims.hidden, &dims)?;
        let tied = c.tie_word_embeddings.unwrap_or(family.default_tied);
        let head = Head::load(&mut spec, c, tied, &embeddings)?;
        // Gemma: `sqrt(hidden)` as the float32 scalar HF multiplies by.
        let embedding_scale = family.gemma.then(|| (dims.hidden as f64).sqrt() as f32);
        Ok(Self {
            embeddings,
            embedding_scale,
            layers,
            final_norm,
            head,
            rope,
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
            .for_each(|(row, &id)| {
                table.row_into(id as usize, row);
                if let Some(scale) = self.embedding_scale {
                    row.iter_mut().for_each(|x| *x *= scale);
                }
            });
        matrix(out, batch.num_tokens(), table.cols)
    }
}

impl CrossEncoderModel for Decoder {
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

    fn keys(extra: &str) -> Keys {
        serde_json::from_str(&format!(
            r#"{{"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
                "num_attention_heads": 2 {extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn token_tables_keep_bfloat16_values_in_half_the_memory_exactly() {
        let vb_of = |data: Vec<f32>| {
            let t = Tensor::from_vec(data, (3, 4), &candle_core::Device::Cpu).unwrap();
            let tensors = std::collections::HashMap::from([("t.weight".to_string(), t)]);
            VarBuilder::from_tensors(tensors, candle_core::DType::F32, &candle_core::Device::Cpu)
        };
        // bfloat16 values (a bfloat16 checkpoint): stored as such, read back exactly.
        let exact: Vec<f32> = (0..12)
            .map(|i| from_bf16(to_bf16(i as f32 * 0.37 - 2.0)))
            .collect();
        let table = TokenTable::load(&vb_of(exact.clone()), "t.weight", 4).unwrap();
        assert!(matches!(table.values, TableValues::Bfloat16(_)));
        assert_eq!(table.row(2), exact[8..12]);
        // Any other value keeps the table in float32.
        let mut other = exact.clone();
        other[5] = 0.1;
        let table = TokenTable::load(&vb_of(other.clone()), "t.weight", 4).unwrap();
        assert!(matches!(table.values, TableValues::Float32(_)));
        assert_eq!(table.row(1), other[4..8]);
    }

    #[test]
    fn rope_theta_and_scaling_come_from_either_config_layout() {
        let freqs = |extra: &str| keys(extra).rope(4).unwrap().frequencies().to_vec();
        assert_eq!(freqs(""), [1.0, 0.01]);
        assert_eq!(freqs(r#", "rope_theta": 1e6"#), [1.0, 0.001]);
        let params = r#", "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}"#;
        assert_eq!(freqs(params), [1.0, 0.001]);
        let linear = r#", "rope_scaling": {"rope_type": "linear", "factor": 4.0}"#;
        assert_eq!(freqs(linear), [0.25, 0.0025]);
        for refused in ["yarn", "dynamic", "longrope"] {
            let extra =
                format!(r#", "rope_parameters": {{"rope_type": "{refused}", "factor": 2}}"#);
            let err = keys(&extra).rope(4).unwrap_err().to_string();
            assert!(err.contains(refused), "{err}");
        }
        let partial = r#", "partial_rotary_factor": 0.5"#;
        assert!(keys(partial).rope(4).is_err());
    }

    #[test]
    fn sliding_windows_follow_each_family_rule() {
        let qwen2 = Family::of("qwen2").unwrap();
        let mistral = Family::of("mistral").unwrap();
        let llama = Family::of("llama").unwrap();
        let window = r#", "sliding_window": 16"#;
        // Qwen: only with use_sliding_window, from max_window_layers on.
        assert_eq!(keys(window).windows(qwen2).unwrap(), [None, None]);
        let on = r#", "sliding_window": 16, "use_sliding_window": true, "max_window_layers": 1"#;
        assert_eq!(keys(on).windows(qwen2).unwrap(), [None, Some(16)]);
        // Mistral: every layer whenever a window is set; Llama never.
        assert_eq!(keys(window).windows(mistral).unwrap(), [Some(16), Some(16)]);
        assert_eq!(keys("").windows(mistral).unwrap(), [None, None]);
        assert_eq!(keys(window).windows(llama).unwrap(), [None, None]);
        // Saved layer types win; unknown kinds are refused.
        let types =
            r#", "sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"]"#;
        assert_eq!(keys(types).windows(mistral).unwrap(), [Some(8), None]);
        let odd = r#", "layer_types": ["chunked_attention", "full_attention"]"#;
        assert!(keys(odd).windows(llama).is_err());
        // A window of W tokens: query i sees keys i - W + 1 ..= i.
        let dims = Dims::from_keys(&keys(""), llama).unwrap();
        let spec = dims.attention(Some(16));
        let (lo, hi) = crate::ops::attention::visible_keys(20, 40, spec.half_window, spec.causal);
        assert_eq!((lo, hi), (5, 21));
    }
}
