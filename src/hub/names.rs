//! Model ids: what huggingface_hub accepts, and which repositories a bare
//! name may mean.

use crate::error::{Error, Result};

/// The organisation a bare model name is looked up in first (as
/// sentence-transformers 6.x does for cross-encoders), then the bare name.
pub const FALLBACK_ORGANIZATION: &str = "cross-encoder";

/// Bare names sentence-transformers does not prefix (its
/// `ORIGINAL_TRANSFORMER_MODELS`, the hub's original canonical models): these
/// are tried as they are first.
pub const ORIGINAL_TRANSFORMER_MODELS: &[&str] = &[
    "albert-base-v1",
    "albert-base-v2",
    "albert-large-v1",
    "albert-large-v2",
    "albert-xlarge-v1",
    "albert-xlarge-v2",
    "albert-xxlarge-v1",
    "albert-xxlarge-v2",
    "bert-base-cased-finetuned-mrpc",
    "bert-base-cased",
    "bert-base-chinese",
    "bert-base-german-cased",
    "bert-base-german-dbmdz-cased",
    "bert-base-german-dbmdz-uncased",
    "bert-base-multilingual-cased",
    "bert-base-multilingual-uncased",
    "bert-base-uncased",
    "bert-large-cased-whole-word-masking-finetuned-squad",
    "bert-large-cased-whole-word-masking",
    "bert-large-cased",
    "bert-large-uncased-whole-word-masking-finetuned-squad",
    "bert-large-uncased-whole-word-masking",
    "bert-large-uncased",
    "camembert-base",
    "ctrl",
    "distilbert-base-cased-distilled-squad",
    "distilbert-base-cased",
    "distilbert-base-german-cased",
    "distilbert-base-multilingual-cased",
    "distilbert-base-uncased-distilled-squad",
    "distilbert-base-uncased-finetuned-sst-2-english",
    "distilbert-base-uncased",
    "distilgpt2",
    "distilroberta-base",
    "gpt2-large",
    "gpt2-medium",
    "gpt2-xl",
    "gpt2",
    "openai-gpt",
    "roberta-base-openai-detector",
    "roberta-base",
    "roberta-large-mnli",
    "roberta-large-openai-detector",
    "roberta-large",
    "t5-11b",
    "t5-3b",
    "t5-base",
    "t5-large",
    "t5-small",
    "transfo-xl-wt103",
    "xlm-clm-ende-1024",
    "xlm-clm-enfr-1024",
    "xlm-mlm-100-1280",
    "xlm-mlm-17-1280",
    "xlm-mlm-en-2048",
    "xlm-mlm-ende-1024",
    "xlm-mlm-enfr-1024",
    "xlm-mlm-enro-1024",
    "xlm-mlm-tlm-xnli15-1024",
    "xlm-mlm-xnli15-1024",
    "xlm-roberta-base",
    "xlm-roberta-large-finetuned-conll02-dutch",
    "xlm-roberta-large-finetuned-conll02-spanish",
    "xlm-roberta-large-finetuned-conll03-english",
    "xlm-roberta-large-finetuned-conll03-german",
    "xlm-roberta-large",
    "xlnet-base-cased",
    "xlnet-large-cased",
];

/// huggingface_hub's repo id rules: `name` or `org/name`, of `[A-Za-z0-9_.-]`,
/// no `--` or `..`, at most 96 characters.
pub(super) fn validate_repo_id(id: &str) -> Result<()> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
    };
    let valid = id.len() <= 96
        && id.split('/').count() <= 2
        && id.split('/').all(part_ok)
        && !id.contains("--")
        && !id.contains("..")
        && !id.ends_with(".git");
    if valid {
        Ok(())
    } else {
        Err(Error::Hub(format!(
            "{id:?} is neither a local directory nor a valid Hugging Face model id \
             (`name` or `organization/name`, of letters, digits, '-', '_' and '.')"
        )))
    }
}

/// The repositories a model id may name, in the order they are tried: a bare
/// name is `cross-encoder/<name>` first (as sentence-transformers 6.x reads
/// it), then the bare name (as 5.x does); the hub's original bare models the
/// other way round.
pub(super) fn candidate_ids(model_id: &str) -> Vec<String> {
    if model_id.contains('/') {
        return vec![model_id.to_string()];
    }
    let prefixed = format!("{FALLBACK_ORGANIZATION}/{model_id}");
    if ORIGINAL_TRANSFORMER_MODELS.contains(&model_id.to_ascii_lowercase().as_str()) {
        vec![model_id.to_string(), prefixed]
    } else {
        vec![prefixed, model_id.to_string()]
    }
}

/// A full commit hash (which needs no ref to be found in the cache).
pub(super) fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        for ok in ["bert", "cross-encoder/ms-marco-MiniLM-L12-v2", "a.b/c_d"] {
            assert!(validate_repo_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a/b/c", "a--b", "a..b", "my model", "/abs", "x.git", "-a",
        ] {
            assert!(validate_repo_id(bad).is_err(), "{bad}");
        }
        assert_eq!(candidate_ids("m"), vec!["cross-encoder/m", "m"]);
        assert_eq!(candidate_ids("gpt2"), vec!["gpt2", "cross-encoder/gpt2"]);
        assert_eq!(candidate_ids("o/m"), vec!["o/m"]);
        assert!(is_commit_hash(&"ab".repeat(20)));
        assert!(!is_commit_hash("main"));
    }
}
