//! ModernBERT for sequence classification, as HF transformers computes it
//! in eager / SDPA mode: token embeddings + norm (no positions; rotary
//! embeddings in every attention instead), pre-norm layers that alternate
//! global attention with sliding-window local attention, a GeGLU
//! feed-forward, a final norm, then `classifier(norm(act(dense(pool(x)))))`
//! with CLS or mean pooling. Biases are off by default (`attention_bias`,
//! `mlp_bias`, `norm_bias`, `classifier_bias`).

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;

use super::encoder::{load_or_init_linear, Embeddings, EncoderDims, EncoderSizes, Table};
use super::{CrossEncoderModel, LoadSpec, ModelShape, PackedBatch};
use crate::config::defaults;
use crate::error::{Error, Result};
use crate::ops::kernels::{add_residual_inplace, gated_activation, gather_rows, mean_rows};
use crate::ops::profile::{time, Op};
use crate::ops::rotary::{Rope, RopeTable};
use crate::ops::{
    packed_attention, with_f32, Activation, AttentionSpec, LayerNorm, Linear, Precision,
};

/// HF's defaults for the two rotary thetas (ModernBertConfig).
const DEFAULT_GLOBAL_THETA: f64 = 160_000.0;
const DEFAULT_LOCAL_THETA: f64 = 10_000.0;

/// The keys of ModernBERT's `config.json`, with `ModernBertConfig`'s
/// defaults for what a config leaves out.
#[derive(Deserialize)]
struct Keys {
    #[serde(default = "default_norm_eps")]
    norm_eps: f64,
    #[serde(default = "defaults::gelu")]
    hidden_activation: String,
    #[serde(default = "default_local_attention")]
    local_attention: usize,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default)]
    classifier_bias: bool,
    /// transformers >= 5: `full_attention` / `sliding_attention` per layer.
    layer_types: Option<Vec<String>>,
    #[serde(default = "default_global_every")]
    global_attn_every_n_layers: usize,
    /// transformers >= 5: per layer type, `rope_theta` and `rope_type`.
    rope_parameters: Option<Value>,
    rope_scaling: Option<Value>,
    #[serde(default = "default_global_theta")]
    global_rope_theta: f64,
    /// Absent: 10,000; `null`: the global theta.
    #[serde(default, deserialize_with = "defaults::present")]
    local_rope_theta: Option<Option<f64>>,
    #[serde(default = "default_pooling")]
    classifier_pooling: String,
    #[serde(default = "defaults::gelu")]
    classifier_activation: String,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
}

fn default_norm_eps() -> f64 {
    1e-5
}
fn default_local_attention() -> usize {
    128
}
fn default_global_every() -> usize {
    3
}
fn default_global_theta() -> f64 {
    DEFAULT_GLOBAL_THETA
}
fn default_pooling() -> String {
    "cls".into()
}
fn default_max_positions() -> usize {
    8192
}

/// Which attention a layer runs: global layers see the whole sequence,
/// local ones only tokens within `local_attention / 2` positions. Each
/// kind has its own rotary theta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Span {
    Global,
    Local,
}

impl Span {
    /// The name transformers >= 5 uses in `layer_types` and `rope_parameters`.
    fn layer_type(self) -> &'static str {
        match self {
            Span::Global => "full_attention",
            Span::Local => "sliding_attention",
        }
    }
}

/// How the encoder output becomes one vector per sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pooling {
    Cls,
    /// Mean over each sequence's real tokens.
    Mean,
}

/// One pre-norm layer: `x += attn(attn_norm(x)); x += mlp(mlp_norm(x))`.
struct Layer {
    /// Absent in layer 0, whose input is already the normalised embedding.
    attn_norm: Option<LayerNorm>,
    qkv: Linear,
    attn_out: Linear,
    mlp_norm: LayerNorm,
    /// `Wi`: input and gate halves in one product.
    mlp_in: Linear,
    mlp_out: Linear,
    act: Activation,
    attention: AttentionSpec,
    span: Span,
}

impl Layer {
    fn load(vb: &VarBuilder, index: usize, cfg: &Settings, span: Span) -> Result<Self> {
        let (h, dims) = (cfg.dims.hidden, &cfg.dims);
        let attn = vb.pp("attn");
        let mlp = vb.pp("mlp");
        let mut attention = AttentionSpec::new(dims.heads, dims.head_dim()?);
        if span == Span::Local {
            attention.half_window = Some(cfg.half_window);
        }
        Ok(Self {
            attn_norm: match index {
                0 => None,
                _ => Some(cfg.norm(&vb.pp("attn_norm"))?),
            },
            qkv: Linear::load_opt_bias(&attn.pp("Wqkv"), h, 3 * h, cfg.attention_bias)?,
            attn_out: Linear::load_opt_bias(&attn.pp("Wo"), h, h, cfg.attention_bias)?,
            mlp_norm: cfg.norm(&vb.pp("mlp_norm"))?,
            mlp_in: Linear::load_opt_bias(&mlp.pp("Wi"), h, 2 * dims.intermediate, cfg.mlp_bias)?,
            mlp_out: Linear::load_opt_bias(&mlp.pp("Wo"), dims.intermediate, h, cfg.mlp_bias)?,
            act: dims.act,
            attention,
            span,
        })
    }

    fn with_precision(self, precision: Precision) -> Result<Self> {
        Ok(Self {
            qkv: self.qkv.with_precision(precision)?,
            attn_out: self.attn_out.with_precision(precision)?,
            mlp_in: self.mlp_in.with_precision(precision)?,
            mlp_out: self.mlp_out.with_precision(precision)?,
            ..self
        })
    }

    fn forward(&self, x: &Tensor, cu_seqlens: &[usize], rope: &RopeTable) -> Result<Tensor> {
        let normed = match &self.attn_norm {
            Some(norm) => Some(time(Op::ResidualNorm, || norm.forward_new(x))?),
            None => None,
        };
        let qkv = self.qkv.forward(normed.as_ref().unwrap_or(x))?;
        drop(normed);
        let context = time(Op::Attention, || {
            rope.apply_qk(&qkv, cu_seqlens, self.attention.heads)?;
            packed_attention(&qkv, cu_seqlens, &self.attention)
        })?;
        drop(qkv);
        let attended = self.attn_out.matmul(&context)?;
        time(Op::ResidualNorm, || {
            add_residual_inplace(&attended, self.attn_out.bias.as_deref(), x)
        })?;
        let normed = time(Op::ResidualNorm, || self.mlp_norm.forward_new(&attended))?;
        let inner = self.mlp_in.matmul(&normed)?;
        let gated = time(Op::BiasActivation, || {
            gated_activation(&inner, self.mlp_in.bias.as_deref(), self.act)
        })?;
        drop(inner);
        let out = self.mlp_out.matmul(&gated)?;
        time(Op::ResidualNorm, || {
            add_residual_inplace(&out, self.mlp_out.bias.as_deref(), &attended)
        })?;
        Ok(out)
    }
}

/// The config values the layers need, read once.
struct Settings {
    dims: EncoderDims,
    half_window: usize,
    attention_bias: bool,
    mlp_bias: bool,
    norm_bias: bool,
}

impl Settings {
    fn from_config(c: &Keys, sizes: &EncoderSizes) -> Result<Self> {
        Ok(Self {
            dims: sizes.dims(c.norm_eps, Activation::from_name(&c.hidden_activation)?),
            half_window: c.local_attention / 2,
            attention_bias: c.attention_bias,
            mlp_bias: c.mlp_bias,
            norm_bias: c.norm_bias,
        })
    }

    /// A LayerNorm with or without bias, per `norm_bias`.
    fn norm(&self, vb: &VarBuilder) -> Result<LayerNorm> {
        match self.norm_bias {
            true => LayerNorm::load(vb, self.dims.hidden, self.dims.eps),
            false => LayerNorm::load_no_bias(vb, self.dims.hidden, self.dims.eps),
        }
    }
}

/// Each layer's span: `layer_types` (transformers >= 5) or, in older
/// configs, global every `global_attn_every_n_layers` layers from layer 0.
fn layer_spans(c: &Keys, layers: usize) -> Result<Vec<Span>> {
    if let Some(types) = &c.layer_types {
        if types.len() != layers {
            return Err(Error::invalid_model(format!(
                "layer_types lists {} layers, num_hidden_layers is {layers}",
                types.len()
            )));
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                "full_attention" => Ok(Span::Global),
                "sliding_attention" => Ok(Span::Local),
                _ => Err(Error::invalid_model(format!(
                    "layer_types entry {t:?} is not \"full_attention\" or \"sliding_attention\""
                ))),
            })
            .collect();
    }
    let every = c.global_attn_every_n_layers;
    if every == 0 {
        return Err(Error::invalid_model(
            "global_attn_every_n_layers must be at least 1",
        ));
    }
    Ok((0..layers)
        .map(|i| {
            if i % every == 0 {
                Span::Global
            } else {
                Span::Local
            }
        })
        .collect())
}

/// The rotary theta of a span: `rope_parameters[layer_type]` in configs of
/// transformers 5, else `global_rope_theta` / `local_rope_theta` (a null
/// local theta means the global one). Only the default RoPE is implemented: scaled
/// variants are refused rather than silently computed unscaled.
fn rope_theta(c: &Keys, span: Span) -> Result<f64> {
    let params = c
        .rope_parameters
        .as_ref()
        .and_then(|p| p.get(span.layer_type()));
    for scaling in [params, c.rope_scaling.as_ref()].into_iter().flatten() {
        let kind = scaling
            .get("rope_type")
            .or_else(|| scaling.get("type"))
            .and_then(Value::as_str);
        if !scaling.is_null() && !matches!(kind, None | Some("default")) {
            return Err(Error::invalid_model(format!(
                "ModernBERT rope_type {kind:?} is not supported; only the default RoPE is"
            )));
        }
    }
    if let Some(theta) = params
        .and_then(|p| p.get("rope_theta"))
        .and_then(Value::as_f64)
    {
        return Ok(theta);
    }
    Ok(match (span, c.local_rope_theta) {
        (Span::Global, _) => c.global_rope_theta,
        (Span::Local, None) => DEFAULT_LOCAL_THETA,
        (Span::Local, Some(None)) => c.global_rope_theta,
        (Span::Local, Some(Some(theta))) => theta,
    })
}

/// `ModernBertPredictionHead` then the classifier.
struct Head {
    pooling: Pooling,
    dense: Linear,
    act: Activation,
    norm: LayerNorm,
    classifier: Linear,
}

impl Head {
    fn load(spec: &mut LoadSpec<'_>, c: &Keys, cfg: &Settings) -> Result<Self> {
        let h = cfg.dims.hidden;
        let pooling = match c.classifier_pooling.as_str() {
            "cls" => Pooling::Cls,
            "mean" => Pooling::Mean,
            other => {
                return Err(Error::invalid_model(format!(
                    "classifier_pooling {other:?} is not \"cls\" or \"mean\""
                )))
            }
        };
        let head = spec.weights.pp("head");
        let allow = spec.allow_new_head;
        // A bare encoder has no head at all; load_or_init_linear refuses it
        // unless the caller asked for a fresh one (then the norm starts at 1).
        let dense = if head.contains_tensor("dense.weight") {
            Linear::load_opt_bias(&head.pp("dense"), h, h, c.classifier_bias)?
        } else {
            load_or_init_linear(&head.pp("dense"), h, h, allow, spec.warnings)?
        };
        let norm = if head.contains_tensor("norm.weight") {
            cfg.norm(&head.pp("norm"))?
        } else {
            LayerNorm {
                weight: vec![1.0; h],
                bias: None,
                eps: cfg.dims.eps as f32,
            }
        };
        let classifier = spec.weights.pp("classifier");
        Ok(Self {
            pooling,
            dense,
            act: Activation::from_name(&c.classifier_activation)?,
            norm,
            classifier: load_or_init_linear(&classifier, h, spec.num_labels, allow, spec.warnings)?,
        })
    }

    /// Raw logits, `[num_sequences * num_labels]`.
    fn forward(&self, x: &Tensor, batch: &PackedBatch) -> Result<Vec<f32>> {
        let pooled = match self.pooling {
            Pooling::Cls => gather_rows(x, &batch.first_tokens())?,
            Pooling::Mean => mean_rows(x, &batch.cu_seqlens)?,
        };
        let hidden = self.dense.forward_activation(&pooled, self.act)?;
        self.norm.forward_inplace(&hidden)?;
        let logits = self.classifier.forward(&hidden)?;
        with_f32(&logits, |d| d.to_vec())
    }
}

pub struct ModernBert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    head: Head,
    global_rope: Rope,
    local_rope: Rope,
    dims: EncoderDims,
    max_positions: usize,
}

impl ModernBert {
    pub fn load(mut spec: LoadSpec<'_>) -> Result<Self> {
        let c: &Keys = &spec.config.typed()?;
        let cfg = Settings::from_config(c, &spec.config.typed()?)?;
        let (h, head_dim) = (cfg.dims.hidden, cfg.dims.head_dim()?);
        let vb = spec.weights.pp("model");
        let emb = vb.pp("embeddings");
        let embeddings = Embeddings {
            word: Table::load(&emb, "tok_embeddings.weight", h)?,
            position: None,
            token_type: None,
            norm: cfg.norm(&emb.pp("norm"))?,
            position_offset: 0,
        };
        let spans = layer_spans(c, cfg.dims.layers)?;
        let layers = spans
            .iter()
            .enumerate()
            .map(|(i, &span)| {
                Layer::load(&vb.pp(format!("layers.{i}")), i, &cfg, span)?
                    .with_precision(spec.precision)
            })
            .collect::<Result<Vec<_>>>()?;
        let final_norm = cfg.norm(&vb.pp("final_norm"))?;
        let head = Head::load(&mut spec, c, &cfg)?;
        Ok(Self {
            embeddings,
            layers,
            final_norm,
            head,
            global_rope: Rope::new(head_dim, rope_theta(c, Span::Global)?)?,
            local_rope: Rope::new(head_dim, rope_theta(c, Span::Local)?)?,
            max_positions: c.max_position_embeddings,
            dims: cfg.dims,
        })
    }
}

impl CrossEncoderModel for ModernBert {
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        let mut x = self.embeddings.forward(batch)?;
        let max_len = batch.longest();
        let global = self.global_rope.table(max_len);
        let local = self.local_rope.table(max_len);
        for layer in &self.layers {
            let rope = match layer.span {
                Span::Global => &global,
                Span::Local => &local,
            };
            x = layer.forward(&x, &batch.cu_seqlens, rope)?;
        }
        self.final_norm.forward_inplace(&x)?;
        time(Op::Head, || self.head.forward(&x, batch))
    }

    fn dense_layers(&self) -> Vec<&Linear> {
        self.layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.attn_out, &l.mlp_in, &l.mlp_out])
            .collect()
    }

    fn shape(&self) -> ModelShape {
        self.dims.shape(
            &self.embeddings,
            self.max_positions,
            self.head.classifier.out_features,
        )
    }
}
