//! The portable int8 kernel: plain loops over the packed layout, the
//! reference the vector kernels are tested against (same int32 sums).

use super::{run_task, Activation, BlockSums, QuantizedWeight, Rows, PANEL, ROW_BLOCK};

/// One task's rows against every panel (see [`super::matmul_on`]).
pub fn run(
    rows: Rows<'_>,
    weight: &QuantizedWeight,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    run_task(block_sums, rows, weight, bias, act, out);
}

/// `sums[r][c] = Σ_k a[r][k] * w[c][k]` for one row block (`ROW_BLOCK`
/// rows of `2 * pairs` values) and one panel.
pub fn block_sums(a: &[i16], pairs: usize, panel: &[i8], sums: &mut BlockSums) {
    let width = 2 * pairs;
    for (r, row_sums) in sums.iter_mut().enumerate().take(ROW_BLOCK) {
        let row = &a[r * width..(r + 1) * width];
        *row_sums = [0; PANEL];
        for (p, w) in panel.chunks_exact(2 * PANEL).enumerate().take(pairs) {
            let (a0, a1) = (row[2 * p] as i32, row[2 * p + 1] as i32);
            for (c, s) in row_sums.iter_mut().enumerate() {
                *s += a0 * w[2 * c] as i32 + a1 * w[2 * c + 1] as i32;
            }
        }
    }
}
