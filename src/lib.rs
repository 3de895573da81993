//! crossrank: cross-encoder reranking in Rust on candle, behind a Python
//! API that matches sentence-transformers' `CrossEncoder`.
//!
//! Layout: [`config`] reads what a model directory says about itself,
//! [`weights`] and [`tokenizer`] open its files, [`models`] holds one module
//! per family (and the one function that picks the family), [`ops`] is the
//! CPU hot path they share, [`engine`] batches pairs through a model, and
//! `python` (feature `python`) is the thin pyo3 layer.

pub mod alloc;
pub mod config;
pub mod engine;
pub mod error;
pub mod hub;
pub mod models;
pub mod ops;
pub mod threads;
pub mod tokenizer;
pub mod weights;

#[cfg(feature = "python")]
mod python;

#[cfg(all(target_os = "linux", feature = "keeping-allocator"))]
#[global_allocator]
static ALLOCATOR: alloc::keeping::KeepingAllocator = alloc::keeping::KeepingAllocator;

pub use engine::{CrossEncoder, LoadOptions};
pub use error::{Error, Result};
