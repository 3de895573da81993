//! Forward-pass benchmark on the exact shape of
//! cross-encoder/ms-marco-MiniLM-L12-v2 (12 layers, hidden 384, 12 heads,
//! intermediate 1536, vocab 30522) with random weights: speed does not
//! depend on the values. `CROSSRANK_PROFILE=1` prints a per-op profile;
//! `CROSSRANK_BENCH_PRECISIONS=int8` (comma-separated) picks the
//! precisions (default: float32 and int8).
//!
//!     cargo bench --bench forward

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossrank::ops::Precision;
use crossrank::{CrossEncoder, LoadOptions};

const VOCAB: usize = 30522;
const HIDDEN: usize = 384;
const LAYERS: usize = 12;
const INTERMEDIATE: usize = 1536;

/// Writes a random-weight BERT cross-encoder with a word-level vocabulary
/// (`w0`, `w1`, ...: one token per word) into `dir`.
fn write_model(dir: &Path) {
    let dev = Device::Cpu;
    let randn = |shape: &[usize]| Tensor::randn(0f32, 0.05, shape, &dev).unwrap();
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: String, shape: &[usize]| {
        t.insert(name, randn(shape));
    };
    put(
        "bert.embeddings.word_embeddings.weight".into(),
        &[VOCAB, HIDDEN],
    );
    put(
        "bert.embeddings.position_embeddings.weight".into(),
        &[512, HIDDEN],
    );
    put(
        "bert.embeddings.token_type_embeddings.weight".into(),
        &[2, HIDDEN],
    );
    let norm = |p: &str, t: &mut HashMap<String, Tensor>| {
        t.insert(
            format!("{p}.weight"),
            Tensor::ones(HIDDEN, candle_core::DType::F32, &dev).unwrap(),
        );
        t.insert(
            format!("{p}.bias"),
            Tensor::zeros(HIDDEN, candle_core::DType::F32, &dev).unwrap(),
        );
    };
    for l in 0..LAYERS {
        let p = format!("bert.encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", HIDDEN, HIDDEN),
            ("attention.self.key", HIDDEN, HIDDEN),
            ("attention.self.value", HIDDEN, HIDDEN),
            ("attention.output.dense", HIDDEN, HIDDEN),
            ("intermediate.dense", INTERMEDIATE, HIDDEN),
            ("output.dense", HIDDEN, INTERMEDIATE),
        ] {
            put(format!("{p}.{name}.weight"), &[out, inp]);
            put(format!("{p}.{name}.bias"), &[out]);
        }
    }
    put("bert.pooler.dense.weight".into(), &[HIDDEN, HIDDEN]);
    put("bert.pooler.dense.bias".into(), &[HIDDEN]);
    put("classifier.weight".into(), &[1, HIDDEN]);
    put("classifier.bias".into(), &[1]);
    norm("bert.embeddings.LayerNorm", &mut t);
    for l in 0..LAYERS {
        norm(
            &format!("bert.encoder.layer.{l}.attention.output.LayerNorm"),
            &mut t,
        );
        norm(&format!("bert.encoder.layer.{l}.output.LayerNorm"), &mut t);
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "model_type": "bert", "architectures": ["BertForSequenceClassification"],
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": 12,
        "intermediate_size": INTERMEDIATE, "hidden_act": "gelu", "vocab_size": VOCAB,
        "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "id2label": {"0": "LABEL_0"},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut vocab = String::from("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for i in 5..VOCAB {
        vocab.push_str(&format!("w{i}\n"));
    }
    std::fs::write(dir.join("vocab.txt"), vocab).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"do_lower_case": true, "model_max_length": 512}"#,
    )
    .unwrap();
}

/// A pair of `q` and `d` words (tokens), deterministic.
fn pair(seed: usize, q: usize, d: usize) -> (String, String) {
    let words = |n: usize, off: usize| {
        (0..n)
            .map(|i| format!("w{}", 5 + (seed * 7919 + off + i * 104_729) % (VOCAB - 5)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    (words(q, 1), words(d, 2))
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let precisions =
        std::env::var("CROSSRANK_BENCH_PRECISIONS").unwrap_or_else(|_| "float32,int8".into());
    // Rerank-like: 32 pairs of ~117 tokens (8-token query, 80-160-token passages).
    let rerank: Vec<_> = (0..32).map(|i| pair(i, 8, 80 + (i * 37) % 81)).collect();
    // Mixed: half short, half long, shuffled by construction.
    let mixed: Vec<_> = (0..32)
        .map(|i| {
            if i % 2 == 0 {
                pair(i, 6, 12)
            } else {
                pair(i, 10, 300 + (i * 13) % 200)
            }
        })
        .collect();
    for precision in precisions.split(',') {
        let options = LoadOptions {
            precision: Precision::from_name(precision.trim()).unwrap(),
            ..LoadOptions::default()
        };
        let model = CrossEncoder::from_dir(dir.path(), &options).unwrap();
        let mut group = c.benchmark_group(format!("forward_{precision}"));
        group.sample_size(10);
        for (name, pairs) in [("rerank_32x117", &rerank), ("mixed_32", &mixed)] {
            group.throughput(Throughput::Elements(pairs.len() as u64));
            group.bench_function(name, |b| {
                b.iter(|| {
                    model
                        .predict_logits(pairs, None, 32, &mut |_, _| true)
                        .unwrap()
                })
            });
        }
        group.bench_function("single_pair", |b| {
            b.iter(|| {
                model
                    .predict_logits(&rerank[..1], None, 32, &mut |_, _| true)
                    .unwrap()
            })
        });
        group.finish();
    }
    let profile = crossrank::ops::profile::take_report();
    if profile.iter().any(|(_, s)| *s > 0.0) {
        let total: f64 = profile.iter().map(|(_, s)| s).sum();
        eprintln!("per-op profile (all runs):");
        for (op, s) in profile {
            eprintln!("  {op:<15} {s:8.3} s  {:5.1}%", 100.0 * s / total);
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
