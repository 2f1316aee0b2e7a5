//! OpenAI's realtime transcription events as JSON: the client events this server reads
//! (`session.update` with `session.type = "transcription"`, the beta
//! `transcription_session.update`, `input_audio_buffer.append` / `.commit` / `.clear`), the
//! session configuration they change, and the server events written back. Field and event
//! names follow the `openai` Python SDK 3.x (`openai.types.realtime`, `openai.types.beta.realtime`).
//!
//! Updates are read field by field so that every mistake names its path
//! (`session.audio.input.format.rate`), as OpenAI's own errors do; an unknown field is an error,
//! never silently ignored; fields that mean nothing for Whisper transcription
//! (`noise_reduction`, `create_response`, ...) are accepted and ignored.

use serde_json::{json, Map, Value};

use super::super::error::ApiError;
use super::super::live::{LiveConfig, TurnDetection};
use super::audio::RATES;

/// `session.include` value that turns on `...input_audio_transcription.partial` events (ours).
pub const INCLUDE_PARTIAL: &str = "item.input_audio_transcription.partial";
/// `session.include` value that adds `words` [{word, start, end}] to delta events (ours).
pub const INCLUDE_WORDS: &str = "item.input_audio_transcription.words";
/// OpenAI's logprobs include, which this server cannot honour.
const INCLUDE_LOGPROBS: &str = "item.input_audio_transcription.logprobs";

/// The client events this server understands, for error messages.
pub const CLIENT_EVENTS: &str = "session.update, transcription_session.update, input_audio_buffer.append, input_audio_buffer.commit, input_audio_buffer.clear";

/// An error to send as an `error` event, in OpenAI's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtoError {
    /// `invalid_request_error` (the client's mistake) or `server_error`.
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

impl ProtoError {
    pub fn invalid(code: &'static str, param: Option<&str>, message: impl Into<String>) -> Self {
        ProtoError { kind: "invalid_request_error", code, message: message.into(), param: param.map(str::to_string) }
    }

    pub fn server(code: &'static str, message: impl Into<String>) -> Self {
        ProtoError { kind: "server_error", code, message: message.into(), param: None }
    }
}

impl From<ApiError> for ProtoError {
    fn from(e: ApiError) -> Self {
        ProtoError { kind: e.kind(), code: e.code, message: e.message, param: e.param }
    }
}

type R<T> = Result<T, ProtoError>;

fn bad(path: &str, message: impl Into<String>) -> ProtoError {
    ProtoError::invalid("invalid_value", Some(path), message)
}

fn unsupported(path: &str, message: impl Into<String>) -> ProtoError {
    ProtoError::invalid("unsupported_value", Some(path), message)
}

/// A field: missing, `null`, or a value.
enum Field<'a> {
    Absent,
    Null,
    Set(&'a Value),
}

fn field<'a>(m: &'a Map<String, Value>, k: &str) -> Field<'a> {
    match m.get(k) {
        None => Field::Absent,
        Some(Value::Null) => Field::Null,
        Some(v) => Field::Set(v),
    }
}

fn object<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| bad(path, format!("`{path}` must be an object")))
}

fn only(m: &Map<String, Value>, path: &str, known: &[&str]) -> R<()> {
    match m.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => {
            let full = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            Err(ProtoError::invalid("unknown_parameter", Some(&full), format!("Unknown parameter: '{full}'. Known here: {}", known.join(", "))))
        }
    }
}

fn string<'a>(v: &'a Value, path: &str) -> R<&'a str> {
    v.as_str().ok_or_else(|| bad(path, format!("`{path}` must be a string")))
}

/// An optional string: absent and null are `None`.
fn opt_string(m: &Map<String, Value>, k: &str, path: &str) -> R<Option<String>> {
    match field(m, k) {
        Field::Set(v) => Ok(Some(string(v, &format!("{path}.{k}"))?.to_string())),
        _ => Ok(None),
    }
}

fn number(m: &Map<String, Value>, k: &str, path: &str, lo: f64, hi: f64, int: bool) -> R<Option<f64>> {
    let p = format!("{path}.{k}");
    let Field::Set(v) = field(m, k) else { return Ok(None) };
    let x = v.as_f64().ok_or_else(|| bad(&p, format!("`{p}` must be a number")))?;
    if int && x.fract() != 0.0 {
        return Err(bad(&p, format!("`{p}` must be a whole number of milliseconds, not {x}")));
    }
    if !(lo..=hi).contains(&x) {
        return Err(bad(&p, format!("`{p}` must be from {lo} to {hi}, not {x}")));
    }
    Ok(Some(x))
}

/// The transcription settings as the client gave them (checked against the model later).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transcription {
    pub model: Option<String>,
    pub language: Option<String>,
    pub prompt: Option<String>,
}

/// A session's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    /// Sample rate of the appended PCM16 (16000 or 24000).
    pub rate: u32,
    pub transcription: Transcription,
    /// `None`: manual commits.
    pub turn_detection: Option<TurnDetection>,
    pub partials: bool,
    pub words: bool,
}

impl Default for SessionConfig {
    /// OpenAI's defaults: 24 kHz PCM16, server VAD (threshold 0.5, 300 ms, 500 ms).
    fn default() -> Self {
        SessionConfig { rate: 24000, transcription: Transcription::default(), turn_detection: Some(TurnDetection::default()), partials: false, words: false }
    }
}

/// What one update changes: `None` leaves a setting as it is.
#[derive(Debug, Default, PartialEq)]
pub struct Patch {
    pub rate: Option<u32>,
    pub transcription: Option<Transcription>,
    pub turn_detection: Option<Option<TurnDetection>>,
    pub include: Option<Vec<String>>,
}

impl SessionConfig {
    pub fn apply(&mut self, p: Patch) {
        if let Some(r) = p.rate {
            self.rate = r;
        }
        if let Some(t) = p.transcription {
            self.transcription = t;
        }
        if let Some(td) = p.turn_detection {
            self.turn_detection = td;
        }
        if let Some(inc) = p.include {
            self.partials = inc.iter().any(|i| i == INCLUDE_PARTIAL);
            self.words = inc.iter().any(|i| i == INCLUDE_WORDS);
        }
    }

    /// The engine's view; `language` is the checked code (`None`: detect).
    pub fn live(&self, language: Option<String>) -> LiveConfig {
        LiveConfig { language, prompt: self.transcription.prompt.clone().filter(|p| !p.is_empty()), turn_detection: self.turn_detection.clone() }
    }

    fn include(&self) -> Value {
        let mut inc = Vec::new();
        if self.partials {
            inc.push(INCLUDE_PARTIAL);
        }
        if self.words {
            inc.push(INCLUDE_WORDS);
        }
        if inc.is_empty() {
            Value::Null
        } else {
            json!(inc)
        }
    }

    fn turn_json(&self) -> Value {
        match &self.turn_detection {
            None => Value::Null,
            Some(t) => json!({
                "type": "server_vad", "threshold": t.threshold, "prefix_padding_ms": t.prefix_padding_ms,
                "silence_duration_ms": t.silence_duration_ms,
            }),
        }
    }

    /// The session object of `session.created` / `session.updated` (GA) or of the beta
    /// `transcription_session.created` / `.updated`. `model` is the name reported when the
    /// client named none.
    pub fn to_json(&self, id: &str, beta: bool, model: &str) -> Value {
        let t = &self.transcription;
        let transcription = json!({
            "model": t.model.as_deref().unwrap_or(model), "language": t.language, "prompt": t.prompt.as_deref().unwrap_or(""),
        });
        if beta {
            json!({
                "id": id, "object": "realtime.transcription_session", "input_audio_format": "pcm16",
                "input_audio_transcription": transcription, "turn_detection": self.turn_json(),
                "input_audio_noise_reduction": null, "include": self.include(), "modalities": ["text"],
            })
        } else {
            json!({
                "type": "transcription", "object": "realtime.transcription_session", "id": id,
                "audio": {"input": {
                    "format": {"type": "audio/pcm", "rate": self.rate},
                    "transcription": transcription, "turn_detection": self.turn_json(), "noise_reduction": null,
                }},
                "include": self.include(),
            })
        }
    }
}

/// A client event.
#[derive(Debug, PartialEq)]
pub enum ClientEvent {
    /// `session.update` (`beta` false) or `transcription_session.update` (`beta` true).
    Update { beta: bool, patch: Patch },
    /// Base64 audio, not yet decoded.
    Append(String),
    Commit,
    Clear,
}

/// A client event and the `event_id` it carried.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub event_id: Option<String>,
    pub event: ClientEvent,
}

/// Reads one text message. On error, the client's `event_id` (when readable) comes back too.
pub fn parse(text: &str) -> Result<Parsed, (Option<String>, ProtoError)> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        (None, ProtoError::invalid("invalid_json", None, format!("the message is not valid JSON ({e}); every client event is a JSON object such as {{\"type\": \"input_audio_buffer.append\", \"audio\": \"...\"}}")))
    })?;
    let event_id = v.get("event_id").and_then(Value::as_str).map(str::to_string);
    parse_value(&v).map(|event| Parsed { event_id: event_id.clone(), event }).map_err(|e| (event_id, e))
}

fn parse_value(v: &Value) -> R<ClientEvent> {
    let m = v.as_object().ok_or_else(|| ProtoError::invalid("invalid_event", None, "a client event must be a JSON object with a `type`"))?;
    let kind = match m.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(bad("type", "`type` must be a string")),
        None => return Err(ProtoError::invalid("missing_required_parameter", Some("type"), format!("the event has no `type`; this server takes {CLIENT_EVENTS}"))),
    };
    if let Some(id) = m.get("event_id") {
        if !id.is_string() && !id.is_null() {
            return Err(bad("event_id", "`event_id` must be a string"));
        }
    }
    match kind {
        "session.update" => {
            only(m, "", &["type", "event_id", "session"])?;
            let s = m.get("session").ok_or_else(|| ProtoError::invalid("missing_required_parameter", Some("session"), "session.update needs a `session` object"))?;
            Ok(ClientEvent::Update { beta: false, patch: ga_session(object(s, "session")?)? })
        }
        "transcription_session.update" => {
            only(m, "", &["type", "event_id", "session"])?;
            let s = m.get("session").ok_or_else(|| ProtoError::invalid("missing_required_parameter", Some("session"), "transcription_session.update needs a `session` object"))?;
            Ok(ClientEvent::Update { beta: true, patch: beta_session(object(s, "session")?)? })
        }
        "input_audio_buffer.append" => {
            only(m, "", &["type", "event_id", "audio"])?;
            match m.get("audio") {
                Some(Value::String(a)) => Ok(ClientEvent::Append(a.clone())),
                Some(_) => Err(bad("audio", "`audio` must be a string of base64-encoded PCM16")),
                None => Err(ProtoError::invalid("missing_required_parameter", Some("audio"), "input_audio_buffer.append needs `audio` (base64-encoded PCM16)")),
            }
        }
        "input_audio_buffer.commit" => {
            only(m, "", &["type", "event_id"])?;
            Ok(ClientEvent::Commit)
        }
        "input_audio_buffer.clear" => {
            only(m, "", &["type", "event_id"])?;
            Ok(ClientEvent::Clear)
        }
        other => Err(ProtoError::invalid("invalid_event", Some("type"), format!("unknown or unsupported event type `{other}`: this server runs transcription sessions and takes {CLIENT_EVENTS}"))),
    }
}

/// `include`: our two extensions; logprobs are refused with the reason.
fn include(v: &Value, path: &str) -> R<Vec<String>> {
    let items = v.as_array().ok_or_else(|| bad(path, format!("`{path}` must be a list of strings")))?;
    let mut out = Vec::new();
    for it in items {
        let s = string(it, path)?;
        match s {
            INCLUDE_PARTIAL | INCLUDE_WORDS => out.push(s.to_string()),
            INCLUDE_LOGPROBS => return Err(unsupported(path, format!("`{INCLUDE_LOGPROBS}` is not available on realtime sessions here (the streaming engine keeps no token log-probabilities); leave it out"))),
            other => return Err(bad(path, format!("`{path}` may hold `{INCLUDE_PARTIAL}` and `{INCLUDE_WORDS}`, not `{other}`"))),
        }
    }
    Ok(out)
}

fn ga_session(s: &Map<String, Value>) -> R<Patch> {
    let mut p = Patch::default();
    match field(s, "type") {
        Field::Set(Value::String(t)) if t == "transcription" => {}
        Field::Set(Value::String(t)) if t == "realtime" => return Err(unsupported("session.type", "this server runs transcription sessions only (Whisper transcribes, it does not converse): send session.type = \"transcription\" and connect to /v1/realtime?intent=transcription")),
        Field::Set(other) => return Err(bad("session.type", format!("session.type must be \"transcription\", not {other}"))),
        // Leniency: a transcription session is the only kind here.
        _ => {}
    }
    only(s, "session", &["type", "audio", "include", "id", "object", "expires_at"])?;
    if let Field::Set(v) = field(s, "include") {
        p.include = Some(include(v, "session.include")?);
    } else if let Field::Null = field(s, "include") {
        p.include = Some(Vec::new());
    }
    let Field::Set(audio) = field(s, "audio") else { return Ok(p) };
    let audio = object(audio, "session.audio")?;
    only(audio, "session.audio", &["input"])?;
    let Field::Set(input) = field(audio, "input") else { return Ok(p) };
    let path = "session.audio.input";
    let input = object(input, path)?;
    only(input, path, &["format", "transcription", "turn_detection", "noise_reduction"])?;
    if let Field::Set(f) = field(input, "format") {
        p.rate = Some(ga_format(object(f, "session.audio.input.format")?)?);
    }
    match field(input, "transcription") {
        Field::Set(t) => p.transcription = Some(transcription(object(t, "session.audio.input.transcription")?, "session.audio.input.transcription", true)?),
        Field::Null => p.transcription = Some(Transcription::default()),
        Field::Absent => {}
    }
    match field(input, "turn_detection") {
        Field::Set(t) => p.turn_detection = Some(Some(turn_detection(object(t, "session.audio.input.turn_detection")?, "session.audio.input.turn_detection", false)?)),
        Field::Null => p.turn_detection = Some(None),
        Field::Absent => {}
    }
    // noise_reduction: accepted (object or null) and ignored: Whisper hears the audio as sent.
    if let Field::Set(n) = field(input, "noise_reduction") {
        object(n, "session.audio.input.noise_reduction")?;
    }
    Ok(p)
}

fn ga_format(f: &Map<String, Value>) -> R<u32> {
    let path = "session.audio.input.format";
    only(f, path, &["type", "rate"])?;
    match opt_string(f, "type", path)?.as_deref() {
        None | Some("audio/pcm") => {}
        Some(t @ ("audio/pcmu" | "audio/pcma")) => return Err(unsupported("session.audio.input.format.type", format!("`{t}` (G.711) is not supported: send \"audio/pcm\" (16-bit little-endian mono PCM at 24000 or 16000 Hz)"))),
        Some(t) => return Err(bad("session.audio.input.format.type", format!("format type must be \"audio/pcm\", not `{t}`"))),
    }
    rate(f.get("rate"), "session.audio.input.format.rate")
}

fn rate(v: Option<&Value>, path: &str) -> R<u32> {
    match v {
        None | Some(Value::Null) => Ok(24000),
        Some(v) => match v.as_f64() {
            Some(r) if RATES.iter().any(|&k| f64::from(k) == r) => Ok(r as u32),
            _ => Err(unsupported(path, format!("sample rate {v} is not supported: send 16-bit mono PCM at 24000 Hz (OpenAI's rate) or 16000 Hz, and resample other rates before sending"))),
        },
    }
}

fn transcription(t: &Map<String, Value>, path: &str, ga: bool) -> R<Transcription> {
    let known: &[&str] = if ga { &["model", "language", "prompt", "languages", "keywords", "delay"] } else { &["model", "language", "prompt"] };
    only(t, path, known)?;
    let mut out = Transcription { model: opt_string(t, "model", path)?, language: opt_string(t, "language", path)?, prompt: opt_string(t, "prompt", path)? };
    if let Field::Set(v) = field(t, "languages") {
        let p = format!("{path}.languages");
        let list = v.as_array().ok_or_else(|| bad(&p, format!("`{p}` must be a list of language codes")))?;
        match list.as_slice() {
            [] => {}
            [one] => {
                let l = string(one, &p)?.to_string();
                if out.language.as_ref().is_some_and(|x| *x != l) {
                    return Err(bad(&p, format!("`{p}` and `{path}.language` disagree; send one of them")));
                }
                out.language = Some(l);
            }
            _ => return Err(unsupported(&p, "several candidate languages are not supported: Whisper detects among all its languages; send one, or none to detect it")),
        }
    }
    if let Field::Set(v) = field(t, "keywords") {
        if v.as_array().map_or(true, |a| !a.is_empty()) {
            return Err(unsupported(&format!("{path}.keywords"), "keywords are not supported on realtime sessions here; put such words in `prompt` instead"));
        }
    }
    if let Field::Set(_) = field(t, "delay") {
        return Err(unsupported(&format!("{path}.delay"), "`delay` is not supported: the streaming engine's latency is fixed (LocalAgreement-2 over 1 s steps); leave it out"));
    }
    Ok(out)
}

fn turn_detection(t: &Map<String, Value>, path: &str, beta: bool) -> R<TurnDetection> {
    let known: &[&str] = if beta {
        &["type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response", "interrupt_response", "eagerness"]
    } else {
        &["type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response", "interrupt_response", "idle_timeout_ms"]
    };
    only(t, path, known)?;
    match opt_string(t, "type", path)?.as_deref() {
        Some("server_vad") => {}
        None if beta => {}
        None => return Err(ProtoError::invalid("missing_required_parameter", Some(&format!("{path}.type")), format!("`{path}.type` is required: send \"server_vad\", or turn_detection = null for manual commits"))),
        Some("semantic_vad") => return Err(unsupported(&format!("{path}.type"), "semantic_vad is not supported: use \"server_vad\" (Silero VAD), or turn_detection = null for manual commits")),
        Some(other) => return Err(bad(&format!("{path}.type"), format!("turn detection type must be \"server_vad\", not `{other}`"))),
    }
    if !matches!(field(t, "idle_timeout_ms"), Field::Absent | Field::Null) {
        return Err(unsupported(&format!("{path}.idle_timeout_ms"), "idle_timeout_ms triggers model responses, which transcription sessions do not have; leave it out"));
    }
    let d = TurnDetection::default();
    Ok(TurnDetection {
        threshold: number(t, "threshold", path, 0.0, 1.0, false)?.map_or(d.threshold, |x| x as f32),
        prefix_padding_ms: number(t, "prefix_padding_ms", path, 0.0, 10_000.0, true)?.map_or(d.prefix_padding_ms, |x| x as u32),
        silence_duration_ms: number(t, "silence_duration_ms", path, 1.0, 10_000.0, true)?.map_or(d.silence_duration_ms, |x| x as u32),
    })
}

fn beta_session(s: &Map<String, Value>) -> R<Patch> {
    let mut p = Patch::default();
    only(s, "session", &["include", "input_audio_format", "input_audio_noise_reduction", "input_audio_transcription", "turn_detection", "client_secret", "modalities", "id", "object"])?;
    match field(s, "include") {
        Field::Set(v) => p.include = Some(include(v, "session.include")?),
        Field::Null => p.include = Some(Vec::new()),
        Field::Absent => {}
    }
    if let Field::Set(f) = field(s, "input_audio_format") {
        p.rate = Some(match string(f, "session.input_audio_format")? {
            "pcm16" => 24000,
            g @ ("g711_ulaw" | "g711_alaw") => return Err(unsupported("session.input_audio_format", format!("`{g}` is not supported: send \"pcm16\" (16-bit little-endian mono PCM at 24 kHz)"))),
            other => return Err(bad("session.input_audio_format", format!("input_audio_format must be \"pcm16\", not `{other}`"))),
        });
    }
    match field(s, "input_audio_transcription") {
        Field::Set(t) => p.transcription = Some(transcription(object(t, "session.input_audio_transcription")?, "session.input_audio_transcription", false)?),
        Field::Null => p.transcription = Some(Transcription::default()),
        Field::Absent => {}
    }
    match field(s, "turn_detection") {
        Field::Set(t) => p.turn_detection = Some(Some(turn_detection(object(t, "session.turn_detection")?, "session.turn_detection", true)?)),
        Field::Null => p.turn_detection = Some(None),
        Field::Absent => {}
    }
    if let Field::Set(n) = field(s, "input_audio_noise_reduction") {
        object(n, "session.input_audio_noise_reduction")?;
    }
    Ok(p)
}

/// The `error` event (without its `event_id`, which the session adds).
pub fn error_event(e: &ProtoError, client_event_id: Option<&str>) -> Value {
    json!({"type": "error", "error": {
        "type": e.kind, "code": e.code, "message": e.message, "param": e.param, "event_id": client_event_id,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(text: &str) -> Patch {
        match parse(text).unwrap().event {
            ClientEvent::Update { patch, .. } => patch,
            e => panic!("{e:?}"),
        }
    }

    fn err(text: &str) -> ProtoError {
        parse(text).unwrap_err().1
    }

    #[test]
    fn ga_update_as_the_sdk_sends_it() {
        let p = update(r#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcm","rate":16000},"transcription":{"model":"whisper-1","language":"en","prompt":"hi"},"turn_detection":{"type":"server_vad","threshold":0.6,"prefix_padding_ms":200,"silence_duration_ms":700},"noise_reduction":{"type":"near_field"}}},"include":["item.input_audio_transcription.partial"]}}"#);
        assert_eq!(p.rate, Some(16000));
        assert_eq!(p.transcription, Some(Transcription { model: Some("whisper-1".into()), language: Some("en".into()), prompt: Some("hi".into()) }));
        assert_eq!(p.turn_detection, Some(Some(TurnDetection { threshold: 0.6, prefix_padding_ms: 200, silence_duration_ms: 700 })));
        let mut c = SessionConfig::default();
        c.apply(p);
        assert!(c.partials && !c.words);
        let j = c.to_json("sess_1", false, "tiny.en");
        assert_eq!(j["audio"]["input"]["format"]["rate"], 16000);
        assert_eq!(j["audio"]["input"]["turn_detection"]["silence_duration_ms"], 700);
        assert_eq!(j["include"], json!(["item.input_audio_transcription.partial"]));
        // turn_detection null: manual commits; absent: unchanged.
        c.apply(update(r#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"turn_detection":null}}}}"#));
        assert_eq!(c.turn_detection, None);
        c.apply(update(r#"{"type":"session.update","session":{"type":"transcription"}}"#));
        assert_eq!(c.turn_detection, None);
        assert_eq!(c.rate, 16000);
    }

    #[test]
    fn beta_update() {
        let Parsed { event_id, event } = parse(r#"{"type":"transcription_session.update","event_id":"e1","session":{"input_audio_format":"pcm16","input_audio_transcription":{"model":"whisper-1","language":"en"},"turn_detection":{"type":"server_vad","silence_duration_ms":300},"input_audio_noise_reduction":null,"include":["item.input_audio_transcription.words"]}}"#).unwrap();
        assert_eq!(event_id.as_deref(), Some("e1"));
        let ClientEvent::Update { beta: true, patch } = event else { panic!() };
        let mut c = SessionConfig::default();
        c.apply(patch);
        assert_eq!(c.turn_detection.as_ref().unwrap().silence_duration_ms, 300);
        assert_eq!(c.turn_detection.as_ref().unwrap().threshold, 0.5);
        assert!(c.words);
        let j = c.to_json("sess_1", true, "tiny.en");
        assert_eq!(j["input_audio_format"], "pcm16");
        assert_eq!(j["input_audio_transcription"]["language"], "en");
    }

    #[test]
    fn mistakes_name_their_field() {
        let e = err(r#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcm","rate":44100}}}}}"#);
        assert_eq!(e.param.as_deref(), Some("session.audio.input.format.rate"));
        assert!(e.message.contains("24000") && e.message.contains("16000"), "{}", e.message);
        let e = err(r#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"turn_detectoin":null}}}}"#);
        assert_eq!((e.code, e.param.as_deref()), ("unknown_parameter", Some("session.audio.input.turn_detectoin")));
        assert_eq!(err(r#"{"type":"session.update","session":{"type":"realtime"}}"#).code, "unsupported_value");
        assert_eq!(err(r#"{"type":"session.update","session":{"include":["item.input_audio_transcription.logprobs"]}}"#).code, "unsupported_value");
        assert_eq!(err(r#"{"type":"response.create"}"#).code, "invalid_event");
        assert_eq!(err("{nope").code, "invalid_json");
        assert_eq!(err("[1]").code, "invalid_event");
        assert_eq!(err(r#"{"type":"input_audio_buffer.append"}"#).code, "missing_required_parameter");
        let (id, e) = parse(r#"{"type":"input_audio_buffer.append","event_id":"x7","audio":5}"#).unwrap_err();
        assert_eq!((id.as_deref(), e.param.as_deref()), (Some("x7"), Some("audio")));
        let e = err(r#"{"type":"session.update","session":{"audio":{"input":{"turn_detection":{"type":"server_vad","threshold":2}}}}}"#);
        assert_eq!(e.param.as_deref(), Some("session.audio.input.turn_detection.threshold"));
        assert_eq!(err(r#"{"type":"session.update","session":{"audio":{"input":{"turn_detection":{"type":"semantic_vad"}}}}}"#).code, "unsupported_value");
        assert_eq!(err(r#"{"type":"transcription_session.update","session":{"input_audio_format":"g711_ulaw"}}"#).code, "unsupported_value");
    }

    #[test]
    fn append_commit_clear() {
        assert_eq!(parse(r#"{"type":"input_audio_buffer.append","audio":"AAA="}"#).unwrap().event, ClientEvent::Append("AAA=".into()));
        assert_eq!(parse(r#"{"type":"input_audio_buffer.commit"}"#).unwrap().event, ClientEvent::Commit);
        assert_eq!(parse(r#"{"type":"input_audio_buffer.clear","event_id":"c"}"#).unwrap().event, ClientEvent::Clear);
    }
}
