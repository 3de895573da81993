//! BERT for sequence classification:
//! `classifier(tanh(pooler(encoder(embeddings)[CLS])))`.

use candle_core::Tensor;

use super::encoder::{load_or_init_linear, Embeddings, EncoderDims, PostNormLayer, Table};
use super::{CrossEncoderModel, LoadSpec, PackedBatch};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::ops::kernels::{bias_activation, gather_rows};
use crate::ops::profile::{time, Op};
use crate::ops::{with_f32, Activation, LayerNorm, Linear};

pub struct Bert {
    pub embeddings: Embeddings,
    pub layers: Vec<PostNormLayer>,
    pub pooler: Linear,
    pub classifier: Linear,
    pub dims: EncoderDims,
}

impl EncoderDims {
    /// The BERT-style config keys, shared by RoBERTa and ELECTRA.
    pub fn from_bert_config(c: &ModelConfig) -> Result<Self> {
        Ok(Self {
            hidden: c.require("hidden_size")?,
            heads: c.require("num_attention_heads")?,
            intermediate: c.require("intermediate_size")?,
            layers: c.require("num_hidden_layers")?,
            eps: c.f64("layer_norm_eps").unwrap_or(1e-12),
            act: Activation::from_name(c.str("hidden_act").unwrap_or("gelu"))?,
        })
    }
}

impl Bert {
    pub fn load(spec: LoadSpec<'_>) -> Result<Self> {
        let c = spec.config;
        let dims = EncoderDims::from_bert_config(c)?;
        let h = dims.hidden;
        let vb = spec.weights.pp("bert");
        let emb = vb.pp("embeddings");
        let embeddings = Embeddings {
            word: Table::load(&emb, "word_embeddings.weight", h)?,
            position: Some(Table::load(&emb, "position_embeddings.weight", h)?),
            token_type: if emb.contains_tensor("token_type_embeddings.weight") {
                Some(Table::load(&emb, "token_type_embeddings.weight", h)?)
            } else {
                None
            },
            norm: LayerNorm::load(&emb.pp("LayerNorm"), h, dims.eps)?,
            position_offset: 0,
        };
        let layers = (0..dims.layers)
            .map(|i| PostNormLayer::load_bert_names(&vb.pp(format!("encoder.layer.{i}")), &dims))
            .collect::<Result<Vec<_>>>()?;
        let pooler = load_or_init_linear(
            &vb.pp("pooler").pp("dense"),
            h,
            h,
            spec.allow_new_head,
            spec.warnings,
        )?;
        let classifier = load_or_init_linear(
            &spec.weights.pp("classifier"),
            h,
            spec.num_labels,
            spec.allow_new_head,
            spec.warnings,
        )?;
        Ok(Self {
            embeddings,
            layers,
            pooler,
            classifier,
            dims,
        })
    }
}

/// `classifier(tanh(pooler(x[first tokens])))`, BERT's head.
pub fn pooled_head(
    x: &Tensor,
    batch: &PackedBatch,
    pooler: &Linear,
    classifier: &Linear,
) -> Result<Vec<f32>> {
    let first = gather_rows(x, &batch.first_tokens())?;
    let pooled = pooler.matmul(&first)?;
    bias_activation(&pooled, pooler.bias.as_deref(), Activation::Tanh)?;
    let logits = classifier.forward(&pooled)?;
    with_f32(&logits, |d| d.to_vec())
}

impl CrossEncoderModel for Bert {
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        let mut x = self.embeddings.forward(batch)?;
        for layer in &self.layers {
            x = layer.forward(&x, &batch.cu_seqlens)?;
        }
        time(Op::Head, || {
            pooled_head(&x, batch, &self.pooler, &self.classifier)
        })
    }

    fn num_labels(&self) -> usize {
        self.classifier.out_features
    }

    fn vocab_size(&self) -> usize {
        self.embeddings.word.rows
    }

    fn max_positions(&self) -> usize {
        self.embeddings
            .position
            .as_ref()
            .map_or(usize::MAX, |t| t.rows)
    }

    fn num_layers(&self) -> usize {
        self.dims.layers
    }

    fn hidden_size(&self) -> usize {
        self.dims.hidden
    }
}
