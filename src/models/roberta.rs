//! RoBERTa for sequence classification, which also serves XLM-RoBERTa and
//! CamemBERT (the same architecture and weight names):
//! `out_proj(tanh(dense(encoder(embeddings)[<s>])))`.
//!
//! What differs from BERT: positions start after the padding index, token
//! types are never used (the tokenizers return none, so HF embeds type 0),
//! there is no pooler, and the head is `classifier.dense` +
//! `classifier.out_proj`.

use super::encoder::{
    load_bert_layers, run_layers, ClassificationHead, Embeddings, EncoderDims, PostNormLayer,
};
use super::{CrossEncoderModel, LoadSpec, ModelShape, PackedBatch};
use crate::error::Result;
use crate::ops::Activation;

/// RoBERTa's `pad_token_id` when the config does not say.
const DEFAULT_PADDING_IDX: u32 = 1;

pub struct Roberta {
    pub embeddings: Embeddings,
    pub layers: Vec<PostNormLayer>,
    pub head: ClassificationHead,
    pub dims: EncoderDims,
    /// `pad_token_id`: position ids count from `padding_idx + 1`.
    pub padding_idx: u32,
}

impl Roberta {
    pub fn load(mut spec: LoadSpec<'_>) -> Result<Self> {
        let c = spec.config;
        let dims = EncoderDims::from_bert_config(c)?;
        let padding_idx = c
            .usize("pad_token_id")
            .map_or(DEFAULT_PADDING_IDX, |p| p as u32);
        let vb = spec.weights.pp("roberta");
        let offset = padding_idx as usize + 1;
        let embeddings =
            Embeddings::load_bert_names(&vb.pp("embeddings"), dims.hidden, dims.eps, offset)?;
        let layers = load_bert_layers(&vb, "encoder.layer", &dims, spec.precision)?;
        let classifier = spec.weights.pp("classifier");
        let head = ClassificationHead::load(
            &classifier.pp("dense"),
            &classifier.pp("out_proj"),
            dims.hidden,
            Activation::Tanh,
            &mut spec,
        )?;
        Ok(Self {
            embeddings,
            layers,
            head,
            dims,
            padding_idx,
        })
    }
}

/// HF's `create_position_ids_from_input_ids` on packed sequences: a token
/// gets `padding_idx + ` the number of non-padding tokens up to and
/// including it, and a padding id itself (text may contain `<pad>`
/// literally, and the tokenizer still marks it as attended) gets
/// `padding_idx`.
pub fn positions(batch: &PackedBatch, padding_idx: u32) -> Vec<usize> {
    let pad = padding_idx as usize;
    let mut out = Vec::with_capacity(batch.num_tokens());
    for w in batch.cu_seqlens.windows(2) {
        let mut seen = 0;
        out.extend(batch.ids[w[0]..w[1]].iter().map(|&id| {
            if id == padding_idx {
                pad
            } else {
                seen += 1;
                pad + seen
            }
        }));
    }
    out
}

impl CrossEncoderModel for Roberta {
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        let positions = positions(batch, self.padding_idx);
        let type_ids = vec![0; batch.num_tokens()];
        let x = self.embeddings.forward_at(batch, &positions, &type_ids)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seqs: &[&[u32]]) -> PackedBatch {
        let mut b = PackedBatch {
            cu_seqlens: vec![0],
            ..Default::default()
        };
        for s in seqs {
            b.ids.extend_from_slice(s);
            b.type_ids.extend(std::iter::repeat_n(0, s.len()));
            b.cu_seqlens.push(b.ids.len());
        }
        b
    }

    #[test]
    fn positions_start_after_padding_and_restart_per_sequence() {
        let b = batch(&[&[0, 5, 6, 2], &[0, 2]]);
        assert_eq!(positions(&b, 1), vec![2, 3, 4, 5, 2, 3]);
    }

    #[test]
    fn a_padding_id_inside_the_text_keeps_padding_idx_and_is_not_counted() {
        let b = batch(&[&[0, 7, 1, 8, 2]]);
        assert_eq!(positions(&b, 1), vec![2, 3, 1, 4, 5]);
    }

    fn fixture(options: &crate::LoadOptions) -> crate::Result<crate::CrossEncoder> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models/roberta-st5");
        crate::CrossEncoder::from_dir(&dir, options)
    }

    #[test]
    fn max_length_stops_at_the_rows_after_the_padding_index() {
        // 66 position rows, padding_idx 1: 64 tokens fit.
        assert_eq!(fixture(&Default::default()).unwrap().max_positions(), 64);
        let too_long = crate::LoadOptions {
            max_length: Some(65),
            ..Default::default()
        };
        assert!(fixture(&too_long).is_err());
    }

    #[test]
    fn literal_pad_tokens_match_sentence_transformers() {
        // The tokenizer turns "<pad>" into the padding id, attended to.
        // Logits recorded with sentence-transformers 5.1.1 /
        // transformers 4.57.6 for this fixture.
        let pairs = [("a <pad> query", "doc <pad> <pad> text"), ("query", "doc")];
        let want = [0.007_086_783_6, -0.034_423_865];
        let model = fixture(&Default::default()).unwrap();
        let got = model.predict_logits(&pairs, 2, &mut |_, _| true).unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }
}
