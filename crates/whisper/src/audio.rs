//! Audio decoding to 16 kHz mono f32 (symphonia + rubato). FILLED BY THE AUDIO HELPER.

use std::path::Path;

use crate::Result;

/// Whisper's sample rate.
pub const SAMPLE_RATE: usize = 16_000;

/// Decodes any supported file (WAV, FLAC, MP3, Ogg Vorbis, M4A/AAC) to 16 kHz mono samples.
pub fn load_audio(path: &Path) -> Result<Vec<f32>> {
    let _ = path;
    Err(crate::Error::InvalidArgument("audio decoding not yet implemented".into()))
}
