//! Voice activity detection: which parts of the audio hold speech.
//!
//! The model sits behind the [`Vad`] trait (one speech probability per 512-sample window at
//! 16 kHz, stateful across calls); [`SileroVad`] is Silero VAD v6 run by ONNX Runtime, the only
//! place in the crate that touches `ort`. Everything else here is pure logic that follows
//! faster-whisper 1.2.1 (`faster_whisper/vad.py` and the batched pipeline of `transcribe.py`):
//!
//! - [`VadOptions`]: its `VadOptions`, same fields and defaults, plus [`VadOptions::validate`];
//! - [`speech_timestamps`]: its `get_speech_timestamps` rules on given probabilities;
//! - [`SpeechTimeline`]: its `SpeechTimestampsMap` (time in the speech-only audio → original time);
//! - [`merge_chunks`]: its `collect_chunks(max_duration=…)`, speech chunks packed into windows of
//!   at most 30 s as `BatchedInferencePipeline` does.
//!
//! Memory stays bounded: a file is fed block by block ([`VadFeeder`]) and only the
//! probabilities (one `f32` per 512 samples) are kept.

mod silero;

pub use silero::SileroVad;

use crate::error::{Error, Result};

/// Sample rate the VAD works at.
pub const SAMPLE_RATE: usize = 16_000;
/// Samples per probability (32 ms at 16 kHz).
pub const WINDOW: usize = 512;
/// Samples of the previous window the model sees in front of each window.
pub const CONTEXT: usize = 64;

/// A voice activity detector: one speech probability in [0, 1] per [`WINDOW`] samples.
///
/// Implementations are stateful: a call continues where the previous one ended, so a long file
/// can be fed block by block and a live stream window by window, and feeding the same samples
/// in blocks of any multiple of [`WINDOW`] gives the same probabilities as one call.
pub trait Vad {
    /// Forgets everything seen so far: the next call starts a new stream.
    fn reset(&mut self);
    /// Probabilities of the next `samples.len() / WINDOW` windows. `samples.len()` must be a
    /// multiple of [`WINDOW`] (an error otherwise); an empty slice gives an empty result.
    fn probabilities(&mut self, samples: &[f32]) -> Result<Vec<f32>>;
}

impl<V: Vad + ?Sized> Vad for &mut V {
    fn reset(&mut self) {
        (**self).reset()
    }
    fn probabilities(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        (**self).probabilities(samples)
    }
}

impl<V: Vad + ?Sized> Vad for Box<V> {
    fn reset(&mut self) {
        (**self).reset()
    }
    fn probabilities(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        (**self).probabilities(samples)
    }
}

/// Feeds a whole file to a [`Vad`] in blocks of any size and ends it the way faster-whisper's
/// `get_speech_timestamps` does, so [`speech_timestamps`] on the result equals faster-whisper's.
///
/// faster-whisper pads the audio with zeros to the next multiple of 512 (a whole window of zeros
/// when the length already is one) and its model call zeroes the last 64 samples of the last
/// window. Complete windows are fed as they arrive; only the final, partial window gets the
/// padding and the zeroing, in [`finish`](Self::finish). Keeps at most 511 pending samples.
pub struct VadFeeder<V: Vad> {
    vad: V,
    pending: Vec<f32>,
    probs: Vec<f32>,
    n_samples: usize,
}

impl<V: Vad> VadFeeder<V> {
    /// Starts a new file (resets the detector).
    pub fn new(mut vad: V) -> Self {
        vad.reset();
        VadFeeder {
            vad,
            pending: Vec::with_capacity(WINDOW),
            probs: Vec::new(),
            n_samples: 0,
        }
    }

    /// The next samples of the file, any number.
    pub fn push(&mut self, mut samples: &[f32]) -> Result<()> {
        self.n_samples += samples.len();
        if !self.pending.is_empty() {
            let take = (WINDOW - self.pending.len()).min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.pending.len() < WINDOW {
                return Ok(());
            }
            let p = self.vad.probabilities(&self.pending)?;
            self.probs.extend_from_slice(&p);
            self.pending.clear();
        }
        let whole = samples.len() / WINDOW * WINDOW;
        if whole > 0 {
            let p = self.vad.probabilities(&samples[..whole])?;
            self.probs.extend_from_slice(&p);
        }
        self.pending.extend_from_slice(&samples[whole..]);
        Ok(())
    }

    /// Probabilities seen so far (complete windows only).
    pub fn probabilities_so_far(&self) -> &[f32] {
        &self.probs
    }

    /// Ends the file: feeds the padded last window and returns every probability
    /// (`n_samples / 512 + 1` of them) with the number of samples pushed.
    pub fn finish(mut self) -> Result<(Vec<f32>, usize)> {
        let mut last = std::mem::take(&mut self.pending);
        last.resize(WINDOW, 0.0);
        last[WINDOW - CONTEXT..].fill(0.0);
        let p = self.vad.probabilities(&last)?;
        self.probs.extend_from_slice(&p);
        Ok((self.probs, self.n_samples))
    }

    /// Gives the detector back (after [`finish`](Self::finish) is not possible; use this to
    /// abandon a file).
    pub fn into_inner(self) -> V {
        self.vad
    }
}

/// The probabilities faster-whisper's `get_speech_timestamps` computes for `samples` (a whole
/// file in memory): [`VadFeeder`] in one push.
pub fn file_probabilities<V: Vad>(vad: V, samples: &[f32]) -> Result<Vec<f32>> {
    let mut feeder = VadFeeder::new(vad);
    feeder.push(samples)?;
    Ok(feeder.finish()?.0)
}

/// faster-whisper 1.2.1's `VadOptions`: same fields, same defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct VadOptions {
    /// Windows with a probability at or above this are speech.
    pub threshold: f64,
    /// Below this a window is silence; in between, it continues what came before.
    /// `None`: `max(threshold - 0.15, 0.01)`.
    pub neg_threshold: Option<f64>,
    /// Speech chunks this short or shorter are dropped.
    pub min_speech_duration_ms: u32,
    /// Longer chunks are split: at the last silence of more than ~100 ms if any, else just
    /// before this length. `f64::INFINITY`: never.
    pub max_speech_duration_s: f64,
    /// Silence needed to end a chunk.
    pub min_silence_duration_ms: u32,
    /// Padding added on each side of a chunk.
    pub speech_pad_ms: u32,
}

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_duration_ms: 0,
            max_speech_duration_s: f64::INFINITY,
            min_silence_duration_ms: 2000,
            speech_pad_ms: 400,
        }
    }
}

impl VadOptions {
    /// What faster-whisper's `BatchedInferencePipeline.transcribe` uses when given no VAD
    /// parameters: chunks of at most `chunk_length_s` (30), split at silences of 160 ms.
    pub fn batched(chunk_length_s: f64) -> Self {
        VadOptions {
            max_speech_duration_s: chunk_length_s,
            min_silence_duration_ms: 160,
            ..Default::default()
        }
    }

    /// The effective silence threshold.
    pub fn neg_threshold(&self) -> f64 {
        self.neg_threshold
            .unwrap_or_else(|| (self.threshold - 0.15).max(0.01))
    }

    /// Checks every field; the error names the field, its value and the allowed range.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidArgument(format!("VAD option {msg}")));
        if !(self.threshold.is_finite() && (0.0..=1.0).contains(&self.threshold)) {
            return bad(format!(
                "threshold = {} is out of range: it is a probability, between 0 and 1",
                self.threshold
            ));
        }
        if let Some(neg) = self.neg_threshold {
            if !(neg.is_finite() && (0.0..=1.0).contains(&neg)) {
                return bad(format!(
                    "neg_threshold = {neg} is out of range: it is a probability, between 0 and 1"
                ));
            }
            if neg > self.threshold {
                return bad(format!(
                    "neg_threshold = {neg} is above threshold = {}: the silence threshold must not exceed the speech threshold",
                    self.threshold
                ));
            }
        }
        if self.max_speech_duration_s.is_nan() || self.max_speech_duration_s <= 0.0 {
            return bad(format!(
                "max_speech_duration_s = {} is out of range: give a positive number of seconds (or infinity for no limit)",
                self.max_speech_duration_s
            ));
        }
        // faster-whisper splits at max_speech_duration_s minus one window minus both paddings;
        // at or below zero every window would be cut.
        let min_max_s = (WINDOW as f64 + 2.0 * self.speech_pad_samples()) / SAMPLE_RATE as f64;
        if self.max_speech_duration_s <= min_max_s {
            return bad(format!(
                "max_speech_duration_s = {} is too short: with speech_pad_ms = {} it must exceed {min_max_s} s \
                 (two paddings and one 32 ms window)",
                self.max_speech_duration_s, self.speech_pad_ms
            ));
        }
        const DAY_MS: u32 = 24 * 3600 * 1000;
        for (name, v) in [
            ("min_speech_duration_ms", self.min_speech_duration_ms),
            ("min_silence_duration_ms", self.min_silence_duration_ms),
            ("speech_pad_ms", self.speech_pad_ms),
        ] {
            if v > DAY_MS {
                return bad(format!(
                    "{name} = {v} is out of range: at most {DAY_MS} (one day)"
                ));
            }
        }
        Ok(())
    }

    fn speech_pad_samples(&self) -> f64 {
        SAMPLE_RATE as f64 * self.speech_pad_ms as f64 / 1000.0
    }
}

/// A stretch of speech in samples of the 16 kHz audio: `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpeechChunk {
    pub start: usize,
    pub end: usize,
}

impl SpeechChunk {
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn start_secs(&self) -> f64 {
        self.start as f64 / SAMPLE_RATE as f64
    }
    pub fn end_secs(&self) -> f64 {
        self.end as f64 / SAMPLE_RATE as f64
    }
}

/// The speech chunks of a file of `n_samples` samples from its window probabilities
/// (`probs[i]` for samples `512 i .. 512 (i + 1)`), by faster-whisper 1.2.1's
/// `get_speech_timestamps` rules, padding and merging of close chunks included.
///
/// Probabilities are compared with the thresholds in `f32`, as NumPy 2 compares the model's
/// `float32` outputs with Python floats. `opts` should have passed [`VadOptions::validate`];
/// other options give meaningless (but memory-safe) results.
pub fn speech_timestamps(probs: &[f32], n_samples: usize, opts: &VadOptions) -> Vec<SpeechChunk> {
    let sr = SAMPLE_RATE as f64;
    let window = WINDOW as i64;
    let threshold = opts.threshold as f32;
    let neg_threshold = opts.neg_threshold() as f32;
    let min_speech_samples = sr * opts.min_speech_duration_ms as f64 / 1000.0;
    let speech_pad_samples = opts.speech_pad_samples();
    let max_speech_samples =
        sr * opts.max_speech_duration_s - WINDOW as f64 - 2.0 * speech_pad_samples;
    let min_silence_samples = sr * opts.min_silence_duration_ms as f64 / 1000.0;
    let min_silence_samples_at_max_speech = sr * 98.0 / 1000.0;
    let audio_len = n_samples as i64;

    // (start, end) in samples; i64 like Python's ints (the padding below may go negative
    // before clamping).
    let mut speeches: Vec<(i64, i64)> = Vec::new();
    let mut triggered = false;
    let mut current_start: Option<i64> = None;
    // Potential end of the current chunk (0: none), tolerating some silence.
    let mut temp_end: i64 = 0;
    // Where to cut when the chunk reaches max_speech_samples (0: none).
    let mut prev_end: i64 = 0;
    let mut next_start: i64 = 0;

    for (i, &p) in probs.iter().enumerate() {
        let pos = window * i as i64;
        if p >= threshold && temp_end != 0 {
            temp_end = 0;
            if next_start < prev_end {
                next_start = pos;
            }
        }
        if p >= threshold && !triggered {
            triggered = true;
            current_start = Some(pos);
            continue;
        }
        if triggered {
            let start = current_start.expect("a triggered chunk has a start");
            if (pos - start) as f64 > max_speech_samples {
                if prev_end != 0 {
                    speeches.push((start, prev_end));
                    current_start = None;
                    // Already in silence (below neg_threshold) and not speech again yet.
                    if next_start < prev_end {
                        triggered = false;
                    } else {
                        current_start = Some(next_start);
                    }
                    prev_end = 0;
                    next_start = 0;
                    temp_end = 0;
                } else {
                    speeches.push((start, pos));
                    current_start = None;
                    prev_end = 0;
                    next_start = 0;
                    temp_end = 0;
                    triggered = false;
                    continue;
                }
            }
        }
        if p < neg_threshold && triggered {
            if temp_end == 0 {
                temp_end = pos;
            }
            // Avoid cutting in a very short silence.
            if (pos - temp_end) as f64 > min_silence_samples_at_max_speech {
                prev_end = temp_end;
            }
            if ((pos - temp_end) as f64) < min_silence_samples {
                continue;
            }
            let start = current_start.expect("a triggered chunk has a start");
            if (temp_end - start) as f64 > min_speech_samples {
                speeches.push((start, temp_end));
            }
            current_start = None;
            prev_end = 0;
            next_start = 0;
            temp_end = 0;
            triggered = false;
            continue;
        }
    }
    if let Some(start) = current_start {
        if (audio_len - start) as f64 > min_speech_samples {
            speeches.push((start, audio_len));
        }
    }

    // Padding: half the gap each when two chunks are closer than two paddings.
    let n = speeches.len();
    for i in 0..n {
        if i == 0 {
            speeches[0].0 = (speeches[0].0 as f64 - speech_pad_samples).max(0.0) as i64;
        }
        if i + 1 != n {
            let silence = speeches[i + 1].0 - speeches[i].1;
            if (silence as f64) < 2.0 * speech_pad_samples {
                let half = silence.div_euclid(2);
                speeches[i].1 += half;
                speeches[i + 1].0 = (speeches[i + 1].0 - half).max(0);
            } else {
                speeches[i].1 =
                    (audio_len as f64).min(speeches[i].1 as f64 + speech_pad_samples) as i64;
                speeches[i + 1].0 = (speeches[i + 1].0 as f64 - speech_pad_samples).max(0.0) as i64;
            }
        } else {
            speeches[i].1 =
                (audio_len as f64).min(speeches[i].1 as f64 + speech_pad_samples) as i64;
        }
    }
    speeches
        .into_iter()
        .map(|(s, e)| SpeechChunk {
            start: s.max(0) as usize,
            end: e.max(0) as usize,
        })
        .collect()
}

/// Rounds like Python's `round(x, 2)`: the correctly rounded decimal, ties to even.
pub(crate) fn round2(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.2}").parse().unwrap_or(x)
}

/// faster-whisper's `SpeechTimestampsMap`: maps a time in the audio made of the speech chunks
/// only (concatenated) back to the time in the original audio, rounded to 0.01 s.
#[derive(Clone, Debug, Default)]
pub struct SpeechTimeline {
    /// End of each chunk in the concatenated audio, in samples.
    chunk_end_sample: Vec<i64>,
    /// Silence removed before each chunk, in seconds.
    total_silence_before: Vec<f64>,
}

impl SpeechTimeline {
    pub fn new(chunks: &[SpeechChunk]) -> Self {
        let mut previous_end: i64 = 0;
        let mut silent_samples: i64 = 0;
        let mut chunk_end_sample = Vec::with_capacity(chunks.len());
        let mut total_silence_before = Vec::with_capacity(chunks.len());
        for c in chunks {
            silent_samples += c.start as i64 - previous_end;
            previous_end = c.end as i64;
            chunk_end_sample.push(c.end as i64 - silent_samples);
            total_silence_before.push(silent_samples as f64 / SAMPLE_RATE as f64);
        }
        SpeechTimeline {
            chunk_end_sample,
            total_silence_before,
        }
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.chunk_end_sample.len()
    }
    pub fn is_empty(&self) -> bool {
        self.chunk_end_sample.is_empty()
    }

    /// The chunk a time (seconds, concatenated audio) falls in: the first chunk ending after
    /// it (the last chunk past the end); with `is_end`, a time exactly at a chunk's end belongs
    /// to that chunk rather than to the next one. 0 when there are no chunks.
    pub fn chunk_index(&self, time: f64, is_end: bool) -> usize {
        if self.chunk_end_sample.is_empty() {
            return 0;
        }
        // Python's int(): truncation toward zero (saturating for absurd values).
        let sample = (time * SAMPLE_RATE as f64) as i64;
        if is_end {
            if let Some(i) = self.chunk_end_sample.iter().position(|&e| e == sample) {
                return i;
            }
        }
        let after = self.chunk_end_sample.partition_point(|&e| e <= sample);
        after.min(self.chunk_end_sample.len() - 1)
    }

    /// The original time of `time` (seconds in the concatenated audio), rounded to 0.01 s:
    /// `time` plus the silence removed before its chunk. `chunk_index` forces the chunk (as
    /// faster-whisper does for the two ends of a word); otherwise it is
    /// [`chunk_index`](Self::chunk_index)`(time, is_end)`. With no chunks, `time` rounded.
    pub fn original_time(&self, time: f64, chunk_index: Option<usize>, is_end: bool) -> f64 {
        let i = chunk_index.unwrap_or_else(|| self.chunk_index(time, is_end));
        let before = self
            .total_silence_before
            .get(i)
            .copied()
            .unwrap_or_else(|| self.total_silence_before.last().copied().unwrap_or(0.0));
        round2(before + time)
    }
}

/// A window of speech chunks transcribed as one (at most `max_duration_s` of speech).
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechWindow {
    /// Start of the first chunk, in original samples.
    pub start: usize,
    /// End of the last chunk, in original samples.
    pub end: usize,
    /// Where the window starts in the concatenated speech audio, in samples (faster-whisper's
    /// `offset` times 16000).
    pub offset: usize,
    /// Samples of speech in the window (the sum of its chunks' lengths).
    pub duration: usize,
    /// The chunks, in order.
    pub chunks: Vec<SpeechChunk>,
}

impl SpeechWindow {
    pub fn offset_secs(&self) -> f64 {
        self.offset as f64 / SAMPLE_RATE as f64
    }
    pub fn duration_secs(&self) -> f64 {
        self.duration as f64 / SAMPLE_RATE as f64
    }
}

/// Packs speech chunks into windows of at most `max_duration_s` seconds of speech, greedily and
/// in order, as faster-whisper 1.2.1's `collect_chunks(audio, chunks, max_duration=30)` does for
/// `BatchedInferencePipeline`; each window's audio is its chunks' audio concatenated.
///
/// Same windows, offsets and durations as faster-whisper, with two differences that do not
/// change what is transcribed: no chunks give no window (faster-whisper returns one empty
/// window, which it then skips), and `chunks` lists every chunk of the window (faster-whisper's
/// `segments` metadata, unused there, omits the chunk that opened each window after the first).
/// A chunk longer than the limit gets a window of its own.
pub fn merge_chunks(chunks: &[SpeechChunk], max_duration_s: f64) -> Vec<SpeechWindow> {
    let max_samples = max_duration_s * SAMPLE_RATE as f64;
    let mut windows = Vec::new();
    let mut current: Vec<SpeechChunk> = Vec::new();
    let mut current_duration = 0usize;
    let mut total_duration = 0usize;
    let close = |current: Vec<SpeechChunk>, duration: usize, offset: usize| SpeechWindow {
        start: current.first().map_or(0, |c| c.start),
        end: current.last().map_or(0, |c| c.end),
        offset,
        duration,
        chunks: current,
    };
    for &c in chunks {
        if (current_duration + c.len()) as f64 > max_samples && !current.is_empty() {
            windows.push(close(
                std::mem::take(&mut current),
                current_duration,
                total_duration,
            ));
            total_duration += current_duration;
            current_duration = 0;
        }
        current.push(c);
        current_duration += c.len();
    }
    if !current.is_empty() {
        windows.push(close(current, current_duration, total_duration));
    }
    windows
}
