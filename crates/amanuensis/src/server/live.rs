//! Live streams on the engine thread: the interface between a realtime WebSocket session
//! (`server::realtime`, async, protocol only) and the engine, which runs each stream's
//! `whisper::streaming::StreamingTranscriber` and decodes its windows in the same continuous
//! batch as the file requests.
//!
//! A stream is opened with [`super::scheduler::Pool::open_stream`]; the session sends
//! [`LiveInput`]s through a bounded channel (a client sending faster than the engine follows
//! waits on `send`: backpressure, never unbounded memory) and reads [`LiveEvent`]s. Dropping
//! the [`LiveHandle`] (the connection went away) frees the stream at the engine's next turn.

use tokio::sync::mpsc;
use whisper::live::TurnOptions;

/// Audio chunks (or commands) that may wait for the engine per stream; with 100-250 ms
/// chunks this is a few seconds of audio.
pub const INPUT_CAPACITY: usize = 32;
/// Events that may wait for the client; a client that reads none loses its stream.
pub const EVENT_CAPACITY: usize = 1024;

/// Server-side voice activity detection that ends utterances (OpenAI's `server_vad`: speech
/// threshold, prefix padding, silence duration; the same defaults, 0.5 / 300 ms / 500 ms).
pub type TurnDetection = TurnOptions;

/// How a stream transcribes; sent at open and again on every `session.update`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveConfig {
    /// Language code (`None`: detected on the first utterance, or English for .en models).
    pub language: Option<String>,
    /// Text that conditions the first decoding (OpenAI's `transcription.prompt`).
    pub prompt: Option<String>,
    /// `None`: the client commits the buffer itself (`input_audio_buffer.commit`).
    pub turn_detection: Option<TurnDetection>,
}

/// What a session sends to its stream. Audio is 16 kHz mono in [-1, 1].
#[derive(Debug)]
pub enum LiveInput {
    Audio(Vec<f32>),
    Configure(LiveConfig),
    /// Ends the current utterance: its audio is transcribed to the end and completed.
    Commit,
    /// Drops the audio not yet committed.
    Clear,
}

/// What a stream reports. Items are utterances, numbered from 0 in order; times are
/// milliseconds of the stream's audio.
#[derive(Clone, Debug, PartialEq)]
pub enum LiveEvent {
    /// The configuration in force (after open and after each `Configure`).
    Configured(LiveConfig),
    SpeechStarted { item: u64, audio_start_ms: u64 },
    SpeechStopped { item: u64, audio_end_ms: u64 },
    /// The item's audio is complete (manual commit or end of speech): its `Completed` follows.
    Committed { item: u64, previous_item: Option<u64> },
    /// Newly confirmed text of an item, appended to what came before (never revised), and
    /// its words with their times in seconds of the stream's audio.
    Delta { item: u64, text: String, words: Vec<whisper::words::Word> },
    /// The item's current unconfirmed tail (replaces the previous partial; "" clears it).
    Partial { item: u64, text: String },
    /// The item's final text.
    Completed { item: u64, transcript: String },
    /// Something failed; `fatal` closes the stream (and the session should close).
    Error { code: &'static str, message: String, fatal: bool },
}

/// A session's end of its stream.
pub struct LiveHandle {
    pub input: mpsc::Sender<LiveInput>,
    pub events: mpsc::Receiver<LiveEvent>,
}

// ---- the engine's side ------------------------------------------------------------------

use std::collections::HashSet;

use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use whisper::live::{join, DecodeRequest, LiveOptions, StreamEvent, StreamingTranscriber};
use whisper::model::Whisper;
use whisper::tokenizer::Task;
use whisper::transcribe::Transcript;
use whisper::vad::Vad;

/// Audio a stream may hold that no decoding has covered yet; beyond it the engine stops
/// taking its input, so the session's `send` waits (backpressure).
const MAX_BACKLOG_SECONDS: f64 = 8.0;

/// A stream as the engine receives it from `Pool::open_stream`.
pub struct OpenStream {
    pub config: LiveConfig,
    pub input: mpsc::Receiver<LiveInput>,
    pub events: mpsc::Sender<LiveEvent>,
}

/// A live stream on the engine thread.
pub struct LiveStream {
    st: StreamingTranscriber,
    input: mpsc::Receiver<LiveInput>,
    events: mpsc::Sender<LiveEvent>,
    /// The last utterance that ended (the next one's `previous_item`).
    last_ended: Option<u64>,
    /// Utterances that have sent text: later deltas keep their leading space.
    spoken: HashSet<u64>,
    /// The session went away (or stopped reading): the engine drops the stream.
    pub gone: bool,
    /// Its decoding is in the engine's job table.
    pub decoding: bool,
}

fn error(code: &'static str, message: impl Into<String>) -> LiveEvent {
    LiveEvent::Error { code, message: message.into(), fatal: false }
}

/// The options and VAD for `config`; a config the model cannot honour is an error message.
fn options(model: &Whisper, config: &LiveConfig, has_vad: bool) -> Result<(LiveOptions, Option<Box<dyn Vad + Send>>, LiveConfig), String> {
    let mut opts = LiveOptions::default();
    let mut config = config.clone();
    if let Some(code) = config.language.as_deref() {
        model.tokenizer.sot_sequence(Some(code), Task::Transcribe).map_err(|e| format!("language `{code}`: {e}"))?;
    }
    opts.transcribe.language = config.language.clone();
    opts.transcribe.initial_prompt = config.prompt.clone().filter(|p| !p.trim().is_empty());
    let mut vad = None;
    if let Some(t) = &config.turn_detection {
        let turns = t.clone();
        turns.validate().map_err(|e| e.to_string())?;
        if !has_vad {
            match crate::vad_args::load_vad() {
                Ok(v) => vad = Some(Box::new(v) as Box<dyn Vad + Send>),
                Err(e) => {
                    config.turn_detection = None;
                    opts.validate().map_err(|e| e.to_string())?;
                    return Err(format!("server_vad is not available on this server ({e:#}); turn detection is off: commit the buffer yourself (input_audio_buffer.commit), or install the VAD on the server with `amanuensis models pull silero-vad`"));
                }
            }
        }
        opts.turns = Some(turns);
    }
    opts.validate().map_err(|e| e.to_string())?;
    Ok((opts, vad, config))
}

impl LiveStream {
    /// Starts a stream; a config it cannot honour starts it without turn detection (or with
    /// the defaults) and reports why.
    pub fn open(model: &Whisper, open: OpenStream) -> LiveStream {
        let OpenStream { config, input, events } = open;
        let (st, report) = match options(model, &config, false) {
            Ok((opts, vad, config)) => (StreamingTranscriber::new(opts, vad), vec![LiveEvent::Configured(config)]),
            Err(msg) => {
                let fallback = LiveConfig { turn_detection: None, ..LiveConfig::default() };
                let st = StreamingTranscriber::new(LiveOptions::default(), None);
                (st, vec![error("invalid_session_config", msg), LiveEvent::Configured(fallback)])
            }
        };
        let st = st.expect("the default live options are valid");
        let mut s = LiveStream { st, input, events, last_ended: None, spoken: HashSet::new(), gone: false, decoding: false };
        for e in report {
            s.send(e);
        }
        s
    }

    fn send(&mut self, e: LiveEvent) {
        match self.events.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("a live session stopped reading its events; dropping the stream");
                self.gone = true;
            }
            Err(TrySendError::Closed(_)) => self.gone = true,
        }
    }

    fn configure(&mut self, model: &Whisper, config: LiveConfig) {
        let had_vad = self.st.options().turns.is_some();
        match options(model, &config, had_vad) {
            Ok((opts, vad, config)) => match self.st.reconfigure(opts, vad) {
                Ok(()) => self.send(LiveEvent::Configured(config)),
                Err(e) => self.send(error("invalid_session_config", e.to_string())),
            },
            Err(msg) => self.send(error("invalid_session_config", msg)),
        }
    }

    /// Takes the session's queued input while the stream's backlog is small. Returns whether
    /// anything was taken.
    pub fn poll_input(&mut self, model: &Whisper) -> bool {
        let mut took = false;
        while !self.gone && self.st.backlog_seconds() < MAX_BACKLOG_SECONDS {
            match self.input.try_recv() {
                Ok(LiveInput::Audio(samples)) => {
                    if let Err(e) = self.st.push(&samples) {
                        self.send(error("vad_failed", format!("voice activity detection failed: {e}")));
                    }
                }
                Ok(LiveInput::Configure(c)) => self.configure(model, c),
                Ok(LiveInput::Commit) => {
                    if self.st.commit().is_none() {
                        self.send(error("input_audio_buffer_commit_empty", "the input audio buffer holds no audio to commit; append audio first"));
                    }
                }
                Ok(LiveInput::Clear) => self.st.clear(),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // The session went away: everything of the stream is dropped at once.
                    self.gone = true;
                    break;
                }
            }
            took = true;
        }
        self.forward();
        took
    }

    /// Reports a failure that ends the stream.
    pub fn fail(&mut self, message: String) {
        self.send(LiveEvent::Error { code: "server_error", message, fatal: true });
        self.gone = true;
    }

    pub fn next_decode(&mut self) -> Option<DecodeRequest> {
        if self.gone {
            return None;
        }
        let r = self.st.next_decode();
        self.forward();
        r
    }

    /// The transcript of the stream's decoding (or why it failed).
    pub fn complete(&mut self, result: Result<Transcript, String>) {
        self.decoding = false;
        self.st.complete(result.map_err(whisper::Error::InvalidArgument));
        self.forward();
    }

    /// Sends the transcriber's events to the session in the protocol's terms.
    fn forward(&mut self) {
        for e in self.st.take_events() {
            let ev = match e {
                StreamEvent::SpeechStarted { utterance, at } => LiveEvent::SpeechStarted { item: utterance, audio_start_ms: ms(at) },
                StreamEvent::SpeechStopped { utterance, at } => LiveEvent::SpeechStopped { item: utterance, audio_end_ms: ms(at) },
                StreamEvent::Ended { utterance } => {
                    let previous = self.last_ended.replace(utterance);
                    LiveEvent::Committed { item: utterance, previous_item: previous }
                }
                StreamEvent::Committed { utterance, words } => {
                    let mut text: String = words.iter().map(|w| w.word.as_str()).collect();
                    if self.spoken.insert(utterance) {
                        text = text.trim_start().to_string();
                    }
                    LiveEvent::Delta { item: utterance, text, words }
                }
                StreamEvent::Partial { utterance, words } => {
                    let text: String = words.iter().map(|w| w.word.as_str()).collect();
                    let text = if self.spoken.contains(&utterance) { text } else { text.trim_start().to_string() };
                    LiveEvent::Partial { item: utterance, text }
                }
                StreamEvent::Completed { utterance, words, .. } => {
                    self.spoken.remove(&utterance);
                    LiveEvent::Completed { item: utterance, transcript: join(&words) }
                }
                StreamEvent::Failed { message, .. } => error("transcription_failed", format!("transcribing the stream failed: {message}")),
            };
            self.send(ev);
        }
    }
}

fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round().max(0.0) as u64
}
