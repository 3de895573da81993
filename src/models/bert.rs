//! BERT for sequence classification:
//! `classifier(tanh(pooler(encoder(embeddings)[CLS])))`.

use super::encoder::{
    load_bert_layers, run_layers, ClassificationHead, Embeddings, EncoderDims, PostNormLayer,
};
use super::{CrossEncoderModel, LoadSpec, ModelShape, PackedBatch};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::ops::profile::{time, Op};
use crate::ops::Activation;

pub struct Bert {
    pub embeddings: Embeddings,
    pub layers: Vec<PostNormLayer>,
    /// The tanh pooler (`bert.pooler.dense`) and `classifier`.
    pub head: ClassificationHead,
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
    pub fn load(mut spec: LoadSpec<'_>) -> Result<Self> {
        let dims = EncoderDims::from_bert_config(spec.config)?;
        let vb = spec.weights.pp("bert");
        let embeddings =
            Embeddings::load_bert_names(&vb.pp("embeddings"), dims.hidden, dims.eps, 0)?;
        let layers = load_bert_layers(&vb, "encoder.layer", &dims, spec.precision)?;
        let head = ClassificationHead::load(
            &vb.pp("pooler").pp("dense"),
            &spec.weights.pp("classifier"),
            dims.hidden,
            Activation::Tanh,
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

impl CrossEncoderModel for Bert {
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        let x = self.embeddings.forward(batch)?;
        let x = run_layers(&self.layers, x, &batch.cu_seqlens)?;
        time(Op::Head, || self.head.forward(&x, batch))
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
