//! Audio decoding to 16 kHz mono f32, the input of the log-mel front end.
//!
//! Decodes WAV (8/16/24/32-bit PCM, 32/64-bit float), FLAC, MP3, Ogg Vorbis and M4A/MP4 AAC
//! with symphonia, packet by packet ([`container`]), and converts every packet to 16 kHz mono
//! the way faster-whisper's `decode_audio` does it — libswresample to s16, then `/ 32768` —
//! with a reimplementation of swr's polyphase resampler, channel matrix and s16 rounding
//! ([`swr`], [`resample`]). Output samples are therefore on the s16 grid, and a 16 kHz 16-bit
//! mono WAV gives exactly `pcm / 32768`.
//!
//! - [`load_audio`] / [`decode_audio_bytes`]: a whole file into a `Vec<f32>`.
//! - [`AudioInput`]: a path, stdin (`-`) or raw s16le, decoded whole or streamed.
//! - [`SampleSource`]: samples readable by range without holding them all: in memory
//!   ([`VecSource`]), spooled to an unlinked temp file ([`SpooledSource`]), or a gathered view
//!   of ranges of another source ([`Gather`]).

mod container;
mod input;
mod kernels;
mod mp4;
mod mp4check;
mod ogg;
pub(crate) mod resample;
mod source;
pub(crate) mod swr;

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub use input::{AudioInput, DEFAULT_STDIN_LIMIT};
pub use source::{Gather, SampleSource, SpooledSource, VecSource};

use crate::{Error, Result};

/// Whisper's sample rate.
pub const SAMPLE_RATE: usize = 16_000;

/// Decodes any supported file to 16 kHz mono samples in [-1, 1).
pub fn load_audio(path: &Path) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    decode_file(path, &mut |s| {
        out.extend_from_slice(s);
        Ok(())
    })?;
    Ok(out)
}

/// Decodes an in-memory file (e.g. an HTTP upload). `hint_ext` is its extension if known
/// ("mp3", "wav", ...); the content is probed either way.
pub fn decode_audio_bytes(bytes: Vec<u8>, hint_ext: Option<&str>) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    decode_bytes(bytes, hint_ext, &mut |s| {
        out.extend_from_slice(s);
        Ok(())
    })?;
    Ok(out)
}

/// Length of 16 kHz samples in seconds.
pub fn duration_secs(samples: &[f32]) -> f64 {
    samples.len() as f64 / SAMPLE_RATE as f64
}

/// Streams the samples of a file to `emit`; returns how many there were.
pub(crate) fn decode_file(path: &Path, emit: &mut container::Emit<'_>) -> Result<u64> {
    let fail = |reason: String| Error::Audio {
        path: path.to_path_buf(),
        reason,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail("file not found; check the path".into()))
        }
        Err(e) => return Err(fail(format!("cannot read file: {e}"))),
    };
    if meta.is_dir() {
        return Err(fail("is a directory, not an audio file".into()));
    }
    if meta.len() == 0 {
        return Err(fail(
            "file is empty (0 bytes); no audio to transcribe".into(),
        ));
    }
    let mut file = File::open(path).map_err(|e| fail(format!("cannot open file: {e}")))?;
    if let Some(repaired) = repaired_ogg(&mut file, path)? {
        let ext = path.extension().and_then(|e| e.to_str());
        return decode_bytes_labelled(repaired, ext, path, emit);
    }
    let priming = mp4::mp4_inspect(&mut file).map_err(fail)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| fail(format!("cannot read file: {e}")))?;
    let ext = path.extension().and_then(|e| e.to_str());
    container::decode_guarded(Box::new(file), meta.len(), ext, priming, path, emit)
}

/// Streams the samples of an in-memory file to `emit`; returns how many there were.
pub(crate) fn decode_bytes(
    bytes: Vec<u8>,
    hint_ext: Option<&str>,
    emit: &mut container::Emit<'_>,
) -> Result<u64> {
    let label = PathBuf::from(match hint_ext {
        Some(ext) => format!("<audio data .{ext}>"),
        None => "<audio data>".to_string(),
    });
    decode_bytes_labelled(bytes, hint_ext, &label, emit)
}

pub(crate) fn decode_bytes_labelled(
    bytes: Vec<u8>,
    hint_ext: Option<&str>,
    label: &Path,
    emit: &mut container::Emit<'_>,
) -> Result<u64> {
    if bytes.is_empty() {
        return Err(Error::Audio {
            path: label.to_path_buf(),
            reason: "no data (0 bytes); no audio to transcribe".into(),
        });
    }
    let mut cursor = Cursor::new(bytes);
    let bytes = match repaired_ogg(&mut cursor, label)? {
        Some(repaired) => repaired,
        None => cursor.into_inner(),
    };
    let total_len = bytes.len() as u64;
    let mut cursor = Cursor::new(bytes);
    let priming = mp4::mp4_inspect(&mut cursor).map_err(|reason| Error::Audio { path: label.to_path_buf(), reason })?;
    cursor.set_position(0);
    container::decode_guarded(Box::new(cursor), total_len, hint_ext, priming, label, emit)
}

/// An Ogg stream holding pages with a wrong checksum: its bytes without those pages (with a
/// warning), as FFmpeg skips them; `None` for anything else. Only a damaged file is read into
/// memory. `src` is left at its start.
pub(crate) fn repaired_ogg<R: Read + Seek>(src: &mut R, label: &Path) -> Result<Option<Vec<u8>>> {
    let io = |e| Error::io(label, e);
    let mut magic = [0u8; 4];
    src.seek(SeekFrom::Start(0)).map_err(io)?;
    let is_ogg = src.read_exact(&mut magic).is_ok() && &magic == b"OggS";
    src.seek(SeekFrom::Start(0)).map_err(io)?;
    if !is_ogg {
        return Ok(None);
    }
    let bad = ogg::bad_pages(&mut *src).map_err(io)?;
    src.seek(SeekFrom::Start(0)).map_err(io)?;
    if bad.is_empty() {
        return Ok(None);
    }
    tracing::warn!(
        "{}: skipped {} Ogg page(s) with a wrong checksum (damaged data; first at byte {})",
        label.display(),
        bad.len(),
        bad[0].start
    );
    let repaired = ogg::without(&mut *src, &bad).map_err(io)?;
    src.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(Some(repaired))
}

#[cfg(test)]
mod tests {
    use super::swr::f32_to_s16;

    fn to_s16_grid(x: f32) -> f32 {
        f32_to_s16(x) as f32 / 32768.0
    }

    #[test]
    fn s16_grid_is_identity_on_pcm16() {
        for v in [-32768i32, -12345, -1, 0, 1, 32767] {
            let x = v as f32 / 32768.0;
            assert_eq!(to_s16_grid(x), x);
        }
        assert_eq!(to_s16_grid(1.5), 32767.0 / 32768.0);
        assert_eq!(to_s16_grid(0.5 / 32768.0), 0.0);
        assert_eq!(to_s16_grid(1.5 / 32768.0), 2.0 / 32768.0);
        assert_eq!(to_s16_grid(-7.0), -1.0);
        assert_eq!(to_s16_grid(f32::NAN), -1.0);
        assert_eq!(to_s16_grid(f32::INFINITY), 32767.0 / 32768.0);
    }
}
