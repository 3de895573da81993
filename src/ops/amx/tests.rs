use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::guard::{with_state, ScopedState};
use super::split::{bf16_to_f32, split};
use super::*;

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

/// Counts what `with_state` does to it: a stand-in for the tile state,
/// so the release is tested on any CPU.
#[derive(Default)]
struct Recorder {
    held: Cell<bool>,
    acquired: Cell<usize>,
    released: Cell<usize>,
}

impl ScopedState for &Recorder {
    fn acquire(&mut self) {
        assert!(!self.held.replace(true), "acquired twice");
        self.acquired.set(self.acquired.get() + 1);
    }

    fn release(&mut self) {
        assert!(self.held.replace(false), "released without acquiring");
        self.released.set(self.released.get() + 1);
    }
}

#[test]
fn scoped_state_is_held_for_the_work_and_released_after() {
    let recorder = Recorder::default();
    let got = with_state(&mut &recorder, || {
        assert!(recorder.held.get(), "not held during the work");
        42
    });
    assert_eq!(got, 42);
    assert_eq!((recorder.acquired.get(), recorder.released.get()), (1, 1));
    assert!(!recorder.held.get());
}

#[test]
fn scoped_state_is_released_when_the_work_panics() {
    let recorder = Recorder::default();
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        with_state::<_, ()>(&mut &recorder, || panic!("inside the scope"))
    }));
    assert!(unwound.is_err(), "the panic goes on unwinding");
    assert_eq!((recorder.acquired.get(), recorder.released.get()), (1, 1));
    assert!(!recorder.held.get(), "still held after the panic");
}

/// Tile kernels, run only where the CPU has AMX: ignored by a plain
/// `cargo test`, run by `scripts/test.sh` with `--ignored isa_amx`
/// (and failing, not passing, where AMX is missing).
#[cfg(not(crossrank_portable))]
mod isa_amx {
    use super::*;

    use crate::ops::reference_product as reference;

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

    /// `XINUSE` (`xgetbv(1)`): which state components are not in their
    /// initial configuration; bits 17 and 18 are `TILECFG` and `TILEDATA`.
    fn tile_state_in_use() -> u64 {
        // SAFETY: every CPU with AMX has XSAVE and XGETBV with ECX = 1
        // (require_amx checked AMX, and Linux enabled XSAVE for it).
        unsafe { std::arch::x86_64::_xgetbv(1) & (0b11 << 17) }
    }

    #[test]
    #[ignore = "needs AMX: scripts/test.sh runs it where the CPU has it"]
    fn a_panic_inside_the_tiles_releases_them() {
        require_amx();
        let unwound = catch_unwind(|| {
            // SAFETY: require_amx checked the CPU and the OS's grant.
            unsafe {
                kernel::with_tiles::<()>(|| {
                    // Some tile data, as a product leaves it.
                    std::arch::asm!("tilezero tmm0", options(nostack, nomem));
                    assert_ne!(tile_state_in_use(), 0, "tiles not configured");
                    panic!("inside the tiles");
                })
            }
        });
        assert!(unwound.is_err(), "the panic goes on unwinding");
        assert_eq!(tile_state_in_use(), 0, "tile state still held");
    }
}
