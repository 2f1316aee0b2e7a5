//! Container and codec decoding with symphonia, packet by packet, into the swr-faithful
//! converter ([`super::swr`]); converted samples go to a callback as they come, so nothing
//! holds the whole file unless the caller wants it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use symphonia::core::audio::AudioBufferRef;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::mp4::Priming;
use super::swr::Converter;
use crate::{Error, Result};

/// What to tell the user when the format is not one we read.
pub(crate) const SUPPORTED: &str = "supported: WAV, FLAC, MP3, Ogg Vorbis, M4A/MP4 AAC; convert \
                                    other files with e.g. `ffmpeg -i INPUT -ar 16000 -ac 1 out.wav`";

/// Highest source sample rate decoded (the resampler's memory grows with the rate).
pub(crate) const MAX_SAMPLE_RATE: u32 = 768_000;

/// Receives 16 kHz mono samples as they are decoded; an `Err` stops decoding with that reason.
pub type Emit<'a> = dyn FnMut(&[f32]) -> std::result::Result<(), String> + 'a;

/// Runs the decoder, turning a panic inside a codec (possible on hostile input) into an error:
/// bad input must never bring down a server.
pub(crate) fn decode_guarded(
    source: Box<dyn MediaSource>,
    total_len: u64,
    ext: Option<&str>,
    priming: Option<Priming>,
    label: &Path,
    emit: &mut Emit<'_>,
) -> Result<u64> {
    match catch_unwind(AssertUnwindSafe(|| {
        decode(source, total_len, ext, priming, label, emit)
    })) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::Audio {
                path: label.to_path_buf(),
                reason: format!(
                    "the decoder failed on malformed data ({msg}); the file is corrupt"
                ),
            })
        }
    }
}

fn decode(
    source: Box<dyn MediaSource>,
    total_len: u64,
    ext: Option<&str>,
    priming: Option<Priming>,
    label: &Path,
    emit: &mut Emit<'_>,
) -> Result<u64> {
    let fail = |reason: String| Error::Audio {
        path: label.to_path_buf(),
        reason,
    };
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(source, Default::default());
    // Gapless: drop the encoder delay and padding that MP3 (LAME header) and AAC declare, as
    // FFmpeg (hence faster-whisper) does; otherwise the audio would start late.
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = super::mp4::probe()
        .format(&hint, stream, &format_opts, &MetadataOptions::default())
        .map_err(|e| {
            if let Some(reason) = super::mp4::refusal(&e) {
                return fail(reason.to_string());
            }
            fail(match e {
                SymError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    // The readers scan for a header or first frame until the end of the data.
                    format!(
                        "found no decodable audio: not a recognised audio file, or damaged or \
                         truncated ({SUPPORTED})"
                    )
                }
                SymError::Unsupported(_) => format!("not a recognised audio file ({SUPPORTED})"),
                SymError::DecodeError(what) => {
                    format!("the file is damaged or corrupt ({what}); re-export or re-record it")
                }
                other => format!("cannot read the audio container: {other} ({SUPPORTED})"),
            })
        })?;
    let mut format = probed.format;

    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| fail("the file holds no audio track".into()))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| {
            let codec = symphonia::default::get_codecs()
                .get_codec(track.codec_params.codec)
                .map(|d| d.short_name.to_string())
                .unwrap_or_else(|| format!("{}", track.codec_params.codec));
            fail(format!(
                "audio codec '{codec}' is not supported ({e}); {SUPPORTED}"
            ))
        })?;

    let mut sink = MonoSink::new(emit);
    // symphonia's MP4 reader ignores the edit list, which is where MP4 declares the encoder
    // priming (1024 frames for a typical AAC encoder); FFmpeg skips it, so do we.
    if let (Some(p), None) = (priming, track.codec_params.delay) {
        if let Some(rate) = track.codec_params.sample_rate {
            sink.skip = p.media_time.saturating_mul(rate as u64) / p.timescale.max(1) as u64;
        }
    }
    sink.bits = track.codec_params.bits_per_sample;
    let declared_frames = track.codec_params.n_frames;
    let mut packets_ok = 0usize;
    let mut good_bytes = 0u64;
    let mut packets_bad = 0usize;
    let mut first_error: Option<String> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // The normal end of stream, and also where a file truncated at the end stops.
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // A new chained stream (e.g. concatenated Ogg files): keep what we have.
            Err(SymError::ResetRequired) => {
                tracing::warn!(
                    "{}: stream changes mid-file; decoding stops there",
                    label.display()
                );
                break;
            }
            Err(SymError::IoError(e)) => return Err(fail(format!("read error: {e}"))),
            Err(e) => {
                // A broken container after good audio: keep the good part, as FFmpeg does.
                if packets_ok > 0 {
                    tracing::warn!(
                        "{}: container damaged after {packets_ok} packets: {e}",
                        label.display()
                    );
                    break;
                }
                return Err(fail(format!("the audio data is corrupt: {e}")));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                packets_ok += 1;
                good_bytes += packet.data.len() as u64;
                sink.push(buf).map_err(fail)?;
            }
            // A damaged packet is skipped (PyAV ignores InvalidDataError the same way); too
            // many of them means the file is not really audio (checked below).
            Err(SymError::DecodeError(msg)) => {
                packets_bad += 1;
                first_error.get_or_insert_with(|| msg.to_string());
            }
            Err(SymError::IoError(e)) => {
                packets_bad += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            // After good packets, an "unsupported feature" is a damaged packet read as
            // something exotic; on the first packet it is a genuinely unsupported stream.
            Err(SymError::Unsupported(what)) if packets_ok > 0 => {
                packets_bad += 1;
                first_error.get_or_insert_with(|| format!("unsupported feature: {what}"));
            }
            Err(e) => return Err(fail(format!("cannot decode the audio: {e}; {SUPPORTED}"))),
        }
    }

    if packets_bad > 0 && packets_bad >= packets_ok.max(1) {
        return Err(fail(format!(
            "the audio data is corrupt: {packets_bad} of {} packets failed to decode (first error: \
             {})",
            packets_ok + packets_bad,
            first_error.unwrap_or_default()
        )));
    }
    if packets_bad > 0 {
        tracing::warn!("{}: skipped {packets_bad} damaged packets", label.display());
    }
    // Readers resynchronise past garbage silently, so a file whose body is mostly garbage can
    // end "cleanly" after a few good packets. A truncated file also decodes short of its
    // declared length, but its few bytes are nearly all good audio; garbage leaves most bytes
    // unused. (Byte share alone would fail a short clip with large cover art.)
    if let Some(declared) = declared_frames.filter(|&n| n > 0) {
        let decoded_share = sink.frames_in as f64 / declared as f64;
        let byte_share = good_bytes as f64 / total_len.max(1) as f64;
        // Quarter thresholds: codec headers outside packets (Vorbis setup, MP4 index) and
        // Ogg's whole-page loss keep honest truncated files well above them.
        if decoded_share < 0.25 && byte_share < 0.25 {
            return Err(fail(format!(
                "the audio data is corrupt: only {:.0}% of the declared duration and {:.0}% of \
                 the bytes could be decoded",
                100.0 * decoded_share,
                100.0 * byte_share
            )));
        }
        if decoded_share < 0.99 {
            tracing::warn!(
                "{}: decoded {:.0}% of the declared duration; the file is truncated or damaged",
                label.display(),
                100.0 * decoded_share
            );
        }
    }
    let n = sink.finish().map_err(fail)?;
    if n == 0 {
        return Err(fail("the file holds no audio samples".into()));
    }
    Ok(n)
}

/// Feeds decoded buffers through the converter and hands the samples to the callback.
struct MonoSink<'e, 'a> {
    emit: &'e mut Emit<'a>,
    conv: Option<Converter>,
    /// Bits per sample the stream declares (tells 16-bit FLAC from 24-bit).
    bits: Option<u32>,
    /// Converted samples of the current packet (reused).
    out: Vec<f32>,
    /// Leading decoded frames still to drop (encoder priming).
    skip: u64,
    /// Frames decoded so far, at the source rate, priming included.
    frames_in: u64,
    /// Samples emitted.
    n_out: u64,
}

impl<'e, 'a> MonoSink<'e, 'a> {
    fn new(emit: &'e mut Emit<'a>) -> Self {
        MonoSink {
            emit,
            conv: None,
            bits: None,
            out: Vec::new(),
            skip: 0,
            frames_in: 0,
            n_out: 0,
        }
    }

    fn push(&mut self, buf: AudioBufferRef<'_>) -> std::result::Result<(), String> {
        let spec = *buf.spec();
        if spec.channels.count() == 0 || spec.rate == 0 {
            return Err(format!(
                "invalid stream: {} channels at {} Hz",
                spec.channels.count(),
                spec.rate
            ));
        }
        // The resampler's filter grows with the rate ratio: a header claiming a rate of GHz
        // (a few hundred bytes of upload) would ask for gigabytes (found by the audio_decode
        // fuzz target). 768 kHz is the highest rate audio is recorded at.
        if spec.rate > MAX_SAMPLE_RATE {
            return Err(format!(
                "unsupported sample rate {} Hz (at most {MAX_SAMPLE_RATE} Hz)",
                spec.rate
            ));
        }
        if !self
            .conv
            .as_ref()
            .is_some_and(|c| c.accepts(&buf, self.bits))
        {
            // First buffer, or a format change mid-stream: flush and start a new converter.
            self.flush()?;
            self.conv = Some(Converter::new(&buf, self.bits));
        }
        let frames = buf.frames() as u64;
        self.frames_in += frames;
        let skip = self.skip.min(frames);
        self.skip -= skip;
        let conv = self.conv.as_mut().expect("set above");
        self.out.clear();
        conv.push(&buf, skip as usize, &mut self.out);
        self.send()
    }

    fn send(&mut self) -> std::result::Result<(), String> {
        if !self.out.is_empty() {
            (self.emit)(&self.out)?;
            self.n_out += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    fn flush(&mut self) -> std::result::Result<(), String> {
        if let Some(mut c) = self.conv.take() {
            self.out.clear();
            c.finish(&mut self.out);
            self.send()?;
        }
        Ok(())
    }

    /// Flushes and returns the number of samples emitted.
    fn finish(mut self) -> std::result::Result<u64, String> {
        self.flush()?;
        Ok(self.n_out)
    }
}
