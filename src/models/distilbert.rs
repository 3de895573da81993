//! DistilBERT for sequence classification:
//! `classifier(relu(pre_classifier(transformer(embeddings)[CLS])))`.
//!
//! The same post-norm layer as BERT under its own weight names and config
//! keys (`dim`, `n_heads`, `hidden_dim`, `n_layers`, `activation`); no token
//! types, no pooler, and every LayerNorm uses eps 1e-12 whatever the config.

use super::encoder::{run_layers, ClassificationHead, Embeddings, EncoderDims, PostNormLayer};
use super::{CrossEncoderModel, LoadSpec, ModelShape, PackedBatch};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::ops::{Activation, AttentionSpec, LayerNorm, Linear};

/// HF hard-codes this eps in every DistilBERT LayerNorm.
const LAYER_NORM_EPS: f64 = 1e-12;

pub struct DistilBert {
    pub embeddings: Embeddings,
    pub layers: Vec<PostNormLayer>,
    pub head: ClassificationHead,
    pub dims: EncoderDims,
}

/// The dimensions under DistilBERT's config keys.
fn dims(c: &ModelConfig) -> Result<EncoderDims> {
    Ok(EncoderDims {
        hidden: c.require("dim")?,
        heads: c.require("n_heads")?,
        intermediate: c.require("hidden_dim")?,
        layers: c.require("n_layers")?,
        eps: LAYER_NORM_EPS,
        act: Activation::from_name(c.str("activation").unwrap_or("gelu"))?,
    })
}

/// One `transformer.layer.{i}`, mapped onto the shared post-norm layer.
fn load_layer(vb: &candle_nn::VarBuilder, dims: &EncoderDims) -> Result<PostNormLayer> {
    let h = dims.hidden;
    let attn = vb.pp("attention");
    let qkv = ["q_lin", "k_lin", "v_lin"].map(|name| attn.pp(name));
    Ok(PostNormLayer {
        qkv: Linear::load_fused(&qkv, h, h)?,
        attn_out: Linear::load(&attn.pp("out_lin"), h, h)?,
        attn_norm: LayerNorm::load(&vb.pp("sa_layer_norm"), h, dims.eps)?,
        ffn_in: Linear::load(&vb.pp("ffn").pp("lin1"), h, dims.intermediate)?,
        ffn_out: Linear::load(&vb.pp("ffn").pp("lin2"), dims.intermediate, h)?,
        ffn_norm: LayerNorm::load(&vb.pp("output_layer_norm"), h, dims.eps)?,
        act: dims.act,
        attention: AttentionSpec::new(dims.heads, dims.head_dim()?),
    })
}

impl DistilBert {
    pub fn load(mut spec: LoadSpec<'_>) -> Result<Self> {
        let dims = dims(spec.config)?;
        let vb = spec.weights.pp("distilbert");
        // Same names as BERT's; there is no token_type_embeddings table.
        let embeddings =
            Embeddings::load_bert_names(&vb.pp("embeddings"), dims.hidden, dims.eps, 0)?;
        let layers = (0..dims.layers)
            .map(|i| {
                load_layer(&vb.pp(format!("transformer.layer.{i}")), &dims)?
                    .with_precision(spec.precision)
            })
            .collect::<Result<Vec<_>>>()?;
        let head = ClassificationHead::load(
            &spec.weights.pp("pre_classifier"),
            &spec.weights.pp("classifier"),
            dims.hidden,
            Activation::Relu,
            &mut spec,
        )?;
        Ok(Self {
            embeddings,
            layers,
            head,
            dims,
        })
    }
}

impl CrossEncoderModel for DistilBert {
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        let x = self.embeddings.forward(batch)?;
        let x = run_layers(&self.layers, x, &batch.cu_seqlens)?;
        self.head.forward(&x, batch)
    }

    fn num_labels(&self) -> usize {
        self.head.num_labels()
    }

    fn dense_layers(&self) -> Vec<&crate::ops::Linear> {
        self.layers
            .iter()
            .flat_map(PostNormLayer::dense_layers)
            .collect()
    }

    fn shape(&self) -> ModelShape {
        self.dims
            .shape(&self.embeddings, self.embeddings.max_positions())
    }
}
