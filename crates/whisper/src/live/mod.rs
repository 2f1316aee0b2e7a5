//! Live transcription: [`StreamingTranscriber`] takes audio in chunks of any size and reports
//! partial text (may still change) and committed text (final), with word times.
//!
//! The policy is LocalAgreement-2 as in whisper_streaming (Macháček, Dabre and Bojar 2023):
//! the buffered audio (at most 30 s) is decoded again whenever a step of new audio (1 s by
//! default) has arrived, with word timestamps; the longest common prefix of the last two
//! hypotheses is committed ([`agreement`]); the buffer is cut at the end of a segment or an
//! utterance that is wholly committed once it is longer than `trim_seconds`; each decoding is
//! prompted with the committed text the buffer no longer holds.
//!
//! With turn detection ([`turns`]) a VAD ends utterances: the silence between them is left out
//! of the buffer, but the buffer goes on across them ([`buffer`] maps its timeline back to the
//! stream's), so an utterance's first words are decoded after the speech before it, as an
//! offline pass hears them. When an utterance ends, the buffer is decoded once more and what
//! was heard up to its end is committed; its `Completed` follows.
//!
//! The transcriber does not decode by itself: [`StreamingTranscriber::next_decode`] hands out
//! the audio and options of the next decoding, and [`StreamingTranscriber::complete`] takes
//! its transcript. So a scheduler can decode the steps of many streams in one continuous batch
//! (each step is an ordinary `transcribe::Session`), and [`decode_alone`] runs one stream by
//! itself.

pub mod agreement;
mod buffer;
pub mod turns;

use std::collections::VecDeque;

use crate::transcribe::{TranscribeOptions, Transcriber, Transcript};
use crate::vad::Vad;
use crate::words::Word;
use crate::{Error, Result};
use buffer::Buffer;

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
/// When an utterance ends, words that begin this long after the VAD heard its speech end are
/// not committed: the decoder invents them in the trailing silence (seen: the previous
/// utterance's sentence again, squeezed into the last half second).
const SPEECH_END_SLACK: f64 = 0.15;
/// Words this short are not speech, wherever they are in a hypothesis: the alignment's
/// collapse onto the end of the audio, or text the decoder invented and the alignment found
/// no time for (seen: "The library is in the middle", six words in one instant of an
/// utterance's last decoding, probabilities 0.00 to 0.24). Left out: on the 603 s file this
/// takes 0.36 points off the committed WER and drops one real word in nine dropped.
const COLLAPSED_WORD: f64 = 0.02;
/// An utterance that has shown no text yet is *peeked at*: decoded for a partial once it
/// holds this much audio (prefix padding included), and again after each further
/// `PEEK_EVERY` seconds, without waiting for a whole step. A peek only shows a partial (the
/// hypothesis against a copy of the agreement): it commits nothing, so the committed text is
/// what the steps alone give. Without peeks the first partial waited for a step of new audio
/// (1 s) plus a decoding.
const PEEK_AFTER: f64 = 0.6;
const PEEK_EVERY: f64 = 0.4;

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
    /// decodes the audio again anyway), 1 s steps, trim beyond 10 s, at most 28 s buffered.
    /// The trim length changes the committed WER on the 603 s file chaotically (7 s: 15.70 %,
    /// 9 s: 15.47 %, 10 s: 14.40 %, 12 s: 16.89 %, 15 s: 15.23 %, 22 s: 16.78 %; CLI at speed
    /// 0): 10 s is kept for a third less decoding than 15 s, which lowers the latency at 1x.
    fn default() -> Self {
        LiveOptions {
            transcribe: TranscribeOptions { beam_size: 1, best_of: 1, temperatures: vec![0.0], ..TranscribeOptions::default() },
            step_seconds: 1.0,
            trim_seconds: 10.0,
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

/// An utterance (a turn between the VAD's start and stop, or between manual commits) that has
/// not completed yet: its words so far (stream times) and where it lies in the buffer.
struct Utterance {
    id: u64,
    /// Stream sample at which it began.
    started_at: u64,
    /// Buffer sample at which its audio begins.
    start: u64,
    /// Buffer sample at which its audio ends, once it ended.
    end: Option<u64>,
    /// Buffer sample at which the VAD heard its speech end (turn detection only).
    speech_end: Option<u64>,
    words: Vec<Word>,
    /// Whether a partial with words was shown for it (no more peeks then).
    shown: bool,
    /// Buffer end at its last peek.
    peeked: Option<u64>,
}

/// The decoding in flight: the buffer it covered and the buffer's generation then.
struct InFlight {
    generation: u64,
    start: u64,
    end: u64,
    /// A peek (see [`PEEK_AFTER`]): shows a partial, changes nothing else.
    peek: bool,
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
    /// The audio decoded, across utterances.
    buffer: Buffer,
    /// Bumped when the buffer is dropped by a clear: a decoding of the old audio is ignored.
    generation: u64,
    agreement: Agreement,
    /// Committed words (buffer times) whose audio is still buffered: they become prompt
    /// context when it leaves.
    unprompted: Vec<Word>,
    /// Utterances not completed yet, oldest first; only the last may be open.
    utterances: VecDeque<Utterance>,
    next_id: u64,
    in_flight: Option<InFlight>,
    /// Committed text of the stream whose audio left the buffer (last PROMPT_CHARS characters).
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
            buffer: Buffer::default(),
            generation: 0,
            agreement: Agreement::new(),
            unprompted: Vec::new(),
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
        self.buffer.new_samples() as f64 / SAMPLE_RATE as f64
    }

    /// Whether a decoding is out.
    pub fn is_decoding(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Nothing to decode, nothing out, every utterance completed.
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

    fn speaking(&self) -> bool {
        self.utterances.back().is_some_and(|u| u.end.is_none())
    }

    /// Adds audio (16 kHz mono, [-1, 1]).
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        let at = self.received;
        self.received += samples.len() as u64;
        let Some(det) = self.turns.as_mut() else {
            self.open_utterance(at);
            self.buffer.append(at, samples);
            return Ok(());
        };
        let turns = det.feed(samples)?;
        // Route the chunk: pieces between turn changes go to the buffer or the preroll.
        let mut pos = at;
        let mut speaking = self.speaking();
        let end = self.received;
        // Each turn splits the chunk where the detector knew of it (speech starts at its
        // window, whose audio before the chunk is in the preroll; a stop is known at the end
        // of the window that completed the silence): the same places however the audio was
        // chunked.
        let mut cuts: Vec<(u64, Turn)> = turns
            .into_iter()
            .map(|t| match t {
                Turn::Started(p) | Turn::Stopped(_, p) => (p.clamp(at, end), t),
            })
            .collect();
        cuts.push((end, Turn::Stopped(u64::MAX, u64::MAX)));
        for (p, turn) in cuts {
            let piece = &samples[(pos - at) as usize..(p - at) as usize];
            if speaking {
                self.buffer.append(pos, piece);
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
                    self.buffer.append(from, &pre);
                    speaking = true;
                }
                Turn::Stopped(s, _) if s != u64::MAX => {
                    let speech_end = self.buffer.end().saturating_sub(p.saturating_sub(s));
                    if let Some(u) = self.utterances.back_mut().filter(|u| u.end.is_none()) {
                        u.speech_end = Some(speech_end.max(u.start));
                        let id = u.id;
                        self.events.push(StreamEvent::SpeechStopped { utterance: id, at: s as f64 / SAMPLE_RATE as f64 });
                        self.end_current();
                    }
                    self.preroll_start = p;
                    speaking = false;
                }
                Turn::Stopped(..) => {}
            }
        }
        Ok(())
    }

    /// Ends the current utterance (a manual commit): its audio is decoded once more and what
    /// it holds committed. Returns its number, or `None` when no audio is buffered.
    pub fn commit(&mut self) -> Option<u64> {
        let u = self.utterances.back().filter(|u| u.end.is_none() && self.buffer.end() > u.start)?;
        let id = u.id;
        self.end_current();
        if let Some(d) = self.turns.as_mut() {
            d.reset_turn();
        }
        Some(id)
    }

    /// Drops the current utterance's uncommitted audio and text (a buffer clear). The buffer
    /// is dropped whole; an earlier utterance still waiting for its last decoding completes
    /// with the words it has.
    pub fn clear(&mut self) {
        if self.speaking() {
            self.utterances.pop_back();
        }
        let pending = self.agreement.pending().to_vec();
        self.agreement.clear_pending();
        while let Some(u) = self.utterances.pop_front() {
            let end = u.end.map_or(f64::INFINITY, buffer::seconds);
            let words: Vec<Word> = pending.iter().filter(|w| (w.start + w.end) / 2.0 <= end).cloned().collect();
            self.finish_utterance(u, words);
        }
        let held: Vec<Word> = std::mem::take(&mut self.unprompted);
        self.add_context(&held.iter().map(|w| w.word.as_str()).collect::<String>());
        self.buffer.drop_all();
        // A decoding in flight is of the dropped audio: its transcript will be ignored.
        self.generation += 1;
        self.preroll.clear();
        self.preroll_start = self.received;
        if let Some(d) = self.turns.as_mut() {
            d.reset_turn();
        }
    }

    /// The stream ended: ends the current utterance. Decode until [`Self::is_idle`].
    pub fn finish(&mut self) {
        if let Some(id) = self.utterances.back().filter(|u| u.end.is_none()).map(|u| u.id) {
            if self.turns.is_some() {
                self.events.push(StreamEvent::SpeechStopped { utterance: id, at: self.received_seconds() });
            }
            self.end_current();
        }
        self.preroll.clear();
    }

    fn open_utterance(&mut self, start: u64) -> u64 {
        if let Some(u) = self.utterances.back().filter(|u| u.end.is_none()) {
            return u.id;
        }
        let id = self.next_id;
        self.next_id += 1;
        let b = self.buffer.end();
        self.utterances.push_back(Utterance { id, started_at: start, start: b, end: None, speech_end: None, words: Vec::new(), shown: false, peeked: None });
        id
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
        let end = self.buffer.end();
        if let Some(u) = self.utterances.back_mut().filter(|u| u.end.is_none()) {
            u.end = Some(end);
            self.events.push(StreamEvent::Ended { utterance: u.id });
        }
    }

    /// The next decoding to run, if one is due: when an utterance has ended (its last
    /// decoding), or a step of new audio has arrived, or the buffer is full. A decoding covers
    /// the buffer from its start, so an utterance is heard after the speech before it, up to
    /// a point the audio alone sets: the end of the utterance that ended, or the last whole
    /// step since the previous decoding. So the committed text does not depend on how the
    /// audio was chunked or on how fast the decodings return, as long as they keep up with
    /// the steps (a decoder that falls behind covers several steps at once). One at a time.
    pub fn next_decode(&mut self) -> Option<DecodeRequest> {
        if self.in_flight.is_some() {
            return None;
        }
        // An ended utterance too short to hold speech, with nothing heard in it, completes
        // without a decoding.
        while let Some(u) = self.utterances.front() {
            let short = u.end.is_some_and(|e| e - u.start < (MIN_DECODE_SECONDS * SAMPLE_RATE as f64) as u64);
            if short && self.utterances.len() == 1 && u.words.is_empty() && self.agreement.pending().is_empty() {
                let u = self.utterances.pop_front().expect("front");
                self.buffer.mark_decoded(u.end.expect("ended"));
                self.finish_utterance(u, Vec::new());
            } else {
                break;
            }
        }
        if self.utterances.is_empty() || self.buffer.audio().is_empty() {
            return None;
        }
        let step = (self.opts.step_seconds * SAMPLE_RATE as f64) as u64;
        let max = (self.opts.max_buffer_seconds * SAMPLE_RATE as f64) as u64;
        let min = (MIN_DECODE_SECONDS * SAMPLE_RATE as f64) as u64;
        let (start, end, decoded) = (self.buffer.start(), self.buffer.end(), self.buffer.decoded());
        // Whole steps from the last decoding come first, up to the end of an utterance that
        // ended (a decoder that kept up ran them before the end was heard); one step when the
        // decoder keeps up. Then the utterance's last decoding, up to its end and not into the
        // next one.
        let ended = self.utterances.front().and_then(|u| u.end).map(|e| e.max(start + 1).min(end));
        let steps = ended.unwrap_or(end).saturating_sub(decoded) / step;
        let mut cover = None;
        if steps > 0 {
            if steps > 1 {
                tracing::debug!("a decoding covers {steps} steps: the decoder fell behind, so what is committed now depends on its timing");
            }
            let to = decoded + steps * step;
            let to = if to - start > max && start + max > decoded { start + max } else { to };
            cover = Some(to).filter(|&to| to - start >= min);
        }
        if cover.is_none() {
            cover = ended.or(Some(end).filter(|&e| e > decoded && e - start >= max));
        }
        let peek = cover.is_none() && self.peek_due();
        let to = match cover {
            Some(to) => {
                self.buffer.mark_decoded(to);
                to
            }
            None if peek => {
                if let Some(u) = self.utterances.back_mut() {
                    u.peeked = Some(end);
                }
                end
            }
            None => return None,
        };
        let mut options = self.opts.transcribe.clone();
        options.word_timestamps = true;
        options.initial_prompt = Some(self.context.clone()).filter(|c| !c.trim().is_empty());
        options.clip_timestamps.clear();
        options.prefix = None;
        self.in_flight = Some(InFlight { generation: self.generation, start, end: to, peek });
        Some(DecodeRequest { samples: self.buffer.audio_to(to).to_vec(), options })
    }

    /// Whether the open utterance, which has shown no text yet, is due a peek.
    fn peek_due(&self) -> bool {
        let Some(u) = self.utterances.back().filter(|u| u.end.is_none() && !u.shown) else { return false };
        let end = self.buffer.end();
        let secs = |n: u64| n as f64 / SAMPLE_RATE as f64;
        match u.peeked {
            None => secs(end.saturating_sub(u.start)) >= PEEK_AFTER,
            Some(p) => secs(end.saturating_sub(p)) >= PEEK_EVERY,
        }
    }

    /// The words of a decoding's transcript (buffer times), hallucinated segments and words
    /// without duration ([`COLLAPSED_WORD`]) left out.
    fn hypothesis(&self, transcript: &Transcript, start: u64) -> Vec<Word> {
        // A segment that repeats itself, or whose decoding's average log-probability is below
        // the threshold (the fallback's two tests; live decoding has no fallback to retry
        // it) is a hallucination: left out of the hypothesis. Seen: "The river is has detour
        // through", prompt words on 3 s of audio cut mid-sentence, probabilities 0.00 to 0.40,
        // committed because the next decoding said it again.
        let offset = buffer::seconds(start);
        let cr = self.opts.transcribe.compression_ratio_threshold.unwrap_or(f32::INFINITY);
        let lp = self.opts.transcribe.log_prob_threshold.unwrap_or(f32::NEG_INFINITY);
        transcript
            .segments
            .iter()
            .filter(|s| s.compression_ratio <= cr && s.avg_logprob >= lp)
            .flat_map(|s| s.words.iter().flatten())
            .filter(|w| w.end - w.start >= COLLAPSED_WORD)
            .map(|w| Word { start: w.start + offset, end: w.end + offset, ..w.clone() })
            .collect()
    }

    /// Shows the open utterance's partial: `pending` (buffer times).
    fn show_partial(&mut self, pending: &[Word]) {
        let words: Vec<Word> = pending.iter().map(|w| self.to_stream(w)).collect();
        if let Some(u) = self.utterances.back_mut() {
            u.shown |= !words.is_empty();
            let utterance = u.id;
            self.events.push(StreamEvent::Partial { utterance, words });
        }
    }

    /// Takes the transcript of the decoding [`Self::next_decode`] handed out (or its error).
    pub fn complete(&mut self, result: Result<Transcript>) {
        let Some(f) = self.in_flight.take() else { return };
        if f.generation != self.generation || f.start != self.buffer.start() {
            return; // the buffer was dropped meanwhile
        }
        if f.peek {
            // A partial only, from a copy of the agreement; a failed peek is left unsaid
            // (the next step decodes the same audio).
            if let Ok(t) = result {
                if self.utterances.back().is_some_and(|u| u.end.is_none()) {
                    let mut copy = self.agreement.clone();
                    copy.insert(self.hypothesis(&t, f.start));
                    let pending = copy.pending().to_vec();
                    if !pending.is_empty() {
                        self.show_partial(&pending);
                    }
                }
            }
            return;
        }
        // Utterances that ended within the decoded audio complete now.
        let covered = self.utterances.iter().take_while(|u| u.end.is_some_and(|e| e <= f.end)).count();
        let transcript = match result {
            Ok(t) => t,
            Err(e) => {
                let id = self.utterances.front().map_or(0, |u| u.id);
                self.events.push(StreamEvent::Failed { utterance: id, message: e.to_string() });
                if covered > 0 {
                    self.settle(Vec::new(), covered);
                }
                return;
            }
        };
        let seconds = buffer::seconds(f.end - f.start);
        if self.opts.transcribe.language.is_none() && (covered > 0 || seconds >= LANGUAGE_LOCK_SECONDS) {
            // Keep the language detected on enough speech: later steps decode the same way.
            self.opts.transcribe.language = Some(transcript.language.clone());
        }
        let offset = buffer::seconds(f.start);
        let hypothesis = self.hypothesis(&transcript, f.start);
        trace_words("hypothesis", seconds + offset, &hypothesis);
        let mut committed = self.agreement.insert(hypothesis);
        trace_words("commit agree", seconds + offset, &committed);
        let mut cuts: Vec<f64> = Vec::new();
        for u in self.utterances.iter().take(covered) {
            // What was heard up to the end of an utterance that ended is final, but for what
            // begins after its speech ended.
            let end = buffer::seconds(u.end.expect("ended"));
            let heard = u.speech_end.map_or(end, |s| (buffer::seconds(s) + SPEECH_END_SLACK).min(end));
            let forced = self.agreement.force(heard);
            trace_words("commit end", seconds + offset, &forced);
            committed.extend(forced);
            self.agreement.drop_pending(end);
            cuts.push(end);
        }
        self.settle(committed, covered);
        // Cut candidates: segment ends before the last segment, and the ends of utterances
        // completed now (all their words are committed).
        cuts.extend(transcript.segments.iter().rev().skip(1).map(|s| s.end + offset));
        self.trim(&cuts, f.end);
        if !self.utterances.is_empty() {
            let pending = self.agreement.pending().to_vec();
            self.show_partial(&pending);
        } else {
            self.agreement.clear_pending();
        }
        self.agreement.forget();
    }

    /// Hands the words committed now (buffer times, in order) to their utterances, emits
    /// their deltas, and completes the first `covered` utterances, in order.
    fn settle(&mut self, committed: Vec<Word>, covered: usize) {
        self.unprompted.extend(committed.iter().cloned());
        let mut per: Vec<Vec<Word>> = vec![Vec::new(); self.utterances.len()];
        let mut i = 0;
        for w in committed {
            let mid = (w.start + w.end) / 2.0;
            while i + 1 < self.utterances.len() && self.utterances[i].end.is_some_and(|e| mid > buffer::seconds(e)) {
                i += 1;
            }
            if let Some(p) = per.get_mut(i) {
                p.push(self.to_stream(&w));
            }
        }
        for (k, words) in per.into_iter().enumerate() {
            let u = &mut self.utterances[k];
            if !words.is_empty() {
                u.words.extend(words.iter().cloned());
                self.events.push(StreamEvent::Committed { utterance: u.id, words });
            }
        }
        for _ in 0..covered {
            let u = self.utterances.pop_front().expect("covered");
            self.finish_utterance(u, Vec::new());
        }
    }

    /// Completes `u`, first committing `extra` (stream times) to it.
    fn finish_utterance(&mut self, mut u: Utterance, extra: Vec<Word>) {
        if !extra.is_empty() {
            u.words.extend(extra.iter().cloned());
            self.events.push(StreamEvent::Committed { utterance: u.id, words: extra });
        }
        self.events.push(StreamEvent::Partial { utterance: u.id, words: Vec::new() });
        let start = u.words.first().map_or(u.started_at as f64 / SAMPLE_RATE as f64, |w| w.start);
        let end = u.words.last().map_or(start, |w| w.end);
        self.events.push(StreamEvent::Completed { utterance: u.id, words: u.words, start, end });
    }

    /// `w` with stream times.
    fn to_stream(&self, w: &Word) -> Word {
        Word { start: self.buffer.to_stream(w.start), end: self.buffer.to_stream(w.end), ..w.clone() }
    }

    /// Cuts the buffer once it is longer than the trim length, at the latest of `cuts`
    /// (buffer seconds) that nothing uncommitted precedes (whisper_streaming's
    /// `chunk_completed_segment`); past the longest buffer, commits what has not agreed and
    /// cuts there.
    fn trim(&mut self, cuts: &[f64], decoded_end: u64) {
        let (trim, max) = (self.opts.trim_seconds, self.opts.max_buffer_seconds - self.opts.step_seconds);
        let start = buffer::seconds(self.buffer.start());
        // What the decoding covered (audio that came in meanwhile waits for the next one).
        let held = buffer::seconds(decoded_end) - start;
        let first_pending = self.agreement.pending().first().map_or(f64::INFINITY, |w| w.start);
        let mut cut = None;
        if held > trim {
            cut = cuts.iter().copied().filter(|&c| c > start && c <= first_pending + 1e-6).reduce(f64::max);
        }
        if cut.is_none() && held > max {
            // Nothing to cut at: keep the last step's audio, commit everything before it.
            let until = start + held - self.opts.step_seconds.max(1.0);
            let forced = self.agreement.force(until);
            trace_words("commit full", start + held, &forced);
            self.settle(forced, 0);
            cut = Some(until);
        }
        let Some(c) = cut else { return };
        self.buffer.drop_before((c * SAMPLE_RATE as f64).round() as u64);
        // Committed words now out of the buffer become prompt context.
        let start = buffer::seconds(self.buffer.start());
        let out = self.unprompted.iter().take_while(|w| (w.start + w.end) / 2.0 <= start + 1e-6).count();
        let text: String = self.unprompted.drain(..out).map(|w| w.word).collect();
        self.add_context(&text);
    }

    fn add_context(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.context.push_str(text);
        self.context = tail_chars(&self.context, PROMPT_CHARS);
    }
}

/// Logs (debug) a hypothesis or the words committed now (`what`), each with the audio the
/// decoding heard after it (`heard_end`: buffer seconds), its duration and its probability:
/// what the agreement's tuning is measured with.
fn trace_words(what: &str, heard_end: f64, words: &[Word]) {
    if words.is_empty() || !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let list: Vec<String> = words.iter().map(|w| format!("{}@{:.2}:{:.2}:{:.2}", w.word.trim(), heard_end - w.end, w.end - w.start, w.probability)).collect();
    tracing::debug!("{what}: {}", list.join("|"));
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

#[cfg(test)]
mod tests;
