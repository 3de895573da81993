//! Activations split into bf16 parts, `x = hi + mid + lo`, in the tile
//! layout the kernel loads; each task splits its own rows.

use super::lines::Lines;
use super::{K_BLOCK, PARTS, TILE_ELEMS, TILE_ROWS};

/// A task's rows of the activations, split into bf16 parts and laid out as
/// the tiles the kernel loads, `[row block of 16][k-block][part][tile]`.
/// Rows past the end and columns past `k` are zeros. Split per task, into a
/// buffer each worker thread keeps, so that it is hot in L2 and never paged
/// in afresh.
pub(super) struct SplitBand<'a> {
    pub(super) data: &'a [u16],
    pub(super) first_row: usize,
    pub(super) k_blocks: usize,
}

thread_local! {
    /// The feed-forward intermediate of one band, split (see `feed_forward`).
    pub(super) static INNER_BUFFER: std::cell::RefCell<Lines> = const { std::cell::RefCell::new(Lines::empty()) };
    pub(super) static BAND_BUFFER: std::cell::RefCell<BandBuffer> = const {
        std::cell::RefCell::new(BandBuffer { lines: Lines::empty(), holds: None })
    };
}

/// A worker thread's split activations, and which they are: the rows
/// starting at `.1` of product `.0`. A product with few rows is split by
/// columns into several tasks per band; those that run on the same thread
/// split the band once.
pub(super) struct BandBuffer {
    lines: Lines,
    holds: Option<(u64, usize)>,
}

/// A number no other product call shares.
pub(super) fn next_product_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl<'a> SplitBand<'a> {
    /// Splits `rows` of `x` (`k` wide) into `buffer`, grown as needed,
    /// unless it already holds them for the same `product`.
    pub(super) fn fill(
        buffer: &'a mut BandBuffer,
        x: &[f32],
        k: usize,
        rows: std::ops::Range<usize>,
        k_blocks: usize,
        product: Option<u64>,
    ) -> Self {
        let wanted = product.map(|id| (id, rows.start));
        let data = buffer.lines.prefix_mut(Self::len(rows.len(), k_blocks));
        if wanted.is_none() || buffer.holds != wanted {
            split_rows(data, x, k, rows.clone(), k_blocks);
        }
        buffer.holds = wanted;
        Self {
            data,
            first_row: rows.start,
            k_blocks,
        }
    }

    /// Elements of a band of `rows` rows.
    pub(super) fn len(rows: usize, k_blocks: usize) -> usize {
        rows.div_ceil(TILE_ROWS) * k_blocks * PARTS * TILE_ELEMS
    }

    /// Where the tile row of band row `row` (counted from the band's
    /// first), part `part`, k-block `kb` starts.
    pub(super) fn offset(row: usize, part: usize, kb: usize, k_blocks: usize) -> usize {
        ((row / TILE_ROWS * k_blocks + kb) * PARTS + part) * TILE_ELEMS + row % TILE_ROWS * K_BLOCK
    }

    pub(super) fn tile(&self, row: usize, part: usize, kb: usize) -> *const u16 {
        let offset = Self::offset(row - self.first_row, part, kb, self.k_blocks);
        self.data[offset..].as_ptr()
    }
}

crate::ops::simd::vectorized! {
    /// Splits `rows` of `x` (`k` wide) into `data`, laid out as in
    /// [`SplitBand`] with `rows.start` as its first row. Vectorised as a
    /// whole: one dispatch per band, the per-tile-row split inlined.
    fn split_rows(
        data: &mut [u16],
        x: &[f32],
        k: usize,
        rows: std::ops::Range<usize>,
        k_blocks: usize,
    ) {
        let present = x.len() / k;
        for (r, row) in rows.clone().enumerate() {
            let src = if row < present {
                &x[row * k..(row + 1) * k]
            } else {
                &[]
            };
            for kb in 0..k_blocks {
                let chunk = src.get(kb * K_BLOCK..).unwrap_or(&[]);
                let values: [f32; K_BLOCK] = match chunk.get(..K_BLOCK) {
                    // A fixed-size copy stays in registers (no memcpy call).
                    Some(full) => full.try_into().unwrap(),
                    None => {
                        let mut v = [0f32; K_BLOCK];
                        v[..chunk.len()].copy_from_slice(chunk);
                        v
                    }
                };
                let at = |p: usize| SplitBand::offset(r, p, kb, k_blocks);
                let (hi, rest) = data.split_at_mut(at(1));
                let (mid, lo) = rest.split_at_mut(at(2) - at(1));
                split_row(
                    &values,
                    (&mut hi[at(0)..at(0) + K_BLOCK]).try_into().unwrap(),
                    (&mut mid[..K_BLOCK]).try_into().unwrap(),
                    (&mut lo[..K_BLOCK]).try_into().unwrap(),
                );
            }
        }
    }
}

/// One tile row of activations split into its three parts (inlined into
/// vectorised callers).
#[inline(always)]
pub(super) fn split_row(
    src: &[f32; K_BLOCK],
    hi: &mut [u16; K_BLOCK],
    mid: &mut [u16; K_BLOCK],
    lo: &mut [u16; K_BLOCK],
) {
    for i in 0..K_BLOCK {
        [hi[i], mid[i], lo[i]] = split(src[i]);
    }
}

/// `x = hi + mid + lo` exactly, each rounded to nearest bf16 in turn.
#[inline(always)]
pub(super) fn split(x: f32) -> [u16; 3] {
    let hi = round_to_bf16(x);
    let rest = x - bf16_to_f32(hi);
    let mid = round_to_bf16(rest);
    let lo = round_to_bf16(rest - bf16_to_f32(mid));
    [hi, mid, lo]
}

#[inline(always)]
fn round_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1));
    (rounded >> 16) as u16
}

#[inline(always)]
pub(super) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}
