//! What a model directory says about itself: the HF `config.json`, the
//! sentence-transformers settings (5.x key, 6.x file, legacy key) and the
//! rules of the contract that turn them into `num_labels`, `max_length`
//! and the default activation.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::models::LogitTokens;

/// The sentence-transformers activation names and the short names the
/// Python layer maps to functions.
const ACTIVATIONS: &[(&str, &str)] = &[
    ("torch.nn.modules.activation.Sigmoid", "sigmoid"),
    ("torch.nn.modules.linear.Identity", "identity"),
    ("torch.nn.modules.activation.Tanh", "tanh"),
    ("torch.nn.modules.activation.Softmax", "softmax"),
    ("torch.nn.modules.activation.ReLU", "relu"),
    ("torch.nn.modules.activation.GELU", "gelu"),
];

/// The parsed `config.json` plus the sentence-transformers settings.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// `config.json` as written, with user `config_kwargs` merged in.
    pub raw: Value,
    pub model_type: String,
    /// The activation class path sentence-transformers saved, if any.
    pub saved_activation: Option<String>,
    /// `max_seq_length` from `sentence_bert_config.json` (or a legacy name), if any.
    pub saved_max_length: Option<usize>,
    /// The `LogitScore` module's token ids, when `modules.json` lists one.
    pub saved_logit_tokens: Option<LogitTokens>,
}

impl ModelConfig {
    pub fn load(dir: &Path, overrides: Option<&Value>) -> Result<Self> {
        let path = dir.join("config.json");
        let mut raw = read_json(&path)?.ok_or_else(|| Error::NotFound {
            what: "config.json",
            path: path.clone(),
        })?;
        if !raw.is_object() {
            return Err(Error::invalid_model(format!(
                "{} is not a JSON object",
                path.display()
            )));
        }
        if let Some(Value::Object(extra)) = overrides {
            for (k, v) in extra {
                raw[k] = v.clone();
            }
        }
        let model_type = raw
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::invalid_model(format!("{} has no \"model_type\"", path.display()))
            })?
            .to_string();
        let st6 = read_json(&dir.join("config_sentence_transformers.json"))?;
        let saved_activation = st6
            .as_ref()
            .and_then(|c| c.get("activation_fn"))
            .or_else(|| raw.pointer("/sentence_transformers/activation_fn"))
            .or_else(|| raw.get("sbert_ce_default_activation_function"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let saved_max_length = saved_module_config(dir)?
            .and_then(|c| c.get("max_seq_length").and_then(Value::as_u64))
            .map(|n| n as usize);
        Ok(Self {
            raw,
            model_type,
            saved_activation,
            saved_max_length,
            saved_logit_tokens: saved_logit_tokens(dir)?,
        })
    }

    /// True when the checkpoint is a causal LM (`*ForCausalLM`):
    /// sentence-transformers 6.x then scores it with `LogitScore`.
    pub fn is_causal_lm(&self) -> bool {
        self.raw
            .pointer("/architectures/0")
            .and_then(Value::as_str)
            .is_some_and(|a| a.ends_with("ForCausalLM"))
    }

    /// `num_labels`: explicit > `len(id2label)` for a `*ForSequenceClassification`
    /// architecture > `num_labels` key > 1.
    pub fn num_labels(&self) -> usize {
        let is_classifier = self.has_classifier_architecture();
        let from_labels = self
            .raw
            .get("id2label")
            .and_then(Value::as_object)
            .map(|m| m.len());
        match (is_classifier, from_labels) {
            (true, Some(n)) if n > 0 => n,
            _ => self.usize("num_labels").unwrap_or(1),
        }
    }

    /// True when the checkpoint was saved as a classifier (it has a head).
    pub fn has_classifier_architecture(&self) -> bool {
        self.raw
            .get("architectures")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .any(|s| s.ends_with("ForSequenceClassification"))
            })
    }

    /// The default activation's short name: saved > sigmoid for one label >
    /// identity. An unknown saved class path is returned as it is.
    pub fn default_activation(&self, num_labels: usize) -> String {
        match &self.saved_activation {
            Some(path) => ACTIVATIONS
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, short)| short.to_string())
                .unwrap_or_else(|| path.clone()),
            None if num_labels == 1 => "sigmoid".into(),
            None => "identity".into(),
        }
    }

    pub fn usize(&self, key: &str) -> Option<usize> {
        self.raw
            .get(key)
            .and_then(Value::as_u64)
            .map(|n| n as usize)
    }

    /// `config.json` read into a family's typed keys: a missing or mistyped
    /// key is named in the error.
    pub fn typed<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_path_to_error::deserialize(&self.raw).map_err(|e| {
            let key = e.path().to_string();
            let at = match key.as_str() {
                "." => String::new(),
                key => format!(" at {key:?}"),
            };
            Error::invalid_model(format!(
                "config.json of this {} model is not valid{at}: {}",
                self.model_type,
                e.inner()
            ))
        })
    }
}

/// The sentence-transformers module settings: the first of the file names
/// its loader tries (6.x reads `max_seq_length` from it).
/// The module type sentence-transformers 6.x saves for a causal LM's score.
const LOGIT_SCORE: &str = "sentence_transformers.cross_encoder.modules.logit_score.LogitScore";

/// The true / false token ids of a `LogitScore` module listed in
/// `modules.json` (its `config.json` in the module's folder).
fn saved_logit_tokens(dir: &Path) -> Result<Option<LogitTokens>> {
    let Some(modules) = read_json(&dir.join("modules.json"))? else {
        return Ok(None);
    };
    let Some(module) = modules
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m.get("type").and_then(Value::as_str) == Some(LOGIT_SCORE))
    else {
        return Ok(None);
    };
    let folder = module.get("path").and_then(Value::as_str).unwrap_or("");
    let path = dir.join(folder).join("config.json");
    let config = read_json(&path)?.ok_or_else(|| Error::NotFound {
        what: "LogitScore config.json",
        path: path.clone(),
    })?;
    let id = |key: &str| -> Result<Option<u32>> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    Error::invalid_model(format!("{}: {key} is not a token id", path.display()))
                }),
        }
    };
    if let Some(name) = config.get("module_input_name").and_then(Value::as_str) {
        if name != "causal_logits" {
            return Err(Error::invalid_model(format!(
                "{}: LogitScore reads {name:?}; only \"causal_logits\" is supported",
                path.display()
            )));
        }
    }
    let true_id = id("true_token_id")?
        .ok_or_else(|| Error::invalid_model(format!("{} has no true_token_id", path.display())))?;
    Ok(Some(LogitTokens {
        true_id,
        false_id: id("false_token_id")?,
    }))
}

fn saved_module_config(dir: &Path) -> Result<Option<Value>> {
    const NAMES: &[&str] = &[
        "sentence_bert_config.json",
        "sentence_roberta_config.json",
        "sentence_distilbert_config.json",
        "sentence_camembert_config.json",
        "sentence_albert_config.json",
        "sentence_xlm-roberta_config.json",
        "sentence_xlnet_config.json",
    ];
    for name in NAMES {
        if let Some(config) = read_json(&dir.join(name))? {
            return Ok(Some(config));
        }
    }
    Ok(None)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::invalid_model(format!("{} is not valid JSON: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Default values for the families' typed config keys (`#[serde(default =
/// ...)]` takes a function).
pub mod defaults {
    pub fn gelu() -> String {
        "gelu".into()
    }
    pub fn tanh() -> String {
        "tanh".into()
    }
    pub fn one() -> usize {
        1
    }
    pub fn minus_one() -> i64 {
        -1
    }
    pub fn yes() -> bool {
        true
    }
    pub fn positions_512() -> usize {
        512
    }

    /// For `Option<Option<T>>` fields: `None` when the key is absent,
    /// `Some(None)` when it is `null` (some configs give the two different
    /// meanings).
    pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: serde::Deserializer<'de>,
        T: serde::Deserialize<'de>,
    {
        <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
    }
}
