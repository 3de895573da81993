//! Model ids on the Hugging Face Hub: resolving `org/name` to a local
//! directory, downloading only the files a cross-encoder needs.
//!
//! Files land in the cache layout huggingface_hub uses ([`cache`]), so a
//! model that sentence-transformers downloaded is found here without any
//! network and the other way round. The flow:
//!
//! - one model-info request (`/api/models/{id}/revision/{rev}?blobs=true`)
//!   picks the files and pins the commit; every file is then fetched at that
//!   commit, so a branch that moves mid-download cannot mix two versions
//!   ([`client`], on `ureq`);
//! - each file is streamed into `blobs/<etag>.incomplete` (resumed with
//!   `Range` after an interrupted try), checked against the listing's size
//!   and hash (sha256 for LFS files, the git blob id for others), renamed
//!   into `blobs/<etag>` and linked from `snapshots/<commit>` ([`download`]);
//!   a blob already in the cache is linked, not fetched;
//! - `refs/<revision>` is written (atomically) only after every file is in
//!   place;
//! - `HF_HUB_OFFLINE`, `local_files_only`, the token lookup ([`settings`]),
//!   the bare-name fallback to `cross-encoder/<name>` ([`names`]), falling
//!   back to the cache when the hub cannot be reached, and error messages a
//!   user can act on ([`messages`]).

mod cache;
mod client;
mod download;
mod messages;
mod names;
mod settings;

#[cfg(test)]
mod testing;

use std::path::PathBuf;

pub use cache::{missing_model_files, snapshot_dir};
pub use names::{FALLBACK_ORGANIZATION, ORIGINAL_TRANSFORMER_MODELS};

use crate::error::Result;
use cache::resolve_cached;
use client::{Client, InfoError};
use names::{candidate_ids, validate_repo_id};
use settings::Settings;

/// The hub used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

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

    let client = Client::new(&settings);
    let mut not_found: Option<InfoError> = None;
    for id in &candidates {
        match client.model_info(id, &settings.revision) {
            Ok(info) => {
                let fetched = download::fetch_snapshot(&client, &settings, id, &info, progress)?;
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
                return resolve_unreachable(&settings, model_id, &candidates, &why)
            }
            Err(other) => return Err(other.into_error(id, &settings)),
        }
    }
    let error = not_found.expect("at least one candidate");
    Err(error.into_error_tried(model_id, &candidates, &settings))
}

/// The hub did not answer: the cached copy, with a warning saying so.
fn resolve_unreachable(
    settings: &Settings,
    model_id: &str,
    candidates: &[String],
    why: &str,
) -> Result<Resolved> {
    let endpoint = &settings.endpoint;
    let mut resolved = resolve_cached(settings, candidates, |what| {
        format!(
            "cannot reach {endpoint} to download {model_id:?} ({why}), and {what}. Check the \
             network connection (and HF_ENDPOINT), or pass the path of a local model directory."
        )
    })?;
    resolved.warnings.push(format!(
        "cannot reach {endpoint} ({why}); using the cached copy of {} at commit {}",
        resolved.repo_id, resolved.commit
    ));
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::cache::{repo_dir, write_ref};
    use super::testing::{env_of, etag_of, FakeHub, COMMIT};
    use super::*;
    use std::path::Path;

    fn write_snapshot(cache: &Path, id: &str, commit: &str, files: &[&str]) -> PathBuf {
        let dir = snapshot_dir(cache, id, commit);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), "{}").unwrap();
        }
        dir
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

    #[cfg(unix)]
    #[test]
    fn download_links_blobs_and_writes_the_ref() {
        let weights: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let files: &[(&str, &[u8])] = &[
            ("config.json", b"{\"model_type\": \"bert\"}"),
            ("model.safetensors", &weights),
            ("vocab.txt", b"[PAD]\n[UNK]\n"),
            ("README.md", b"not needed"),
        ];
        let hub = FakeHub::start("org/m", files);
        let cache = tempfile::tempdir().unwrap();
        let options = HubOptions {
            cache_dir: Some(cache.path().into()),
            endpoint: Some(hub.url.clone()),
            ..Default::default()
        };
        let resolved = resolve_with_env("org/m", &options, None, &env_of(&[])).unwrap();
        assert_eq!(resolved.commit, COMMIT);
        assert_eq!(
            resolved.downloaded,
            ["config.json", "vocab.txt", "model.safetensors"]
        );
        let repo = repo_dir(cache.path(), "org/m");
        for (name, data) in &files[..3] {
            let link = std::fs::read_link(resolved.dir.join(name)).unwrap();
            assert_eq!(
                link,
                Path::new("../../blobs").join(etag_of(name, data)),
                "{name}"
            );
            assert_eq!(&std::fs::read(resolved.dir.join(name)).unwrap(), data);
        }
        assert_eq!(
            std::fs::read_to_string(repo.join("refs/main")).unwrap(),
            COMMIT
        );
        let blobs: Vec<_> = std::fs::read_dir(repo.join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(blobs.len(), 3, "{blobs:?}");
        assert!(!cache
            .path()
            .join("models--org--m/snapshots/README.md")
            .exists());

        // Cached: one info request, nothing downloaded.
        hub.clear_requests();
        let again = resolve_with_env("org/m", &options, None, &env_of(&[])).unwrap();
        assert!(again.downloaded.is_empty());
        assert_eq!(hub.requests().len(), 1);
    }

    #[test]
    fn unreachable_hub_falls_back_to_the_cache() {
        let cache = tempfile::tempdir().unwrap();
        let commit = "89abcdef0123456789abcdef0123456789abcdef";
        write_snapshot(
            cache.path(),
            "org/m",
            commit,
            &["config.json", "model.safetensors"],
        );
        write_ref(&repo_dir(cache.path(), "org/m"), "main", commit).unwrap();
        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let options = HubOptions {
            cache_dir: Some(cache.path().into()),
            endpoint: Some(endpoint),
            ..Default::default()
        };
        let found = resolve_with_env("org/m", &options, None, &env_of(&[])).unwrap();
        assert_eq!(found.commit, commit);
        assert!(
            found.warnings[0].contains("cannot reach"),
            "{:?}",
            found.warnings
        );
        let options = HubOptions {
            revision: Some("v2".into()),
            ..options
        };
        let err = resolve_with_env("org/m", &options, None, &env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("cannot reach"), "{err}");
    }
}
