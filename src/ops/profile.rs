//! A per-op time profile of the forward pass, switched on with the
//! environment variable `CROSSRANK_PROFILE=1` (off: one relaxed load per op).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Tokenize,
    Embeddings,
    Matmul,
    BiasActivation,
    Attention,
    ResidualNorm,
    Head,
    /// Parts of attention, summed over worker threads (CPU time, not wall).
    AttentionScores,
    AttentionSoftmax,
    AttentionValues,
}

const OPS: [Op; 10] = [
    Op::Tokenize,
    Op::Embeddings,
    Op::Matmul,
    Op::BiasActivation,
    Op::Attention,
    Op::ResidualNorm,
    Op::Head,
    Op::AttentionScores,
    Op::AttentionSoftmax,
    Op::AttentionValues,
];

static TOTALS: [AtomicU64; OPS.len()] = [const { AtomicU64::new(0) }; OPS.len()];

fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("CROSSRANK_PROFILE").is_ok_and(|v| v != "0"))
}

/// Runs `f`, adding its wall time to `op`'s total when profiling is on.
#[inline]
pub fn time<R>(op: Op, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let start = Instant::now();
    let out = f();
    TOTALS[op as usize].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

/// The totals so far, per op, in seconds; and resets them.
pub fn take_report() -> Vec<(String, f64)> {
    OPS.iter()
        .map(|&op| {
            let ns = TOTALS[op as usize].swap(0, Ordering::Relaxed);
            (format!("{op:?}"), ns as f64 * 1e-9)
        })
        .collect()
}
