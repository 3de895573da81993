//! Pair tokenisation as sentence-transformers does it: text pairs with the
//! model's special tokens, `longest_first` truncation to `max_length`
//! (special tokens included), no padding (batches are packed).

use std::path::Path;
use std::sync::RwLock;

use rayon::prelude::*;
use serde_json::Value;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    truncate_encodings, AddedToken, PostProcessor, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use crate::config::read_json;
use crate::error::{Error, Result};

/// `model_max_length` values at or above this are transformers' "no limit"
/// sentinel (`int(1e30)`).
const NO_LIMIT: f64 = 1e15;

/// One tokenised pair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedPair {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

pub struct PairTokenizer {
    /// Its own truncation stays off: [`encode_pair`] truncates.
    inner: RwLock<Tokenizer>,
    truncation: RwLock<Option<TruncationParams>>,
    /// `model_max_length` from tokenizer_config.json, when it sets a limit.
    pub model_max_length: Option<usize>,
}

impl PairTokenizer {
    /// Loads `tokenizer.json`, or builds a BERT WordPiece tokenizer from
    /// `vocab.txt` + `tokenizer_config.json` (older hub repos).
    pub fn load(dir: &Path) -> Result<Self> {
        let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let tokenizer = if json.is_file() {
            Tokenizer::from_file(&json)
                .map_err(|e| Error::invalid_model(format!("cannot load {}: {e}", json.display())))?
        } else if vocab.is_file() {
            wordpiece_from_vocab(&vocab, &config)?
        } else {
            return Err(Error::invalid_model(format!(
                "no tokenizer in {}: expected tokenizer.json, or vocab.txt with tokenizer_config.json",
                dir.display()
            )));
        };
        let model_max_length = config
            .get("model_max_length")
            .and_then(Value::as_f64)
            .filter(|&n| n > 0.0 && n < NO_LIMIT)
            .map(|n| n as usize);
        Ok(Self {
            inner: RwLock::new(tokenizer),
            truncation: RwLock::new(None),
            model_max_length,
        })
    }

    /// Sets truncation to `max_length` tokens per pair (special tokens
    /// included) and turns off any padding stored in tokenizer.json.
    pub fn set_max_length(&self, max_length: usize) -> Result<()> {
        let mut tok = self.inner.write().unwrap_or_else(|e| e.into_inner());
        tok.with_padding(None);
        tok.with_truncation(None)?;
        *self.truncation.write().unwrap_or_else(|e| e.into_inner()) = Some(TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        });
        Ok(())
    }

    pub fn vocab_size(&self) -> usize {
        self.read().get_vocab_size(true)
    }

    /// A copy of the underlying tokenizer with the truncation in use, for
    /// inspection.
    pub fn to_json(&self) -> Result<String> {
        let mut tok = self.read().clone();
        tok.with_truncation(self.truncation())?;
        Ok(tok.to_string(false)?)
    }

    /// Tokenises pairs in parallel on the current rayon pool, truncated to
    /// `max_length` (None: the length set with [`Self::set_max_length`]).
    pub fn encode_pairs<S: AsRef<str> + Sync>(
        &self,
        pairs: &[(S, S)],
        max_length: Option<usize>,
    ) -> Result<Vec<EncodedPair>> {
        let tok = self.read();
        let truncation = self.truncation_at(max_length);
        pairs
            .par_iter()
            .map(|(a, b)| {
                let enc = encode_pair(&tok, a.as_ref(), b.as_ref(), truncation.as_ref())?;
                Ok(EncodedPair {
                    ids: enc.get_ids().to_vec(),
                    type_ids: enc.get_type_ids().to_vec(),
                })
            })
            .collect()
    }

    /// Tokenises texts a chat template rendered (the template wrote the
    /// special tokens: none are added), as transformers'
    /// `apply_chat_template` does. With `suffix`, each text is cut to
    /// `max_length` (None: the length set with [`Self::set_max_length`])
    /// and, where the cut reached it, its last tokens are overwritten with
    /// the template's suffix, as sentence-transformers 6.x restores it;
    /// without, texts are returned whole.
    pub fn encode_rendered<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        suffix: Option<&[u32]>,
        max_length: Option<usize>,
    ) -> Result<Vec<EncodedPair>> {
        let tok = self.read();
        let max_length = self.truncation_at(max_length).map(|t| t.max_length);
        texts
            .par_iter()
            .map(|text| {
                let mut ids = tok.encode_fast(text.as_ref(), false)?.get_ids().to_vec();
                if let (Some(suffix), Some(max)) = (suffix, max_length) {
                    ids.truncate(max);
                    if ids.len() >= max {
                        let keep = suffix.len().min(ids.len());
                        let at = ids.len() - keep;
                        ids[at..].copy_from_slice(&suffix[suffix.len() - keep..]);
                    }
                }
                Ok(EncodedPair {
                    type_ids: vec![0; ids.len()],
                    ids,
                })
            })
            .collect()
    }

    /// The id of a token (added or in the vocabulary), as transformers'
    /// `convert_tokens_to_ids` finds it in a tokenizer without an unknown
    /// token.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.read().token_to_id(token)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tokenizer> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The truncation of one call: the tokenizer's, at `max_length` when
    /// given.
    fn truncation_at(&self, max_length: Option<usize>) -> Option<TruncationParams> {
        let params = self.truncation();
        match max_length {
            None => params,
            Some(max_length) => Some(TruncationParams {
                max_length,
                ..params.unwrap_or_default()
            }),
        }
    }

    fn truncation(&self) -> Option<TruncationParams> {
        self.truncation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Encodes a pair as `Tokenizer::encode` does, but truncates after
/// tokenising both texts in full. tokenizers >= 0.23 stops tokenising each
/// text early when truncation is on, so `longest_first` then compares the
/// cut lengths and may give the odd token to the wrong text; Python's
/// tokenizers (what sentence-transformers runs) compare the full lengths.
fn encode_pair(
    tok: &Tokenizer,
    first: &str,
    second: &str,
    truncation: Option<&TruncationParams>,
) -> Result<tokenizers::Encoding> {
    let first = tok.encode_fast(first, false)?;
    let mut second = tok.encode_fast(second, false)?;
    // The type id `Tokenizer::encode` gives the second text.
    second.set_type_ids(vec![1; second.len()]);
    let (first, second) = match truncation {
        Some(params) => {
            let added = tok.get_post_processor().map_or(0, |p| p.added_tokens(true));
            let params = TruncationParams {
                max_length: params.max_length.saturating_sub(added),
                ..params.clone()
            };
            truncate_encodings(first, Some(second), &params)?
        }
        None => (first, Some(second)),
    };
    Ok(tok.post_process(first, second, true)?)
}

/// The name of a special token in tokenizer_config.json / special_tokens_map,
/// which may be a string or an `AddedToken`-like object.
fn special_token(config: &Value, key: &str, default: &str) -> String {
    match config.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string(),
        _ => default.to_string(),
    }
}

/// What transformers' BertTokenizerFast builds from a vocab file.
fn wordpiece_from_vocab(vocab: &Path, config: &Value) -> Result<Tokenizer> {
    let special_map = read_json(&vocab.with_file_name("special_tokens_map.json"))?;
    let token = |key: &str, default: &str| {
        let from_map = special_map
            .as_ref()
            .map(|m| special_token(m, key, ""))
            .filter(|s| !s.is_empty());
        from_map.unwrap_or_else(|| special_token(config, key, default))
    };
    let (unk, sep, cls, pad, mask) = (
        token("unk_token", "[UNK]"),
        token("sep_token", "[SEP]"),
        token("cls_token", "[CLS]"),
        token("pad_token", "[PAD]"),
        token("mask_token", "[MASK]"),
    );
    let model = WordPiece::from_file(&vocab.to_string_lossy())
        .unk_token(unk.clone())
        .build()
        .map_err(|e| Error::invalid_model(format!("cannot read {}: {e}", vocab.display())))?;
    let id = |t: &str| {
        model_token_id(&model, t)
            .ok_or_else(|| Error::invalid_model(format!("{} has no token {t:?}", vocab.display())))
    };
    let (sep_id, cls_id) = (id(&sep)?, id(&cls)?);
    let lowercase = config
        .get("do_lower_case")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let chinese = config
        .get("tokenize_chinese_chars")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let strip_accents = config.get("strip_accents").and_then(Value::as_bool);
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(
            true,
            chinese,
            strip_accents,
            lowercase,
        )))?
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(
            (sep.clone(), sep_id),
            (cls.clone(), cls_id),
        )));
    let specials = [pad, unk, cls, sep, mask].map(|t| AddedToken::from(t, true));
    tokenizer.add_special_tokens(specials)?;
    Ok(tokenizer)
}

fn model_token_id(model: &WordPiece, token: &str) -> Option<u32> {
    use tokenizers::Model;
    model.token_to_id(token)
}
