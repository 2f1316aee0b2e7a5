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

/// Audio chunks (or commands) that may wait for the engine per stream; with 100-250 ms
/// chunks this is a few seconds of audio.
pub const INPUT_CAPACITY: usize = 32;
/// Events that may wait for the client; a client that reads none loses its stream.
pub const EVENT_CAPACITY: usize = 1024;

/// Server-side voice activity detection that ends utterances (OpenAI's `server_vad`).
#[derive(Clone, Debug, PartialEq)]
pub struct TurnDetection {
    /// Speech probability at or above which audio is speech (0..1).
    pub threshold: f32,
    /// Audio kept before the detected start of speech.
    pub prefix_padding_ms: u32,
    /// Silence that ends an utterance.
    pub silence_duration_ms: u32,
}

impl Default for TurnDetection {
    fn default() -> Self {
        TurnDetection { threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 }
    }
}

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
