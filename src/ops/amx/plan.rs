//! How a product is cut into parallel tasks.

use super::M_BLOCKS_PER_TASK;

/// One task's output blocks: a band of 32-row blocks by a range of
/// 32-column blocks.
pub(super) struct Task {
    pub(super) m_blocks: std::ops::Range<usize>,
    pub(super) n_blocks: std::ops::Range<usize>,
}

/// Splits the output into tasks: row bands first; few rows (one short
/// pair) are also split by columns so every core gets work.
pub(super) fn tasks(m_blocks: usize, n_blocks: usize) -> Vec<Task> {
    let threads = rayon::current_num_threads();
    let bands = m_blocks.div_ceil(M_BLOCKS_PER_TASK);
    let column_splits = if bands >= 2 * threads {
        1
    } else {
        (2 * threads)
            .div_ceil(bands.max(1))
            .clamp(1, n_blocks.max(1))
    };
    let cols_per = n_blocks.div_ceil(column_splits);
    let mut tasks = Vec::new();
    for band in 0..bands {
        let m = band_blocks(band, m_blocks);
        for start in (0..n_blocks).step_by(cols_per) {
            tasks.push(Task {
                m_blocks: m.clone(),
                n_blocks: start..(start + cols_per).min(n_blocks),
            });
        }
    }
    tasks
}

/// The m-blocks of row band `band`.
pub(super) fn band_blocks(band: usize, m_blocks: usize) -> std::ops::Range<usize> {
    band * M_BLOCKS_PER_TASK..((band + 1) * M_BLOCKS_PER_TASK).min(m_blocks)
}
