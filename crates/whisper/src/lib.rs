//! Whisper speech recognition: weights, tokenizer, audio front end, model graph and decoding.
//!
//! Data flows `audio` → `mel` → encoder → decoder (with KV cache) → tokens → text.
//! This crate does no network I/O and knows nothing of HTTP or the NPU.

pub mod audio;
pub mod batch;
pub mod clip;
pub mod compute;
pub mod config;
pub mod ct2;
pub mod decode;
pub mod error;
pub mod eval;
pub mod features;
pub mod live;
pub mod mel;
pub mod model;
pub mod npy;
pub mod pipeline;
pub mod pool;
pub mod split;
#[doc(hidden)]
pub mod testing;
pub mod timing;
pub mod tokenizer;
pub mod transcribe;
pub mod vad;
pub mod window;
pub mod words;

pub use error::{Error, Result};
