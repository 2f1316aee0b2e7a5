//! The batched long-form pipeline (`--batch-size N`): the recording is cut into windows of at
//! most 30 s (merged speech chunks of the VAD, or plain 30 s windows), each window is decoded
//! on its own (no conditioning on the previous window's text), encoder passes run over
//! several windows at once, and decoding runs through the continuous batch. As in
//! faster-whisper's `BatchedInferencePipeline` each window's log-mel is computed from its own
//! audio; unlike it we keep segment timestamps, temperature fallback and no-speech skipping.
//!
//! Only the windows in flight are held: samples are read window by window through a
//! callback, so memory does not grow with the length of the recording.

use std::ops::Range;

use tracing::info_span;

use crate::audio::SAMPLE_RATE;
use crate::batch::ContinuousBatch;
use crate::mel::{Mel, HOP_LENGTH, N_FRAMES, N_SAMPLES};
use crate::transcribe::{split_by_timestamps, Segment, TranscribeOptions, Transcriber, Transcript};
use crate::window::WindowResult;
use crate::{Error, Result};

/// Windows encoded in one encoder pass at most (bounds the encoder's activation memory).
const MAX_ENCODER_GROUP: usize = 2;

/// One window of the batched pipeline: sample ranges of the original recording, decoded as
/// one concatenated piece of audio (at most 30 s), and where it starts on the speech timeline
/// (the concatenation of every window).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchWindow {
    pub pieces: Vec<Range<usize>>,
    /// Seconds on the speech timeline (equal to the original time without a VAD).
    pub offset: f64,
}

impl BatchWindow {
    pub fn n_samples(&self) -> usize {
        self.pieces.iter().map(|r| r.len()).sum()
    }
}

/// Plain 30 s windows over `n_samples` (no VAD).
pub fn fixed_windows(n_samples: usize) -> Vec<BatchWindow> {
    (0..n_samples)
        .step_by(N_SAMPLES)
        .map(|s| BatchWindow { pieces: vec![s..(s + N_SAMPLES).min(n_samples)], offset: s as f64 / SAMPLE_RATE as f64 })
        .collect()
}

/// Groups speech chunks (sample ranges, sorted) into windows of at most `max_samples`, the way
/// faster-whisper's `collect_chunks` does: a chunk that would overflow the current window
/// starts the next one.
pub fn merge_chunks(chunks: &[Range<usize>], max_samples: usize) -> Vec<BatchWindow> {
    let mut out = Vec::new();
    let mut cur: Vec<Range<usize>> = Vec::new();
    let (mut cur_len, mut total) = (0usize, 0usize);
    for c in chunks {
        if !cur.is_empty() && cur_len + c.len() > max_samples {
            out.push(BatchWindow { pieces: std::mem::take(&mut cur), offset: total as f64 / SAMPLE_RATE as f64 });
            total += cur_len;
            cur_len = 0;
        }
        // A single chunk longer than a window is cut (the VAD's max speech duration keeps
        // chunks within 30 s, so this only guards odd options).
        let mut c = c.clone();
        while c.len() > max_samples {
            out.push(BatchWindow { pieces: vec![c.start..c.start + max_samples], offset: total as f64 / SAMPLE_RATE as f64 });
            total += max_samples;
            c.start += max_samples;
        }
        cur_len += c.len();
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(BatchWindow { pieces: cur, offset: total as f64 / SAMPLE_RATE as f64 });
    }
    out
}

/// Where the batched pipeline gets its audio and how it maps times back.
pub struct BatchInput<'a> {
    /// Reads original samples `range` (16 kHz mono).
    pub read: &'a mut dyn FnMut(Range<usize>) -> Result<Vec<f32>>,
    /// Maps a time on the speech timeline to the original one (`is_end`: the end of a
    /// segment, which stays in the chunk it ends).
    pub map_time: &'a dyn Fn(f64, bool) -> f64,
    /// Seconds of the original recording.
    pub duration: f64,
}

impl Transcriber<'_> {
    /// Transcribes `windows` with up to `batch_size` windows decoded together, calling
    /// `on_segment` in order as segments become final.
    pub fn transcribe_batched(
        &self,
        windows: &[BatchWindow],
        input: BatchInput<'_>,
        opts: &TranscribeOptions,
        batch_size: usize,
        on_segment: &mut dyn FnMut(&Segment),
    ) -> Result<Transcript> {
        opts.validate()?;
        if !(1..=64).contains(&batch_size) {
            return Err(Error::InvalidArgument(format!("batch size {batch_size} must be between 1 and 64")));
        }
        let _span = info_span!("transcribe_batched", windows = windows.len(), batch_size).entered();
        let model = self.model;
        let tk = &model.tokenizer;
        let window_opts = std::sync::Arc::new(self.window_options(opts));
        let mut encoded: Vec<(usize, Vec<f32>)> = Vec::new();
        let mut next = 0;
        // The language: given, English-only, or detected on the first window.
        let (language, language_probability) = match &opts.language {
            Some(code) => {
                tk.sot_sequence(Some(code), opts.task)?;
                (if tk.multilingual { code.clone() } else { "en".into() }, 1.0)
            }
            None if !tk.multilingual || windows.is_empty() => ("en".to_string(), 1.0),
            None => {
                let mel = self.window_mel(&windows[0], input.read)?;
                let audio = model.encode(&mel)?;
                let r = self.detect_language(&audio)?;
                encoded.push((0, audio));
                next = 1;
                r
            }
        };
        let mut prompt = Vec::new();
        let hotwords = self.hotword_tokens(opts)?;
        if opts.initial_prompt.is_some() || !hotwords.is_empty() {
            prompt.push(tk.sot_prev);
            prompt.extend(hotwords);
        }
        if let Some(p) = &opts.initial_prompt {
            prompt.extend(tk.encode(&format!(" {}", p.trim()))?);
        }
        prompt.extend(tk.sot_sequence(Some(&language), opts.task)?);
        if opts.without_timestamps {
            prompt.push(tk.no_timestamps);
        }

        let mut batch: ContinuousBatch<'_, usize> = ContinuousBatch::new(model, batch_size);
        let mut results: Vec<Option<WindowResult>> = vec![None; windows.len()];
        let mut emitted = 0;
        let mut segments = Vec::new();
        while emitted < windows.len() {
            // Fill the batch: encode waiting windows (a few per encoder pass) and join them.
            while batch.has_room() && (next < windows.len() || !encoded.is_empty()) {
                if encoded.is_empty() {
                    let room = batch_size - batch.len();
                    let group = room.min(MAX_ENCODER_GROUP).min(windows.len() - next);
                    let mut mels = Vec::with_capacity(group);
                    for w in &windows[next..next + group] {
                        mels.push(self.window_mel(w, input.read)?);
                    }
                    encoded = (next..next + group).zip(model.encode_batch(&mels)?).collect();
                    next += group;
                }
                let (i, audio) = encoded.remove(0);
                batch.join(i, &audio, prompt.clone(), window_opts.clone()).map_err(|(_, e)| e)?;
            }
            for (i, r) in batch.step() {
                results[i] = Some(r?);
            }
            while emitted < windows.len() {
                let Some(r) = results[emitted].take() else { break };
                self.emit_window(&windows[emitted], r, opts, &input, &mut segments, on_segment);
                emitted += 1;
            }
        }
        Ok(Transcript { language, language_probability, duration: input.duration, segments })
    }

    /// The encoder input of one window: the log-mel of its own audio, 3000 frames.
    fn window_mel(&self, w: &BatchWindow, read: &mut dyn FnMut(Range<usize>) -> Result<Vec<f32>>) -> Result<Mel> {
        let mut audio = Vec::with_capacity(w.n_samples());
        for r in &w.pieces {
            audio.extend(read(r.clone())?);
        }
        audio.truncate(N_SAMPLES);
        let mel = self.mel(&audio);
        // faster-whisper drops the last frame of each chunk's features, then pads to 3000.
        Ok(mel.window(0, mel.n_frames.saturating_sub(1).min(N_FRAMES)).pad_or_trim(N_FRAMES))
    }

    fn emit_window(
        &self,
        w: &BatchWindow,
        r: WindowResult,
        opts: &TranscribeOptions,
        input: &BatchInput<'_>,
        segments: &mut Vec<Segment>,
        on_segment: &mut dyn FnMut(&Segment),
    ) {
        let tk = &self.model.tokenizer;
        let WindowResult { generation: g, avg_logprob, temperature, compression_ratio } = r;
        if let Some(th) = opts.no_speech_threshold {
            if g.no_speech_prob > th && !opts.log_prob_threshold.is_some_and(|lp| avg_logprob > lp) {
                return;
            }
        }
        let duration = w.n_samples().min(N_SAMPLES) as f64 / SAMPLE_RATE as f64;
        let segment_size = duration.ceil() as usize * (SAMPLE_RATE / HOP_LENGTH);
        let seek = (w.offset * (SAMPLE_RATE / HOP_LENGTH) as f64).round() as usize;
        let tb = tk.no_timestamps + 1;
        let (mut pieces, _) = split_by_timestamps(tb, &g.tokens, w.offset, 0, segment_size, duration);
        // The sequential loop would seek back to decode an unfinished last segment again; a
        // window here is decoded once, so its tail becomes a segment that ends with the window.
        let consumed: usize = pieces.iter().map(|p| p.2.len()).sum();
        let rest = &g.tokens[consumed.min(g.tokens.len())..];
        if rest.iter().any(|&t| t < tk.eot) {
            let start = match rest[0] {
                t if t >= tb => w.offset + (t - tb) as f64 * crate::transcribe::TIME_PRECISION,
                _ => pieces.last().map_or(w.offset, |p| p.1),
            };
            pieces.push((start, w.offset + duration, rest.to_vec()));
        }
        for (start, end, toks) in pieces {
            let text = tk.decode(&toks);
            if start == end || text.trim().is_empty() {
                continue;
            }
            let seg = Segment {
                id: segments.len() + 1,
                seek,
                start: (input.map_time)(start, false),
                end: (input.map_time)(end, true),
                text,
                tokens: toks,
                temperature,
                avg_logprob,
                compression_ratio,
                no_speech_prob: g.no_speech_prob,
            };
            on_segment(&seg);
            segments.push(seg);
        }
    }
}
