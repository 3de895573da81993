//! The cache layout huggingface_hub uses, so that either program finds what
//! the other downloaded:
//!
//! ```text
//! <cache>/models--org--name/blobs/<etag>                  file contents
//! <cache>/models--org--name/blobs/<etag>.incomplete       a download under way (resumable)
//! <cache>/models--org--name/snapshots/<commit>/<file>     -> ../../blobs/<etag>
//! <cache>/models--org--name/refs/<revision>               the commit a branch or tag names
//! <cache>/.locks/models--org--name/<etag>.lock            held while a blob downloads
//! ```

use std::path::{Path, PathBuf};

use super::messages::quoted_list;
use super::names::is_commit_hash;
use super::settings::Settings;
use super::{Resolved, CONFIG_FILE};
use crate::error::{Error, Result};
use crate::weights::WEIGHT_CANDIDATES;

/// `models--org--name`.
fn repo_folder(repo_id: &str) -> String {
    format!("models--{}", repo_id.replace('/', "--"))
}

pub(super) fn repo_dir(cache_dir: &Path, repo_id: &str) -> PathBuf {
    cache_dir.join(repo_folder(repo_id))
}

/// The snapshot directory a commit of `repo_id` has in `cache_dir`.
pub fn snapshot_dir(cache_dir: &Path, repo_id: &str, commit: &str) -> PathBuf {
    repo_dir(cache_dir, repo_id).join("snapshots").join(commit)
}

pub(super) fn blob_path(repo_dir: &Path, etag: &str) -> PathBuf {
    repo_dir.join("blobs").join(etag)
}

/// Where a blob is written until it is complete and checked (huggingface_hub's
/// name, so either program resumes the other's partial download).
pub(super) fn incomplete_path(blob: &Path) -> PathBuf {
    let mut name = blob.as_os_str().to_owned();
    name.push(".incomplete");
    PathBuf::from(name)
}

/// The lock huggingface_hub takes while it downloads the same blob.
pub(super) fn lock_path(cache_dir: &Path, repo_id: &str, etag: &str) -> PathBuf {
    cache_dir
        .join(".locks")
        .join(repo_folder(repo_id))
        .join(format!("{etag}.lock"))
}

fn read_ref(repo_dir: &Path, revision: &str) -> Option<String> {
    std::fs::read_to_string(repo_dir.join("refs").join(revision))
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
}

/// Writes `refs/<revision>` = `commit` through a temporary file, so a reader
/// never sees it empty.
pub(super) fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> std::io::Result<()> {
    let path = repo_dir.join("refs").join(revision);
    if read_ref(repo_dir, revision).as_deref() == Some(commit) {
        return Ok(());
    }
    let tmp = temporary_sibling(&path)?;
    std::fs::write(&tmp, commit)?;
    std::fs::rename(&tmp, &path)
}

/// Points `snapshots/<commit>/<file>` at `blob` (a relative symlink, as
/// huggingface_hub makes, created under a temporary name and renamed into
/// place; a copy where symlinks are not available).
pub(super) fn link_blob(blob: &Path, pointer: &Path, file: &str) -> std::io::Result<()> {
    let tmp = temporary_sibling(pointer)?;
    #[cfg(unix)]
    {
        // Up from the file's directory to the snapshot, then to the repo.
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

/// `.<name>.<pid>.tmp` next to `path`, its directory created, no stale file.
fn temporary_sibling(path: &Path) -> std::io::Result<PathBuf> {
    let parent = path.parent().expect("a cache path has a parent");
    std::fs::create_dir_all(parent)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    Ok(tmp)
}

/// A snapshot file that is there and, when the listing gave a size, of that size.
pub(super) fn is_cached(pointer: &Path, expected: Option<u64>) -> bool {
    match std::fs::metadata(pointer) {
        Ok(meta) => meta.is_file() && expected.is_none_or(|size| meta.len() == size),
        Err(_) => false,
    }
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

/// The shard files a `*.index.json` names (plain relative names only).
pub(super) use crate::weights::index_shards as read_index;

/// A path that stays inside the directory it is joined to (the rule the
/// weight loader applies to shard names).
pub(super) use crate::weights::is_plain_relative as is_safe_relative;

enum CacheState {
    Complete(Resolved),
    Incomplete { dir: PathBuf, missing: Vec<String> },
    Missing,
}

/// What the cache holds for `revision` (a ref, or a commit hash) of `repo_id`.
fn lookup(cache_dir: &Path, repo_id: &str, revision: &str) -> CacheState {
    let repo = repo_dir(cache_dir, repo_id);
    let by_hash = is_commit_hash(revision) && snapshot_dir(cache_dir, repo_id, revision).is_dir();
    let commit = if by_hash {
        Some(revision.to_string())
    } else {
        read_ref(&repo, revision)
    };
    let Some(commit) = commit else {
        return CacheState::Missing;
    };
    let dir = snapshot_dir(cache_dir, repo_id, &commit);
    if !dir.is_dir() {
        return CacheState::Missing;
    }
    let missing = missing_model_files(&dir);
    if !missing.is_empty() {
        return CacheState::Incomplete { dir, missing };
    }
    CacheState::Complete(Resolved {
        dir,
        repo_id: repo_id.to_string(),
        commit,
        downloaded: Vec::new(),
        warnings: Vec::new(),
    })
}

/// The first candidate complete in the cache, else an error built by
/// `explain("<what is missing>")`.
pub(super) fn resolve_cached(
    settings: &Settings,
    candidates: &[String],
    explain: impl Fn(&str) -> String,
) -> Result<Resolved> {
    let mut incomplete = None;
    for id in candidates {
        match lookup(&settings.cache_dir, id, &settings.revision) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_huggingface_hub() {
        let cache = Path::new("/c");
        assert_eq!(
            snapshot_dir(cache, "org/m", "abc"),
            PathBuf::from("/c/models--org--m/snapshots/abc")
        );
        let blob = blob_path(&repo_dir(cache, "m"), "e7");
        assert_eq!(blob, PathBuf::from("/c/models--m/blobs/e7"));
        assert_eq!(
            incomplete_path(&blob),
            PathBuf::from("/c/models--m/blobs/e7.incomplete")
        );
        assert_eq!(
            lock_path(cache, "org/m", "e7"),
            PathBuf::from("/c/.locks/models--org--m/e7.lock")
        );
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

    #[test]
    fn refs_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        write_ref(dir.path(), "feature/x", "c1").unwrap();
        write_ref(dir.path(), "feature/x", "c2").unwrap();
        assert_eq!(read_ref(dir.path(), "feature/x").as_deref(), Some("c2"));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("refs/feature"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["x"]);
    }

    #[cfg(unix)]
    #[test]
    fn blob_links_are_relative() {
        let cache = tempfile::tempdir().unwrap();
        let repo = repo_dir(cache.path(), "org/m");
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(blob_path(&repo, "abc"), "data").unwrap();
        let snapshot = repo.join("snapshots").join("c1");
        for (file, target) in [
            ("config.json", "../../blobs/abc"),
            ("onnx/model.onnx", "../../../blobs/abc"),
        ] {
            let pointer = snapshot.join(file);
            link_blob(&blob_path(&repo, "abc"), &pointer, file).unwrap();
            assert_eq!(std::fs::read_link(&pointer).unwrap(), PathBuf::from(target));
            assert_eq!(std::fs::read_to_string(&pointer).unwrap(), "data");
        }
    }
}
