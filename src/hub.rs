//! Model ids on the Hugging Face Hub: resolving `org/name` to a local
//! directory, downloading only the files a cross-encoder needs.
//!
//! Files land in the cache layout huggingface_hub uses
//! (`<cache>/models--org--name/{blobs,snapshots/<commit>,refs/<revision>}`),
//! so a model that sentence-transformers downloaded is found here without any
//! network and the other way round. Downloads go through `hf-hub`'s sync API
//! (a `.part` file renamed into `blobs/` once complete, then a symlink in the
//! snapshot), with these additions:
//!
//! - one model-info request (`/api/models/{id}/revision/{rev}?blobs=true`)
//!   picks the files and pins the commit; every file is then fetched at that
//!   commit, so a branch that moves mid-download cannot mix two versions;
//! - the size of every file is checked after download (and of cached files
//!   against the listing), and a short file is removed, so a truncated body
//!   is never used as a model file;
//! - a blob already in the cache under the same etag is linked, not fetched;
//! - `refs/<revision>` is written (atomically) only after every file is in
//!   place; the `refs/<commit>` file `hf-hub` writes is removed again;
//! - `HF_HUB_OFFLINE`, `local_files_only`, token lookup, bare-name fallback
//!   to `cross-encoder/<name>`, falling back to the cache when the hub cannot
//!   be reached, and error messages a user can act on.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::weights::{shard_names, WEIGHT_CANDIDATES};

/// The hub used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

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

/// Tokenizer files fetched when the repository has them.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "spm.model",
    "merges.txt",
    "vocab.json",
    "added_tokens.json",
];

/// sentence-transformers' own files, fetched when the repository has them.
pub const SENTENCE_TRANSFORMERS_FILES: &[&str] = &[
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    "modules.json",
];

const CONFIG_FILE: &str = "config.json";

/// How often (at most) a download reports progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Which token to send, in huggingface_hub's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Token {
    /// `token=None`: `HF_TOKEN`, else the saved token (`hf auth login`),
    /// unless `HF_HUB_DISABLE_IMPLICIT_TOKEN` is set.
    #[default]
    Auto,
    /// `token=True`: as `Auto`, but an error when there is none.
    Required,
    /// `token=False`: send none.
    Disabled,
    /// An explicit token.
    Value(String),
}

/// What the caller says; anything left `None` comes from the environment.
#[derive(Clone, Debug, Default)]
pub struct HubOptions {
    /// The hub cache directory (holding `models--org--name`). Default:
    /// `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Branch, tag or commit. Default: `main`.
    pub revision: Option<String>,
    pub token: Token,
    /// Use the cache only (as `HF_HUB_OFFLINE=1` does).
    pub local_files_only: bool,
    /// Default: `HF_ENDPOINT`, else <https://huggingface.co>.
    pub endpoint: Option<String>,
}

/// A model id resolved to a snapshot directory.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// `.../models--org--name/snapshots/<commit>`: load the model from here.
    pub dir: PathBuf,
    /// The repository that answered (for a bare name, `cross-encoder/<name>`
    /// or the name itself).
    pub repo_id: String,
    pub commit: String,
    /// Files fetched over the network by this call.
    pub downloaded: Vec<String>,
    /// Things the user should know (such as using the cache because the hub
    /// could not be reached).
    pub warnings: Vec<String>,
}

/// Told about each file as it downloads. `false` from `start` or `advance`
/// stops the download (the caller learns why; the resolve returns
/// [`Error::Interrupted`]).
pub trait DownloadProgress {
    /// A file download begins: `size` bytes in all.
    fn start(&mut self, file: &str, size: u64) -> bool;
    /// `bytes` more arrived (counting any part resumed from an earlier try).
    fn advance(&mut self, bytes: u64) -> bool;
    /// The file is done, or failed.
    fn finish(&mut self);
}

/// Reports nothing and never stops.
pub struct NoProgress;

impl DownloadProgress for NoProgress {
    fn start(&mut self, _file: &str, _size: u64) -> bool {
        true
    }
    fn advance(&mut self, _bytes: u64) -> bool {
        true
    }
    fn finish(&mut self) {}
}

/// Resolves `model_id` with the process environment.
pub fn resolve(
    model_id: &str,
    options: &HubOptions,
    progress: Option<&mut dyn DownloadProgress>,
) -> Result<Resolved> {
    resolve_with_env(model_id, options, progress, &|key| std::env::var(key).ok())
}

/// [`resolve`] with an explicit environment lookup (for tests).
pub fn resolve_with_env(
    model_id: &str,
    options: &HubOptions,
    progress: Option<&mut dyn DownloadProgress>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved> {
    validate_repo_id(model_id)?;
    let mut quiet = NoProgress;
    let progress: &mut dyn DownloadProgress = match progress {
        Some(p) => p,
        None => &mut quiet,
    };
    let settings = Settings::new(options, env)?;
    let candidates = candidate_ids(model_id);
    if let Some(reason) = settings.offline_reason {
        return resolve_cached(&settings, &candidates, |what| {
            format!(
                "{what}, and downloads are disabled ({reason}). Run once with network access \
                 (or without {reason}) to download it, or pass the path of a local model directory."
            )
        });
    }

    let api = settings.api()?;
    let mut not_found: Option<InfoError> = None;
    for id in &candidates {
        match fetch_info(&api, &settings, id) {
            Ok(info) => {
                let fetched = fetch_snapshot(&api, &settings, id, &info, &mut *progress)?;
                return Ok(Resolved {
                    dir: snapshot_dir(&settings.cache_dir, id, &info.sha),
                    repo_id: id.clone(),
                    commit: info.sha,
                    downloaded: fetched,
                    warnings: Vec::new(),
                });
            }
            Err(e @ InfoError::NotFound { .. }) => {
                not_found.get_or_insert(e);
            }
            Err(InfoError::Unreachable(why)) => {
                let mut resolved = resolve_cached(&settings, &candidates, |what| {
                    format!(
                        "cannot reach {} to download {model_id:?} ({why}), and {what}. Check the \
                         network connection (and HF_ENDPOINT), or pass the path of a local model \
                         directory.",
                        settings.endpoint
                    )
                })?;
                resolved.warnings.push(format!(
                    "cannot reach {} ({why}); using the cached copy of {} at commit {}",
                    settings.endpoint, resolved.repo_id, resolved.commit
                ));
                return Ok(resolved);
            }
            Err(other) => return Err(other.into_error(id, &settings)),
        }
    }
    let error = not_found.expect("at least one candidate");
    Err(error.into_error_tried(model_id, &candidates, &settings))
}

/// The snapshot directory a commit of `repo_id` has in `cache_dir`.
pub fn snapshot_dir(cache_dir: &Path, repo_id: &str, commit: &str) -> PathBuf {
    Cache::new(cache_dir.to_path_buf())
        .repo(model_repo(repo_id, commit))
        .pointer_path(commit)
}

/// Files a model needs that are missing from `dir`: `config.json` and a
/// complete set of weights (the tokenizer is the loader's to judge).
pub fn missing_model_files(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !dir.join(CONFIG_FILE).is_file() {
        missing.push(CONFIG_FILE.to_string());
    }
    match WEIGHT_CANDIDATES
        .iter()
        .find(|name| dir.join(name).is_file())
    {
        None => missing.push(format!("weights (one of {})", WEIGHT_CANDIDATES.join(", "))),
        Some(name) if name.ends_with(".index.json") => match read_index(&dir.join(name)) {
            Ok(shards) => missing.extend(shards.into_iter().filter(|s| !dir.join(s).is_file())),
            Err(_) => missing.push(format!("{name} (unreadable)")),
        },
        Some(_) => {}
    }
    missing
}

// -- settings ------------------------------------------------------------------------------

struct Settings {
    cache_dir: PathBuf,
    revision: String,
    token: Option<String>,
    /// Why downloads are off, when they are.
    offline_reason: Option<&'static str>,
    endpoint: String,
    timeout: Duration,
}

impl Settings {
    fn new(options: &HubOptions, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |key: &str| env(key).filter(|v| !v.trim().is_empty());
        let hf_home = || -> Result<PathBuf> {
            if let Some(home) = var("HF_HOME") {
                return Ok(expand_user(&home, env));
            }
            if let Some(xdg) = var("XDG_CACHE_HOME") {
                return Ok(PathBuf::from(xdg).join("huggingface"));
            }
            Ok(home_dir(env)?.join(".cache").join("huggingface"))
        };
        let cache_dir = match (
            &options.cache_dir,
            var("HF_HUB_CACHE"),
            var("HUGGINGFACE_HUB_CACHE"),
        ) {
            (Some(dir), _, _) => expand_user(&dir.to_string_lossy(), env),
            (None, Some(dir), _) | (None, None, Some(dir)) => expand_user(&dir, env),
            (None, None, None) => hf_home()?.join("hub"),
        };
        let token = match &options.token {
            Token::Disabled => None,
            Token::Value(t) => Some(t.trim().to_string()).filter(|t| !t.is_empty()),
            Token::Auto if var("HF_HUB_DISABLE_IMPLICIT_TOKEN").is_some_and(|v| truthy(&v)) => None,
            Token::Auto | Token::Required => {
                let token = var("HF_TOKEN")
                    .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
                    .map(|t| t.trim().to_string())
                    .or_else(|| {
                        let path = match var("HF_TOKEN_PATH") {
                            Some(p) => expand_user(&p, env),
                            None => hf_home().ok()?.join("token"),
                        };
                        let saved = std::fs::read_to_string(path).ok()?;
                        Some(saved.trim().to_string()).filter(|t| !t.is_empty())
                    });
                if token.is_none() && options.token == Token::Required {
                    return Err(Error::Hub(
                        "token=True, but no Hugging Face token was found: set HF_TOKEN, log in \
                         with `hf auth login`, or pass the token itself as token='hf_...'"
                            .into(),
                    ));
                }
                token
            }
        };
        let offline_reason = if options.local_files_only {
            Some("local_files_only=True")
        } else if var("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)) {
            Some("HF_HUB_OFFLINE=1")
        } else if var("TRANSFORMERS_OFFLINE").is_some_and(|v| truthy(&v)) {
            Some("TRANSFORMERS_OFFLINE=1")
        } else {
            None
        };
        let endpoint = options
            .endpoint
            .clone()
            .or_else(|| var("HF_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim()
            .trim_end_matches('/')
            .to_string();
        let timeout = var("HF_HUB_ETAG_TIMEOUT")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(10));
        let revision = options
            .revision
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "main".to_string());
        Ok(Self {
            cache_dir,
            revision,
            token,
            offline_reason,
            endpoint,
            timeout,
        })
    }

    fn api(&self) -> Result<Api> {
        ApiBuilder::from_cache(Cache::new(self.cache_dir.clone()))
            .with_endpoint(self.endpoint.clone())
            .with_token(self.token.clone())
            .with_progress(false)
            .with_retries(0)
            .with_user_agent("crossrank", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| Error::Hub(format!("cannot set up the hub client: {e}")))
    }
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "yes" | "true"
    )
}

fn home_dir(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    env("HOME")
        .or_else(|| env("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Hub(
                "cannot find the home directory for the Hugging Face cache: set HF_HOME or pass \
                 cache_folder"
                    .into(),
            )
        })
}

fn expand_user(path: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match path.strip_prefix("~") {
        Some(rest) if rest.is_empty() || rest.starts_with(['/', '\\']) => match home_dir(env) {
            Ok(home) => home.join(rest.trim_start_matches(['/', '\\'])),
            Err(_) => PathBuf::from(path),
        },
        _ => PathBuf::from(path),
    }
}

/// huggingface_hub's repo id rules: `name` or `org/name`, of `[A-Za-z0-9_.-]`,
/// no `--` or `..`, at most 96 characters.
fn validate_repo_id(id: &str) -> Result<()> {
    let parts: Vec<&str> = id.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
    };
    let valid = id.len() <= 96
        && parts.len() <= 2
        && parts.iter().all(part_ok)
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
fn candidate_ids(model_id: &str) -> Vec<String> {
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

fn model_repo(repo_id: &str, revision: &str) -> Repo {
    Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string())
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

// -- the cache -----------------------------------------------------------------------------

enum CacheState {
    Complete(Resolved),
    Incomplete { dir: PathBuf, missing: Vec<String> },
    Missing,
}

fn repo_dir(cache_dir: &Path, repo_id: &str) -> PathBuf {
    cache_dir.join(model_repo(repo_id, "main").folder_name())
}

fn cache_lookup(cache_dir: &Path, repo_id: &str, revision: &str) -> CacheState {
    let cache = Cache::new(cache_dir.to_path_buf()).repo(model_repo(repo_id, revision));
    let commit = if is_commit_hash(revision) && cache.pointer_path(revision).is_dir() {
        Some(revision.to_string())
    } else {
        std::fs::read_to_string(repo_dir(cache_dir, repo_id).join("refs").join(revision))
            .ok()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
    };
    let Some(commit) = commit else {
        return CacheState::Missing;
    };
    let dir = cache.pointer_path(&commit);
    if !dir.is_dir() {
        return CacheState::Missing;
    }
    let missing = missing_model_files(&dir);
    if missing.is_empty() {
        CacheState::Complete(Resolved {
            dir,
            repo_id: repo_id.to_string(),
            commit,
            downloaded: Vec::new(),
            warnings: Vec::new(),
        })
    } else {
        CacheState::Incomplete { dir, missing }
    }
}

/// The first candidate complete in the cache, else an error built by
/// `explain("<what is missing>")`.
fn resolve_cached(
    settings: &Settings,
    candidates: &[String],
    explain: impl Fn(&str) -> String,
) -> Result<Resolved> {
    let mut incomplete = None;
    for id in candidates {
        match cache_lookup(&settings.cache_dir, id, &settings.revision) {
            CacheState::Complete(resolved) => return Ok(resolved),
            CacheState::Incomplete { dir, missing } => {
                incomplete.get_or_insert((id, dir, missing));
            }
            CacheState::Missing => {}
        }
    }
    let revision = match settings.revision.as_str() {
        "main" => String::new(),
        r => format!(" at revision {r:?}"),
    };
    let what = match incomplete {
        Some((id, dir, missing)) => format!(
            "the cached copy of {id:?}{revision} in {} is incomplete (missing {})",
            dir.display(),
            missing.join(", ")
        ),
        None => format!(
            "{}{revision} is not in the cache at {}",
            quoted_list(candidates).replace(", ", " or "),
            settings.cache_dir.display()
        ),
    };
    Err(Error::Hub(explain(&what)))
}

fn read_index(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid_model(format!("{}: {e}", path.display())))?;
    let shards = shard_names(&json);
    if shards.is_empty() {
        return Err(Error::invalid_model(format!(
            "{} has no \"weight_map\" naming shard files",
            path.display()
        )));
    }
    if let Some(bad) = shards.iter().find(|s| !is_safe_relative(s)) {
        return Err(Error::invalid_model(format!(
            "{} names the shard {bad:?}, which is not a plain file name",
            path.display()
        )));
    }
    Ok(shards)
}

fn is_safe_relative(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// A snapshot file that is there and, when the listing gave a size, of that size.
fn is_cached(pointer: &Path, expected: Option<u64>) -> bool {
    match std::fs::metadata(pointer) {
        Ok(meta) => meta.is_file() && expected.is_none_or(|size| meta.len() == size),
        Err(_) => false,
    }
}

/// Points `snapshots/<commit>/<file>` at `blobs/<etag>` (relative symlink
/// created under a temporary name and renamed into place; a copy where
/// symlinks are not available).
fn link_blob(blob: &Path, pointer: &Path, file: &str) -> std::io::Result<()> {
    let parent = pointer.parent().expect("snapshot file has a parent");
    std::fs::create_dir_all(parent)?;
    let name = pointer.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    {
        let mut target = PathBuf::new();
        for _ in 0..=Path::new(file).components().count() {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob.file_name().unwrap_or_default());
        std::os::unix::fs::symlink(target, &tmp)?;
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        std::fs::copy(blob, &tmp)?;
    }
    std::fs::rename(&tmp, pointer)
}

/// Writes `refs/<revision>` = `commit` through a temporary file, so a reader
/// never sees it empty.
fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> std::io::Result<()> {
    let path = repo_dir.join("refs").join(revision);
    if std::fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
        return Ok(());
    }
    let parent = path.parent().expect("ref has a parent");
    std::fs::create_dir_all(parent)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, commit)?;
    std::fs::rename(&tmp, &path)
}

// -- model info ----------------------------------------------------------------------------

struct RepoInfo {
    sha: String,
    files: BTreeMap<String, Listed>,
}

/// What the listing (`?blobs=true`) says about a file, where it says it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Listed {
    size: Option<u64>,
    /// The blob name the hub's `ETag` gives: the sha256 of an LFS file, the
    /// git blob id of any other.
    etag: Option<String>,
}

enum InfoError {
    /// 404, or 401 with `X-Error-Code: RepoNotFound` (the hub's answer to an
    /// anonymous request for a missing or private repository).
    NotFound {
        status: u16,
    },
    RevisionNotFound,
    /// 401/403 for a repository that exists (gated, private).
    Denied {
        status: u16,
        code: Option<String>,
    },
    /// No answer (connection, DNS, TLS, timeout) or a server error.
    Unreachable(String),
    Invalid(String),
}

impl InfoError {
    fn into_error(self, id: &str, settings: &Settings) -> Error {
        self.into_error_tried(id, &[], settings)
    }

    fn into_error_tried(self, id: &str, also: &[String], settings: &Settings) -> Error {
        let endpoint = &settings.endpoint;
        let message = match self {
            InfoError::NotFound { status } => {
                let also = match also {
                    [] => String::new(),
                    [only] if only == id => String::new(),
                    ids => format!(" (tried {})", quoted_list(ids)),
                };
                let token_hint = if settings.token.is_some() {
                    "the token in use does not give access to it"
                } else {
                    "pass token='hf_...', set HF_TOKEN, or log in with `hf auth login`"
                };
                format!(
                    "{id:?} is not a model repository on {endpoint}{also} (HTTP {status}): check \
                     the model id, or pass the path of a local model directory. If it is a private \
                     or gated model, {token_hint}."
                )
            }
            InfoError::RevisionNotFound => format!(
                "revision {:?} not found in {id:?} on {endpoint}: use an existing branch, tag or \
                 full commit hash",
                settings.revision
            ),
            InfoError::Denied { status, code } => denied_message(id, status, code, settings),
            InfoError::Unreachable(why) => format!("cannot reach {endpoint}: {why}"),
            InfoError::Invalid(why) => format!(
                "unexpected answer from {endpoint} about {id:?}: {why} (is HF_ENDPOINT a \
                 Hugging Face hub?)"
            ),
        };
        Error::Hub(message)
    }
}

fn quoted_list(ids: &[String]) -> String {
    ids.iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn denied_message(id: &str, status: u16, code: Option<String>, settings: &Settings) -> String {
    let endpoint = &settings.endpoint;
    let gated = code.as_deref() == Some("GatedRepo");
    match (status, settings.token.is_some()) {
        (401, false) => format!(
            "{id:?} needs authentication (HTTP 401: a {} model) and no token was found: pass \
             token='hf_...', set HF_TOKEN, or log in with `hf auth login`. For a gated model, \
             also accept its conditions at {endpoint}/{id}.",
            if gated { "gated" } else { "private or gated" }
        ),
        (401, true) => format!(
            "{endpoint} did not accept the token for {id:?} (HTTP 401): check that the token is \
             valid and has read access"
        ),
        _ => format!(
            "access to {id:?} is restricted (HTTP {status}{}): request access at \
             {endpoint}/{id} with the account whose token you use",
            if gated { ", a gated model" } else { "" }
        ),
    }
}

fn fetch_info(
    api: &Api,
    settings: &Settings,
    id: &str,
) -> std::result::Result<RepoInfo, InfoError> {
    let request = api
        .repo(model_repo(id, &settings.revision))
        .info_request()
        .query("blobs", "true")
        .config()
        .http_status_as_error(false)
        .timeout_connect(Some(settings.timeout))
        .timeout_recv_response(Some(settings.timeout))
        .build();
    let mut response = request
        .call()
        .map_err(|e| InfoError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let code = response
        .headers()
        .get("x-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| InfoError::Unreachable(format!("reading the model info: {e}")))?;
    match (status, code.as_deref()) {
        (200..=299, _) => parse_info(&body).map_err(InfoError::Invalid),
        (_, Some("RevisionNotFound")) => Err(InfoError::RevisionNotFound),
        (404, _) | (401, Some("RepoNotFound")) => Err(InfoError::NotFound { status }),
        (401 | 403, _) => Err(InfoError::Denied { status, code }),
        (500.., _) | (429, _) => Err(InfoError::Unreachable(format!("HTTP {status}"))),
        _ => Err(InfoError::Invalid(format!(
            "HTTP {status}: {}",
            body.chars().take(200).collect::<String>()
        ))),
    }
}

fn parse_info(body: &str) -> std::result::Result<RepoInfo, String> {
    let json: Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    let sha = json
        .get("sha")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("no \"sha\" in the model info")?
        .to_string();
    let siblings = json
        .get("siblings")
        .and_then(Value::as_array)
        .ok_or("no \"siblings\" file list in the model info")?;
    let files = siblings
        .iter()
        .filter_map(|s| {
            let name = s.get("rfilename")?.as_str()?.to_string();
            let lfs = s.get("lfs");
            let etag = lfs
                .and_then(|l| l.get("sha256"))
                .or_else(|| s.get("blobId"))
                .and_then(Value::as_str)
                .filter(|e| e.bytes().all(|b| b.is_ascii_hexdigit()) && !e.is_empty())
                .map(str::to_string);
            let size = s
                .get("size")
                .or_else(|| lfs.and_then(|l| l.get("size")))
                .and_then(Value::as_u64);
            Some((name, Listed { size, etag }))
        })
        .collect();
    Ok(RepoInfo { sha, files })
}

// -- downloads -----------------------------------------------------------------------------

/// The files to fetch, before any shards: config, tokenizer and
/// sentence-transformers files the repo has, then the best weights.
fn plan_files(id: &str, settings: &Settings, info: &RepoInfo) -> Result<Vec<String>> {
    let has = |name: &str| info.files.contains_key(name);
    let listing = || {
        let names: Vec<&str> = info.files.keys().map(String::as_str).take(30).collect();
        let more = info.files.len().saturating_sub(names.len());
        let more = if more > 0 {
            format!(", ... ({more} more)")
        } else {
            String::new()
        };
        format!("{}{more}", names.join(", "))
    };
    let at = format!("{id:?} (revision {:?})", settings.revision);
    if !has(CONFIG_FILE) {
        return Err(Error::Hub(format!(
            "{at} has no config.json, so it is not a transformers model crossrank can load; it \
             has: {}",
            listing()
        )));
    }
    let Some(weights) = WEIGHT_CANDIDATES.iter().find(|name| has(name)) else {
        return Err(Error::Hub(format!(
            "{at} has no weights in a format crossrank reads ({}); it has: {}",
            WEIGHT_CANDIDATES.join(", "),
            listing()
        )));
    };
    let mut plan = vec![CONFIG_FILE.to_string()];
    plan.extend(
        TOKENIZER_FILES
            .iter()
            .chain(SENTENCE_TRANSFORMERS_FILES)
            .filter(|name| has(name))
            .map(|name| name.to_string()),
    );
    plan.push(weights.to_string());
    Ok(plan)
}

/// Makes `snapshots/<sha>` hold every file the model needs; returns the
/// names it downloaded.
fn fetch_snapshot(
    api: &Api,
    settings: &Settings,
    id: &str,
    info: &RepoInfo,
    progress: &mut dyn DownloadProgress,
) -> Result<Vec<String>> {
    let repo_dir = repo_dir(&settings.cache_dir, id);
    let commit_ref = repo_dir.join("refs").join(&info.sha);
    let had_commit_ref = commit_ref.exists();
    let fetcher = Fetcher {
        api,
        repo: api.repo(model_repo(id, &info.sha)),
        cache: Cache::new(settings.cache_dir.clone()).repo(model_repo(id, &info.sha)),
        snapshot: snapshot_dir(&settings.cache_dir, id, &info.sha),
        id,
        sha: &info.sha,
        settings,
    };
    let mut downloaded = Vec::new();
    let mut fetch = |file: &str, progress: &mut dyn DownloadProgress| -> Result<()> {
        if fetcher.ensure(
            file,
            info.files.get(file).cloned().unwrap_or_default(),
            progress,
        )? {
            downloaded.push(file.to_string());
        }
        Ok(())
    };
    let result = (|| {
        let plan = plan_files(id, settings, info)?;
        for file in &plan {
            fetch(file, &mut *progress)?;
        }
        let weights = plan.last().expect("plan ends with the weights");
        if weights.ends_with(".index.json") {
            for shard in read_index(&fetcher.snapshot.join(weights))? {
                if !info.files.contains_key(&shard) {
                    return Err(Error::Hub(format!(
                        "{id:?}: {weights} names the shard {shard}, which the repository does \
                         not have"
                    )));
                }
                fetch(&shard, &mut *progress)?;
            }
        }
        Ok(())
    })();
    // hf-hub records the commit we download at as a ref named after itself;
    // huggingface_hub does not, so take it out again.
    if !had_commit_ref {
        let _ = std::fs::remove_file(&commit_ref);
    }
    result?;
    if settings.revision != info.sha {
        write_ref(&repo_dir, &settings.revision, &info.sha)
            .map_err(|e| Error::io(repo_dir.join("refs").join(&settings.revision), e))?;
    }
    Ok(downloaded)
}

struct Fetcher<'a> {
    api: &'a Api,
    repo: ApiRepo,
    cache: hf_hub::CacheRepo,
    snapshot: PathBuf,
    id: &'a str,
    sha: &'a str,
    settings: &'a Settings,
}

/// Unwinds out of `hf-hub`'s copy loop when the progress callback says stop
/// (`resume_unwind`: no panic message).
struct StopDownload;

impl Fetcher<'_> {
    /// Puts `file` in the snapshot; `true` when it had to be downloaded.
    fn ensure(
        &self,
        file: &str,
        listed: Listed,
        progress: &mut dyn DownloadProgress,
    ) -> Result<bool> {
        if !is_safe_relative(file) {
            return Err(Error::Hub(format!(
                "{:?}: unsafe file name {file:?}",
                self.id
            )));
        }
        let pointer = self.snapshot.join(file);
        if is_cached(&pointer, listed.size) {
            return Ok(false);
        }
        // A dangling link, or a file of the wrong size: replace it.
        if std::fs::symlink_metadata(&pointer).is_ok() {
            std::fs::remove_file(&pointer).map_err(|e| Error::io(&pointer, e))?;
        }
        let url = self.repo.url(file);
        // The listing names the blob and its size; otherwise ask (as hf-hub does).
        let (etag, size) = match (listed.etag, listed.size) {
            (Some(etag), Some(size)) => (etag, size),
            _ => {
                let meta = self
                    .api
                    .metadata(&url)
                    .map_err(|e| self.download_error(file, &url, e))?;
                (meta.etag().to_string(), meta.size() as u64)
            }
        };
        let blob = self.cache.blob_path(&etag);
        let have_blob = std::fs::metadata(&blob).is_ok_and(|m| m.is_file() && m.len() == size);
        let downloaded = if have_blob {
            link_blob(&blob, &pointer, file).map_err(|e| Error::io(&pointer, e))?;
            false
        } else {
            let landed = self.download(file, &url, &blob, size, progress)?;
            if landed != pointer {
                return Err(Error::Hub(format!(
                    "{url} answered for another commit than the requested {} ({}): the hub at \
                     {} changed during the download; try again",
                    self.sha,
                    landed.display(),
                    self.settings.endpoint
                )));
            }
            true
        };
        let got = std::fs::metadata(&pointer).map(|m| m.len()).ok();
        if got != Some(size) {
            // Never leave a short (or long) file where a load would find it.
            let target = std::fs::canonicalize(&pointer).ok();
            let _ = std::fs::remove_file(&pointer);
            if let Some(target) = target {
                let _ = std::fs::remove_file(target);
            }
            return Err(Error::Hub(format!(
                "the download of {file} for {:?} from {url} is incomplete ({} of {size} bytes) \
                 and was discarded; run again to retry",
                self.id,
                got.unwrap_or(0)
            )));
        }
        Ok(downloaded)
    }

    fn download(
        &self,
        file: &str,
        url: &str,
        blob: &Path,
        size: u64,
        progress: &mut dyn DownloadProgress,
    ) -> Result<PathBuf> {
        let part = blob.with_extension("part");
        // A `.part` as long as the file (or longer) cannot be resumed: the
        // server would answer 416. It was never checked, so start over.
        if std::fs::metadata(&part).is_ok_and(|m| m.len() >= size) {
            let _ = std::fs::remove_file(&part);
        }
        for attempt in 0..2 {
            let reporter = Reporter::new(&mut *progress);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                self.repo.download_with_progress(file, reporter)
            }));
            match outcome {
                Ok(Ok(landed)) => return Ok(landed),
                // A `.part` left by an earlier try that does not fit: start over.
                Ok(Err(e))
                    if attempt == 0
                        && (matches!(e, ApiError::InvalidResume)
                            || http_status(&e) == Some(416)) =>
                {
                    let _ = std::fs::remove_file(&part);
                }
                Ok(Err(e)) => return Err(self.download_error(file, url, e)),
                Err(payload) if payload.is::<StopDownload>() => return Err(Error::Interrupted),
                Err(payload) => resume_unwind(payload),
            }
        }
        Err(Error::Hub(format!(
            "cannot resume the download of {file}: remove {} and try again",
            part.display()
        )))
    }

    fn download_error(&self, file: &str, url: &str, error: ApiError) -> Error {
        let id = self.id;
        match http_status(&error) {
            Some(status @ (401 | 403)) => {
                Error::Hub(denied_message(id, status, None, self.settings))
            }
            Some(404) => Error::Hub(format!(
                "{file} of {id:?} is listed by the hub but {url} answered HTTP 404"
            )),
            Some(status) => Error::Hub(format!("downloading {url} failed: HTTP {status}")),
            None => match error {
                ApiError::LockAcquisition(lock) => Error::Hub(format!(
                    "another process is downloading {file} of {id:?} (lock {}); try again when \
                     it has finished",
                    lock.display()
                )),
                other => Error::Hub(format!(
                    "downloading {file} of {id:?} from {url} failed ({other}). The partial \
                     download is kept aside, never used as a model file; running again resumes \
                     it."
                )),
            },
        }
    }
}

/// The HTTP status behind a failed `hf-hub` request. `ureq` is not a direct
/// dependency, so its error type cannot be named here: read its message
/// (`"http status: 404"`).
fn http_status(error: &ApiError) -> Option<u16> {
    match error {
        ApiError::RequestError(inner) => inner
            .to_string()
            .strip_prefix("http status: ")
            .and_then(|s| s.trim().parse().ok()),
        ApiError::TooManyRetries(inner) => http_status(inner),
        _ => None,
    }
}

/// `hf-hub`'s progress hooks -> a [`DownloadProgress`], at most every
/// [`PROGRESS_INTERVAL`]. `hf-hub` calls `init` twice per download (once
/// more when it opens the request, followed by the resumed byte count).
struct Reporter<'a> {
    inner: &'a mut dyn DownloadProgress,
    started: bool,
    pending: u64,
    last: Instant,
    finished: bool,
}

impl<'a> Reporter<'a> {
    fn new(inner: &'a mut dyn DownloadProgress) -> Self {
        Self {
            inner,
            started: false,
            pending: 0,
            last: Instant::now(),
            finished: false,
        }
    }

    fn flush(&mut self) {
        let bytes = std::mem::take(&mut self.pending);
        self.last = Instant::now();
        if !self.inner.advance(bytes) {
            resume_unwind(Box::new(StopDownload));
        }
    }
}

impl hf_hub::api::Progress for Reporter<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        if !self.inner.start(filename, size as u64) {
            resume_unwind(Box::new(StopDownload));
        }
    }

    fn update(&mut self, size: usize) {
        self.pending += size as u64;
        if self.last.elapsed() >= PROGRESS_INTERVAL {
            self.flush();
        }
    }

    fn finish(&mut self) {
        if self.pending > 0 {
            self.flush();
        }
        if !std::mem::replace(&mut self.finished, true) {
            self.inner.finish();
        }
    }
}

impl Drop for Reporter<'_> {
    fn drop(&mut self) {
        if self.started && !self.finished {
            self.finished = true;
            self.inner.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn write_snapshot(cache: &Path, id: &str, commit: &str, files: &[&str]) -> PathBuf {
        let dir = snapshot_dir(cache, id, commit);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), "{}").unwrap();
        }
        dir
    }

    #[test]
    fn settings_follow_huggingface_hub_env() {
        let env = env_of(&[("HOME", "/home/u")]);
        let s = Settings::new(&HubOptions::default(), &env).unwrap();
        assert_eq!(s.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.revision, "main");
        assert!(s.offline_reason.is_none());

        let env = env_of(&[
            ("HF_HOME", "/hf"),
            ("HF_ENDPOINT", "http://127.0.0.1:1/"),
            ("HF_HUB_OFFLINE", "1"),
            ("HF_TOKEN", "hf_env"),
        ]);
        let s = Settings::new(&HubOptions::default(), &env).unwrap();
        assert_eq!(s.cache_dir, PathBuf::from("/hf/hub"));
        assert_eq!(s.endpoint, "http://127.0.0.1:1");
        assert_eq!(s.offline_reason, Some("HF_HUB_OFFLINE=1"));
        assert_eq!(s.token.as_deref(), Some("hf_env"));

        let options = HubOptions {
            cache_dir: Some("/c".into()),
            token: Token::Disabled,
            ..Default::default()
        };
        let s = Settings::new(&options, &env).unwrap();
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
        assert_eq!(s.token, None);
    }

    #[test]
    fn saved_token_and_token_true() {
        let home = tempfile::tempdir().unwrap();
        let home_s = home.path().to_str().unwrap();
        let env = env_of(&[("HF_HOME", home_s)]);
        let required = HubOptions {
            token: Token::Required,
            ..Default::default()
        };
        assert!(Settings::new(&required, &env).is_err());
        assert_eq!(
            Settings::new(&HubOptions::default(), &env).unwrap().token,
            None
        );
        std::fs::write(home.path().join("token"), "hf_saved\n").unwrap();
        assert_eq!(
            Settings::new(&required, &env).unwrap().token.as_deref(),
            Some("hf_saved")
        );
        let env = env_of(&[("HF_HOME", home_s), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")]);
        assert_eq!(
            Settings::new(&HubOptions::default(), &env).unwrap().token,
            None
        );
    }

    #[test]
    fn repo_ids() {
        for ok in ["bert", "cross-encoder/ms-marco-MiniLM-L12-v2", "a.b/c_d"] {
            assert!(validate_repo_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b/c", "a--b", "a..b", "my model", "/abs", "x.git"] {
            assert!(validate_repo_id(bad).is_err(), "{bad}");
        }
        assert_eq!(candidate_ids("m"), vec!["cross-encoder/m", "m"]);
        assert_eq!(candidate_ids("gpt2"), vec!["gpt2", "cross-encoder/gpt2"]);
        assert_eq!(candidate_ids("o/m"), vec!["o/m"]);
    }

    #[test]
    fn offline_lookup_reads_refs_and_checks_completeness() {
        let cache = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let dir = write_snapshot(cache.path(), "org/m", commit, &["config.json"]);
        let env = env_of(&[("HF_HUB_OFFLINE", "1"), ("HOME", "/nowhere")]);
        let options = HubOptions {
            cache_dir: Some(cache.path().into()),
            ..Default::default()
        };
        // No ref yet: not cached.
        let err = resolve_with_env("org/m", &options, None, &env).unwrap_err();
        assert!(err.to_string().contains("not in the cache"), "{err}");
        write_ref(&repo_dir(cache.path(), "org/m"), "main", commit).unwrap();
        let err = resolve_with_env("org/m", &options, None, &env).unwrap_err();
        assert!(err.to_string().contains("incomplete"), "{err}");
        assert!(err.to_string().contains("HF_HUB_OFFLINE=1"), "{err}");
        std::fs::write(dir.join("model.safetensors"), "x").unwrap();
        let found = resolve_with_env("org/m", &options, None, &env).unwrap();
        assert_eq!(found.dir, dir);
        assert_eq!(found.commit, commit);
        // A commit hash needs no ref.
        let by_commit = HubOptions {
            revision: Some(commit.into()),
            ..options.clone()
        };
        assert_eq!(
            resolve_with_env("org/m", &by_commit, None, &env)
                .unwrap()
                .dir,
            dir
        );
    }

    #[test]
    fn bare_name_falls_back_to_cross_encoder_in_cache() {
        let cache = tempfile::tempdir().unwrap();
        let commit = "89abcdef0123456789abcdef0123456789abcdef";
        let dir = write_snapshot(
            cache.path(),
            "cross-encoder/tiny",
            commit,
            &["config.json", "model.safetensors"],
        );
        write_ref(
            &repo_dir(cache.path(), "cross-encoder/tiny"),
            "main",
            commit,
        )
        .unwrap();
        let options = HubOptions {
            cache_dir: Some(cache.path().into()),
            local_files_only: true,
            ..Default::default()
        };
        let found = resolve_with_env("tiny", &options, None, &env_of(&[])).unwrap();
        assert_eq!(found.dir, dir);
        assert_eq!(found.repo_id, "cross-encoder/tiny");
    }

    #[test]
    fn sharded_weights_need_every_shard() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            r#"{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("s1.safetensors"), "x").unwrap();
        assert_eq!(missing_model_files(dir.path()), vec!["s2.safetensors"]);
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            r#"{"weight_map": {"a": "../evil"}}"#,
        )
        .unwrap();
        assert!(read_index(&dir.path().join("model.safetensors.index.json")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn blob_links_are_relative() {
        let cache = tempfile::tempdir().unwrap();
        let repo = repo_dir(cache.path(), "org/m");
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(repo.join("blobs").join("abc"), "data").unwrap();
        let pointer = repo.join("snapshots").join("c1").join("config.json");
        link_blob(&repo.join("blobs").join("abc"), &pointer, "config.json").unwrap();
        assert_eq!(
            std::fs::read_link(&pointer).unwrap(),
            PathBuf::from("../../blobs/abc")
        );
        assert_eq!(std::fs::read_to_string(&pointer).unwrap(), "data");
    }

    #[test]
    fn info_parsing() {
        let info = parse_info(
            r#"{"sha": "abc", "siblings": [{"rfilename": "config.json", "size": 3},
                {"rfilename": "vocab.txt"}]}"#,
        )
        .unwrap();
        assert_eq!(info.sha, "abc");
        assert_eq!(info.files["config.json"].size, Some(3));
        assert_eq!(info.files["vocab.txt"], Listed::default());
        let lfs = parse_info(
            r#"{"sha": "abc", "siblings": [{"rfilename": "model.safetensors", "blobId": "0a1b",
                "size": 9, "lfs": {"sha256": "ffee", "size": 9}},
                {"rfilename": "vocab.txt", "blobId": "12cd", "size": 4}]}"#,
        )
        .unwrap();
        let weights = &lfs.files["model.safetensors"];
        assert_eq!(
            (weights.etag.as_deref(), weights.size),
            (Some("ffee"), Some(9))
        );
        assert_eq!(lfs.files["vocab.txt"].etag.as_deref(), Some("12cd"));
        assert!(parse_info("{}").is_err());
        assert!(parse_info("<html>").is_err());
    }
}
