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

use crate::audio::{SampleSource, SAMPLE_RATE};
use crate::vad::{speech_timestamps, SpeechChunk, SpeechTimeline, Vad, VadFeeder, VadOptions};
use crate::batch::ContinuousBatch;
use crate::mel::{Mel, HOP_LENGTH, N_FRAMES, N_SAMPLES};
use crate::model::CrossKv;
use crate::transcribe::{build_prompt, split_by_timestamps, Segment, TranscribeOptions, Transcriber, Transcript};
use crate::window::WindowResult;
use crate::words::{self, WindowText, WindowWords};
use crate::{Error, Result};

/// Windows encoded in one encoder pass at most (bounds the encoder's activation memory).
const MAX_ENCODER_GROUP: usize = 2;
/// Finished windows aligned in one pass at most, for word timestamps (each holds on to its
/// cross-attention K/V until then).
const MAX_ALIGN_GROUP: usize = 4;

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

/// The windows of the batched pipeline from VAD speech chunks: merged into windows of at most
/// 30 s the way faster-whisper's `collect_chunks` does ([`crate::vad::merge_chunks`]).
pub fn speech_windows(chunks: &[SpeechChunk]) -> Vec<BatchWindow> {
    crate::vad::merge_chunks(chunks, (N_SAMPLES / SAMPLE_RATE) as f64)
        .into_iter()
        .map(|w| BatchWindow { pieces: w.chunks.iter().map(|c| c.start..c.end).collect(), offset: w.offset_secs() })
        .collect()
}

/// The windows of the batched pipeline from `clip_timestamps` (seconds, `start,end,...`; an
/// odd count: the last clip runs to the end) over `n_samples`: each clip is decoded on its own,
/// as faster-whisper's `BatchedInferencePipeline` does with clips (which replace the VAD there),
/// in windows of at most 30 s (faster-whisper keeps only a long clip's first 30 s; we decode
/// all of it). Times stay on the original timeline. No clips: plain 30 s windows.
pub fn clip_windows(clips: &[f64], n_samples: usize) -> Vec<BatchWindow> {
    if clips.is_empty() {
        return fixed_windows(n_samples);
    }
    // faster-whisper: `int(seconds * sampling_rate)`.
    let mut bounds: Vec<usize> = clips.iter().map(|&t| ((t * SAMPLE_RATE as f64) as usize).min(n_samples)).collect();
    if bounds.len() % 2 == 1 {
        bounds.push(n_samples);
    }
    bounds
        .chunks(2)
        .flat_map(|c| (c[0]..c[1]).step_by(N_SAMPLES).map(move |s| s..(s + N_SAMPLES).min(c[1])))
        .map(|r| BatchWindow { offset: r.start as f64 / SAMPLE_RATE as f64, pieces: vec![r] })
        .collect()
}

/// Speech chunks of a whole source: the VAD is fed block by block (about 33 s at a time), so
/// memory stays bounded however long the recording.
pub fn speech_chunks(source: &dyn SampleSource, vad: &mut dyn Vad, opts: &VadOptions) -> Result<Vec<SpeechChunk>> {
    opts.validate()?;
    let _span = info_span!("vad", seconds = source.len() as f64 / SAMPLE_RATE as f64).entered();
    const BLOCK: usize = 512 * 1024;
    let mut feeder = VadFeeder::new(vad);
    let mut at = 0;
    while at < source.len() {
        let end = (at + BLOCK).min(source.len());
        feeder.push(&source.read(at..end)?)?;
        at = end;
    }
    let (probs, n) = feeder.finish()?;
    Ok(speech_timestamps(&probs, n, opts))
}

/// Where the batched pipeline gets its audio and how it maps times back.
pub struct BatchInput<'a> {
    /// Reads original samples `range` (16 kHz mono).
    pub read: &'a mut dyn FnMut(Range<usize>) -> Result<Vec<f32>>,
    /// The speech timeline when the windows are VAD speech: times map back to the original
    /// audio through it (faster-whisper's `restore_speech_timestamps`). `None`: the windows
    /// are the original audio.
    pub timeline: Option<&'a SpeechTimeline>,
    /// Seconds of the original recording.
    pub duration: f64,
}

impl Transcriber<'_> {
    /// Transcribes `windows` with up to `batch_size` windows decoded together, calling
    /// `on_segment` in order as segments become final.
    ///
    /// Within a window the seek rule of the sequential loop holds: when the decoding stops
    /// before the window's end (an unfinished last segment), the rest of the window is decoded
    /// again from the last timestamp, so speech near a window's end is not lost.
    ///
    /// `opts.clip_timestamps` is not read here: clips are windows ([`clip_windows`]). The
    /// `prefix` is forced at the start of the first window when that window starts the
    /// timeline (at frame 0, as the sequential loop forces it at seek 0).
    pub fn transcribe_batched(
        &self,
        windows: &[BatchWindow],
        input: BatchInput<'_>,
        opts: &TranscribeOptions,
        batch_size: usize,
        on_segment: &mut dyn FnMut(&Segment),
    ) -> Result<Transcript> {
        self.transcribe_batched_with(windows, input, opts, batch_size, &mut |_, _| {}, on_segment)
    }

    /// [`Transcriber::transcribe_batched`], telling `on_language` the language and its
    /// probability as soon as they are known (given, or detected on the first window), before
    /// any segment: a caller can report them while the segments are still being decoded.
    pub fn transcribe_batched_with(
        &self,
        windows: &[BatchWindow],
        input: BatchInput<'_>,
        opts: &TranscribeOptions,
        batch_size: usize,
        on_language: &mut dyn FnMut(&str, f32),
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
        let mut states: Vec<WindowState> = windows.iter().map(|_| WindowState::default()).collect();
        // Encoded decodings waiting to join the batch: (window, seek, encoder output).
        let mut encoded: Vec<(usize, usize, Vec<f32>)> = Vec::new();
        let mut next = 0;
        // The language: given, English-only, or detected on the first window.
        let (language, language_probability) = match &opts.language {
            Some(code) => {
                tk.sot_sequence(Some(code), opts.task)?;
                (if tk.multilingual { code.clone() } else { "en".into() }, 1.0)
            }
            None if !tk.multilingual || windows.is_empty() => ("en".to_string(), 1.0),
            None => {
                states[0].load(self, &windows[0], input.read)?;
                let audio = model.encode(&states[0].mel_at(0)?)?;
                let r = self.detect_language(&audio)?;
                encoded.push((0, 0, audio));
                next = 1;
                r
            }
        };
        on_language(&language, language_probability);
        let hotwords = self.hotword_tokens(opts)?;
        let previous = match &opts.initial_prompt {
            Some(p) => tk.encode(&format!(" {}", p.trim()))?,
            None => Vec::new(),
        };
        let sot_sequence = tk.sot_sequence(Some(&language), opts.task)?;
        let prompt = build_prompt(model, &previous, &hotwords, &sot_sequence, opts.without_timestamps, &[]);
        let starts_timeline = windows.first().is_some_and(|w| (w.offset * (SAMPLE_RATE / HOP_LENGTH) as f64).round_ties_even() == 0.0);
        let prefix = self.prefix_tokens(opts)?;
        let prefix: &[u32] = if starts_timeline { &prefix } else { &[] };
        let first_prompt = build_prompt(model, &previous, &hotwords, &sot_sequence, opts.without_timestamps, prefix);

        let mut batch: ContinuousBatch<'_, (usize, usize)> = ContinuousBatch::new(model, batch_size);
        // Windows whose rest must be decoded again (from their new seek), before new windows.
        let mut again: std::collections::VecDeque<usize> = Default::default();
        let mut emitted = 0;
        let mut segments = Vec::new();
        // Word timestamps: decoded pieces waiting for their alignment pass, and the end of the
        // last words emitted (faster-whisper's `last_speech_timestamp`, on the speech timeline).
        let mut pending: Vec<(usize, usize, CrossKv)> = Vec::new();
        let mut last_speech = 0.0;
        while emitted < windows.len() {
            // Fill the batch: encode waiting decodings (a few per encoder pass) and join them.
            while batch.has_room() && (next < windows.len() || !again.is_empty() || !encoded.is_empty()) {
                if encoded.is_empty() {
                    let room = (batch_size - batch.len()).min(MAX_ENCODER_GROUP);
                    let mut group = Vec::with_capacity(room);
                    while group.len() < room {
                        if let Some(w) = again.pop_front() {
                            group.push((w, states[w].seek));
                        } else if next < windows.len() {
                            states[next].load(self, &windows[next], input.read)?;
                            if states[next].content == 0 {
                                states[next].done = true; // no audio: nothing to decode
                            } else {
                                group.push((next, 0));
                            }
                            next += 1;
                        } else {
                            break;
                        }
                    }
                    let mels = group.iter().map(|&(w, seek)| states[w].mel_at(seek)).collect::<Result<Vec<_>>>()?;
                    encoded = group.into_iter().zip(model.encode_batch(&mels)?).map(|((w, s), a)| (w, s, a)).collect();
                }
                if encoded.is_empty() {
                    continue;
                }
                let (w, seek, audio) = encoded.remove(0);
                let p = if (w, seek) == (0, 0) { first_prompt.clone() } else { prompt.clone() };
                batch.join((w, seek), &audio, p, window_opts.clone()).map_err(|(_, e)| e)?;
            }
            for ((w, seek), r, cross) in batch.step_with_cross() {
                let pieces = states[w].pieces.len();
                if self.window_done(&windows[w], &mut states[w], seek, r?, opts) {
                    states[w].mel = None;
                } else {
                    again.push_back(w);
                }
                if let (true, Some(cross)) = (opts.word_timestamps && states[w].pieces.len() > pieces, cross) {
                    pending.push((w, pieces, cross));
                }
            }
            if !pending.is_empty() && (pending.len() >= MAX_ALIGN_GROUP.min(batch_size) || batch.is_empty()) {
                self.align_pending(&mut pending, &mut states, &sot_sequence, &language, opts)?;
            }
            while emitted < windows.len() && states[emitted].done && !pending.iter().any(|p| p.0 == emitted) {
                for piece in std::mem::take(&mut states[emitted].pieces) {
                    let mut segs = piece.segments;
                    if let Some(ww) = &piece.words {
                        last_speech = words::assign_words(ww, &mut segs, piece.word_offset, last_speech, tk.eot);
                    }
                    for mut seg in segs {
                        if seg.start == seg.end || seg.text.trim().is_empty() {
                            continue;
                        }
                        if let Some(timeline) = input.timeline {
                            words::restore_speech_timestamps(&mut seg, timeline);
                        }
                        seg.id = segments.len() + 1;
                        on_segment(&seg);
                        segments.push(seg);
                    }
                }
                emitted += 1;
            }
        }
        Ok(Transcript { language, language_probability, duration: input.duration, segments })
    }

    /// One alignment pass over the pieces in `pending`: their words.
    fn align_pending(&self, pending: &mut Vec<(usize, usize, CrossKv)>, states: &mut [WindowState], sot: &[u32], language: &str, opts: &TranscribeOptions) -> Result<()> {
        let texts: Vec<WindowText<'_>> = pending
            .iter()
            .map(|(w, p, cross)| {
                let piece = &states[*w].pieces[*p];
                WindowText { cross, segments: &piece.segments, num_frames: piece.num_frames }
            })
            .collect();
        let aligned = words::align_windows(self.model, sot, language, &texts, opts)?;
        drop(texts);
        for ((w, p, _), ww) in pending.drain(..).zip(aligned) {
            states[w].pieces[p].words = Some(ww);
        }
        Ok(())
    }

    /// Applies a decoded piece of window `w` from `seek`: its segments (times on the speech
    /// timeline, words still to come), and whether the window is finished (else `state.seek`
    /// says where to decode again).
    fn window_done(&self, w: &BatchWindow, state: &mut WindowState, seek: usize, r: WindowResult, opts: &TranscribeOptions) -> bool {
        let tk = &self.model.tokenizer;
        let WindowResult { generation: g, avg_logprob, temperature, compression_ratio } = r;
        let size = N_FRAMES.min(state.content - seek);
        let skip = opts.no_speech_threshold.is_some_and(|th| g.no_speech_prob > th)
            && !opts.log_prob_threshold.is_some_and(|lp| avg_logprob > lp);
        let new_seek = if skip {
            seek + size
        } else {
            let time_offset = w.offset + seek as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            let duration = size as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            let (pieces, new_seek) = split_by_timestamps(tk.no_timestamps + 1, &g.tokens, time_offset, seek, size, duration);
            let frames_per_second = (SAMPLE_RATE / HOP_LENGTH) as f64;
            let frame = (w.offset * frames_per_second).round() as usize + seek;
            let segments = pieces
                .into_iter()
                .map(|(start, end, tokens)| Segment {
                    id: 0,
                    seek: frame,
                    start,
                    end,
                    text: tk.decode(&tokens),
                    tokens,
                    temperature,
                    avg_logprob,
                    compression_ratio,
                    no_speech_prob: g.no_speech_prob,
                    words: None,
                })
                .collect();
            // faster-whisper aligns a window against ceil(its seconds) of frames, from the
            // window's offset truncated to a frame; a rest decoded again, against its frames.
            let num_frames = if seek == 0 { (state.n_samples as f64 / SAMPLE_RATE as f64).ceil() as usize * 100 } else { size };
            let word_offset = ((w.offset * frames_per_second) as usize + seek) as f64 / frames_per_second;
            state.pieces.push(Piece { segments, words: None, num_frames: num_frames.min(N_FRAMES), word_offset });
            new_seek.max(seek + 1)
        };
        state.seek = new_seek;
        state.done = new_seek >= state.content;
        state.done
    }
}

/// A window of the batched pipeline while it is decoded: its log-mel (kept until the window
/// is done, for decoding its rest again), seek, and decoded pieces.
#[derive(Default)]
struct WindowState {
    mel: Option<Mel>,
    n_samples: usize,
    content: usize,
    seek: usize,
    pieces: Vec<Piece>,
    done: bool,
}

/// The segments of one decoding of a window (from some seek), and their words once aligned.
struct Piece {
    segments: Vec<Segment>,
    words: Option<WindowWords>,
    /// Mel frames the alignment sees, and where its word times start (seconds).
    num_frames: usize,
    word_offset: f64,
}

impl WindowState {
    /// Reads the window's audio and computes its log-mel (faster-whisper: each window's
    /// features from its own audio, the last frame dropped).
    fn load(&mut self, tr: &Transcriber<'_>, w: &BatchWindow, read: &mut dyn FnMut(Range<usize>) -> Result<Vec<f32>>) -> Result<()> {
        let mut audio = Vec::with_capacity(w.n_samples());
        for r in &w.pieces {
            audio.extend(read(r.clone())?);
        }
        audio.truncate(N_SAMPLES);
        self.n_samples = audio.len();
        let mel = tr.mel(&audio);
        self.content = mel.n_frames.saturating_sub(1);
        self.mel = Some(mel);
        Ok(())
    }

    /// The encoder input from `seek`: 3000 frames.
    fn mel_at(&self, seek: usize) -> Result<Mel> {
        let mel = self.mel.as_ref().ok_or_else(|| Error::InvalidArgument("window log-mel released too early".into()))?;
        Ok(mel.window(seek, N_FRAMES.min(self.content.saturating_sub(seek))).pad_or_trim(N_FRAMES))
    }
}
