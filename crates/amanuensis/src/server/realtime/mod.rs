//! `GET /v1/realtime?intent=transcription`: OpenAI's realtime transcription protocol over a
//! WebSocket. This module speaks the protocol (`protocol`: the JSON events; `audio`: base64
//! PCM16 and 24 → 16 kHz resampling) and hands audio to the engine through
//! [`super::live`] (`Pool::open_stream`), whose events it turns into OpenAI's server events.
//!
//! One task per connection reads client events, forwards audio to its stream and writes the
//! stream's events back. The stream opens with the first audio (so a session that only
//! configures itself costs the engine nothing) and is dropped with the connection. Sending
//! audio waits for room in the stream's bounded input (the engine's pace), and meanwhile the
//! socket is not read: a client faster than the engine is slowed by TCP, and memory stays
//! bounded. Errors in what the client sends are answered with `error` events and the session
//! goes on; limits, engine failures and idleness end it with an `error` event and a close.

pub(super) mod audio;
pub(super) mod protocol;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::error::ApiError;
use super::live::{LiveEvent, LiveHandle, LiveInput};
use super::AppState;
use audio::Resampler;
use protocol::{ClientEvent, Parsed, ProtoError, SessionConfig};

/// Audio handed to the engine in pieces of at most this many 16 kHz samples (250 ms), so that
/// the stream's bounded input holds a few seconds of audio at most.
const CHUNK: usize = 4000;
/// Room for the JSON around an append's base64 audio in one WebSocket message.
const MESSAGE_SLACK: usize = 1 << 20;

/// The `serve` options that bound realtime sessions.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Sessions open at once (`--max-streams`).
    pub max_streams: usize,
    /// Decoded audio bytes one `input_audio_buffer.append` may carry (`--max-append-mb`).
    pub max_append_bytes: usize,
    /// Audio (16 kHz samples) appended and not yet committed in manual mode
    /// (`--max-uncommitted-secs`).
    pub max_uncommitted: u64,
    /// A session whose client sends nothing for this long, while the stream sends it nothing
    /// either, is closed (`--stream-idle-timeout-secs`); also the longest wait for the client
    /// to take an event.
    pub idle: Duration,
}

impl Limits {
    /// The largest WebSocket message: an append of the largest audio, base64-encoded.
    pub fn max_message(&self) -> usize {
        self.max_append_bytes.div_ceil(3) * 4 + MESSAGE_SLACK
    }
}

/// Sessions open now.
#[derive(Default)]
pub struct Streams {
    open: AtomicUsize,
}

/// A session's place among the `--max-streams`; given back when dropped.
struct Slot(Arc<AppState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.realtime.open.fetch_sub(1, Ordering::AcqRel);
    }
}

fn take_slot(state: &Arc<AppState>) -> Option<Slot> {
    let max = state.cfg.realtime.max_streams;
    state.realtime.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok().map(|_| Slot(state.clone()))
}

fn new_session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new().build_hasher().finish() as u32
    });
    format!("{seed:08x}{:06}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The route's handler: every WebSocket request is upgraded, and a session that cannot start
/// (wrong intent, model loading, too many streams) is told why in an `error` event before the
/// close, which browsers can read (they never see an HTTP error's body).
pub async fn handler(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "websocket_required", format!("/v1/realtime is OpenAI's realtime transcription WebSocket: connect to ws://HOST/v1/realtime?intent=transcription with a WebSocket client ({e})")).into_response();
        }
    };
    let protocols: Vec<String> = headers.get_all("sec-websocket-protocol").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(|p| p.trim().to_string()).collect();
    // Beta clients say so in a header (the SDK) or a subprotocol (browsers).
    let beta = headers.get_all("openai-beta").iter().any(|v| v.to_str().is_ok_and(|v| v.contains("realtime=v1"))) || protocols.iter().any(|p| p == "openai-beta.realtime-v1");
    let refusal = match (query.get("intent").map(String::as_str), query.contains_key("model")) {
        (Some("transcription"), _) | (None, false) => None,
        (Some(other), _) => Some(ProtoError::invalid("unsupported_intent", Some("intent"), format!("intent `{other}` is not supported: this server runs transcription sessions only; connect to /v1/realtime?intent=transcription"))),
        (None, true) => Some(ProtoError::invalid("unsupported_intent", Some("intent"), "this server runs transcription sessions only (Whisper does not converse): connect to /v1/realtime?intent=transcription")),
    };
    let refusal = refusal.or_else(|| state.engine().err().map(|e| ProtoError::from(e)));
    let slot = if refusal.is_none() { take_slot(&state) } else { None };
    let refusal = refusal.or_else(|| {
        slot.is_none().then(|| ProtoError::server("too_many_streams", format!("the server already runs {} realtime sessions (--max-streams); retry later", state.cfg.realtime.max_streams)))
    });
    let limits = &state.cfg.realtime;
    let ws = ws.max_message_size(limits.max_message()).max_frame_size(limits.max_message()).protocols(["realtime"]);
    ws.on_upgrade(move |socket| async move {
        let mut out = Out { socket, id: new_session_id(), next_event: 0, timeout: state.cfg.realtime.idle };
        match (refusal, slot) {
            (None, Some(slot)) => {
                let session = Session::new(state, out.id.clone(), beta);
                session.run(out).await;
                drop(slot);
            }
            (refusal, _) => {
                let e = refusal.unwrap_or_else(|| ProtoError::server("internal_error", "the session could not start"));
                let code = if e.kind == "server_error" { 1013 } else { 1008 };
                let _ = out.error(&e, None).await;
                out.close(code, &e.code).await;
            }
        }
    })
}

/// The session ended (the client left, or the session was closed).
struct End;

/// The socket's sending side: numbers the server events.
struct Out {
    socket: WebSocket,
    id: String,
    next_event: u64,
    timeout: Duration,
}

impl Out {
    async fn send(&mut self, mut v: Value) -> Result<(), End> {
        self.next_event += 1;
        if let Some(m) = v.as_object_mut() {
            m.insert("event_id".into(), Value::from(format!("event_{}{:05}", self.id, self.next_event)));
        }
        // A client that takes no event for the idle time is gone.
        match tokio::time::timeout(self.timeout, self.socket.send(Message::Text(v.to_string().into()))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End),
        }
    }

    async fn error(&mut self, e: &ProtoError, client_event_id: Option<&str>) -> Result<(), End> {
        self.send(protocol::error_event(e, client_event_id)).await
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame { code, reason: reason.chars().take(100).collect::<String>().into() };
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.send(Message::Close(Some(frame)))).await;
    }
}

/// What the session knows of one item (utterance) for its usage.
#[derive(Default)]
struct Item {
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    seconds: Option<f64>,
}

struct Session {
    state: Arc<AppState>,
    id: String,
    /// Beta event names (`transcription_session.*`).
    beta: bool,
    config: SessionConfig,
    /// The checked language code for the engine (`None`: detect).
    language: Option<String>,
    resampler: Resampler,
    /// 16 kHz samples appended since the last commit or clear.
    uncommitted: u64,
    /// Audio lengths of the commits sent and not yet confirmed, oldest first.
    commits: VecDeque<u64>,
    items: HashMap<u64, Item>,
    live: Option<LiveHandle>,
}

impl Session {
    fn new(state: Arc<AppState>, id: String, beta: bool) -> Session {
        let config = SessionConfig::default();
        Session { state, id, beta, resampler: Resampler::new(config.rate), config, language: None, uncommitted: 0, commits: VecDeque::new(), items: HashMap::new(), live: None }
    }

    fn item_id(&self, n: u64) -> String {
        format!("item_{}_{n}", self.id)
    }

    fn session_event(&self, kind: &str) -> Value {
        let name = if self.beta { format!("transcription_session.{kind}") } else { format!("session.{kind}") };
        json!({"type": name, "session": self.config.to_json(&format!("sess_{}", self.id), self.beta, &self.state.cfg.model_name)})
    }

    async fn run(mut self, mut out: Out) {
        if out.send(self.session_event("created")).await.is_err() {
            return;
        }
        let idle = self.state.cfg.realtime.idle;
        let mut deadline = Instant::now() + idle;
        loop {
            let result = tokio::select! {
                msg = out.socket.recv() => match msg {
                    // The client went away: dropping the stream frees it.
                    None => Err(End),
                    Some(Err(e)) => {
                        let too_big = e.to_string().to_lowercase().contains("too long") || e.to_string().contains("Space limit");
                        if too_big {
                            let max = self.state.cfg.realtime.max_message();
                            let e = ProtoError::invalid("message_too_large", None, format!("a WebSocket message exceeded {max} bytes (--max-append-mb); send the audio in smaller appends"));
                            let _ = out.error(&e, None).await;
                            out.close(1009, "message too large").await;
                        }
                        Err(End)
                    }
                    Some(Ok(m)) => {
                        deadline = Instant::now() + idle;
                        self.on_message(&mut out, m).await
                    }
                },
                ev = next_event(&mut self.live) => match ev {
                    // A session still receiving its transcripts is not idle.
                    Some(ev) => {
                        deadline = Instant::now() + idle;
                        self.on_live(&mut out, ev).await
                    }
                    None => {
                        let e = ProtoError::server("stream_ended", "the engine ended this stream; reconnect to start a new session");
                        let _ = out.error(&e, None).await;
                        out.close(1011, "stream ended").await;
                        Err(End)
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let e = ProtoError::invalid("idle_timeout", None, format!("no client event for {} s (--stream-idle-timeout-secs); the session is closed", idle.as_secs_f64()));
                    let _ = out.error(&e, None).await;
                    out.close(1000, "idle timeout").await;
                    Err(End)
                }
            };
            if result.is_err() {
                return;
            }
        }
    }

    async fn on_message(&mut self, out: &mut Out, m: Message) -> Result<(), End> {
        match m {
            Message::Text(t) => match protocol::parse(t.as_str()) {
                Ok(Parsed { event_id, event }) => match self.on_event(out, event).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => out.error(&e, event_id.as_deref()).await,
                    Err(End) => Err(End),
                },
                Err((event_id, e)) => out.error(&e, event_id.as_deref()).await,
            },
            Message::Binary(_) => out.error(&ProtoError::invalid("invalid_event", None, "binary messages are not part of the protocol: send JSON text events (audio goes base64-encoded in input_audio_buffer.append)"), None).await,
            Message::Close(_) => Err(End),
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        }
    }

    /// Handles one client event: `Ok(Err(e))` is an error event for the client, the session
    /// going on; `Err(End)` ends the session.
    async fn on_event(&mut self, out: &mut Out, event: ClientEvent) -> Result<Result<(), ProtoError>, End> {
        match event {
            ClientEvent::Update { beta, patch } => {
                let mut config = self.config.clone();
                config.apply(patch);
                let language = match self.check(&config) {
                    Ok(l) => l,
                    Err(e) => return Ok(Err(e)),
                };
                if config.rate != self.config.rate {
                    self.resampler = Resampler::new(config.rate);
                }
                self.config = config;
                self.language = language;
                self.beta = beta;
                if self.live.is_some() {
                    let live = self.config.live(self.language.clone());
                    self.feed(out, LiveInput::Configure(live)).await?;
                }
                out.send(self.session_event("updated")).await?;
                Ok(Ok(()))
            }
            ClientEvent::Append(text) => self.append(out, &text).await,
            ClientEvent::Commit => {
                if self.uncommitted == 0 {
                    return Ok(Err(ProtoError::invalid("input_audio_buffer_commit_empty", None, "the input audio buffer is empty: append audio before committing it")));
                }
                self.commits.push_back(self.uncommitted);
                if self.commits.len() > 64 {
                    self.commits.pop_front();
                }
                self.uncommitted = 0;
                self.feed(out, LiveInput::Commit).await?;
                Ok(Ok(()))
            }
            ClientEvent::Clear => {
                self.uncommitted = 0;
                if self.live.is_some() {
                    self.feed(out, LiveInput::Clear).await?;
                }
                out.send(json!({"type": "input_audio_buffer.cleared"})).await?;
                Ok(Ok(()))
            }
        }
    }

    /// The model and language of `config`, checked as the HTTP routes check them.
    fn check(&self, config: &SessionConfig) -> Result<Option<String>, ProtoError> {
        let path = if self.beta { "session.input_audio_transcription" } else { "session.audio.input.transcription" };
        let cfg = &self.state.cfg;
        if let Some(m) = &config.transcription.model {
            super::params::check_model(cfg, m, true).map_err(|e| ProtoError::from(e.param(&format!("{path}.model"))))?;
        }
        match &config.transcription.language {
            None => Ok(None),
            Some(l) => {
                let model = self.state.model().ok_or_else(|| ProtoError::from(super::loading()))?;
                super::params::parse_language(l, model, &cfg.model_name).map_err(|e| ProtoError::from(e.param(&format!("{path}.language"))))
            }
        }
    }

    async fn append(&mut self, out: &mut Out, text: &str) -> Result<Result<(), ProtoError>, End> {
        let limits = self.state.cfg.realtime.clone();
        let bytes = match audio::decode_base64(text, limits.max_append_bytes) {
            Ok(b) => b,
            Err(e) => return Ok(Err(ProtoError::invalid("invalid_audio", Some("audio"), e.to_string()))),
        };
        let incoming = (bytes.len() / 2) as u64 * 16000 / u64::from(self.config.rate);
        if self.config.turn_detection.is_none() && self.uncommitted + incoming > limits.max_uncommitted {
            let secs = limits.max_uncommitted as f64 / 16000.0;
            return Ok(Err(ProtoError::invalid("input_audio_buffer_full", Some("audio"), format!("more than {secs} s of audio appended without a commit (--max-uncommitted-secs): send input_audio_buffer.commit more often; this append was dropped"))));
        }
        let samples = self.resampler.push(&audio::pcm16_to_f32(&bytes));
        if samples.is_empty() {
            return Ok(Ok(()));
        }
        if self.live.is_none() {
            let opened = match self.state.engine() {
                // Debug builds only: lets the tests see an engine that refuses a stream.
                Ok(_) if cfg!(debug_assertions) && std::env::var_os("AMANUENSIS_FAULT_OPEN_STREAM").is_some() => {
                    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine_busy", "the engine cannot take another stream (fault injected by AMANUENSIS_FAULT_OPEN_STREAM)"))
                }
                Ok(engine) => engine.pool.open_stream(self.config.live(self.language.clone())),
                Err(e) => Err(e),
            };
            match opened {
                Ok(h) => self.live = Some(h),
                Err(e) => {
                    let code = if e.status == StatusCode::SERVICE_UNAVAILABLE { 1013 } else { 1011 };
                    let e = ProtoError::from(e);
                    let _ = out.error(&e, None).await;
                    out.close(code, e.code).await;
                    return Err(End);
                }
            }
        }
        self.uncommitted += samples.len() as u64;
        for piece in samples.chunks(CHUNK) {
            self.feed(out, LiveInput::Audio(piece.to_vec())).await?;
        }
        Ok(Ok(()))
    }

    /// Sends `input` to the stream once it has room, writing the stream's events meanwhile.
    async fn feed(&mut self, out: &mut Out, input: LiveInput) -> Result<(), End> {
        let mut input = Some(input);
        loop {
            let Some(live) = self.live.as_mut() else { return Ok(()) };
            let ev = tokio::select! {
                permit = live.input.reserve() => match permit {
                    Ok(p) => {
                        if let Some(i) = input.take() {
                            p.send(i);
                        }
                        return Ok(());
                    }
                    Err(_) => None,
                },
                ev = live.events.recv() => ev,
            };
            match ev {
                Some(ev) => self.on_live(out, ev).await?,
                None => {
                    let e = ProtoError::server("stream_ended", "the engine ended this stream; reconnect to start a new session");
                    let _ = out.error(&e, None).await;
                    out.close(1011, "stream ended").await;
                    return Err(End);
                }
            }
        }
    }

    /// Writes a stream event as OpenAI's server event.
    async fn on_live(&mut self, out: &mut Out, ev: LiveEvent) -> Result<(), End> {
        let v = match ev {
            LiveEvent::Configured(_) => return Ok(()),
            LiveEvent::SpeechStarted { item, audio_start_ms } => {
                self.items.entry(item).or_default().start_ms = Some(audio_start_ms);
                json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_start_ms, "item_id": self.item_id(item)})
            }
            LiveEvent::SpeechStopped { item, audio_end_ms } => {
                self.items.entry(item).or_default().end_ms = Some(audio_end_ms);
                json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": self.item_id(item)})
            }
            LiveEvent::Committed { item, previous_item } => {
                let it = self.items.entry(item).or_default();
                it.seconds = match (it.start_ms, it.end_ms) {
                    (Some(s), Some(e)) if e >= s => Some((e - s) as f64 / 1000.0),
                    _ => self.commits.pop_front().map(|n| n as f64 / 16000.0),
                };
                if self.config.turn_detection.is_some() {
                    self.uncommitted = 0;
                }
                json!({"type": "input_audio_buffer.committed", "item_id": self.item_id(item), "previous_item_id": previous_item.map(|p| self.item_id(p))})
            }
            LiveEvent::Delta { item, text, words } => {
                let mut v = json!({"type": "conversation.item.input_audio_transcription.delta", "item_id": self.item_id(item), "content_index": 0, "delta": text});
                if self.config.words {
                    v["words"] = words.iter().map(|w| json!({"word": w.word, "start": w.start, "end": w.end})).collect();
                }
                v
            }
            LiveEvent::Partial { item, text } => {
                if !self.config.partials {
                    return Ok(());
                }
                json!({"type": "conversation.item.input_audio_transcription.partial", "item_id": self.item_id(item), "content_index": 0, "text": text})
            }
            LiveEvent::Completed { item, transcript } => {
                let seconds = self.items.remove(&item).and_then(|i| i.seconds).unwrap_or(0.0);
                json!({"type": "conversation.item.input_audio_transcription.completed", "item_id": self.item_id(item), "content_index": 0, "transcript": transcript, "usage": {"type": "duration", "seconds": seconds}})
            }
            LiveEvent::Error { code, message, fatal } => {
                // The engine's refusals of what the client asked (a configuration, an empty
                // commit) are the client's errors; the rest are the server's.
                let e = if code.starts_with("invalid_") || code.starts_with("input_audio_buffer_") { ProtoError::invalid(code, None, message) } else { ProtoError::server(code, message) };
                out.error(&e, None).await?;
                if fatal {
                    out.close(1011, code).await;
                    return Err(End);
                }
                return Ok(());
            }
        };
        // Bounded: items the engine never completes are forgotten.
        if self.items.len() > 256 {
            let oldest = self.items.keys().min().copied();
            if let Some(k) = oldest {
                self.items.remove(&k);
            }
        }
        out.send(v).await
    }
}

async fn next_event(live: &mut Option<LiveHandle>) -> Option<LiveEvent> {
    match live {
        Some(l) => l.events.recv().await,
        None => std::future::pending().await,
    }
}
