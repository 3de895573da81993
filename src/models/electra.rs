//! ELECTRA (the discriminator) for sequence classification:
//! `out_proj(gelu(dense(encoder(project(embeddings))[CLS])))`.
//!
//! The encoder layers carry BERT's weight names; what differs is the
//! embedding width (`embedding_size`, 128 by default), projected to
//! `hidden_size` by `embeddings_project` when the two differ, and a head
//! with an exact (erf) GELU where BERT has its tanh pooler.

use super::encoder::{
    load_bert_layers, run_layers, ClassificationHead, Embeddings, EncoderDims, PostNormLayer,
};
use super::{CrossEncoderModel, LoadSpec, ModelShape, PackedBatch};
use crate::error::Result;
use crate::ops::{Activation, Linear};

/// `ElectraConfig`'s default `embedding_size`.
const DEFAULT_EMBEDDING_SIZE: usize = 128;

pub struct Electra {
    pub embeddings: Embeddings,
    /// `embeddings_project`: HF creates it only when `embedding_size !=
    /// hidden_size`, and ignores a stored one otherwise.
    pub project: Option<Linear>,
    pub layers: Vec<PostNormLayer>,
    pub head: ClassificationHead,
    pub dims: EncoderDims,
}

impl Electra {
    pub fn load(mut spec: LoadSpec<'_>) -> Result<Self> {
        let c = spec.config;
        let dims = EncoderDims::from_bert_config(c)?;
        let width = c.usize("embedding_size").unwrap_or(DEFAULT_EMBEDDING_SIZE);
        let vb = spec.weights.pp("electra");
        let embeddings = Embeddings::load_bert_names(&vb.pp("embeddings"), width, dims.eps, 0)?;
        let project = if width != dims.hidden {
            Some(Linear::load(
                &vb.pp("embeddings_project"),
                width,
                dims.hidden,
            )?)
        } else {
            None
        };
        let layers = load_bert_layers(&vb, "encoder.layer", &dims, spec.precision)?;
        let classifier = spec.weights.pp("classifier");
        // HF's ElectraClassificationHead uses `get_activation("gelu")`
        // whatever `hidden_act` says: the exact GELU.
        let head = ClassificationHead::load(
            &classifier.pp("dense"),
            &classifier.pp("out_proj"),
            dims.hidden,
            Activation::Gelu,
            &mut spec,
        )?;
        Ok(Self {
            embeddings,
            project,
            layers,
            head,
            dims,
        })
    }
}

impl CrossEncoderModel for Electra {
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        let mut x = self.embeddings.forward(batch)?;
        if let Some(project) = &self.project {
            x = project.forward(&x)?;
        }
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
