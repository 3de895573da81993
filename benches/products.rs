//! Dense-layer products and attention alone, at MiniLM-L12-H384's shapes
//! for a batch of 4,096 tokens: `cargo bench --bench products`. Throughput is reported in
//! elements/s where one element is one floating-point operation, so
//! "Gelem/s" reads as GFLOP/s (float32-equivalent; int8 ops counted the
//! same). Every dense layer runs at float32 and int8. Run it again with
//! `CROSSRANK_ISA=avx512` (or avx2, scalar) to compare the paths.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossrank::ops::kernels::Activation;
use crossrank::ops::linear::Linear;
use crossrank::ops::{packed_attention, AttentionSpec, Precision};

const TOKENS: usize = 4096;

/// Deterministic values in [-0.5, 0.5): speed does not depend on them.
fn values(len: usize, step: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * step) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn bench(c: &mut Criterion) {
    // As in a predict call: large buffers are reused from iteration to
    // iteration (see `crossrank::alloc`).
    let _call = crossrank::alloc::CallScope::enter();
    let mut group = c.benchmark_group("products");
    group.sample_size(10);
    // (name, in, out, activation): QKV, attention output, FFN in, FFN out.
    let shapes = [
        ("qkv_384x1152", 384, 1152, Activation::Identity),
        ("attn_out_384x384", 384, 384, Activation::Identity),
        ("ffn_in_384x1536_gelu", 384, 1536, Activation::Gelu),
        ("ffn_out_1536x384", 1536, 384, Activation::Identity),
    ];
    for (name, k, n, act) in shapes {
        let weight = Tensor::from_vec(values(n * k, 7919), (n, k), &Device::Cpu).unwrap();
        let x = Tensor::from_vec(values(TOKENS * k, 104_729), (TOKENS, k), &Device::Cpu).unwrap();
        group.throughput(Throughput::Elements((2 * TOKENS * k * n) as u64));
        for precision in [Precision::Float32, Precision::Int8] {
            let layer = Linear::from_weight(&weight, Some(values(n, 31)))
                .unwrap()
                .with_precision(precision)
                .unwrap();
            group.bench_function(format!("{name}_{}", precision.name()), |b| {
                b.iter(|| layer.forward_activation(&x, act).unwrap())
            });
        }
    }
    // Attention of one layer (12 heads of 32) over the same 4,096 tokens, as
    // sequences of 128 (rerank-like) and of 512 (long passages).
    let qkv = Tensor::from_vec(values(TOKENS * 1152, 7), (TOKENS, 1152), &Device::Cpu).unwrap();
    let spec = AttentionSpec::new(12, 32);
    for len in [128, 512] {
        let bounds: Vec<usize> = (0..=TOKENS).step_by(len).collect();
        group.throughput(Throughput::Elements((4 * TOKENS * len * 384) as u64));
        group.bench_function(format!("attention_{}x{len}", TOKENS / len), |b| {
            b.iter(|| packed_attention(&qkv, &bounds, &spec).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
