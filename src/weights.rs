//! Finding and opening a model's weights: `model.safetensors` (single or
//! sharded with an index) or `pytorch_model.bin` (single or sharded).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::config::read_json;
use crate::error::{Error, Result};

/// The weight files of a model directory, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightFiles {
    Safetensors(Vec<PathBuf>),
    Pickle(Vec<PathBuf>),
}

/// The file names a model may store its weights under, best first; the hub
/// code fetches the first that exists.
pub const WEIGHT_CANDIDATES: &[&str] = &[
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

impl WeightFiles {
    pub fn find(dir: &Path) -> Result<Self> {
        for name in WEIGHT_CANDIDATES {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            let files = if name.ends_with(".index.json") {
                shard_files(&path)?
            } else {
                vec![path]
            };
            return Ok(if name.starts_with("model.safetensors") {
                WeightFiles::Safetensors(files)
            } else {
                WeightFiles::Pickle(files)
            });
        }
        Err(Error::invalid_model(format!(
            "no model weights in {}: expected one of {}",
            dir.display(),
            WEIGHT_CANDIDATES.join(", ")
        )))
    }

    /// Opens the weights as float32 tensors on the CPU (converting f16/bf16).
    /// Names are asked for with the family's base prefix (`bert.`...);
    /// checkpoints that store some or all of them without it still load.
    pub fn open(&self, base_prefix: &str) -> Result<VarBuilder<'static>> {
        let inner: Box<dyn SimpleBackend> = match self {
            WeightFiles::Safetensors(files) => {
                // SAFETY: the files are memory-mapped read-only; as with every
                // mmap-based loader, they must not change while loading. Every
                // tensor is copied out at load time and the map is dropped.
                let st = unsafe { MmapedSafetensors::multi(files) };
                Box::new(ReleasingSafetensors(
                    st.map_err(|e| weights_error(files, e))?,
                ))
            }
            WeightFiles::Pickle(files) => {
                let mut tensors = HashMap::new();
                for file in files {
                    let read = candle_core::pickle::read_all(file)
                        .map_err(|e| weights_error(std::slice::from_ref(file), e))?;
                    tensors.extend(read);
                }
                Box::new(tensors)
            }
        };
        let backend = BaseFallback {
            inner,
            base: format!("{base_prefix}."),
        };
        Ok(VarBuilder::from_backend(
            Box::new(backend),
            DType::F32,
            Device::Cpu,
        ))
    }
}

/// Memory-mapped safetensors whose pages go back to the system as soon as a
/// tensor has been copied out. Without this a load peaks at the checkpoint's
/// size on top of the model's own copy of it, both resident at once (for a
/// 0.6B-parameter float32 model: 2.4 GB more than it keeps).
struct ReleasingSafetensors(MmapedSafetensors);

impl ReleasingSafetensors {
    fn copied_out(&self, name: &str) {
        if let Ok(view) = self.0.get(name) {
            release_pages(view.data());
        }
    }
}

impl SimpleBackend for ReleasingSafetensors {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        hints: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = SimpleBackend::get(&self.0, shape, name, hints, dtype, dev)?;
        self.copied_out(name);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let tensor = self.0.get_unchecked(name, dtype, dev)?;
        self.copied_out(name);
        Ok(tensor)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

/// Drops the whole pages of `data` (part of a read-only file mapping) from
/// this process's memory; reading them again reads the file again.
#[cfg(target_os = "linux")]
fn release_pages(data: &[u8]) {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = data.as_ptr() as usize;
    let first = start.next_multiple_of(page);
    let last = (start + data.len()) / page * page;
    if last > first {
        // SAFETY: whole pages inside a read-only file mapping that stays mapped;
        // MADV_DONTNEED only drops them, their content is the file's either way.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_DONTNEED,
            )
        };
    }
}

#[cfg(not(target_os = "linux"))]
fn release_pages(_data: &[u8]) {}

/// Looks a tensor up under its full name, then without the base prefix.
struct BaseFallback {
    inner: Box<dyn SimpleBackend>,
    base: String,
}

impl BaseFallback {
    fn resolve<'n>(&self, name: &'n str) -> &'n str {
        match name.strip_prefix(&self.base) {
            Some(rest) if !self.inner.contains_tensor(name) && self.inner.contains_tensor(rest) => {
                rest
            }
            _ => name,
        }
    }
}

impl SimpleBackend for BaseFallback {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        hints: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.inner.get(shape, self.resolve(name), hints, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.inner.get_unchecked(self.resolve(name), dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(self.resolve(name))
    }
}

fn weights_error(files: &[PathBuf], e: candle_core::Error) -> Error {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Error::invalid_model(format!(
        "cannot read model weights from {}: {e} (is the file complete and not corrupted?)",
        names.join(", ")
    ))
}

/// The shard files an index names, in a stable order.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let dir = index.parent().unwrap_or(Path::new("."));
    index_shards(index)?
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::invalid_model(format!(
                    "{} names the shard {name}, which is missing",
                    index.display()
                )))
            }
        })
        .collect()
}

/// The shard names a `*.index.json` lists, each a plain relative name (for
/// the loader and for the hub code that fetches them).
pub fn index_shards(index: &Path) -> Result<Vec<String>> {
    let json = read_json(index)?.unwrap_or_default();
    let names = shard_names(&json);
    if names.is_empty() {
        return Err(Error::invalid_model(format!(
            "{} has no \"weight_map\" naming shard files",
            index.display()
        )));
    }
    if let Some(bad) = names.iter().find(|name| !is_plain_relative(name)) {
        return Err(Error::invalid_model(format!(
            "{} names the shard {bad:?}, which is not a file name inside the model directory",
            index.display()
        )));
    }
    Ok(names)
}

/// A relative path that stays below the directory it is joined to: no
/// root, drive or `..` (`.` and empty parts are refused too). Lexical, so a
/// cache's symlinked files still resolve.
pub fn is_plain_relative(name: &str) -> bool {
    use std::path::Component;
    !name.is_empty()
        && !name.contains('\\')
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Names the index file lists.
fn shard_names(index_json: &serde_json::Value) -> Vec<String> {
    let names: BTreeSet<String> = index_json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_name_outside_the_model_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let model = root.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(root.path().join("outside.safetensors"), b"not yours").unwrap();
        let index = model.join("model.safetensors.index.json");
        let map = r#"{"weight_map": {"a": "../outside.safetensors"}}"#;
        std::fs::write(&index, map).unwrap();
        let err = shard_files(&index).unwrap_err().to_string();
        assert!(err.contains("../outside.safetensors"), "{err}");
    }

    #[test]
    fn plain_relative_names() {
        for ok in ["model-00001-of-00002.safetensors", "sub/shard.safetensors"] {
            assert!(is_plain_relative(ok), "{ok}");
        }
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "./x", "a\\..\\x"] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }
}
