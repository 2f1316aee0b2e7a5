//! Live transcription: [`StreamingTranscriber`] takes audio in chunks of any size and reports
//! partial text (may still change) and committed text (final), with word times.
//!
//! The policy is LocalAgreement-2 as in whisper_streaming (Macháček, Dabre and Bojar 2023):
//! the buffered audio of the current utterance (at most 30 s) is decoded again whenever a step
//! of new audio (1 s by default) has arrived, with word timestamps; the longest common prefix
//! of the last two hypotheses is committed ([`agreement`]); the buffer is cut at the end of a
//! segment that is wholly committed once it is longer than `trim_seconds`; each decoding is
//! prompted with the committed text the buffer no longer holds. With turn detection
//! ([`turns`]) a VAD skips the silence between utterances and ends each utterance, whose audio
//! is then decoded once more and committed whole.
//!
//! The transcriber does not decode by itself: [`StreamingTranscriber::next_decode`] hands out
//! the audio and options of the next decoding, and [`StreamingTranscriber::complete`] takes
//! its transcript. So a scheduler can decode the steps of many streams in one continuous batch
//! (each step is an ordinary `transcribe::Session`), and [`decode_alone`] runs one stream by
//! itself.

pub mod agreement;
pub mod turns;

use std::collections::VecDeque;

use crate::transcribe::{TranscribeOptions, Transcriber, Transcript};
use crate::vad::Vad;
use crate::words::Word;
use crate::{Error, Result};

pub use agreement::{join, word_key, Agreement};
pub use turns::{Turn, TurnDetector, TurnOptions};

/// Samples per second of the audio a stream takes.
pub const SAMPLE_RATE: usize = 16_000;
/// Committed text kept for prompts, in characters (whisper_streaming keeps 200).
const PROMPT_CHARS: usize = 200;
/// An utterance shorter than this is not decoded (nothing can be in it).
const MIN_DECODE_SECONDS: f64 = 0.3;
/// A detected language is kept for the rest of the stream once it was detected on this much
/// audio (or on a whole utterance); before, each decoding detects its own (a second of speech
/// is too little to tell languages apart).
const LANGUAGE_LOCK_SECONDS: f64 = 6.0;

/// How a stream is transcribed.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Options of every decoding. Word timestamps are always on; `initial_prompt` is the
    /// context of the first utterance. The language, when `None`, is detected by the first
    /// decoding and kept.
    pub transcribe: TranscribeOptions,
    /// New audio that triggers another decoding of the buffer.
    pub step_seconds: f64,
    /// A buffer longer than this is cut at the end of a committed segment.
    pub trim_seconds: f64,
    /// A buffer never grows beyond this: what does not agree by then is committed anyway.
    pub max_buffer_seconds: f64,
    /// Utterances ended by a VAD (`None`: one utterance until [`StreamingTranscriber::commit`]).
    pub turns: Option<TurnOptions>,
}

impl Default for LiveOptions {
    /// Greedy, no temperature fallback (a fallback multiplies a step's cost, and the next step
    /// decodes the audio again anyway), 1 s steps, trim beyond 15 s, at most 28 s buffered.
    fn default() -> Self {
        LiveOptions {
            transcribe: TranscribeOptions { beam_size: 1, best_of: 1, temperatures: vec![0.0], ..TranscribeOptions::default() },
            step_seconds: 1.0,
            trim_seconds: 15.0,
            max_buffer_seconds: 28.0,
            turns: None,
        }
    }
}

impl LiveOptions {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(self.step_seconds >= 0.1 && self.step_seconds <= 10.0) {
            return bad(format!("a live step of {} s is out of range: 0.1 to 10 s", self.step_seconds));
        }
        if !(self.max_buffer_seconds >= 2.0 && self.max_buffer_seconds <= 30.0) {
            return bad(format!("a live buffer of {} s is out of range: 2 to 30 s", self.max_buffer_seconds));
        }
        if !(self.trim_seconds >= 1.0 && self.trim_seconds <= self.max_buffer_seconds) {
            return bad(format!("the trim length {} s must be between 1 s and the buffer's {} s", self.trim_seconds, self.max_buffer_seconds));
        }
        if let Some(t) = &self.turns {
            t.validate()?;
        }
        let mut t = self.transcribe.clone();
        t.word_timestamps = true;
        t.validate()
    }
}

/// What a stream reports. Utterances are numbered from 0; times are seconds of the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// The VAD heard speech begin (turn detection only).
    SpeechStarted { utterance: u64, at: f64 },
    /// The VAD heard the speech end (turn detection only).
    SpeechStopped { utterance: u64, at: f64 },
    /// The utterance's audio is complete; its `Completed` follows.
    Ended { utterance: u64 },
    /// Words confirmed now, appended to what the utterance committed before.
    Committed { utterance: u64, words: Vec<Word> },
    /// The utterance's unconfirmed tail (replaces the previous one; empty clears it).
    Partial { utterance: u64, words: Vec<Word> },
    /// The utterance's final text and words.
    Completed { utterance: u64, words: Vec<Word>, start: f64, end: f64 },
    /// A decoding failed; the stream goes on.
    Failed { utterance: u64, message: String },
}

/// A decoding to run: transcribe `samples` (16 kHz) with `options`, then hand the transcript
/// to [`StreamingTranscriber::complete`].
#[derive(Clone, Debug)]
pub struct DecodeRequest {
    pub samples: Vec<f32>,
    pub options: TranscribeOptions,
}

struct Utterance {
    id: u64,
    /// Buffered audio, from `buffer_start` (samples of the stream).
    audio: Vec<f32>,
    buffer_start: u64,
    /// Samples added since the last decoding started.
    new_samples: usize,
    agreement: Agreement,
    /// Committed words that have left the buffer (prompt context) are counted here.
    words_out_of_buffer: usize,
    ended: bool,
    started_at: u64,
}

impl Utterance {
    fn new(id: u64, start: u64) -> Self {
        Utterance { id, audio: Vec::new(), buffer_start: start, new_samples: 0, agreement: Agreement::new(), words_out_of_buffer: 0, ended: false, started_at: start }
    }

    fn seconds(&self) -> f64 {
        self.audio.len() as f64 / SAMPLE_RATE as f64
    }

    fn start_seconds(&self) -> f64 {
        self.buffer_start as f64 / SAMPLE_RATE as f64
    }
}

/// The decoding in flight: which utterance, whether it is the last, the buffer it covered.
struct InFlight {
    utterance: u64,
    last: bool,
    buffer_start: u64,
    seconds: f64,
}

/// One live stream (see the module's documentation).
pub struct StreamingTranscriber {
    opts: LiveOptions,
    turns: Option<TurnDetector<Box<dyn Vad + Send>>>,
    /// Samples received so far.
    received: u64,
    /// Audio before speech, kept for the prefix padding (turn detection only).
    preroll: VecDeque<f32>,
    preroll_start: u64,
    utterances: VecDeque<Utterance>,
    next_id: u64,
    in_flight: Option<InFlight>,
    /// Committed text of the stream (last PROMPT_CHARS characters), for prompts.
    context: String,
    events: Vec<StreamEvent>,
}

impl StreamingTranscriber {
    /// A stream under `opts`; `vad` is required when `opts.turns` is set.
    pub fn new(opts: LiveOptions, vad: Option<Box<dyn Vad + Send>>) -> Result<Self> {
        opts.validate()?;
        let turns = match (&opts.turns, vad) {
            (Some(t), Some(v)) => Some(TurnDetector::new(v, t.clone())),
            (Some(_), None) => return Err(Error::InvalidArgument("turn detection needs a voice activity detector".into())),
            (None, _) => None,
        };
        let context = opts.transcribe.initial_prompt.clone().unwrap_or_default();
        Ok(StreamingTranscriber {
            opts,
            turns,
            received: 0,
            preroll: VecDeque::new(),
            preroll_start: 0,
            utterances: VecDeque::new(),
            next_id: 0,
            in_flight: None,
            context: tail_chars(&context, PROMPT_CHARS),
            events: Vec::new(),
        })
    }

    pub fn options(&self) -> &LiveOptions {
        &self.opts
    }

    /// Seconds of audio received.
    pub fn received_seconds(&self) -> f64 {
        self.received as f64 / SAMPLE_RATE as f64
    }

    /// Seconds of audio buffered and not yet covered by a decoding: a scheduler feeds more
    /// only while this is small (backpressure).
    pub fn backlog_seconds(&self) -> f64 {
        self.utterances.iter().map(|u| u.new_samples).sum::<usize>() as f64 / SAMPLE_RATE as f64
    }

    /// Whether a decoding is out.
    pub fn is_decoding(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Nothing buffered, nothing to decode, nothing out.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.utterances.is_empty()
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<StreamEvent> {
        std::mem::take(&mut self.events)
    }

    /// Changes the decoding options (language, prompt...) and the turn detection from the next
    /// decoding on. Turning detection on needs `vad` unless it was on already.
    pub fn reconfigure(&mut self, opts: LiveOptions, vad: Option<Box<dyn Vad + Send>>) -> Result<()> {
        opts.validate()?;
        match (&opts.turns, self.turns.as_mut(), vad) {
            (Some(t), _, Some(v)) => self.turns = Some(TurnDetector::new(v, t.clone())),
            (Some(t), Some(d), None) => d.set_options(t.clone()),
            (Some(_), None, None) => return Err(Error::InvalidArgument("turn detection needs a voice activity detector".into())),
            (None, _, _) => {
                self.turns = None;
                self.preroll.clear();
            }
        }
        self.opts = opts;
        Ok(())
    }

    /// Adds audio (16 kHz mono, [-1, 1]).
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        let at = self.received;
        self.received += samples.len() as u64;
        let Some(det) = self.turns.as_mut() else {
            let id = self.open_utterance(at);
            self.append(id, samples);
            return Ok(());
        };
        let turns = det.feed(samples)?;
        // Route the chunk: pieces between turn changes go to the utterance or the preroll.
        let mut pos = at;
        let mut speaking = self.utterances.back().is_some_and(|u| !u.ended);
        let end = self.received;
        let mut cuts: Vec<(u64, Turn)> = turns
            .into_iter()
            .map(|t| match t {
                Turn::Started(p) | Turn::Stopped(p) => (p.clamp(at, end), t),
            })
            .collect();
        cuts.push((end, Turn::Stopped(u64::MAX)));
        for (p, turn) in cuts {
            let piece = &samples[(pos - at) as usize..(p - at) as usize];
            if speaking {
                let id = self.utterances.back().expect("speaking").id;
                self.append(id, piece);
            } else {
                self.keep_preroll(pos, piece);
            }
            pos = p;
            match turn {
                Turn::Started(s) => {
                    let pad = self.opts.turns.as_ref().map_or(0, |t| t.prefix_padding_ms as u64 * 16);
                    let from = s.saturating_sub(pad).max(self.preroll_start);
                    let skip = (from - self.preroll_start) as usize;
                    let pre: Vec<f32> = self.preroll.iter().skip(skip).copied().collect();
                    self.preroll.clear();
                    self.preroll_start = p;
                    let id = self.open_utterance(from);
                    self.events.push(StreamEvent::SpeechStarted { utterance: id, at: s as f64 / SAMPLE_RATE as f64 });
                    self.append(id, &pre);
                    speaking = true;
                }
                Turn::Stopped(s) if s != u64::MAX => {
                    if let Some(u) = self.utterances.back() {
                        let id = u.id;
                        self.events.push(StreamEvent::SpeechStopped { utterance: id, at: s as f64 / SAMPLE_RATE as f64 });
                        self.end_current();
                    }
                    self.preroll_start = p;
                    speaking = false;
                }
                Turn::Stopped(_) => {}
            }
        }
        Ok(())
    }

    /// Ends the current utterance (a manual commit): its audio is decoded once more and
    /// committed whole. Returns its number, or `None` when no audio is buffered.
    pub fn commit(&mut self) -> Option<u64> {
        let u = self.utterances.back().filter(|u| !u.ended && !u.audio.is_empty())?;
        let id = u.id;
        self.end_current();
        if let Some(d) = self.turns.as_mut() {
            d.reset_turn();
        }
        Some(id)
    }

    /// Drops the current utterance's uncommitted audio and text (a buffer clear).
    pub fn clear(&mut self) {
        if self.utterances.back().is_some_and(|u| !u.ended) {
            self.utterances.pop_back();
        }
        self.preroll.clear();
        self.preroll_start = self.received;
        if let Some(d) = self.turns.as_mut() {
            d.reset_turn();
        }
    }

    /// The stream ended: ends the current utterance. Decode until [`Self::is_idle`].
    pub fn finish(&mut self) {
        if self.utterances.back().is_some_and(|u| !u.ended) {
            if self.turns.is_some() {
                let id = self.utterances.back().expect("checked").id;
                self.events.push(StreamEvent::SpeechStopped { utterance: id, at: self.received_seconds() });
            }
            self.end_current();
        }
        self.preroll.clear();
    }

    fn open_utterance(&mut self, start: u64) -> u64 {
        if let Some(u) = self.utterances.back().filter(|u| !u.ended) {
            return u.id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.utterances.push_back(Utterance::new(id, start));
        id
    }

    fn append(&mut self, id: u64, samples: &[f32]) {
        if let Some(u) = self.utterances.iter_mut().find(|u| u.id == id) {
            u.audio.extend_from_slice(samples);
            u.new_samples += samples.len();
        }
    }

    fn keep_preroll(&mut self, pos: u64, piece: &[f32]) {
        if self.preroll.is_empty() {
            self.preroll_start = pos;
        }
        self.preroll.extend(piece.iter().copied());
        let keep = self.opts.turns.as_ref().map_or(0, |t| t.prefix_padding_ms as usize * 16) + crate::vad::WINDOW;
        while self.preroll.len() > keep {
            self.preroll.pop_front();
            self.preroll_start += 1;
        }
    }

    fn end_current(&mut self) {
        if let Some(u) = self.utterances.back_mut().filter(|u| !u.ended) {
            u.ended = true;
            self.events.push(StreamEvent::Ended { utterance: u.id });
        }
    }

    /// The next decoding to run, if one is due: the oldest utterance that has ended (its last
    /// decoding), else the current one once a step of new audio has arrived. One at a time.
    pub fn next_decode(&mut self) -> Option<DecodeRequest> {
        if self.in_flight.is_some() {
            return None;
        }
        let step = (self.opts.step_seconds * SAMPLE_RATE as f64) as usize;
        let max = (self.opts.max_buffer_seconds * SAMPLE_RATE as f64) as usize;
        // An ended utterance too short to hold speech completes without a decoding.
        while let Some(u) = self.utterances.front() {
            if u.ended && u.seconds() < MIN_DECODE_SECONDS && u.agreement.committed().is_empty() && u.agreement.pending().is_empty() {
                let u = self.utterances.pop_front().expect("front");
                self.events.push(StreamEvent::Completed { utterance: u.id, words: Vec::new(), start: u.start_seconds(), end: u.start_seconds() + u.seconds() });
            } else {
                break;
            }
        }
        let u = self.utterances.front_mut()?;
        let due = u.ended || (u.new_samples >= step && u.seconds() >= MIN_DECODE_SECONDS) || u.audio.len() >= max;
        if !due {
            return None;
        }
        u.new_samples = 0;
        let mut options = self.opts.transcribe.clone();
        options.word_timestamps = true;
        options.initial_prompt = Some(self.context.clone()).filter(|c| !c.trim().is_empty());
        options.clip_timestamps.clear();
        options.prefix = None;
        self.in_flight = Some(InFlight { utterance: u.id, last: u.ended, buffer_start: u.buffer_start, seconds: u.seconds() });
        Some(DecodeRequest { samples: u.audio.clone(), options })
    }

    /// Takes the transcript of the decoding [`Self::next_decode`] handed out (or its error).
    pub fn complete(&mut self, result: Result<Transcript>) {
        let Some(f) = self.in_flight.take() else { return };
        let Some(idx) = self.utterances.iter().position(|u| u.id == f.utterance) else {
            return; // cleared meanwhile
        };
        let offset = f.buffer_start as f64 / SAMPLE_RATE as f64;
        let transcript = match result {
            Ok(t) => t,
            Err(e) => {
                self.events.push(StreamEvent::Failed { utterance: f.utterance, message: e.to_string() });
                if f.last {
                    self.complete_utterance(idx, Vec::new());
                }
                return;
            }
        };
        if self.opts.transcribe.language.is_none() && (f.last || f.seconds >= LANGUAGE_LOCK_SECONDS) {
            // Keep the language detected on enough speech: later steps decode the same way.
            self.opts.transcribe.language = Some(transcript.language.clone());
        }
        // A segment that repeats itself (the fallback's compression test; live decoding has no
        // fallback to retry it) is a hallucination: left out of the hypothesis.
        let cr = self.opts.transcribe.compression_ratio_threshold.unwrap_or(f32::INFINITY);
        let hypothesis: Vec<Word> = transcript
            .segments
            .iter()
            .filter(|s| s.compression_ratio <= cr)
            .flat_map(|s| s.words.iter().flatten())
            .map(|w| Word { start: w.start + offset, end: w.end + offset, ..w.clone() })
            .collect();
        if f.last && self.utterances[idx].ended {
            self.complete_utterance(idx, hypothesis);
            return;
        }
        let u = &mut self.utterances[idx];
        let committed = u.agreement.insert(hypothesis);
        let id = u.id;
        if !committed.is_empty() {
            self.events.push(StreamEvent::Committed { utterance: id, words: committed });
        }
        let seg_ends: Vec<f64> = transcript.segments.iter().map(|s| s.end + offset).collect();
        self.trim(idx, &seg_ends);
        let u = &self.utterances[idx];
        self.events.push(StreamEvent::Partial { utterance: id, words: u.agreement.pending().to_vec() });
    }

    /// Cuts the buffer of utterance `idx` at a committed segment end once it is longer than
    /// the trim length (whisper_streaming's `chunk_completed_segment`); past the longest
    /// buffer, commits what has not agreed and cuts there.
    fn trim(&mut self, idx: usize, seg_ends: &[f64]) {
        let (trim, max) = (self.opts.trim_seconds, self.opts.max_buffer_seconds - self.opts.step_seconds);
        let u = &mut self.utterances[idx];
        let done = u.agreement.committed_end();
        let mut cut = None;
        if u.seconds() > trim && seg_ends.len() > 1 {
            // The last segment end before the final segment that is wholly committed.
            cut = seg_ends[..seg_ends.len() - 1].iter().copied().rfind(|&e| e <= done && e > u.start_seconds());
        }
        if cut.is_none() && u.seconds() > max {
            // Nothing to cut at: keep the last step's audio, commit everything before it.
            let until = u.start_seconds() + u.seconds() - self.opts.step_seconds.max(1.0);
            let forced = u.agreement.force(until);
            if !forced.is_empty() {
                self.events.push(StreamEvent::Committed { utterance: u.id, words: forced });
            }
            cut = Some(until);
        }
        let Some(c) = cut else { return };
        let u = &mut self.utterances[idx];
        let drop = (((c - u.start_seconds()) * SAMPLE_RATE as f64).round().max(0.0) as usize).min(u.audio.len());
        u.audio.drain(..drop);
        u.buffer_start += drop as u64;
        u.new_samples = u.new_samples.min(u.audio.len());
        // Committed words now out of the buffer become prompt context.
        let start = u.start_seconds();
        let out = u.agreement.committed().iter().skip(u.words_out_of_buffer).take_while(|w| w.end <= start + 1e-6).count();
        let text: String = u.agreement.committed()[u.words_out_of_buffer..u.words_out_of_buffer + out].iter().map(|w| w.word.as_str()).collect();
        u.words_out_of_buffer += out;
        self.add_context(&text);
    }

    fn complete_utterance(&mut self, idx: usize, hypothesis: Vec<Word>) {
        let mut u = self.utterances.remove(idx).expect("index");
        let committed = u.agreement.finish(hypothesis);
        if !committed.is_empty() {
            self.events.push(StreamEvent::Committed { utterance: u.id, words: committed });
        }
        self.events.push(StreamEvent::Partial { utterance: u.id, words: Vec::new() });
        let words = u.agreement.committed().to_vec();
        let rest: String = words[u.words_out_of_buffer..].iter().map(|w| w.word.as_str()).collect();
        u.words_out_of_buffer = words.len();
        self.add_context(&rest);
        let start = words.first().map_or(u.started_at as f64 / SAMPLE_RATE as f64, |w| w.start);
        let end = words.last().map_or(start, |w| w.end);
        self.events.push(StreamEvent::Completed { utterance: u.id, words, start, end });
    }

    fn add_context(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.context.push_str(text);
        self.context = tail_chars(&self.context, PROMPT_CHARS);
    }
}

/// The last `n` characters of `s`.
fn tail_chars(s: &str, n: usize) -> String {
    let count = s.chars().count();
    s.chars().skip(count.saturating_sub(n)).collect()
}

/// Runs every due decoding of `stream` with `tr`, one after another (a stream by itself).
pub fn decode_alone(tr: &Transcriber<'_>, stream: &mut StreamingTranscriber) {
    while let Some(req) = stream.next_decode() {
        let result = tr.transcribe(&req.samples, &req.options, &mut |_| {});
        stream.complete(result);
    }
}
