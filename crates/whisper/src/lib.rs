//! Whisper speech recognition: weights, tokenizer, audio front end, model graph and decoding.
//!
//! Data flows `audio` → `mel` → encoder → decoder (with KV cache) → tokens → text.
//! This crate does no network I/O and knows nothing of HTTP or the NPU.

pub mod audio;
pub mod config;
pub mod ct2;
pub mod error;
pub mod mel;

pub use error::{Error, Result};
