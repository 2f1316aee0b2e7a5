//! The one error type of the whisper crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model, reading audio or transcribing.
/// Messages name the file and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid CTranslate2 model file: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("model: {0}")]
    Weights(String),
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{path}: {reason}")]
    Audio { path: PathBuf, reason: String },
    /// The audio decodes to more than the caller's limit; decoding stopped there.
    #[error("{path}: the audio is longer than the limit of {limit_secs} s; decoding stopped there (cut the recording into parts, or raise the limit)")]
    AudioTooLong { path: PathBuf, limit_secs: f64 },
    #[error("{path}: not a valid .npy file: {reason}")]
    Npy { path: PathBuf, reason: String },
    /// Voice activity detection: the Silero model or the ONNX Runtime library.
    #[error("{path}: {reason}")]
    Vad { path: PathBuf, reason: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The caller asked the work to stop (e.g. Ctrl-C in a binding), seen at a window boundary.
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
