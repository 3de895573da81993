//! One post-norm encoder for the BERT-like families: BERT, RoBERTa (with
//! XLM-RoBERTa and CamemBERT), ELECTRA and DistilBERT.
//!
//! They run the same arithmetic, `head(encoder(embeddings)[first token])`,
//! and differ only in what a [`Family`] describes: where the weights are
//! stored, the config keys, how positions are counted, whether token types
//! are embedded, an embedding projection, and the classification head.

use candle_nn::VarBuilder;
use serde::Deserialize;

use super::encoder::{
    run_layers, ClassificationHead, Embeddings, EncoderDims, EncoderSizes, LayerNames,
    PostNormLayer,
};
use super::{CrossEncoderModel, LoadSpec, ModelShape, PackedBatch};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::ops::profile::{time, Op};
use crate::ops::{Activation, AttentionSpec, Linear};

/// What tells one BERT-like family from another.
pub struct Family {
    /// The encoder's weight prefix in a classifier checkpoint (`bert.`...).
    pub prefix: &'static str,
    /// Where the layers are, below the prefix (`{layers}.{i}`).
    layers: &'static str,
    layer_names: &'static LayerNames,
    keys: ConfigKeys,
    positions: PositionRule,
    /// Embed the tokenizer's token types (RoBERTa's tokenizers return none,
    /// and HF then embeds type 0 everywhere).
    token_types: bool,
    /// The default `embedding_size` of a family whose embeddings may be
    /// narrower than the layers (ELECTRA); `None`: always `hidden_size`.
    embedding_size: Option<usize>,
    head: HeadSpec,
}

/// How a family's `config.json` names the encoder's sizes.
#[derive(Clone, Copy)]
enum ConfigKeys {
    /// `hidden_size`, `num_attention_heads`, ... (BERT, RoBERTa, ELECTRA).
    Bert,
    /// `dim`, `n_heads`, `hidden_dim`, `n_layers`, `activation`.
    DistilBert,
}

/// How position indices are counted.
#[derive(Clone, Copy)]
enum PositionRule {
    /// `0..len` in every sequence.
    FromZero,
    /// After the padding index, skipping padding ids (RoBERTa).
    AfterPadding,
}

/// The classification head: `out(act(dense(x[first])))`, by full weight
/// names.
struct HeadSpec {
    dense: &'static str,
    out: &'static str,
    act: Activation,
}

const BERT_LAYER: LayerNames = LayerNames {
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attn_out: "attention.output.dense",
    attn_norm: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    ffn_norm: "output.LayerNorm",
};

const DISTILBERT_LAYER: LayerNames = LayerNames {
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attn_out: "attention.out_lin",
    attn_norm: "sa_layer_norm",
    ffn_in: "ffn.lin1",
    ffn_out: "ffn.lin2",
    ffn_norm: "output_layer_norm",
};

const BERT: Family = Family {
    prefix: "bert",
    layers: "encoder.layer",
    layer_names: &BERT_LAYER,
    keys: ConfigKeys::Bert,
    positions: PositionRule::FromZero,
    token_types: true,
    embedding_size: None,
    // The tanh pooler, then `classifier`.
    head: HeadSpec {
        dense: "bert.pooler.dense",
        out: "classifier",
        act: Activation::Tanh,
    },
};

const ROBERTA: Family = Family {
    prefix: "roberta",
    layers: "encoder.layer",
    layer_names: &BERT_LAYER,
    keys: ConfigKeys::Bert,
    positions: PositionRule::AfterPadding,
    token_types: false,
    embedding_size: None,
    head: HeadSpec {
        dense: "classifier.dense",
        out: "classifier.out_proj",
        act: Activation::Tanh,
    },
};

const ELECTRA: Family = Family {
    prefix: "electra",
    layers: "encoder.layer",
    layer_names: &BERT_LAYER,
    keys: ConfigKeys::Bert,
    positions: PositionRule::FromZero,
    token_types: true,
    embedding_size: Some(DEFAULT_ELECTRA_EMBEDDING),
    // HF's ElectraClassificationHead uses `get_activation("gelu")` whatever
    // `hidden_act` says: the exact GELU.
    head: HeadSpec {
        dense: "classifier.dense",
        out: "classifier.out_proj",
        act: Activation::Gelu,
    },
};

const DISTILBERT: Family = Family {
    prefix: "distilbert",
    layers: "transformer.layer",
    layer_names: &DISTILBERT_LAYER,
    keys: ConfigKeys::DistilBert,
    positions: PositionRule::FromZero,
    // Its embeddings have no token-type table.
    token_types: false,
    embedding_size: None,
    head: HeadSpec {
        dense: "pre_classifier",
        out: "classifier",
        act: Activation::Relu,
    },
};

impl Family {
    /// The family of a `model_type`, if it is BERT-like.
    pub fn of(model_type: &str) -> Option<&'static Family> {
        match model_type {
            "bert" => Some(&BERT),
            "roberta" | "xlm-roberta" | "camembert" => Some(&ROBERTA),
            "electra" => Some(&ELECTRA),
            "distilbert" => Some(&DISTILBERT),
            _ => None,
        }
    }
}

/// The BERT-style keys of `config.json`, as HF's configs default them.
#[derive(Deserialize)]
struct BertKeys {
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    /// RoBERTa's positions count from `pad_token_id + 1`.
    pad_token_id: Option<u32>,
    /// ELECTRA's embedding width, projected to `hidden_size` when different.
    embedding_size: Option<usize>,
}

/// DistilBERT's keys. HF hard-codes eps 1e-12 in all its LayerNorms.
#[derive(Deserialize)]
struct DistilBertKeys {
    dim: usize,
    n_heads: usize,
    hidden_dim: usize,
    n_layers: usize,
    activation: Option<String>,
}

/// The sizes and rules one model needs, with the family's defaults applied.
struct Settings {
    dims: EncoderDims,
    /// Columns of the embedding tables.
    embedding_width: usize,
    /// Added to position indices; padding ids get `padding_idx` itself.
    padding_idx: u32,
}

/// HF's defaults where a config leaves a key out.
const DEFAULT_EPS: f64 = 1e-12;
const DEFAULT_ACT: &str = "gelu";
/// RoBERTa's `pad_token_id`.
const DEFAULT_PADDING_IDX: u32 = 1;
/// `ElectraConfig`'s `embedding_size`.
const DEFAULT_ELECTRA_EMBEDDING: usize = 128;

impl Settings {
    fn read(family: &Family, config: &ModelConfig) -> Result<Self> {
        let act = |name: Option<&str>| Activation::from_name(name.unwrap_or(DEFAULT_ACT));
        match family.keys {
            ConfigKeys::Bert => {
                let k: BertKeys = config.typed()?;
                let sizes: EncoderSizes = config.typed()?;
                let embedding_width = match family.embedding_size {
                    Some(default) => k.embedding_size.unwrap_or(default),
                    None => sizes.hidden_size,
                };
                Ok(Self {
                    dims: sizes.dims(
                        k.layer_norm_eps.unwrap_or(DEFAULT_EPS),
                        act(k.hidden_act.as_deref())?,
                    ),
                    embedding_width,
                    padding_idx: k.pad_token_id.unwrap_or(DEFAULT_PADDING_IDX),
                })
            }
            ConfigKeys::DistilBert => {
                let k: DistilBertKeys = config.typed()?;
                Ok(Self {
                    dims: EncoderDims {
                        hidden: k.dim,
                        heads: k.n_heads,
                        intermediate: k.hidden_dim,
                        layers: k.n_layers,
                        eps: DEFAULT_EPS,
                        act: act(k.activation.as_deref())?,
                    },
                    embedding_width: k.dim,
                    padding_idx: 0,
                })
            }
        }
    }

    fn position_offset(&self, family: &Family) -> usize {
        match family.positions {
            PositionRule::FromZero => 0,
            PositionRule::AfterPadding => self.padding_idx as usize + 1,
        }
    }
}

/// A BERT-like cross-encoder.
pub struct BertLike {
    family: &'static Family,
    embeddings: Embeddings,
    /// ELECTRA's `embeddings_project`: HF creates it only when the embedding
    /// width differs from `hidden_size`, and ignores a stored one otherwise.
    project: Option<Linear>,
    layers: Vec<PostNormLayer>,
    head: ClassificationHead,
    dims: EncoderDims,
    padding_idx: u32,
}

impl BertLike {
    pub fn load(family: &'static Family, mut spec: LoadSpec<'_>) -> Result<Self> {
        let settings = Settings::read(family, spec.config)?;
        let dims = settings.dims.clone();
        let vb = spec.weights.pp(family.prefix);
        let embeddings = Embeddings::load_bert_names(
            &vb.pp("embeddings"),
            settings.embedding_width,
            dims.eps,
            settings.position_offset(family),
        )?;
        let project = match settings.embedding_width == dims.hidden {
            true => None,
            false => Some(Linear::load(
                &vb.pp("embeddings_project"),
                settings.embedding_width,
                dims.hidden,
            )?),
        };
        let layers = load_layers(&vb.pp(family.layers), family.layer_names, &dims)?
            .into_iter()
            .map(|layer| layer.with_precision(spec.precision))
            .collect::<Result<Vec<_>>>()?;
        let head = ClassificationHead::load(
            &spec.weights.pp(family.head.dense),
            &spec.weights.pp(family.head.out),
            dims.hidden,
            family.head.act,
            &mut spec,
        )?;
        Ok(Self {
            family,
            embeddings,
            project,
            layers,
            head,
            dims,
            padding_idx: settings.padding_idx,
        })
    }

    fn embed(&self, batch: &PackedBatch) -> Result<candle_core::Tensor> {
        let positions = match self.family.positions {
            PositionRule::FromZero => batch.positions(0),
            PositionRule::AfterPadding => positions_after_padding(batch, self.padding_idx),
        };
        let zeros;
        let type_ids = match self.family.token_types {
            true => &batch.type_ids,
            false => {
                zeros = vec![0; batch.num_tokens()];
                &zeros
            }
        };
        let x = self.embeddings.forward_at(batch, &positions, type_ids)?;
        match &self.project {
            Some(project) => project.forward(&x),
            None => Ok(x),
        }
    }
}

/// The encoder's layers, `{vb}.{i}` for each of `dims.layers`.
fn load_layers(
    vb: &VarBuilder,
    names: &LayerNames,
    dims: &EncoderDims,
) -> Result<Vec<PostNormLayer>> {
    let head_dim = dims.head_dim()?;
    (0..dims.layers)
        .map(|i| {
            let attention = AttentionSpec::new(dims.heads, head_dim);
            PostNormLayer::load(&vb.pp(i.to_string()), names, dims, attention)
        })
        .collect()
}

/// HF's `create_position_ids_from_input_ids` on packed sequences: a token
/// gets `padding_idx + ` the number of non-padding tokens up to and
/// including it, and a padding id itself (text may contain `<pad>`
/// literally, and the tokenizer still marks it as attended) gets
/// `padding_idx`.
pub fn positions_after_padding(batch: &PackedBatch, padding_idx: u32) -> Vec<usize> {
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

impl CrossEncoderModel for BertLike {
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        let x = self.embed(batch)?;
        let x = run_layers(&self.layers, x, &batch.cu_seqlens)?;
        time(Op::Head, || self.head.forward(&x, batch))
    }

    fn dense_layers(&self) -> Vec<&Linear> {
        self.layers
            .iter()
            .flat_map(PostNormLayer::dense_layers)
            .collect()
    }

    fn shape(&self) -> ModelShape {
        self.dims.shape(
            &self.embeddings,
            self.embeddings.max_positions(),
            self.head.num_labels(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_of(raw: serde_json::Value) -> ModelConfig {
        ModelConfig {
            model_type: raw["model_type"].as_str().unwrap_or_default().to_string(),
            raw,
            saved_activation: None,
            saved_max_length: None,
            saved_logit_tokens: None,
        }
    }

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
    fn roberta_positions_start_after_padding_and_restart_per_sequence() {
        let b = batch(&[&[0, 5, 6, 2], &[0, 2]]);
        assert_eq!(positions_after_padding(&b, 1), vec![2, 3, 4, 5, 2, 3]);
    }

    #[test]
    fn a_padding_id_inside_the_text_keeps_padding_idx_and_is_not_counted() {
        let b = batch(&[&[0, 7, 1, 8, 2]]);
        assert_eq!(positions_after_padding(&b, 1), vec![2, 3, 1, 4, 5]);
    }

    #[test]
    fn family_defaults_fill_what_a_config_leaves_out() {
        let bert = config_of(serde_json::json!({
            "model_type": "electra", "hidden_size": 64, "num_attention_heads": 4,
            "intermediate_size": 128, "num_hidden_layers": 2,
        }));
        let s = Settings::read(&ELECTRA, &bert).unwrap();
        assert_eq!(s.embedding_width, DEFAULT_ELECTRA_EMBEDDING);
        assert_eq!(s.dims.eps, DEFAULT_EPS);
        assert_eq!(s.padding_idx, DEFAULT_PADDING_IDX);
        let distil = config_of(serde_json::json!({
            "model_type": "distilbert", "dim": 32, "n_heads": 2, "hidden_dim": 64,
            "n_layers": 1, "activation": "relu", "layer_norm_eps": 0.5,
        }));
        let s = Settings::read(&DISTILBERT, &distil).unwrap();
        assert_eq!((s.dims.hidden, s.dims.eps), (32, DEFAULT_EPS));
        assert_eq!(s.dims.act, Activation::Relu);
    }

    #[test]
    fn a_missing_size_is_named_in_the_error() {
        let c = config_of(serde_json::json!({"model_type": "bert", "hidden_size": 64}));
        let err = Settings::read(&BERT, &c).err().unwrap().to_string();
        assert!(err.contains("num_attention_heads"), "{err}");
        let c = config_of(serde_json::json!({
            "model_type": "bert", "hidden_size": "big", "num_attention_heads": 4,
            "intermediate_size": 128, "num_hidden_layers": 2,
        }));
        let err = Settings::read(&BERT, &c).err().unwrap().to_string();
        assert!(err.contains("hidden_size"), "{err}");
    }

    fn fixture(options: &crate::LoadOptions) -> crate::Result<crate::CrossEncoder> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models/roberta-st5");
        crate::CrossEncoder::from_dir(&dir, options)
    }

    #[test]
    fn roberta_max_length_stops_at_the_rows_after_the_padding_index() {
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
        let got = model
            .predict_logits(&pairs, None, 2, &mut |_, _| true)
            .unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }
}
