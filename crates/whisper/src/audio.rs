//! Audio decoding to 16 kHz mono f32, the input of the log-mel front end.
//!
//! Decodes WAV (8/16/24/32-bit PCM, 32/64-bit float), FLAC, MP3, Ogg Vorbis and M4A/MP4 AAC
//! with symphonia, packet by packet: each packet is downmixed (mean of channels) and, unless it
//! is already 16 kHz, resampled with rubato's FFT resampler straight into the one output
//! vector, so a long file is never held twice in memory.
//!
//! The result mirrors faster-whisper's `decode_audio` (PyAV resampling to 16 kHz mono s16, then
//! `/ 32768`): output samples are rounded to the s16 grid, so a 16 kHz 16-bit mono WAV gives
//! exactly `pcm / 32768`.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Signal};
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::conv::IntoSample;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use symphonia::core::sample::Sample;

use crate::{Error, Result};

/// Whisper's sample rate.
pub const SAMPLE_RATE: usize = 16_000;

/// What to tell the user when the format is not one we read.
const SUPPORTED: &str = "supported: WAV, FLAC, MP3, Ogg Vorbis, M4A/MP4 AAC; convert other \
                         files with e.g. `ffmpeg -i INPUT -ar 16000 -ac 1 out.wav`";

/// Minimum input frames handed to the resampler per call. With the FFT resampler this also
/// sets the FFT length, hence the filter length: 1000+ taps at 44.1/48 kHz, far beyond what
/// speech needs.
const RESAMPLE_CHUNK: usize = 1024;
/// Most output samples reserved up front from a header's declared length (3 hours).
const MAX_RESERVE_SAMPLES: u64 = 3 * 3600 * SAMPLE_RATE as u64;
/// Largest MP4 `moov` box read to find the edit list (real ones are kilobytes to a few MB).
const MAX_MOOV_BYTES: u64 = 64 << 20;

/// Decodes any supported file to 16 kHz mono samples in [-1, 1).
pub fn load_audio(path: &Path) -> Result<Vec<f32>> {
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
    let priming = mp4_priming(&mut file);
    file.seek(SeekFrom::Start(0))
        .map_err(|e| fail(format!("cannot read file: {e}")))?;
    let ext = path.extension().and_then(|e| e.to_str());
    decode_guarded(Box::new(file), meta.len(), ext, priming, path)
}

/// Decodes an in-memory file (e.g. an HTTP upload). `hint_ext` is its extension if known
/// ("mp3", "wav", ...); the content is probed either way.
pub fn decode_audio_bytes(bytes: Vec<u8>, hint_ext: Option<&str>) -> Result<Vec<f32>> {
    let label = PathBuf::from(match hint_ext {
        Some(ext) => format!("<audio data .{ext}>"),
        None => "<audio data>".to_string(),
    });
    if bytes.is_empty() {
        return Err(Error::Audio {
            path: label,
            reason: "no data (0 bytes); no audio to transcribe".into(),
        });
    }
    let total_len = bytes.len() as u64;
    let mut cursor = Cursor::new(bytes);
    let priming = mp4_priming(&mut cursor);
    cursor.set_position(0);
    decode_guarded(Box::new(cursor), total_len, hint_ext, priming, &label)
}

/// Length of 16 kHz samples in seconds.
pub fn duration_secs(samples: &[f32]) -> f64 {
    samples.len() as f64 / SAMPLE_RATE as f64
}

/// Runs the decoder, turning a panic inside a codec (possible on hostile input) into an error:
/// bad input must never bring down a server.
fn decode_guarded(
    source: Box<dyn MediaSource>,
    total_len: u64,
    ext: Option<&str>,
    priming: Option<Priming>,
    label: &Path,
) -> Result<Vec<f32>> {
    match catch_unwind(AssertUnwindSafe(|| {
        decode(source, total_len, ext, priming, label)
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
) -> Result<Vec<f32>> {
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
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_opts, &MetadataOptions::default())
        .map_err(|e| {
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

    let mut sink = MonoSink::default();
    // symphonia's MP4 reader ignores the edit list, which is where MP4 declares the encoder
    // priming (1024 frames for a typical AAC encoder); FFmpeg skips it, so do we.
    if let (Some(p), None) = (priming, track.codec_params.delay) {
        if let Some(rate) = track.codec_params.sample_rate {
            sink.skip = p.media_time.saturating_mul(rate as u64) / p.timescale.max(1) as u64;
        }
    }
    // Size the output once from the declared length, so a long file is not copied by Vec
    // growth. Capped, since a damaged header may declare anything; the Vec still grows if
    // the declaration was short.
    if let (Some(n), Some(rate)) = (track.codec_params.n_frames, track.codec_params.sample_rate) {
        let estimate = n.saturating_mul(SAMPLE_RATE as u64) / rate.max(1) as u64 + 1;
        let _ = sink
            .out
            .try_reserve_exact(estimate.min(MAX_RESERVE_SAMPLES) as usize);
    }
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
    let samples = sink.finish().map_err(fail)?;
    if samples.is_empty() {
        return Err(fail("the file holds no audio samples".into()));
    }
    Ok(samples)
}

/// Collects decoded buffers as 16 kHz mono s16-grid samples.
#[derive(Default)]
struct MonoSink {
    out: Vec<f32>,
    /// Per-packet downmix buffer, reused.
    mono: Vec<f32>,
    /// Present while the stream's rate is not 16 kHz.
    resampler: Option<StreamResampler>,
    /// Rate of the buffers seen so far (0 before the first).
    rate: u32,
    /// Leading decoded frames still to drop (encoder priming).
    skip: u64,
    /// Frames decoded so far, at the source rate, priming included.
    frames_in: u64,
}

impl MonoSink {
    fn push(&mut self, buf: AudioBufferRef<'_>) -> std::result::Result<(), String> {
        let spec = *buf.spec();
        if spec.channels.count() == 0 || spec.rate == 0 {
            return Err(format!(
                "invalid stream: {} channels at {} Hz",
                spec.channels.count(),
                spec.rate
            ));
        }
        if spec.rate != self.rate {
            // First buffer, or a rate change mid-stream: flush and restart the resampler.
            self.flush()?;
            self.rate = spec.rate;
            if spec.rate as usize != SAMPLE_RATE {
                self.resampler = Some(StreamResampler::new(spec.rate as usize)?);
            }
        }
        downmix(&buf, &mut self.mono);
        self.frames_in += self.mono.len() as u64;
        if self.skip > 0 {
            let n = (self.skip as usize).min(self.mono.len());
            self.mono.drain(..n);
            self.skip -= n as u64;
        }
        match &mut self.resampler {
            Some(r) => r.push(&self.mono, &mut self.out),
            None => self.out.extend(self.mono.iter().map(|&x| to_s16_grid(x))),
        }
        Ok(())
    }

    fn flush(&mut self) -> std::result::Result<(), String> {
        match self.resampler.take() {
            Some(r) => r.finish(&mut self.out),
            None => Ok(()),
        }
    }

    fn finish(mut self) -> std::result::Result<Vec<f32>, String> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Mean of the channels of one decoded buffer into `mono` (resized to the buffer's frames).
fn downmix(buf: &AudioBufferRef<'_>, mono: &mut Vec<f32>) {
    fn mean<S: Sample + IntoSample<f32>>(b: &AudioBuffer<S>, mono: &mut Vec<f32>) {
        let n_ch = b.spec().channels.count();
        mono.clear();
        mono.extend(b.chan(0).iter().map(|&s| s.into_sample()));
        if n_ch > 1 {
            for ch in 1..n_ch {
                for (m, &s) in mono.iter_mut().zip(b.chan(ch)) {
                    *m += IntoSample::<f32>::into_sample(s);
                }
            }
            let scale = 1.0 / n_ch as f32;
            mono.iter_mut().for_each(|m| *m *= scale);
        }
    }
    match buf {
        AudioBufferRef::U8(b) => mean(b, mono),
        AudioBufferRef::U16(b) => mean(b, mono),
        AudioBufferRef::U24(b) => mean(b, mono),
        AudioBufferRef::U32(b) => mean(b, mono),
        AudioBufferRef::S8(b) => mean(b, mono),
        AudioBufferRef::S16(b) => mean(b, mono),
        AudioBufferRef::S24(b) => mean(b, mono),
        AudioBufferRef::S32(b) => mean(b, mono),
        AudioBufferRef::F32(b) => mean(b, mono),
        AudioBufferRef::F64(b) => mean(b, mono),
    }
}

/// Rounds to the nearest s16 level (ties to even, as FFmpeg's lrintf) and back to f32, which
/// is what faster-whisper's s16 resampling output followed by `/ 32768` yields. Out-of-range
/// values saturate; NaN (possible in a float WAV) becomes −1 through `max`, never NaN.
#[allow(clippy::manual_clamp)] // clamp would pass NaN through
fn to_s16_grid(x: f32) -> f32 {
    (x * 32768.0).round_ties_even().max(-32768.0).min(32767.0) / 32768.0
}

/// Streaming resampler to 16 kHz for one mono stream, with the filter delay removed so the
/// output lines up with the input, and the length `ceil(n_in · 16000 / rate)`.
struct StreamResampler {
    inner: FftFixedIn<f32>,
    rate: usize,
    /// Input frames per rubato call.
    chunk: usize,
    /// Input not yet handed to rubato (less than one chunk after each push).
    pending: Vec<f32>,
    out_buf: Vec<Vec<f32>>,
    /// Output frames of filter delay still to drop.
    skip: usize,
    in_total: u64,
    out_total: u64,
}

impl StreamResampler {
    fn new(rate: usize) -> std::result::Result<Self, String> {
        // rubato centres its filter on sample fft_size/2 (integer division) but reports a delay
        // of half the output FFT: the two agree only for an even number of the rates' smallest
        // whole periods per FFT. An odd one would shift the output by half an input sample.
        let period_in = rate / gcd(rate, SAMPLE_RATE);
        let periods = 2 * RESAMPLE_CHUNK.div_ceil(2 * period_in);
        let chunk = periods * period_in;
        let inner = FftFixedIn::<f32>::new(rate, SAMPLE_RATE, chunk, 1, 1)
            .map_err(|e| format!("cannot resample from {rate} Hz: {e}"))?;
        let out_buf = vec![vec![0f32; inner.output_frames_max()]];
        let skip = inner.output_delay();
        Ok(StreamResampler {
            inner,
            rate,
            chunk,
            pending: Vec::with_capacity(2 * chunk),
            out_buf,
            skip,
            in_total: 0,
            out_total: 0,
        })
    }

    fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) {
        self.in_total += samples.len() as u64;
        self.pending.extend_from_slice(samples);
        let mut used = 0;
        while self.pending.len() - used >= self.chunk {
            let chunk = &self.pending[used..used + self.chunk];
            let (_, n) = self
                .inner
                .process_into_buffer(&[chunk], &mut self.out_buf, None)
                .expect("buffers sized by the resampler");
            used += self.chunk;
            self.emit(n, out, u64::MAX);
        }
        self.pending.drain(..used);
    }

    fn finish(mut self, out: &mut Vec<f32>) -> std::result::Result<(), String> {
        let target = (self.in_total * SAMPLE_RATE as u64).div_ceil(self.rate as u64);
        let mut first = true;
        // Feed the remainder, then zeros, until the delayed tail has come out.
        while self.out_total < target {
            let res = if first && !self.pending.is_empty() {
                let rest = std::mem::take(&mut self.pending);
                self.inner
                    .process_partial_into_buffer(Some(&[rest][..]), &mut self.out_buf, None)
            } else {
                self.inner
                    .process_partial_into_buffer(None::<&[Vec<f32>]>, &mut self.out_buf, None)
            };
            first = false;
            let (_, n) = res.map_err(|e| format!("resampling failed: {e}"))?;
            self.emit(n, out, target);
        }
        Ok(())
    }

    /// Appends `n` fresh output frames, minus the leading delay, up to `limit` in total.
    fn emit(&mut self, n: usize, out: &mut Vec<f32>, limit: u64) {
        let fresh = &self.out_buf[0][..n];
        let dropped = self.skip.min(fresh.len());
        self.skip -= dropped;
        let room = limit.saturating_sub(self.out_total) as usize;
        let take = &fresh[dropped..][..(fresh.len() - dropped).min(room)];
        out.extend(take.iter().map(|&x| to_s16_grid(x)));
        self.out_total += take.len() as u64;
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Leading media time an MP4 edit list skips, in the track's media timescale.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Priming {
    media_time: u64,
    timescale: u32,
}

/// The encoder priming of the first sound track of an MP4/M4A file, from its edit list
/// (`moov/trak/edts/elst`, first non-empty edit) and media timescale (`mdia/mdhd`). `None` for
/// anything else or anything malformed: then nothing is skipped and symphonia reports errors.
fn mp4_priming<R: Read + Seek>(src: &mut R) -> Option<Priming> {
    let mut head = [0u8; 8];
    src.read_exact(&mut head).ok()?;
    if &head[4..8] != b"ftyp" {
        return None;
    }
    // Walk the top-level boxes (moov is often after the media data) and load moov.
    let mut pos = 0u64;
    loop {
        src.seek(SeekFrom::Start(pos)).ok()?;
        src.read_exact(&mut head).ok()?;
        let (size, header) = match u32::from_be_bytes(head[..4].try_into().ok()?) {
            1 => {
                let mut big = [0u8; 8];
                src.read_exact(&mut big).ok()?;
                (u64::from_be_bytes(big), 16)
            }
            0 => return None, // last box runs to the end: no moov after it
            n => (n as u64, 8),
        };
        if size < header {
            return None;
        }
        if &head[4..8] == b"moov" {
            if size > MAX_MOOV_BYTES {
                return None;
            }
            let mut moov = vec![0u8; (size - header) as usize];
            src.read_exact(&mut moov).ok()?;
            return boxes(&moov)
                .filter(|(t, _)| t == b"trak")
                .find_map(|(_, trak)| trak_priming(trak));
        }
        pos = pos.checked_add(size)?;
    }
}

fn trak_priming(trak: &[u8]) -> Option<Priming> {
    let mdia = child(trak, b"mdia")?;
    let hdlr = child(mdia, b"hdlr")?;
    if hdlr.get(8..12)? != b"soun" {
        return None;
    }
    let mdhd = child(mdia, b"mdhd")?;
    let timescale = match mdhd.first()? {
        0 => be_u32(mdhd.get(12..16)?),
        1 => be_u32(mdhd.get(20..24)?),
        _ => return None,
    };
    let elst = child(child(trak, b"edts")?, b"elst")?;
    let version = *elst.first()?;
    let count = be_u32(elst.get(4..8)?) as usize;
    let entry_len = if version == 1 { 20 } else { 12 };
    (0..count.min(64)).find_map(|i| {
        let e = elst.get(8 + i * entry_len..8 + (i + 1) * entry_len)?;
        let media_time = if version == 1 {
            i64::from_be_bytes(e[8..16].try_into().ok()?)
        } else {
            be_u32(&e[4..8]) as i32 as i64
        };
        // media_time −1 marks an empty edit (a gap), not a skip.
        (media_time >= 0).then_some(Priming {
            media_time: media_time as u64,
            timescale,
        })
    })
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Payload of the first child box of type `kind`.
fn child<'a>(parent: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(parent).find(|(t, _)| t == kind).map(|(_, body)| body)
}

/// The (type, payload) of each box in `buf`, stopping at the first malformed header.
fn boxes(buf: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let head = buf.get(pos..pos + 8)?;
        let kind: [u8; 4] = head[4..8].try_into().ok()?;
        let (size, header) = match be_u32(&head[..4]) {
            1 => (
                u64::from_be_bytes(buf.get(pos + 8..pos + 16)?.try_into().ok()?) as usize,
                16,
            ),
            0 => (buf.len() - pos, 8),
            n => (n as usize, 8),
        };
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= buf.len() && size >= header)?;
        let body = &buf[pos + header..end];
        pos = end;
        Some((kind, body))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An MP4 box: big-endian size, type, payload.
    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    /// A minimal MP4 skeleton with one track of `handler` whose edit list skips `media_time`
    /// (edit list version 0 or 1), media timescale 48000; `moov_first` puts moov before mdat.
    fn mp4(handler: &[u8; 4], media_time: i64, version: u8, moov_first: bool) -> Vec<u8> {
        let mut elst = vec![version, 0, 0, 0];
        elst.extend_from_slice(&2u32.to_be_bytes());
        for mt in [-1, media_time] {
            if version == 1 {
                elst.extend_from_slice(&1000u64.to_be_bytes());
                elst.extend_from_slice(&mt.to_be_bytes());
            } else {
                elst.extend_from_slice(&1000u32.to_be_bytes());
                elst.extend_from_slice(&(mt as i32).to_be_bytes());
            }
            elst.extend_from_slice(&[0, 1, 0, 0]);
        }
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 12]);
        let mut mdhd = vec![0u8; 12];
        mdhd.extend_from_slice(&48_000u32.to_be_bytes());
        mdhd.extend_from_slice(&[0; 8]);
        let mdia = [mp4_box(b"mdhd", &mdhd), mp4_box(b"hdlr", &hdlr)].concat();
        let trak = [
            mp4_box(b"edts", &mp4_box(b"elst", &elst)),
            mp4_box(b"mdia", &mdia),
        ]
        .concat();
        let moov = mp4_box(b"moov", &mp4_box(b"trak", &trak));
        let mdat = mp4_box(b"mdat", &[0xAB; 100]);
        let ftyp = mp4_box(b"ftyp", b"M4A \0\0\0\0");
        if moov_first {
            [ftyp, moov, mdat].concat()
        } else {
            [ftyp, mdat, moov].concat()
        }
    }

    #[test]
    fn mp4_priming_from_edit_list() {
        let want = Some(Priming {
            media_time: 1024,
            timescale: 48_000,
        });
        for version in [0, 1] {
            for moov_first in [true, false] {
                let file = mp4(b"soun", 1024, version, moov_first);
                assert_eq!(
                    mp4_priming(&mut Cursor::new(&file)),
                    want,
                    "v{version} {moov_first}"
                );
            }
        }
        // Not a sound track, not MP4, or cut before moov: no priming, no panic.
        assert_eq!(
            mp4_priming(&mut Cursor::new(mp4(b"vide", 1024, 0, true))),
            None
        );
        assert_eq!(
            mp4_priming(&mut Cursor::new(b"RIFF\0\0\0\0WAVE".to_vec())),
            None
        );
        let file = mp4(b"soun", 1024, 0, false);
        for cut in [0, 5, 20, 40, file.len() - 30, file.len() - 1] {
            assert_eq!(
                mp4_priming(&mut Cursor::new(&file[..cut])),
                None,
                "cut at {cut}"
            );
        }
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

    #[test]
    fn resampler_keeps_length_and_alignment() {
        // A 440 Hz tone at 44.1 kHz resampled to 16 kHz must come out with the right length and
        // no time shift: compare against the tone generated directly at 16 kHz.
        for rate in [8_000usize, 22_050, 44_100, 48_000] {
            let n_in = rate * 3 / 2 + 7;
            let tone = |t: f64| (2.0 * std::f64::consts::PI * 440.0 * t).sin() as f32 * 0.5;
            let input: Vec<f32> = (0..n_in).map(|i| tone(i as f64 / rate as f64)).collect();
            let mut r = StreamResampler::new(rate).unwrap();
            let mut out = Vec::new();
            // Uneven pushes, like packets.
            for piece in input.chunks(333) {
                r.push(piece, &mut out);
            }
            r.finish(&mut out).unwrap();
            assert_eq!(
                out.len() as u64,
                (n_in as u64 * 16_000).div_ceil(rate as u64),
                "rate {rate}"
            );
            // Away from the edges the error is at the s16 quantisation level.
            let worst = (2000..out.len() - 2000)
                .map(|i| (out[i] - tone(i as f64 / 16_000.0)).abs())
                .fold(0f32, f32::max);
            assert!(worst < 2e-3, "rate {rate}: worst error {worst}");
        }
    }
}
