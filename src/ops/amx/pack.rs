//! Weights split into bf16 parts and laid out in tile order, once, at load.

use rayon::prelude::*;

use super::lines::Lines;
use super::split::{bf16_to_f32, split};
use super::{K_BLOCK, N_BLOCK, PARTS, TILE_ELEMS, TILE_ROWS};

/// A weight `[out, in]` split into bf16 parts, laid out as the tiles that
/// the kernel loads: `[column block of 16][k-block][part][tile]`, each tile
/// 16 k-pairs by 16 columns with the two k of a pair adjacent.
pub struct PackedWeight {
    tiles: Lines,
    pub(super) out_features: usize,
    pub(super) in_features: usize,
    pub(super) k_blocks: usize,
}

impl PackedWeight {
    pub fn new(weight: &[f32], out_features: usize, in_features: usize) -> Self {
        let k_blocks = in_features.div_ceil(K_BLOCK);
        let block_len = k_blocks * PARTS * TILE_ELEMS;
        let column_blocks = out_features.next_multiple_of(N_BLOCK) / TILE_ROWS;
        let mut lines = Lines::zeroed(column_blocks * block_len);
        // One column block (16 output rows of the weight) per task.
        lines
            .as_mut_slice()
            .par_chunks_mut(block_len)
            .zip(weight.par_chunks(in_features * TILE_ROWS))
            .for_each(|(tiles, rows)| {
                for (col, row) in rows.chunks_exact(in_features).enumerate() {
                    for (k, &x) in row.iter().enumerate() {
                        for (p, part) in split(x).into_iter().enumerate() {
                            tiles[element_in_column_block(col, k, p)] = part;
                        }
                    }
                }
            });
        Self {
            tiles: lines,
            out_features,
            in_features,
            k_blocks,
        }
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The exact float32 weight `[out, in]` back (the parts sum to it).
    pub fn to_f32(&self) -> Vec<f32> {
        let block_len = self.k_blocks * PARTS * TILE_ELEMS;
        let tiles = self.tiles.as_slice();
        let mut weight = vec![0f32; self.out_features * self.in_features];
        for (n, row) in weight.chunks_exact_mut(self.in_features).enumerate() {
            let block = &tiles[n / TILE_ROWS * block_len..];
            for (k, x) in row.iter_mut().enumerate() {
                // Smallest part first: the sum is exact either way.
                *x = (0..PARTS).rev().fold(0.0, |acc, p| {
                    acc + bf16_to_f32(block[element_in_column_block(n % TILE_ROWS, k, p)])
                });
            }
        }
        weight
    }

    /// Blocks of 32 output columns, padding included.
    pub(super) fn n_blocks(&self) -> usize {
        self.out_features.div_ceil(N_BLOCK)
    }

    pub(super) fn tile(&self, column_block: usize, part: usize, kb: usize) -> *const u16 {
        let tile = (column_block * self.k_blocks + kb) * PARTS + part;
        self.tiles.as_slice()[tile * TILE_ELEMS..].as_ptr()
    }
}

/// Where part `part` of weight element (`col` within its block of 16, `k`)
/// lies within its column block's tiles.
fn element_in_column_block(col: usize, k: usize, part: usize) -> usize {
    let (kb, pair, odd) = (k / K_BLOCK, (k % K_BLOCK) / 2, k % 2);
    (kb * PARTS + part) * TILE_ELEMS + pair * 2 * TILE_ROWS + col * 2 + odd
}
