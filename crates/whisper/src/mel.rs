//! Whisper's log-mel spectrogram. FILLED BY THE AUDIO HELPER.

pub const N_FFT: usize = 400;
pub const HOP_LENGTH: usize = 160;
/// Frames in one 30 s window.
pub const N_FRAMES: usize = 3000;
