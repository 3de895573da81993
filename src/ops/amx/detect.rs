//! Whether the CPU has AMX and the OS lets this process use it.

use std::sync::OnceLock;

use crate::ops::simd::{self, Isa};

/// Whether this process uses AMX, decided once: the CPU has it, the OS
/// grants the tile state, and neither `CROSSRANK_ISA` (below `amx`) nor
/// `CROSSRANK_AMX=0` turns it off.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::env::var("CROSSRANK_AMX").map_or(true, |v| v != "0")
            && simd::isa_cap() == Isa::Amx
            && cpu_and_os_allow()
    })
}

/// Whether the CPU has AMX-BF16 (with AVX-512 for the write-back) and the
/// OS grants the tile state, whatever the switches say.
#[cfg(not(crossrank_portable))]
pub fn cpu_and_os_allow() -> bool {
    static ALLOW: OnceLock<bool> = OnceLock::new();
    *ALLOW.get_or_init(|| {
        cpu_has_amx_bf16() && simd::cpu_level() == simd::Level::Avx512 && request_tile_state()
    })
}

/// Never: a portable build has no tile kernel.
#[cfg(crossrank_portable)]
pub fn cpu_and_os_allow() -> bool {
    false
}

#[cfg(not(crossrank_portable))]
fn cpu_has_amx_bf16() -> bool {
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let amx_bf16 = leaf7.edx & (1 << 22) != 0;
    let amx_tile = leaf7.edx & (1 << 24) != 0;
    amx_bf16 && amx_tile
}

/// Linux hands out the 8 KiB tile state only on request (since 5.16).
#[cfg(not(crossrank_portable))]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM) takes two integers and
    // touches no memory of ours; failure is only a return value.
    let status = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    status == 0
}
