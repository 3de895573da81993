//! Parity with sentence-transformers: every fixture under tests/fixtures is
//! loaded from disk and compared with the logits and token ids that
//! sentence-transformers itself recorded (scripts/make_fixtures.py).

use std::path::{Path, PathBuf};

use crossrank::tokenizer::EncodedPair;
use crossrank::{CrossEncoder, LoadOptions};
use serde_json::Value;

/// Raw logits must agree within this, relative to max(1, |reference|).
const TOLERANCE: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture's model directory: committed ones, or ones a setup script
/// builds (tests/.generated, e.g. the real MiniLM weights).
fn model_dir(name: &str) -> Option<PathBuf> {
    let committed = fixtures().join("models").join(name);
    let generated = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/.generated")
        .join(name);
    [committed, generated]
        .into_iter()
        .find(|d| d.join("config.json").is_file())
}

fn references() -> Vec<Value> {
    let mut paths: Vec<_> = std::fs::read_dir(fixtures().join("reference"))
        .expect("tests/fixtures/reference")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

fn pairs(reference: &Value) -> Vec<(String, String)> {
    reference["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ids(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn check_fixture(reference: &Value, dir: &Path) -> Result<(), String> {
    let name = reference["model"].as_str().unwrap();
    let model = CrossEncoder::from_dir(dir, &LoadOptions::default())
        .map_err(|e| format!("{name}: load failed: {e}"))?;
    let want_labels = reference["num_labels"].as_u64().unwrap() as usize;
    let want_max = reference["max_length"].as_u64().unwrap() as usize;
    if model.num_labels() != want_labels || model.max_length() != want_max {
        return Err(format!(
            "{name}: num_labels {} / max_length {}, sentence-transformers says {want_labels} / {want_max}",
            model.num_labels(),
            model.max_length()
        ));
    }
    if has_chat_template(dir) {
        return check_recorded_ids(reference, &model);
    }
    let pairs = pairs(reference);
    let encoded = model
        .tokenizer()
        .encode_pairs(&pairs, None)
        .map_err(|e| e.to_string())?;
    let want_ids = ids(&reference["input_ids"]);
    // Families without token types (RoBERTa, DistilBERT) record null.
    let want_types =
        (!reference["token_type_ids"].is_null()).then(|| ids(&reference["token_type_ids"]));
    for (i, e) in encoded.iter().enumerate() {
        if e.ids != want_ids[i] {
            return Err(format!(
                "{name}: pair {i} {:?} token ids differ:\n got  {:?}\n want {:?}",
                pairs[i], e.ids, want_ids[i]
            ));
        }
        if want_types.as_ref().is_some_and(|t| e.type_ids != t[i]) {
            return Err(format!("{name}: pair {i} token type ids differ"));
        }
    }
    // Batch size 4 mixes lengths across batches and exercises reordering.
    let logits = model
        .predict_logits(&pairs, None, 4, &mut |_, _| true)
        .map_err(|e| format!("{name}: predict failed: {e}"))?;
    compare_logits(name, reference, &logits, pairs.len())
}

/// Models with a chat template are formatted in Python (jinja2, as
/// transformers renders it; tests/python/test_parity.py checks those ids):
/// here the ids sentence-transformers built go through the model.
fn check_recorded_ids(reference: &Value, model: &CrossEncoder) -> Result<(), String> {
    let name = reference["model"].as_str().unwrap();
    let encoded: Vec<EncodedPair> = ids(&reference["input_ids"])
        .into_iter()
        .map(|ids| EncodedPair {
            type_ids: vec![0; ids.len()],
            ids,
        })
        .collect();
    let logits = model
        .predict_encoded(&encoded, 4, &mut |_, _| true)
        .map_err(|e| format!("{name}: predict failed: {e}"))?;
    compare_logits(name, reference, &logits, encoded.len())
}

fn has_chat_template(dir: &Path) -> bool {
    let config = std::fs::read(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    dir.join("chat_template.jinja").is_file()
        || config.is_some_and(|c| c.get("chat_template").is_some_and(|t| !t.is_null()))
}

fn compare_logits(
    name: &str,
    reference: &Value,
    logits: &[f32],
    inputs: usize,
) -> Result<(), String> {
    let want: Vec<f64> = reference["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    assert_eq!(logits.len(), want.len());
    let worst = logits
        .iter()
        .zip(&want)
        .map(|(&g, &w)| (g as f64 - w).abs() / w.abs().max(1.0))
        .fold(0.0, f64::max);
    if worst > TOLERANCE {
        return Err(format!("{name}: logits differ by {worst:.3e} (relative)"));
    }
    eprintln!("{name}: {inputs} pairs, max relative error {worst:.2e}");
    Ok(())
}

/// Where a fixture's model is: committed, or assembled by a setup script
/// from weights that cannot be committed (`SOURCE.json` says how).
enum ModelSource {
    Ready(PathBuf),
    /// Not assembled here: the script that builds it has not run.
    NotAssembled,
    Missing,
}

fn model_source(name: &str) -> ModelSource {
    if let Some(dir) = model_dir(name) {
        return ModelSource::Ready(dir);
    }
    match fixtures()
        .join("models")
        .join(name)
        .join("SOURCE.json")
        .is_file()
    {
        true => ModelSource::NotAssembled,
        false => ModelSource::Missing,
    }
}

/// Every reference runs. A model that a setup script assembles is skipped
/// (loudly) only when `CROSSRANK_REQUIRE_ALL_FIXTURES` is unset: the test
/// command sets it, after running the script.
#[test]
fn every_fixture_matches_sentence_transformers() {
    let require_all = std::env::var_os("CROSSRANK_REQUIRE_ALL_FIXTURES").is_some();
    let mut failures = Vec::new();
    for reference in references() {
        let name = reference["model"].as_str().unwrap().to_string();
        let dir = match model_source(&name) {
            ModelSource::Ready(dir) => dir,
            ModelSource::NotAssembled if !require_all => {
                eprintln!(
                    "{name}: SKIPPED, not assembled here (scripts/build_minilm_fixture.py; \
                     see tests/fixtures/README.md)"
                );
                continue;
            }
            ModelSource::NotAssembled => {
                failures.push(format!(
                    "{name}: model not assembled (setup script not run)"
                ));
                continue;
            }
            ModelSource::Missing => {
                failures.push(format!("{name}: reference without a model directory"));
                continue;
            }
        };
        if let Err(e) = check_fixture(&reference, &dir) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
