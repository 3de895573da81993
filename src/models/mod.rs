//! Model families. Each family lives in its own module and turns a config
//! plus named weights into a [`CrossEncoderModel`]; [`load`] is the one
//! place that decides which family a config needs.

pub mod bert;
pub mod deberta_v2;
pub mod decoder;
pub mod encoder;
pub mod modernbert;

use candle_nn::VarBuilder;

use bert::{BertLike, Family};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::ops::{Linear, Precision};
use crate::tokenizer::EncodedPair;

/// The `model_type`s crossrank can run.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &[
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "distilbert",
    "electra",
    "modernbert",
    "deberta-v2",
    "qwen2",
    "qwen3",
    "llama",
    "mistral",
    "gemma",
];

/// A batch of tokenised pairs packed end to end: no padding anywhere.
#[derive(Clone, Debug, Default)]
pub struct PackedBatch {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Sequence boundaries: sequence `i` is tokens `cu_seqlens[i]..cu_seqlens[i + 1]`.
    pub cu_seqlens: Vec<usize>,
}

impl PackedBatch {
    pub fn pack<'a>(pairs: impl IntoIterator<Item = &'a EncodedPair>) -> Self {
        let mut batch = PackedBatch {
            cu_seqlens: vec![0],
            ..Default::default()
        };
        for pair in pairs {
            batch.ids.extend_from_slice(&pair.ids);
            batch.type_ids.extend_from_slice(&pair.type_ids);
            batch.cu_seqlens.push(batch.ids.len());
        }
        batch
    }

    pub fn num_sequences(&self) -> usize {
        self.cu_seqlens.len() - 1
    }

    pub fn num_tokens(&self) -> usize {
        self.ids.len()
    }

    /// Tokens in the longest sequence.
    pub fn longest(&self) -> usize {
        self.cu_seqlens
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
    }

    /// The row of each sequence's first token (`[CLS]` / `<s>`).
    pub fn first_tokens(&self) -> Vec<usize> {
        self.cu_seqlens[..self.num_sequences()].to_vec()
    }

    /// Position index of every token within its sequence, plus `offset`.
    pub fn positions(&self, offset: usize) -> Vec<usize> {
        self.cu_seqlens
            .windows(2)
            .flat_map(|w| offset..offset + w[1] - w[0])
            .collect()
    }
}

/// What the rest of crossrank needs from a model family.
pub trait CrossEncoderModel: Send + Sync {
    /// Raw logits, `[num_sequences * num_labels]`, row-major.
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>>;
    fn shape(&self) -> ModelShape;
    fn num_labels(&self) -> usize {
        self.shape().num_labels
    }
    /// The transformer layers' dense layers (not the head's).
    fn dense_layers(&self) -> Vec<&Linear>;
}

/// The sizes the engine and users read off a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelShape {
    /// Rows of the token embedding table: larger ids are invalid input.
    pub vocab_size: usize,
    /// The longest sequence the model's positions allow.
    pub max_positions: usize,
    pub num_layers: usize,
    pub hidden_size: usize,
    /// Scores per pair: the classification head's outputs.
    pub num_labels: usize,
}

/// How a model is being loaded.
pub struct LoadSpec<'a> {
    pub config: &'a ModelConfig,
    pub weights: VarBuilder<'static>,
    pub num_labels: usize,
    /// The user set `num_labels` explicitly: a missing head is created
    /// (randomly, with a warning) instead of refused.
    pub allow_new_head: bool,
    /// Warnings for the user (a fresh head, ignored weights...).
    pub warnings: &'a mut Vec<String>,
    /// Precision of the transformer layers' dense products; embeddings,
    /// norms, attention and the classification head stay float32.
    pub precision: Precision,
    /// A causal LM scored as sentence-transformers' `LogitScore` does: the
    /// vocabulary ids whose logits make the score. `None`: a classifier.
    pub logit_tokens: Option<LogitTokens>,
}

/// sentence-transformers' `LogitScore`: `logit(true_id) - logit(false_id)`
/// at the last position, or `logit(true_id)` alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogitTokens {
    pub true_id: u32,
    pub false_id: Option<u32>,
}

/// The prefix a family's classifier checkpoints put before the encoder's
/// weight names (`bert.embeddings...`); bare checkpoints have none.
pub fn weight_prefix(model_type: &str) -> &'static str {
    match model_type {
        "deberta-v2" => "deberta",
        "modernbert" => "model",
        other if decoder::Family::of(other).is_some() => "model",
        other => Family::of(other).map_or("bert", |family| family.prefix),
    }
}

/// Picks the family for `config.model_type` and builds the model.
pub fn load(spec: LoadSpec<'_>) -> Result<Box<dyn CrossEncoderModel>> {
    let model_type = spec.config.model_type.as_str();
    if let Some(family) = decoder::Family::of(model_type) {
        return Ok(Box::new(decoder::Decoder::load(family, spec)?));
    }
    if spec.logit_tokens.is_some() && SUPPORTED_MODEL_TYPES.contains(&model_type) {
        return Err(Error::invalid_model(format!(
            "model_type {model_type} saved as a causal language model (LogitScore) is not \
             supported; decoders supported as such: qwen2, qwen3, llama, mistral, gemma"
        )));
    }
    if let Some(family) = Family::of(model_type) {
        return Ok(Box::new(BertLike::load(family, spec)?));
    }
    match model_type {
        "modernbert" => Ok(Box::new(modernbert::ModernBert::load(spec)?)),
        "deberta-v2" => Ok(Box::new(deberta_v2::DebertaV2::load(spec)?)),
        other if spec.config.raw.get("auto_map").is_some() => Err(Error::invalid_input(format!(
            "model_type {other:?} runs custom modelling code (config.json has an \"auto_map\"; \
             sentence-transformers needs trust_remote_code=True for it), which crossrank cannot \
             run; supported model types: {}",
            SUPPORTED_MODEL_TYPES.join(", ")
        ))),
        other => Err(Error::UnsupportedModel {
            model_type: other.to_string(),
            supported: SUPPORTED_MODEL_TYPES,
        }),
    }
}
