//! The batching engine: tokenise every pair, group pairs of similar length
//! into batches, run the model on packed batches, restore input order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::models::{self, CrossEncoderModel, LoadSpec, LogitTokens, PackedBatch};
use crate::ops::profile::{time, Op};
use crate::ops::Precision;
use crate::tokenizer::{EncodedPair, PairTokenizer};
use crate::weights::WeightFiles;

/// Options a user may give at load time.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub num_labels: Option<usize>,
    pub max_length: Option<usize>,
    /// Merged into config.json before the model is built (`config_kwargs`).
    pub config_overrides: Option<serde_json::Value>,
    /// Precision of the transformer layers' dense products.
    pub precision: Precision,
}

/// A loaded cross-encoder: tokenizer, model and the settings that go with
/// them.
pub struct CrossEncoder {
    model: Box<dyn CrossEncoderModel>,
    tokenizer: PairTokenizer,
    pub config: ModelConfig,
    pub source: PathBuf,
    max_length: AtomicUsize,
    /// Things the user should hear about (fresh heads...).
    pub warnings: Vec<String>,
    precision: Precision,
}

/// Called after each batch with (batches done, batches in all); returning
/// `false` stops the call with [`Error::Interrupted`].
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> bool;

impl CrossEncoder {
    /// Loads a model directory.
    pub fn from_dir(dir: &Path, options: &LoadOptions) -> Result<Self> {
        if !dir.exists() {
            return Err(Error::NotFound {
                what: "model directory",
                path: dir.to_path_buf(),
            });
        }
        if !dir.is_dir() {
            return Err(Error::invalid_model(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let config = ModelConfig::load(dir, options.config_overrides.as_ref())?;
        let num_labels = options.num_labels.unwrap_or_else(|| config.num_labels());
        if num_labels == 0 {
            return Err(Error::invalid_input("num_labels must be at least 1"));
        }
        let tokenizer = PairTokenizer::load(dir)?;
        let weights = WeightFiles::find(dir)?.open(models::weight_prefix(&config.model_type))?;
        let logit_tokens = logit_tokens(&config, &tokenizer)?;
        let mut warnings = Vec::new();
        let model = models::load(LoadSpec {
            config: &config,
            weights,
            num_labels,
            allow_new_head: options.num_labels.is_some(),
            warnings: &mut warnings,
            precision: options.precision,
            logit_tokens,
        })?;
        // Loading frees as much as the model keeps (the checkpoint's float32 copies, the
        // parts fused or quantized): give it back now rather than hold it for good.
        crate::alloc::release_memory();
        warnings.extend(options.precision.warning());
        let default_max = default_max_length(
            &config,
            tokenizer.model_max_length,
            model.shape().max_positions,
            &mut warnings,
        );
        let encoder = Self {
            model,
            tokenizer,
            config,
            source: dir.to_path_buf(),
            max_length: AtomicUsize::new(0),
            warnings,
            precision: options.precision,
        };
        encoder.set_max_length(options.max_length.unwrap_or(default_max))?;
        Ok(encoder)
    }

    /// The precision asked for at load.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The kernels the transformer layers' products run on, e.g. `int8
    /// avx2` (several, comma-separated, if layers differ).
    pub fn kernels(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for layer in self.model.dense_layers() {
            if !names.contains(&layer.kernel()) {
                names.push(layer.kernel());
            }
        }
        names.join(", ")
    }

    /// Bytes the transformer layers' dense weights take.
    pub fn dense_weight_bytes(&self) -> usize {
        self.model
            .dense_layers()
            .iter()
            .map(|l| l.weight_bytes())
            .sum()
    }

    pub fn num_labels(&self) -> usize {
        self.model.num_labels()
    }

    pub fn max_length(&self) -> usize {
        self.max_length.load(Ordering::Relaxed)
    }

    /// The longest `max_length` the model's position table allows.
    pub fn max_positions(&self) -> usize {
        self.model.shape().max_positions
    }

    pub fn num_layers(&self) -> usize {
        self.model.shape().num_layers
    }

    pub fn hidden_size(&self) -> usize {
        self.model.shape().hidden_size
    }

    pub fn tokenizer(&self) -> &PairTokenizer {
        &self.tokenizer
    }

    pub fn set_max_length(&self, max_length: usize) -> Result<()> {
        if max_length == 0 {
            return Err(Error::invalid_input("max_length must be at least 1"));
        }
        if max_length > self.model.shape().max_positions {
            return Err(Error::invalid_input(format!(
                "max_length {max_length} is larger than the {} positions this model has",
                self.model.shape().max_positions
            )));
        }
        self.tokenizer.set_max_length(max_length)?;
        self.max_length.store(max_length, Ordering::Relaxed);
        Ok(())
    }

    /// Default activation's short name (see [`ModelConfig::default_activation`]).
    pub fn default_activation(&self) -> String {
        self.config.default_activation(self.num_labels())
    }

    /// A call's own cut length (`None`: [`Self::max_length`]), checked as
    /// [`Self::set_max_length`] checks the model's.
    pub fn check_call_length(&self, max_length: Option<usize>) -> Result<Option<usize>> {
        match max_length {
            Some(0) => Err(Error::invalid_input("max_length must be at least 1")),
            Some(n) if n > self.model.shape().max_positions => Err(Error::invalid_input(format!(
                "max_length {n} is larger than the {} positions this model has",
                self.model.shape().max_positions
            ))),
            other => Ok(other),
        }
    }

    /// Raw logits for `pairs`, `[pairs.len() * num_labels]`, in input order,
    /// each pair cut to `max_length` (None: [`Self::max_length`]).
    pub fn predict_logits<S: AsRef<str> + Sync>(
        &self,
        pairs: &[(S, S)],
        max_length: Option<usize>,
        batch_size: usize,
        progress: Progress<'_>,
    ) -> Result<Vec<f32>> {
        if batch_size == 0 {
            return Err(Error::invalid_input("batch_size must be at least 1"));
        }
        let max_length = self.check_call_length(max_length)?;
        let encoded = time(Op::Tokenize, || {
            self.tokenizer.encode_pairs(pairs, max_length)
        })?;
        self.predict_encoded(&encoded, batch_size, progress)
    }

    /// Raw logits for texts a chat template rendered (see
    /// [`PairTokenizer::encode_rendered`]; `suffix`: the template's tail;
    /// `max_length`: the cut, None for [`Self::max_length`]).
    pub fn predict_rendered<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        suffix: &[u32],
        max_length: Option<usize>,
        batch_size: usize,
        progress: Progress<'_>,
    ) -> Result<Vec<f32>> {
        let max_length = self.check_call_length(max_length)?;
        let encoded = time(Op::Tokenize, || {
            self.tokenizer
                .encode_rendered(texts, Some(suffix), max_length)
        })?;
        self.predict_encoded(&encoded, batch_size, progress)
    }

    /// Raw logits for tokenised inputs, `[encoded.len() * num_labels]`.
    pub fn predict_encoded(
        &self,
        encoded: &[EncodedPair],
        batch_size: usize,
        progress: Progress<'_>,
    ) -> Result<Vec<f32>> {
        if batch_size == 0 {
            return Err(Error::invalid_input("batch_size must be at least 1"));
        }
        if let Some(i) = encoded.iter().position(|e| e.ids.is_empty()) {
            return Err(Error::invalid_input(format!(
                "input {i} tokenizes to no tokens: there is nothing for the model to score"
            )));
        }
        // Large buffers freed during the call are reused by its later
        // layers and batches (see `crate::alloc`).
        #[cfg(target_os = "linux")]
        let _call = crate::alloc::CallScope::enter();
        let labels = self.num_labels();
        let mut logits = vec![0f32; encoded.len() * labels];
        let batches = length_sorted_batches(encoded, batch_size);
        for (done, batch) in batches.iter().enumerate() {
            let packed = PackedBatch::pack(batch.iter().map(|&i| &encoded[i]));
            let out = self.model.forward(&packed)?;
            for (row, &i) in batch.iter().enumerate() {
                logits[i * labels..(i + 1) * labels]
                    .copy_from_slice(&out[row * labels..(row + 1) * labels]);
            }
            if !progress(done + 1, batches.len()) {
                return Err(Error::Interrupted);
            }
        }
        Ok(logits)
    }
}

/// The `LogitScore` token ids of a causal LM: as saved in `modules.json`,
/// else the tokenizer's "yes" / "no", as sentence-transformers 6.x picks
/// them. `None` for a classifier.
fn logit_tokens(config: &ModelConfig, tokenizer: &PairTokenizer) -> Result<Option<LogitTokens>> {
    if let Some(saved) = config.saved_logit_tokens {
        return Ok(Some(saved));
    }
    if !config.is_causal_lm() {
        return Ok(None);
    }
    match (tokenizer.token_id("yes"), tokenizer.token_id("no")) {
        (Some(true_id), Some(false_id)) => Ok(Some(LogitTokens {
            true_id,
            false_id: Some(false_id),
        })),
        _ => Err(Error::invalid_model(
            "the tokenizer does not have 'yes' and/or 'no' tokens, which a causal language \
             model is scored with (sentence-transformers' LogitScore default)",
        )),
    }
}

/// Indices of `encoded`, longest first, cut into batches of `batch_size`:
/// similar lengths share a batch, so attention work per batch is even and
/// the first batch shows the peak memory at once.
pub fn length_sorted_batches(encoded: &[EncodedPair], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].ids.len()));
    order.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

/// `max_length` when the caller gives none, as sentence-transformers 6.x
/// sets it: the `max_seq_length` saved in `sentence_bert_config.json`, else
/// the tokenizer's `model_max_length` capped at the positions. A saved
/// value beyond the positions is capped too (with a warning), where
/// sentence-transformers would fail on the first long pair.
fn default_max_length(
    config: &ModelConfig,
    tokenizer_max: Option<usize>,
    positions: usize,
    warnings: &mut Vec<String>,
) -> usize {
    match (config.saved_max_length, tokenizer_max) {
        (Some(saved), _) if saved > positions => {
            warnings.push(format!(
                "sentence_bert_config.json sets max_seq_length {saved}, more than the {positions} \
                 positions this model has: inputs are truncated to {positions} tokens"
            ));
            positions
        }
        (Some(saved), _) => saved,
        (None, Some(n)) => n.min(positions),
        (None, None) => positions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models")
            .join(name)
    }

    #[test]
    fn rendered_texts_are_cut_to_max_length_with_the_suffix_restored() {
        let model =
            CrossEncoder::from_dir(&fixture("qwen3-causal-st6"), &Default::default()).unwrap();
        model.set_max_length(12).unwrap();
        let tokenizer = model.tokenizer();
        let long = "<|im_start|>user\nThe quick brown fox jumps over the lazy dog again";
        let whole = &tokenizer.encode_rendered(&[long], None, None).unwrap()[0].ids;
        assert!(whole.len() > 12);
        let suffix = [7, 8, 9];
        let cut = &tokenizer
            .encode_rendered(&[long, "yes"], Some(&suffix), None)
            .unwrap();
        // Cut to 12, the last 3 overwritten; a short text is left as it is.
        assert_eq!(cut[0].ids[..9], whole[..9]);
        assert_eq!(cut[0].ids[9..], suffix);
        assert_eq!(cut[1].ids, vec![tokenizer.token_id("yes").unwrap()]);
        // A suffix longer than the cut text keeps its own tail.
        model.set_max_length(2).unwrap();
        let tiny = &tokenizer
            .encode_rendered(&[long], Some(&suffix), None)
            .unwrap()[0];
        assert_eq!(tiny.ids, vec![8, 9]);
    }

    #[test]
    fn a_causal_lm_scores_with_its_saved_logit_score_tokens() {
        let model =
            CrossEncoder::from_dir(&fixture("qwen3-causal-st6"), &Default::default()).unwrap();
        let saved = model.config.saved_logit_tokens.unwrap();
        assert_eq!(Some(saved.true_id), model.tokenizer().token_id("yes"));
        assert_eq!(saved.false_id, model.tokenizer().token_id("no"));
        assert_eq!(model.num_labels(), 1);
        let empty = [EncodedPair::default()];
        let err = model.predict_encoded(&empty, 4, &mut |_, _| true);
        assert!(err.unwrap_err().to_string().contains("no tokens"));
    }

    #[test]
    fn a_saved_max_seq_length_sets_the_default_max_length() {
        // sentence_bert_config.json says 24, the tokenizer 80: 6.x uses 24.
        let model =
            CrossEncoder::from_dir(&fixture("bert-st6-gelu-maxlen"), &Default::default()).unwrap();
        assert_eq!(model.max_length(), 24);
        let explicit = LoadOptions {
            max_length: Some(40),
            ..Default::default()
        };
        let model = CrossEncoder::from_dir(&fixture("bert-st6-gelu-maxlen"), &explicit).unwrap();
        assert_eq!(model.max_length(), 40);
    }

    #[test]
    fn a_saved_max_seq_length_beyond_the_positions_is_capped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture("bert-st6-gelu-maxlen")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        std::fs::write(
            dir.path().join("sentence_bert_config.json"),
            r#"{"max_seq_length": 4096}"#,
        )
        .unwrap();
        let model = CrossEncoder::from_dir(dir.path(), &Default::default()).unwrap();
        assert_eq!(model.max_length(), model.max_positions());
        assert!(
            model.warnings.iter().any(|w| w.contains("4096")),
            "{:?}",
            model.warnings
        );
    }
}
