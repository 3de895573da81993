//! Float32 matrix products on Intel AMX tiles (Sapphire Rapids and later).
//!
//! The tile unit multiplies bfloat16 and accumulates in float32, about
//! sixteen times the AVX-512 float32 rate. Float32 accuracy is kept by
//! splitting every f32 into three bf16 parts, `x = hi + mid + lo` exactly,
//! and summing the six part products down to order 2^-24 (`hi*hi`,
//! `hi*mid`, `mid*hi`, `hi*lo`, `mid*mid`, `lo*hi`); the three dropped ones
//! are below float32's own rounding. Weights are split and laid out in tile
//! order once, at load time; activations are split by each task, into a
//! buffer its thread keeps.
//!
//! Used only where the CPU has AMX and Linux grants the process the tile
//! state; `CROSSRANK_AMX=0` turns it off.

use std::arch::asm;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::kernels::{add_bias_and_activate, Activation};
use super::{assume_init, unwritten};

/// Tile geometry: 16 rows of 64 bytes; a k-block is 32 bf16 values.
const TILE_ROWS: usize = 16;
const K_BLOCK: usize = 32;
const TILE_BYTES: usize = 1024;
const TILE_ELEMS: usize = TILE_BYTES / 2;
/// The micro-kernel computes 32x32 outputs in four accumulator tiles.
const M_BLOCK: usize = 32;
const N_BLOCK: usize = 32;
/// Rows per parallel task: the task's split activations stay in L2.
const M_BLOCKS_PER_TASK: usize = 4;
const PARTS: usize = 3;
/// Narrower layers (classifier heads) stay on the float32 path: padding
/// them to a 32-column block would waste the tiles.
pub const MIN_OUT_FEATURES: usize = 32;

/// The six part products `(a, b)` whose orders sum to at most 2, in an
/// order where each step changes one side: 14 tile loads per k-block
/// instead of 18.
const PRODUCTS: [(usize, usize); 6] = [(2, 0), (1, 0), (1, 1), (0, 1), (0, 0), (0, 2)];

/// bf16 values in 64-byte lines: tile rows must not straddle cache lines.
struct Lines(Vec<Line>);

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 32]);

impl Lines {
    fn zeroed(elems: usize) -> Self {
        // Weights and band buffers live long and are streamed over and over.
        Self(crate::alloc::long_lived(|| {
            vec![Line([0; 32]); elems.div_ceil(32)]
        }))
    }

    fn as_slice(&self) -> &[u16] {
        // SAFETY: `Line` is 32 u16 with no padding (64 bytes, align 64).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len() * 32) }
    }

    /// The first `len` elements, the buffer grown (zeroed) first if it is
    /// shorter: per-thread buffers reused from call to call.
    fn prefix_mut(&mut self, len: usize) -> &mut [u16] {
        if self.0.len() * 32 < len {
            *self = Lines::zeroed(len);
        }
        &mut self.as_mut_slice()[..len]
    }

    fn as_mut_slice(&mut self) -> &mut [u16] {
        // SAFETY: as in `as_slice`.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), self.0.len() * 32) }
    }
}

/// Whether this process uses AMX, decided once: the CPU has it, the OS
/// grants the tile state, and neither `CROSSRANK_ISA` (below `amx`) nor
/// `CROSSRANK_AMX=0` turns it off.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::env::var("CROSSRANK_AMX").map_or(true, |v| v != "0")
            && super::simd::isa_cap() == super::simd::Isa::Amx
            && cpu_and_os_allow()
    })
}

/// Whether the CPU has AMX-BF16 (with AVX-512 for the write-back) and the
/// OS grants the tile state, whatever the switches say.
pub fn cpu_and_os_allow() -> bool {
    static ALLOW: OnceLock<bool> = OnceLock::new();
    *ALLOW.get_or_init(|| {
        cpu_has_amx_bf16()
            && super::simd::cpu_level() == super::simd::Level::Avx512
            && request_tile_state()
    })
}

fn cpu_has_amx_bf16() -> bool {
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let amx_bf16 = leaf7.edx & (1 << 22) != 0;
    let amx_tile = leaf7.edx & (1 << 24) != 0;
    amx_bf16 && amx_tile
}

/// Linux hands out the 8 KiB tile state only on request (since 5.16).
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain syscall with integer arguments.
    let status = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    status == 0
}

/// A weight `[out, in]` split into bf16 parts, laid out as the tiles that
/// the kernel loads: `[column block of 16][k-block][part][tile]`, each tile
/// 16 k-pairs by 16 columns with the two k of a pair adjacent.
pub struct PackedWeight {
    tiles: Lines,
    out_features: usize,
    in_features: usize,
    k_blocks: usize,
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
    fn n_blocks(&self) -> usize {
        self.out_features.div_ceil(N_BLOCK)
    }

    fn tile(&self, column_block: usize, part: usize, kb: usize) -> *const u16 {
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

/// `act(x @ W^T + bias)` for `x` of `rows x in_features`, returned
/// `rows x out_features`. The bias and activation are applied to each block
/// while it is in L1, saving a pass over the result.
pub fn matmul(
    x: &[f32],
    rows: usize,
    w: &PackedWeight,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    assert_eq!(x.len(), rows * w.in_features, "activation shape");
    let mut out = unwritten(rows * w.out_features);
    let target = Output::whole(&mut out, rows, w.out_features, bias, act);
    let m_blocks = rows.div_ceil(M_BLOCK);
    let product = Some(next_product_id());
    tasks(m_blocks, w.n_blocks()).par_iter().for_each(|task| {
        let band_rows = task.m_blocks.start * M_BLOCK..task.m_blocks.end * M_BLOCK;
        BAND_BUFFER.with_borrow_mut(|buffer| {
            let band = SplitBand::fill(buffer, x, w.in_features, band_rows, w.k_blocks, product);
            // SAFETY: tasks own disjoint output blocks; every tile read lies
            // inside `band` and `w` (both padded).
            with_tiles(|| unsafe { band_product(&band, w, task, &target) });
        });
    });
    // SAFETY: the tasks wrote every element.
    unsafe { assume_init(out) }
}

/// `act(x @ W1^T + b1) @ W2^T`, a feed-forward block without its last bias,
/// one band of rows per task: the wide intermediate lives only in that
/// task's thread (in L2), never in memory. Few rows go through two
/// separate products instead, which spread over more cores.
pub fn feed_forward(
    x: &[f32],
    rows: usize,
    w1: &PackedWeight,
    b1: Option<&[f32]>,
    act: Activation,
    w2: &PackedWeight,
) -> Vec<f32> {
    assert_eq!(w1.out_features, w2.in_features, "feed-forward shapes");
    let m_blocks = rows.div_ceil(M_BLOCK);
    let bands = m_blocks.div_ceil(M_BLOCKS_PER_TASK);
    if bands < 2 * rayon::current_num_threads() {
        let inner = matmul(x, rows, w1, b1, act);
        return matmul(&inner, rows, w2, None, Activation::Identity);
    }
    let mut out = unwritten(rows * w2.out_features);
    let target = Output::whole(&mut out, rows, w2.out_features, None, Activation::Identity);
    (0..bands).into_par_iter().for_each(|band| {
        let m = band_blocks(band, m_blocks);
        let band_rows = m.start * M_BLOCK..m.end * M_BLOCK;
        let (first, end) = (band_rows.start, band_rows.end.min(rows));
        BAND_BUFFER.with_borrow_mut(|split| {
            INNER_BUFFER.with_borrow_mut(|inner| {
                let inner = inner.prefix_mut(SplitBand::len(band_rows.len(), w2.k_blocks));
                let inner_out = Output {
                    dst: Destination::Parts {
                        tiles: inner.as_mut_ptr(),
                        k_blocks: w2.k_blocks,
                    },
                    first_row: first,
                    rows: end,
                    cols: w1.out_features,
                    bias: b1,
                    act,
                };
                let a = SplitBand::fill(
                    split,
                    x,
                    w1.in_features,
                    band_rows.clone(),
                    w1.k_blocks,
                    None,
                );
                let first_task = Task {
                    m_blocks: m.clone(),
                    n_blocks: 0..w1.n_blocks(),
                };
                // SAFETY: as in `matmul`; `inner` holds exactly this band's
                // tiles, and its k-blocks are `w1`'s column blocks.
                with_tiles(|| unsafe { band_product(&a, w1, &first_task, &inner_out) });
                let a = SplitBand {
                    data: inner,
                    first_row: first,
                    k_blocks: w2.k_blocks,
                };
                let second_task = Task {
                    m_blocks: m,
                    n_blocks: 0..w2.n_blocks(),
                };
                with_tiles(|| unsafe { band_product(&a, w2, &second_task, &target) });
            });
        });
    });
    // SAFETY: the bands cover every row, each band every column.
    unsafe { assume_init(out) }
}

/// Where a task writes its `rows x cols` result, and what is applied on
/// the way.
struct Output<'a> {
    dst: Destination,
    /// The result's row that `dst` starts at.
    first_row: usize,
    /// The end of the rows that exist (not padding).
    rows: usize,
    cols: usize,
    bias: Option<&'a [f32]>,
    act: Activation,
}

enum Destination {
    /// Row-major float32.
    Rows(*mut MaybeUninit<f32>),
    /// Split into bf16 parts in [`SplitBand`]'s layout, as the activations
    /// of a following product whose k-blocks are this result's column
    /// blocks (`K_BLOCK == N_BLOCK`). Padding rows and columns are written
    /// too (finite, zero past `cols`) since that product reads them.
    Parts { tiles: *mut u16, k_blocks: usize },
}

impl<'a> Output<'a> {
    /// The whole `rows x cols` result in `buffer`.
    fn whole(
        buffer: &mut [MaybeUninit<f32>],
        rows: usize,
        cols: usize,
        bias: Option<&'a [f32]>,
        act: Activation,
    ) -> Self {
        Self {
            dst: Destination::Rows(buffer.as_mut_ptr()),
            first_row: 0,
            rows,
            cols,
            bias,
            act,
        }
    }

    /// Asks for the lines of the block at (`row`, `col`) in L1, writable,
    /// ahead of its write-back: the stores then do not wait for the lines.
    fn prefetch_block(&self, row: usize, col: usize) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
        let Destination::Rows(ptr) = self.dst else {
            return;
        };
        let cols = N_BLOCK.min(self.cols - col);
        for r in row..(row + M_BLOCK).min(self.rows) {
            let at = (r - self.first_row) * self.cols + col;
            // Prefetches never fault; `wrapping_add` keeps the pointer
            // arithmetic defined whatever the offset.
            let line = ptr.wrapping_add(at).cast::<i8>();
            unsafe {
                _mm_prefetch::<_MM_HINT_ET0>(line);
                _mm_prefetch::<_MM_HINT_ET0>(line.wrapping_add(4 * cols - 1));
            }
        }
    }
}

// SAFETY: tasks write disjoint blocks (see `matmul`).
unsafe impl Sync for Output<'_> {}

struct Task {
    m_blocks: std::ops::Range<usize>,
    n_blocks: std::ops::Range<usize>,
}

/// Splits the output into tasks: row bands first; few rows (one short
/// pair) are also split by columns so every core gets work.
fn tasks(m_blocks: usize, n_blocks: usize) -> Vec<Task> {
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
fn band_blocks(band: usize, m_blocks: usize) -> std::ops::Range<usize> {
    band * M_BLOCKS_PER_TASK..((band + 1) * M_BLOCKS_PER_TASK).min(m_blocks)
}

/// A task's rows of the activations, split into bf16 parts and laid out as
/// the tiles the kernel loads, `[row block of 16][k-block][part][tile]`.
/// Rows past the end and columns past `k` are zeros. Split per task, into a
/// buffer each worker thread keeps, so that it is hot in L2 and never paged
/// in afresh.
struct SplitBand<'a> {
    data: &'a [u16],
    first_row: usize,
    k_blocks: usize,
}

thread_local! {
    /// The feed-forward intermediate of one band, split (see `feed_forward`).
    static INNER_BUFFER: std::cell::RefCell<Lines> = const { std::cell::RefCell::new(Lines(Vec::new())) };
    static BAND_BUFFER: std::cell::RefCell<BandBuffer> = const {
        std::cell::RefCell::new(BandBuffer { lines: Lines(Vec::new()), holds: None })
    };
}

/// A worker thread's split activations, and which they are: the rows
/// starting at `.1` of product `.0`. A product with few rows is split by
/// columns into several tasks per band; those that run on the same thread
/// split the band once.
struct BandBuffer {
    lines: Lines,
    holds: Option<(u64, usize)>,
}

/// A number no other product call shares.
fn next_product_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl<'a> SplitBand<'a> {
    /// Splits `rows` of `x` (`k` wide) into `buffer`, grown as needed,
    /// unless it already holds them for the same `product`.
    fn fill(
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
    fn len(rows: usize, k_blocks: usize) -> usize {
        rows.div_ceil(TILE_ROWS) * k_blocks * PARTS * TILE_ELEMS
    }

    /// Where the tile row of band row `row` (counted from the band's
    /// first), part `part`, k-block `kb` starts.
    fn offset(row: usize, part: usize, kb: usize, k_blocks: usize) -> usize {
        ((row / TILE_ROWS * k_blocks + kb) * PARTS + part) * TILE_ELEMS + row % TILE_ROWS * K_BLOCK
    }

    fn tile(&self, row: usize, part: usize, kb: usize) -> *const u16 {
        let offset = Self::offset(row - self.first_row, part, kb, self.k_blocks);
        self.data[offset..].as_ptr()
    }
}

super::simd::vectorized! {
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

/// Writes rows `part` of a finished block at (`row`, `col`) from `block` to
/// `out`, bias and activation applied on the way. Inlined into
/// `band_product`, which is compiled for AVX-512.
#[inline(always)]
fn write_block(
    block: &mut Block,
    out: &Output,
    row: usize,
    col: usize,
    part: std::ops::Range<usize>,
) {
    let cols = N_BLOCK.min(out.cols - col);
    let bias = out.bias.map(|b| &b[col..col + cols]);
    let rows = match out.dst {
        Destination::Rows(_) => M_BLOCK.min(out.rows - row),
        Destination::Parts { .. } => M_BLOCK,
    };
    for r in part.start..part.end.min(rows) {
        let values: &mut [f32; N_BLOCK] = (&mut block.0[r * N_BLOCK..(r + 1) * N_BLOCK])
            .try_into()
            .unwrap();
        add_bias_and_activate(out.act, values, bias);
        let at = row + r - out.first_row;
        // SAFETY: `out` holds rows `first_row..rows` of `cols` columns
        // (as parts: of every row of the band), and the task owns this
        // block.
        unsafe {
            match out.dst {
                Destination::Rows(ptr) => {
                    let dst = ptr.add(at * out.cols + col).cast::<f32>();
                    if cols == N_BLOCK {
                        // A fixed-size copy stays two vector stores.
                        dst.cast::<[f32; N_BLOCK]>().write_unaligned(*values);
                    } else {
                        std::ptr::copy_nonoverlapping(values.as_ptr(), dst, cols);
                    }
                }
                Destination::Parts { tiles, k_blocks } => {
                    values[cols..].fill(0.0);
                    let tile = |p: usize| {
                        let offset = SplitBand::offset(at, p, col / K_BLOCK, k_blocks);
                        &mut *tiles.add(offset).cast::<[u16; K_BLOCK]>()
                    };
                    split_row(values, tile(0), tile(1), tile(2));
                }
            }
        }
    }
}

/// One tile row of activations split into its three parts (inlined into
/// vectorised callers).
#[inline(always)]
fn split_row(
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
fn split(x: f32) -> [u16; 3] {
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
fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Configures the tiles on this thread for `f` and releases them after, so
/// that context switches do not carry 8 KiB of tile state.
fn with_tiles(f: impl FnOnce()) {
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }
    let mut config = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
    };
    for t in 0..8 {
        config.colsb[t] = 64;
        config.rows[t] = TILE_ROWS as u8;
    }
    // SAFETY: the process was granted tile state (`available`), the config
    // is valid for palette 1, and tiles are released before returning.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly));
    }
    f();
    unsafe {
        asm!("tilerelease", options(nostack, nomem));
    }
}

macro_rules! tile_load {
    ($tile:literal, $ptr:expr, $stride:expr) => {
        asm!(
            concat!("tileloadd tmm", $tile, ", [{ptr} + {stride}*1]"),
            ptr = in(reg) $ptr,
            stride = in(reg) $stride,
            options(nostack, readonly)
        )
    };
}

macro_rules! tile_store {
    ($tile:literal, $ptr:expr, $stride:expr) => {
        asm!(
            concat!("tilestored [{ptr} + {stride}*1], tmm", $tile),
            ptr = in(reg) $ptr,
            stride = in(reg) $stride,
            options(nostack)
        )
    };
}

/// The products of one task's row band and column range, one 32x32 block
/// at a time over the whole of K: the sums stay in the tiles, so the tile
/// unit drains once per block. Each block's write-back (bias, activation,
/// store to `out`) runs while the tile unit works on the next block, a few
/// rows after each k-block: small enough pieces that the out-of-order
/// window holds them together with the queued tile work.
///
/// Compiled for AVX-512 (every CPU with AMX has it; `available` checks),
/// so the inlined write-back needs no dispatch per call.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
unsafe fn band_product(a: &SplitBand, w: &PackedWeight, task: &Task, out: &Output) {
    let mut scratch = [const { Block([0.0; M_BLOCK * N_BLOCK]) }; 2];
    let scratch = scratch.as_mut_ptr();
    let rows_per_step = M_BLOCK.div_ceil(w.k_blocks);
    // The finished block waiting for its write-back: (sums, row, column).
    let mut pending: Option<(*mut Block, usize, usize)> = None;
    let blocks = task
        .n_blocks
        .clone()
        .flat_map(|nb| task.m_blocks.clone().map(move |mb| (mb, nb)));
    for (i, (mb, nb)) in blocks.enumerate() {
        // Alternate scratch blocks: the other one holds `pending`.
        let sum = scratch.add(i % 2);
        let write_finished = |kb: usize| {
            if kb == 0 {
                out.prefetch_block(mb * M_BLOCK, nb * N_BLOCK);
            }
            let first = kb * rows_per_step;
            if let Some((finished, row, col)) = pending.filter(|_| first < M_BLOCK) {
                write_block(&mut *finished, out, row, col, first..first + rows_per_step);
            }
        };
        block_product(a, w, mb, nb, sum, write_finished);
        pending = Some((sum, mb * M_BLOCK, nb * N_BLOCK));
    }
    if let Some((finished, row, col)) = pending {
        write_block(&mut *finished, out, row, col, 0..M_BLOCK);
    }
}

/// One 32x32 block of results, aligned for tile stores.
#[repr(C, align(64))]
struct Block([f32; M_BLOCK * N_BLOCK]);

/// One 32x32 output block over all of K, stored into `sum`: accumulators
/// tmm0..3, activations tmm4..5, weights tmm6..7. `meanwhile(kb)` runs
/// once k-block `kb`'s products are queued, overlapping them.
#[inline(always)]
unsafe fn block_product(
    a: &SplitBand,
    w: &PackedWeight,
    mb: usize,
    nb: usize,
    sum: *mut Block,
    mut meanwhile: impl FnMut(usize),
) {
    let row = mb * M_BLOCK;
    let (left, right) = (2 * nb, 2 * nb + 1);
    let stride = TILE_BYTES / TILE_ROWS;
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        options(nostack, nomem)
    );
    for kb in 0..w.k_blocks {
        let mut loaded = (usize::MAX, usize::MAX);
        for (pa, pb) in PRODUCTS {
            if loaded.0 != pa {
                tile_load!("4", a.tile(row, pa, kb), stride);
                tile_load!("5", a.tile(row + TILE_ROWS, pa, kb), stride);
            }
            if loaded.1 != pb {
                tile_load!("6", w.tile(left, pb, kb), stride);
                tile_load!("7", w.tile(right, pb, kb), stride);
            }
            loaded = (pa, pb);
            asm!(
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                options(nostack, nomem)
            );
        }
        meanwhile(kb);
    }
    let c = (*sum).0.as_mut_ptr();
    let c_low = c.add(TILE_ROWS * N_BLOCK);
    let c_stride = N_BLOCK * 4;
    tile_store!("0", c, c_stride);
    tile_store!("1", c.add(TILE_ROWS), c_stride);
    tile_store!("2", c_low, c_stride);
    tile_store!("3", c_low.add(TILE_ROWS), c_stride);
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ops::reference_product as reference;

    fn noise(len: usize, seed: u64) -> Vec<f32> {
        crate::ops::test_noise(len, seed, 2.0)
    }

    #[test]
    fn split_is_exact() {
        for x in noise(10_000, 7) {
            let [h, m, l] = split(x);
            assert_eq!(bf16_to_f32(h) + bf16_to_f32(m) + bf16_to_f32(l), x);
        }
    }

    #[test]
    fn weights_round_trip() {
        let (n, k) = (37, 70);
        let w = noise(n * k, 3);
        assert_eq!(PackedWeight::new(&w, n, k).to_f32(), w);
    }

    /// Tile kernels, run only where the CPU has AMX: ignored by a plain
    /// `cargo test`, run by `scripts/test.sh` with `--ignored isa_amx`
    /// (and failing, not passing, where AMX is missing).
    mod isa_amx {
        use super::*;

        fn require_amx() {
            crate::ops::simd::require(crate::ops::simd::Isa::Amx);
            assert!(available(), "AMX is off (CROSSRANK_ISA / CROSSRANK_AMX)");
        }

        #[test]
        #[ignore = "needs AMX: scripts/test.sh runs it where the CPU has it"]
        fn products_match_float64_to_float32_accuracy() {
            require_amx();
            for (rows, k, n) in [
                (1, 384, 1152),
                (45, 384, 384),
                (100, 1536, 384),
                (33, 70, 37),
            ] {
                let x = noise(rows * k, 1);
                let w = noise(n * k, 2);
                let got = matmul(
                    &x,
                    rows,
                    &PackedWeight::new(&w, n, k),
                    None,
                    Activation::Identity,
                );
                let want = reference(&x, &w, rows, k, n);
                let scale: f64 = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(g, w)| (*g as f64 - w).abs())
                    .fold(0.0, f64::max);
                assert!(worst / scale < 1e-6, "{rows}x{k}x{n}: {}", worst / scale);
            }
        }

        #[test]
        #[ignore = "needs AMX: scripts/test.sh runs it where the CPU has it"]
        fn bias_and_activation_are_applied_on_write_back() {
            require_amx();
            let (rows, k, n) = (40, 64, 48);
            let x = noise(rows * k, 4);
            let w = noise(n * k, 5);
            let bias = noise(n, 6);
            let got = matmul(
                &x,
                rows,
                &PackedWeight::new(&w, n, k),
                Some(&bias),
                Activation::Gelu,
            );
            let want = reference(&x, &w, rows, k, n);
            for (i, (g, v)) in got.iter().zip(&want).enumerate() {
                let expected = Activation::Gelu.apply((*v + bias[i % n] as f64) as f32);
                assert!(
                    (g - expected).abs() <= 1e-5 * expected.abs().max(1.0),
                    "{i}: {g} vs {expected}"
                );
            }
        }

        #[test]
        #[ignore = "needs AMX: scripts/test.sh runs it where the CPU has it"]
        fn no_rows_give_no_output() {
            require_amx();
            let w = noise(64 * 32, 8);
            assert!(matmul(
                &[],
                0,
                &PackedWeight::new(&w, 64, 32),
                None,
                Activation::Identity
            )
            .is_empty());
        }

        #[test]
        #[ignore = "needs AMX: scripts/test.sh runs it where the CPU has it"]
        fn fused_feed_forward_equals_two_products() {
            require_amx();
            // Enough rows for the fused path (several bands per thread); no
            // size a multiple of a block, so padding is exercised everywhere.
            let (rows, k, hidden, n) = (1000, 70, 80, 40);
            let x = noise(rows * k, 9);
            let w1 = PackedWeight::new(&noise(hidden * k, 10), hidden, k);
            let w2 = PackedWeight::new(&noise(n * hidden, 11), n, hidden);
            let b1 = noise(hidden, 12);
            let inner = matmul(&x, rows, &w1, Some(&b1), Activation::Gelu);
            let want = matmul(&inner, rows, &w2, None, Activation::Identity);
            let got = feed_forward(&x, rows, &w1, Some(&b1), Activation::Gelu, &w2);
            assert_eq!(got, want);
        }
    }
}
