//! OpenAI's realtime transcription WebSocket (`/v1/realtime?intent=transcription`) against the
//! real server binary, with tokio-tungstenite sending the JSON the `openai` SDK 3.x sends.
//!
//! Protocol tests (session events in GA and beta shapes, every kind of bad input, the limits)
//! need no engine. The end-to-end tests (`e2e_*`: real speech streamed in, transcripts,
//! event order, VAD turns, manual commits) need the streaming engine behind
//! `Pool::open_stream`; while it answers `not_ready` they skip loudly.

mod server_support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use server_support::{testdata, Options, Server};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What the server sent: an event, or the close (its code and reason).
#[derive(Debug)]
enum Got {
    Event(Value),
    Closed(Option<u16>, String),
}

struct Ws {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    async fn connect(s: &Server, query: &str) -> Ws {
        Ws::connect_with(s, query, &[]).await
    }

    async fn connect_with(s: &Server, query: &str, headers: &[(&str, &str)]) -> Ws {
        let mut req = format!("ws://{}/v1/realtime{query}", s.addr()).into_client_request().unwrap();
        for (k, v) in headers {
            let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            req.headers_mut().insert(name, v.parse().unwrap());
        }
        let (inner, resp) = tokio_tungstenite::connect_async(req).await.expect("WebSocket handshake");
        assert_eq!(resp.status(), 101);
        Ws { inner }
    }

    async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    async fn send_text(&mut self, t: &str) {
        self.inner.send(Message::text(t.to_string())).await.expect("send");
    }

    /// The next event (or the close); every event must carry an `event_id`.
    async fn next(&mut self) -> Got {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), self.inner.next()).await.expect("no server event within 60 s");
            match m {
                None | Some(Err(_)) => return Got::Closed(None, String::new()),
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"));
                    let id = v["event_id"].as_str().unwrap_or_else(|| panic!("event without event_id: {v}"));
                    assert!(id.starts_with("event_") && id.len() > 6, "{v}");
                    assert!(v["type"].is_string(), "{v}");
                    return Got::Event(v);
                }
                Some(Ok(Message::Close(f))) => return Got::Closed(f.as_ref().map(|f| u16::from(f.code)), f.map(|f| f.reason.to_string()).unwrap_or_default()),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn event(&mut self) -> Value {
        match self.next().await {
            Got::Event(v) => v,
            Got::Closed(c, r) => panic!("the server closed the session ({c:?} {r}) where an event was expected"),
        }
    }

    async fn expect(&mut self, kind: &str) -> Value {
        let v = self.event().await;
        assert_eq!(v["type"], kind, "{v}");
        v
    }

    /// The next event is an `error` with `code`; returns its message.
    async fn expect_error(&mut self, code: &str) -> String {
        let v = self.expect("error").await;
        error_message(&v, code)
    }

    async fn expect_close(&mut self) -> (Option<u16>, String) {
        match self.next().await {
            Got::Closed(c, r) => (c, r),
            Got::Event(v) => panic!("expected the close, got {v}"),
        }
    }
}

/// Checks OpenAI's error shape and the code; returns the message.
fn error_message(v: &Value, code: &str) -> String {
    assert_eq!(v["type"], "error", "{v}");
    let e = &v["error"];
    for k in ["type", "code", "message", "param", "event_id"] {
        assert!(e.get(k).is_some(), "error without `{k}`: {v}");
    }
    assert!(["invalid_request_error", "server_error"].contains(&e["type"].as_str().unwrap()), "{v}");
    assert_eq!(e["code"], code, "{v}");
    e["message"].as_str().unwrap().to_string()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// 16 kHz samples as PCM16 bytes at `rate` (24000: linear interpolation, fine for speech).
fn pcm16(samples: &[f32], rate: u32) -> Vec<u8> {
    let n = samples.len() * rate as usize / 16000;
    let mut out = Vec::with_capacity(n * 2);
    for i in 0..n {
        let t = i as f64 * 16000.0 / f64::from(rate);
        let (k, f) = (t.floor() as usize, (t - t.floor()) as f32);
        let a = samples[k.min(samples.len() - 1)];
        let b = samples[(k + 1).min(samples.len() - 1)];
        let x = a + (b - a) * f;
        out.extend_from_slice(&((x * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes());
    }
    out
}

fn clip(rel: &str) -> Vec<f32> {
    whisper::audio::load_audio(&testdata().join(rel)).unwrap()
}

fn append(bytes: &[u8]) -> Value {
    json!({"type": "input_audio_buffer.append", "audio": b64(bytes)})
}

/// The `session.update` the SDK sends for a GA transcription session.
fn ga_update(rate: u32, turn_detection: Value, include: &[&str]) -> Value {
    json!({"type": "session.update", "session": {
        "type": "transcription",
        "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": rate},
            "transcription": {"model": "whisper-1", "language": "en", "prompt": ""},
            "turn_detection": turn_detection,
            "noise_reduction": {"type": "near_field"},
        }},
        "include": include,
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_created_and_updated_in_openai_shapes() {
    let s = Server::start(&["--model-alias", "gpt-4o-transcribe"]);
    let mut ws = Ws::connect(&s, "?intent=transcription").await;
    // OpenAI's defaults: 24 kHz PCM16, server VAD 0.5 / 300 ms / 500 ms.
    let created = ws.expect("session.created").await;
    let sess = &created["session"];
    assert_eq!(sess["type"], "transcription", "{created}");
    assert!(sess["id"].as_str().unwrap().starts_with("sess_"));
    let input = &sess["audio"]["input"];
    assert_eq!(input["format"], json!({"type": "audio/pcm", "rate": 24000}));
    assert_eq!(input["turn_detection"], json!({"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}));
    assert_eq!(input["transcription"]["model"], "tiny.en");

    ws.send(json!({"type": "session.update", "event_id": "ev_1", "session": {
        "type": "transcription",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000},
            "transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": "Stella"},
            "turn_detection": null, "noise_reduction": null}},
        "include": ["item.input_audio_transcription.partial", "item.input_audio_transcription.words"],
    }}))
    .await;
    let updated = ws.expect("session.updated").await;
    let input = &updated["session"]["audio"]["input"];
    assert_eq!(input["format"]["rate"], 16000, "{updated}");
    assert_eq!(input["turn_detection"], Value::Null);
    assert_eq!(input["transcription"], json!({"model": "gpt-4o-transcribe", "language": "en", "prompt": "Stella"}));
    assert_eq!(updated["session"]["include"], json!(["item.input_audio_transcription.partial", "item.input_audio_transcription.words"]));
    assert_eq!(updated["session"]["id"], sess["id"]);
    assert_ne!(updated["event_id"], created["event_id"]);

    // Only what an update names changes: server VAD back on with two of its fields.
    ws.send(json!({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}}})).await;
    let updated = ws.expect("session.updated").await;
    let input = &updated["session"]["audio"]["input"];
    assert_eq!(input["turn_detection"], json!({"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 800}));
    assert_eq!(input["format"]["rate"], 16000);
    assert_eq!(input["transcription"]["language"], "en");

    // The beta form gets the beta names and shape.
    ws.send(json!({"type": "transcription_session.update", "session": {
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": "whisper-1", "language": "en"},
        "turn_detection": {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 200, "silence_duration_ms": 400},
        "input_audio_noise_reduction": {"type": "far_field"},
        "include": ["item.input_audio_transcription.partial"],
    }}))
    .await;
    let beta = ws.expect("transcription_session.updated").await;
    let bs = &beta["session"];
    assert_eq!(bs["input_audio_format"], "pcm16", "{beta}");
    assert_eq!(bs["input_audio_transcription"]["model"], "whisper-1");
    assert_eq!(bs["turn_detection"]["threshold"].as_f64().map(|x| (x * 100.0).round()), Some(60.0));
    assert_eq!(bs["turn_detection"]["silence_duration_ms"], 400);
    assert_eq!(bs["include"], json!(["item.input_audio_transcription.partial"]));

    // input_audio_buffer.clear is answered even before any audio.
    ws.send(json!({"type": "input_audio_buffer.clear"})).await;
    ws.expect("input_audio_buffer.cleared").await;

    // A beta client (the SDK's header) gets the beta name from the start.
    let mut beta_ws = Ws::connect_with(&s, "?intent=transcription&model=whisper-1", &[("OpenAI-Beta", "realtime=v1")]).await;
    let created = beta_ws.expect("transcription_session.created").await;
    assert_eq!(created["session"]["input_audio_format"], "pcm16", "{created}");
    assert_eq!(created["session"]["turn_detection"]["type"], "server_vad");
    // Browsers ask for the `realtime` subprotocol: it must be selected, or they drop the socket.
    let mut req = format!("ws://{}/v1/realtime?intent=transcription", s.addr()).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "realtime, openai-beta.realtime-v1".parse().unwrap());
    let (mut sub, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "realtime");
    let first: Value = serde_json::from_str(sub.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(first["type"], "transcription_session.created", "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_error_events_and_the_session_goes_on() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "?intent=transcription").await;
    ws.expect("session.created").await;
    // A second session, to check that the first one's mistakes leave it alone.
    let mut other = Ws::connect(&s, "?intent=transcription").await;
    other.expect("session.created").await;

    ws.send_text("{\"type\": \"session.update\", ").await;
    ws.expect_error("invalid_json").await;
    ws.send_text("[1, 2]").await;
    ws.expect_error("invalid_event").await;
    ws.send(json!({"type": "response.create", "event_id": "mine"})).await;
    let v = ws.expect("error").await;
    let msg = error_message(&v, "invalid_event");
    assert_eq!(v["error"]["event_id"], "mine", "the client's event_id comes back: {v}");
    assert!(msg.contains("input_audio_buffer.append"), "{msg}");
    ws.send(json!({"audio": "AAAA"})).await;
    ws.expect_error("missing_required_parameter").await;

    // Audio: not base64, not whole 16-bit samples, not a string.
    ws.send(json!({"type": "input_audio_buffer.append", "audio": "%%% not base64 %%%"})).await;
    assert!(ws.expect_error("invalid_audio").await.contains("base64"));
    ws.send(append(&[1, 2, 3])).await;
    let msg = ws.expect_error("invalid_audio").await;
    assert!(msg.contains("3 bytes") && msg.contains("16-bit"), "{msg}");
    ws.send(json!({"type": "input_audio_buffer.append", "audio": 12})).await;
    ws.expect_error("invalid_value").await;
    // Commit with nothing appended.
    ws.send(json!({"type": "input_audio_buffer.commit"})).await;
    ws.expect_error("input_audio_buffer_commit_empty").await;

    // Updates: absurd rate, unknown field, wrong session type, wrong model, a language
    // English-only tiny.en cannot do, unsupported formats and features.
    ws.send(ga_update(44100, Value::Null, &[])).await;
    let v = ws.expect("error").await;
    let msg = error_message(&v, "unsupported_value");
    assert!(msg.contains("24000") && msg.contains("16000"), "{msg}");
    assert_eq!(v["error"]["param"], "session.audio.input.format.rate");
    ws.send(json!({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"turn_detecton": null}}}})).await;
    let v = ws.expect("error").await;
    error_message(&v, "unknown_parameter");
    assert_eq!(v["error"]["param"], "session.audio.input.turn_detecton");
    ws.send(json!({"type": "session.update", "session": {"type": "realtime"}})).await;
    assert!(ws.expect_error("unsupported_value").await.contains("transcription"));
    ws.send(json!({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-9"}}}}})).await;
    let v = ws.expect("error").await;
    assert!(error_message(&v, "model_not_found").contains("whisper-1"));
    assert_eq!(v["error"]["param"], "session.audio.input.transcription.model");
    ws.send(json!({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"transcription": {"language": "de"}}}}})).await;
    assert!(ws.expect_error("invalid_value").await.contains("English-only"));
    ws.send(json!({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}})).await;
    ws.expect_error("unsupported_value").await;
    ws.send(json!({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}})).await;
    ws.expect_error("unsupported_value").await;
    ws.send(json!({"type": "session.update", "session": {"type": "transcription", "include": ["item.input_audio_transcription.logprobs"]}})).await;
    ws.expect_error("unsupported_value").await;
    ws.send(json!({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}}}})).await;
    ws.expect_error("invalid_value").await;
    ws.send(json!({"type": "transcription_session.update", "session": {"input_audio_format": "g711_alaw"}})).await;
    ws.expect_error("unsupported_value").await;
    ws.inner.send(Message::binary(vec![0u8; 64])).await.unwrap();
    ws.expect_error("invalid_event").await;

    // A refused update changes nothing; the session still answers.
    ws.send(json!({"type": "session.update", "session": {"type": "transcription"}})).await;
    let v = ws.expect("session.updated").await;
    assert_eq!(v["session"]["audio"]["input"]["format"]["rate"], 24000, "{v}");
    assert_eq!(v["session"]["audio"]["input"]["transcription"]["language"], Value::Null);
    other.send(json!({"type": "input_audio_buffer.clear"})).await;
    other.expect("input_audio_buffer.cleared").await;

    // A client that vanishes mid-message (no close) leaves the server serving.
    let raw = TcpStream::connect(s.addr()).await.unwrap();
    drop(raw);
    let mut gone = Ws::connect(&s, "?intent=transcription").await;
    gone.expect("session.created").await;
    drop(gone);
    let mut again = Ws::connect(&s, "?intent=transcription").await;
    again.expect("session.created").await;
    assert_eq!(server_support::get(&s.url("/health")).status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_a_session() {
    let s = Server::start(&[]);
    // Not a WebSocket request: 400 in OpenAI's error shape, saying how to connect.
    let r = server_support::get(&s.url("/v1/realtime?intent=transcription"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("WebSocket"), "{}", r.body);
    // Conversations (no intent, a model) and other intents: an error event, then the close.
    for q in ["?model=gpt-realtime", "?intent=conversation"] {
        let mut ws = Ws::connect(&s, q).await;
        assert!(ws.expect_error("unsupported_intent").await.contains("intent=transcription"));
        let (code, _) = ws.expect_close().await;
        assert_eq!(code, Some(1008), "{q}");
    }
    // No query at all is a transcription session (the only kind here).
    Ws::connect(&s, "").await.expect("session.created").await;
    // While the model loads: an error event, then the close with 1013 (try again later).
    let loading = Server::start_with(Options { env: vec![("AMANUENSIS_FAULT_LOAD_DELAY_MS", "4000")], wait_ready: false, ..Options::default() });
    let mut ws = Ws::connect(&loading, "?intent=transcription").await;
    let v = ws.expect("error").await;
    error_message(&v, "model_loading");
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(ws.expect_close().await.0, Some(1013));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_streams_refuses_further_sessions_until_one_ends() {
    let s = Server::start(&["--max-streams", "2"]);
    let mut a = Ws::connect(&s, "?intent=transcription").await;
    a.expect("session.created").await;
    let mut b = Ws::connect(&s, "?intent=transcription").await;
    b.expect("session.created").await;
    let mut c = Ws::connect(&s, "?intent=transcription").await;
    let msg = c.expect_error("too_many_streams").await;
    assert!(msg.contains("--max-streams") && msg.contains('2'), "{msg}");
    assert_eq!(c.expect_close().await.0, Some(1013));
    // The open ones are undisturbed.
    a.send(json!({"type": "input_audio_buffer.clear"})).await;
    a.expect("input_audio_buffer.cleared").await;
    // One closes cleanly, the other vanishes: both places come back.
    a.inner.close(None).await.unwrap();
    drop(a);
    drop(b);
    let t0 = Instant::now();
    let mut opened = 0;
    while opened < 2 {
        let mut d = Ws::connect(&s, "?intent=transcription").await;
        match d.next().await {
            Got::Event(v) if v["type"] == "session.created" => {
                opened += 1;
                std::mem::forget(d);
            }
            _ => {
                assert!(t0.elapsed() < Duration::from_secs(10), "the closed sessions' places never came back");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed() {
    let s = Server::start(&["--stream-idle-timeout-secs", "1"]);
    let mut ws = Ws::connect(&s, "?intent=transcription").await;
    ws.expect("session.created").await;
    let t0 = Instant::now();
    let msg = ws.expect_error("idle_timeout").await;
    assert!(msg.contains("--stream-idle-timeout-secs"), "{msg}");
    assert_eq!(ws.expect_close().await.0, Some(1000));
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(10), "{waited:?}");
    // A client that keeps talking is not idle.
    let mut busy = Ws::connect(&s, "?intent=transcription").await;
    busy.expect("session.created").await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        busy.send(json!({"type": "input_audio_buffer.clear"})).await;
        busy.expect("input_audio_buffer.cleared").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_size_limits() {
    let s = Server::start(&["--max-append-mb", "1", "--max-uncommitted-secs", "1"]);
    let mut ws = Ws::connect(&s, "?intent=transcription").await;
    ws.expect("session.created").await;
    // Over --max-append-mb but within the message size: an error, the session goes on.
    ws.send(append(&vec![0u8; 1_300_000])).await;
    let msg = ws.expect_error("invalid_audio").await;
    assert!(msg.contains("--max-append-mb"), "{msg}");
    // Manual commits: more than --max-uncommitted-secs without a commit is refused.
    ws.send(ga_update(16000, Value::Null, &[])).await;
    ws.expect("session.updated").await;
    ws.send(append(&vec![0u8; 16000 * 2 * 3 / 2])).await;
    let msg = ws.expect_error("input_audio_buffer_full").await;
    assert!(msg.contains("--max-uncommitted-secs") && msg.contains("commit"), "{msg}");
    ws.send(json!({"type": "input_audio_buffer.clear"})).await;
    ws.expect("input_audio_buffer.cleared").await;
    // A message over the WebSocket limit ends the session with 1009 (or a dropped socket).
    // (The server may reset the connection while the client is still sending it.)
    let _ = ws.inner.send(Message::text(append(&vec![0u8; 3 << 20]).to_string())).await;
    loop {
        match ws.next().await {
            Got::Event(v) => assert_eq!(v["type"], "error", "{v}"),
            Got::Closed(code, _) => {
                assert!(code.is_none() || code == Some(1009), "{code:?}");
                break;
            }
        }
    }
    let mut next = Ws::connect(&s, "?intent=transcription").await;
    next.expect("session.created").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_cannot_open_ends_the_session_with_an_error() {
    // The engine refusing a stream (here a fault injected in debug builds) is an error event
    // and a close, after the session has answered everything before the first audio.
    let s = Server::start_with(Options { env: vec![("AMANUENSIS_FAULT_OPEN_STREAM", "1")], ..Options::default() });
    let mut ws = Ws::connect(&s, "?intent=transcription").await;
    ws.expect("session.created").await;
    ws.send(ga_update(24000, json!({"type": "server_vad"}), &[])).await;
    ws.expect("session.updated").await;
    ws.send(append(&vec![0u8; 4800])).await;
    let v = ws.expect("error").await;
    assert_eq!(v["error"]["type"], "server_error", "{v}");
    assert_eq!(ws.expect_close().await.0, Some(1013));
    assert_eq!(server_support::get(&s.url("/health")).status, 200);
}

/// The SDK venv's Python (as tests/openai_sdk.rs finds it), or why there is none.
fn sdk_python() -> Result<std::path::PathBuf, String> {
    let py = match std::env::var_os("AMANUENSIS_SDK_PYTHON").filter(|v| !v.is_empty()) {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".cache/amanuensis-sdk-venv/bin/python"),
    };
    if !py.is_file() {
        return Err(format!("{} does not exist; run .ci/run (it creates the venv) or set AMANUENSIS_SDK_PYTHON", py.display()));
    }
    let ok = std::process::Command::new(&py).args(["-c", "import openai, websockets"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        return Err(format!("{} cannot import openai and websockets; pip install -r tools/sdk_check/requirements.txt", py.display()));
    }
    Ok(py)
}

#[test]
fn the_openai_sdk_realtime_clients() {
    let py = match sdk_python() {
        Ok(p) => p,
        Err(why) => {
            let msg = format!("OpenAI SDK realtime test NOT RUN: {why}");
            assert!(!std::env::var("AMANUENSIS_REQUIRE_SDK").is_ok_and(|v| v == "1"), "{msg} (AMANUENSIS_REQUIRE_SDK=1)");
            eprintln!("\n!!! {msg} !!!\n");
            return;
        }
    };
    let s = Server::start(&["--beam-size", "1"]);
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/sdk_check/realtime_check.py");
    let out = std::process::Command::new(&py).arg(&script).arg(&s.base).arg(testdata()).env("PYTHONWARNINGS", "default").output().expect("run the SDK check");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "the SDK realtime check failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("checks passed"), "{stdout}");
    if stdout.contains("ENGINE NOT WIRED") {
        eprintln!("\n!!! the SDK realtime transcript part NOT RUN: the streaming engine is not wired yet !!!\n");
    } else {
        assert!(stdout.contains("GA transcript:"), "{stdout}");
    }
}

#[test]
fn the_replay_tool_reports_text_latency_and_lag() {
    let py = match sdk_python() {
        Ok(p) => p,
        Err(why) => {
            assert!(!std::env::var("AMANUENSIS_REQUIRE_SDK").is_ok_and(|v| v == "1"), "{why} (AMANUENSIS_REQUIRE_SDK=1)");
            eprintln!("\n!!! replay tool test NOT RUN: {why} !!!\n");
            return;
        }
    };
    if !server_support::vad_installed() {
        return;
    }
    let s = Server::start(&["--beam-size", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.txt");
    std::fs::write(&reference, "He was not an ill disposed young man.").unwrap();
    let tool = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/realtime/replay.py");
    let out = std::process::Command::new(&py)
        .arg(&tool)
        .arg(testdata().join("audio/human/librivox_0880.wav"))
        .args(["--url", &format!("ws://{}/v1/realtime?intent=transcription", s.addr()), "--speed", "4", "--streams", "2", "--rate", "24000"])
        .arg("--reference").arg(&reference)
        .arg("--amanuensis").arg(env!("CARGO_BIN_EXE_amanuensis"))
        .arg("--out").arg(dir.path())
        .output()
        .expect("run replay.py");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("committed text (stream 0):\nHe was not an"), "{stdout}");
    assert!(stdout.contains("WER: whisper's normalizer"), "{stdout}");
    assert!(stdout.contains("all streams: word latency median"), "{stdout}");
    let csv = std::fs::read_to_string(dir.path().join("lag.csv")).unwrap();
    assert!(csv.starts_with("stream,audio_end_s,arrival_s,latency_s,send_lag_s,word"), "{csv}");
    assert!(csv.lines().filter(|l| l.starts_with("1,")).count() >= 5, "both streams' words: {csv}");
    assert!(std::fs::read_to_string(dir.path().join("lag.svg")).unwrap().contains("<polyline"));
}

// ---- end to end: need the streaming engine ----------------------------------------------

/// Events of a session with their arrival times, read by a task while the test sends.
struct Collected {
    events: Vec<(Instant, Value)>,
}

/// Streams `audio` (16 kHz samples) to a session configured with `update` at `speed` × real
/// time in 100 ms appends (at `rate`), then reads events until `done` says so. `None` when the
/// engine is not wired yet (the stub's `not_ready`).
async fn stream(s: &Server, update: Value, rate: u32, pieces: &[(Vec<f32>, bool)], speed: f64, done: impl Fn(&[(Instant, Value)]) -> bool) -> Option<Collected> {
    let ws = Ws::connect(s, "?intent=transcription").await;
    let (mut tx, mut rx) = ws.inner.split();
    let (etx, mut erx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m {
                if etx.send(serde_json::from_str(t.as_str()).unwrap()).is_err() {
                    break;
                }
            }
        }
    });
    tx.send(Message::text(update.to_string())).await.unwrap();
    let mut events: Vec<(Instant, Value)> = Vec::new();
    let t0 = Instant::now();
    let mut sent_secs = 0.0;
    let mut closed = false;
    'send: for (audio, commit) in pieces {
        for chunk in audio.chunks(1600) {
            if tx.send(Message::text(append(&pcm16(chunk, rate)).to_string())).await.is_err() {
                closed = true;
                break 'send;
            }
            sent_secs += chunk.len() as f64 / 16000.0;
            let due = t0 + Duration::from_secs_f64(sent_secs / speed);
            while let Ok(v) = erx.try_recv() {
                events.push((Instant::now(), v));
            }
            if events.iter().any(|(_, v)| v["type"] == "error") {
                break 'send;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        if *commit && tx.send(Message::text(json!({"type": "input_audio_buffer.commit"}).to_string())).await.is_err() {
            closed = true;
            break;
        }
    }
    if closed {
        // The server closed the session: read what it said before.
        while let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(5), erx.recv()).await {
            events.push((Instant::now(), v));
        }
    }
    if events.iter().any(|(_, v)| v["type"] == "error" && v["error"]["code"] == "not_ready") {
        eprintln!("\n!!! realtime end-to-end test NOT RUN: the streaming engine is not wired to Pool::open_stream yet !!!\n");
        reader.abort();
        return None;
    }
    if let Some((_, e)) = events.iter().find(|(_, v)| v["type"] == "error") {
        panic!("error event while streaming: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, erx.recv()).await {
            Ok(Some(v)) => {
                assert!(v["type"] != "error", "error event: {v}");
                events.push((Instant::now(), v));
            }
            _ => panic!("the session ended or stalled; events so far:\n{}", events.iter().map(|(_, v)| v.to_string()).collect::<Vec<_>>().join("\n")),
        }
    }
    reader.abort();
    Some(Collected { events })
}

fn of<'a>(events: &'a [(Instant, Value)], kind: &str) -> Vec<&'a Value> {
    events.iter().map(|(_, v)| v).filter(|v| v["type"] == kind).collect()
}

fn position(events: &[(Instant, Value)], kind: &str, item: &str) -> Option<usize> {
    events.iter().position(|(_, v)| v["type"] == kind && v["item_id"] == item)
}

/// Word error rate after a simple normalisation (lowercase, letters, digits and apostrophes).
fn wer(reference: &str, hypothesis: &str) -> f64 {
    let norm = |s: &str| s.to_lowercase().split(|c: char| !(c.is_alphanumeric() || c == '\'')).filter(|w| !w.is_empty()).map(str::to_string).collect::<Vec<_>>();
    let (r, h) = (norm(reference), norm(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// Each item's deltas concatenate to its completed transcript, and arrive before it.
fn check_items(events: &[(Instant, Value)]) -> Vec<String> {
    let mut transcripts = Vec::new();
    for done in of(events, "conversation.item.input_audio_transcription.completed") {
        let item = done["item_id"].as_str().unwrap();
        assert_eq!(done["content_index"], 0);
        let at = position(events, "conversation.item.input_audio_transcription.completed", item).unwrap();
        let committed = position(events, "input_audio_buffer.committed", item).unwrap_or_else(|| panic!("{item} completed without being committed"));
        assert!(committed < at, "{item}: committed after completed");
        let deltas: String = events.iter().map(|(_, v)| v).filter(|v| v["type"] == "conversation.item.input_audio_transcription.delta" && v["item_id"] == item).map(|v| v["delta"].as_str().unwrap().to_string()).collect();
        assert!(events[at..].iter().all(|(_, v)| !(v["item_id"] == item && v["type"].as_str().unwrap().ends_with(".delta"))), "{item}: a delta after completed");
        let transcript = done["transcript"].as_str().unwrap();
        assert_eq!(deltas.trim(), transcript.trim(), "{item}: the deltas do not make the transcript");
        assert_eq!(done["usage"]["type"], "duration", "{done}");
        assert!(done["usage"]["seconds"].as_f64().unwrap() > 0.0, "{done}");
        transcripts.push(transcript.to_string());
    }
    transcripts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_server_vad_turns_and_transcripts() {
    if !server_support::vad_installed() {
        return;
    }
    let s = Server::start(&["--beam-size", "1"]);
    let reference = server_support::reference(1);
    let (a, b) = (clip("audio/tts/s06.wav"), clip("audio/tts/s10.wav"));
    let gap = 1.5;
    let pieces = vec![(a.clone(), false), (vec![0.0; (16000.0 * gap) as usize], false), (b.clone(), false), (vec![0.0; 32000], false)];
    let update = ga_update(24000, json!({"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}), &["item.input_audio_transcription.partial", "item.input_audio_transcription.words"]);
    let done = |ev: &[(Instant, Value)]| of(ev, "conversation.item.input_audio_transcription.completed").len() >= 2;
    let Some(c) = stream(&s, update, 24000, &pieces, 4.0, done).await else { return };
    let ev = &c.events;
    assert_eq!(ev[0].1["type"], "session.created");
    assert_eq!(ev[1].1["type"], "session.updated");
    let started = of(ev, "input_audio_buffer.speech_started");
    let stopped = of(ev, "input_audio_buffer.speech_stopped");
    assert_eq!(started.len(), 2, "two utterances: {started:?}");
    assert!(stopped.len() >= 2, "{stopped:?}");
    let items: Vec<&str> = started.iter().map(|v| v["item_id"].as_str().unwrap()).collect();
    assert_ne!(items[0], items[1]);
    // Times on the stream's audio: the first utterance at the start, the second after the gap.
    let a_end = a.len() as f64 / 16.0;
    let s0 = started[0]["audio_start_ms"].as_f64().unwrap();
    let s1 = started[1]["audio_start_ms"].as_f64().unwrap();
    assert!(s0 < 1000.0, "first speech starts at {s0} ms");
    assert!((a_end + gap * 1000.0 - 1000.0..a_end + gap * 1000.0 + 500.0).contains(&s1), "second speech starts at {s1} ms, the clip at {} ms", a_end + gap * 1000.0);
    for (i, item) in items.iter().enumerate() {
        let st = position(ev, "input_audio_buffer.speech_started", item).unwrap();
        let sp = position(ev, "input_audio_buffer.speech_stopped", item).unwrap_or_else(|| panic!("{item}: no speech_stopped"));
        let cm = position(ev, "input_audio_buffer.committed", item).unwrap();
        let cp = position(ev, "conversation.item.input_audio_transcription.completed", item).unwrap();
        assert!(st < sp && sp < cm && cm < cp, "{item}: started {st}, stopped {sp}, committed {cm}, completed {cp}");
        let end = ev[sp].1["audio_end_ms"].as_f64().unwrap();
        assert!(end > ev[st].1["audio_start_ms"].as_f64().unwrap(), "{item}");
        let committed = &ev[cm].1;
        assert_eq!(committed["previous_item_id"], if i == 0 { Value::Null } else { json!(items[i - 1]) }, "{committed}");
    }
    let transcripts = check_items(ev);
    assert_eq!(transcripts.len(), 2);
    for (t, id) in transcripts.iter().zip(["s06", "s10"]) {
        let w = wer(&reference[id], t);
        assert!(w <= 0.15, "{id}: WER {w:.2}: {t:?} vs {:?}", reference[id]);
    }
    // Words (our include): times within the item's speech, in order, making the delta.
    for d in of(ev, "conversation.item.input_audio_transcription.delta") {
        let words = d["words"].as_array().unwrap_or_else(|| panic!("no words with the include: {d}"));
        let text: String = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
        assert_eq!(text.trim(), d["delta"].as_str().unwrap().trim(), "{d}");
        for w in words {
            let (st, en) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
            assert!(0.0 <= st && st <= en && en <= (a.len() + b.len()) as f64 / 16000.0 + gap + 2.0, "{d}");
        }
    }
    // Partials (our include) only for items not yet completed.
    for p in of(ev, "conversation.item.input_audio_transcription.partial") {
        let item = p["item_id"].as_str().unwrap();
        let at = ev.iter().position(|(_, v)| std::ptr::eq(v, p)).unwrap();
        assert!(at < position(ev, "conversation.item.input_audio_transcription.completed", item).unwrap(), "{p}");
        assert_eq!(p["content_index"], 0);
        assert!(p["text"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_manual_commits_with_turn_detection_null() {
    let s = Server::start(&["--beam-size", "1"]);
    let reference = server_support::reference(1);
    let (a, b) = (clip("audio/human/librivox_0870.wav"), clip("audio/tts/s04.wav"));
    let pieces = vec![(a, true), (b, true)];
    let done = |ev: &[(Instant, Value)]| of(ev, "conversation.item.input_audio_transcription.completed").len() >= 2;
    let Some(c) = stream(&s, ga_update(16000, Value::Null, &[]), 16000, &pieces, 8.0, done).await else { return };
    let ev = &c.events;
    assert!(of(ev, "input_audio_buffer.speech_started").is_empty(), "no VAD events with turn_detection null");
    let committed = of(ev, "input_audio_buffer.committed");
    assert_eq!(committed.len(), 2, "{committed:?}");
    assert_eq!(committed[0]["previous_item_id"], Value::Null);
    assert_eq!(committed[1]["previous_item_id"], committed[0]["item_id"]);
    assert!(of(ev, "conversation.item.input_audio_transcription.partial").is_empty(), "partials only with the include");
    assert!(of(ev, "conversation.item.input_audio_transcription.delta").iter().all(|d| d.get("words").is_none()), "words only with the include");
    let transcripts = check_items(ev);
    for (t, id) in transcripts.iter().zip(["librivox_0870", "s04"]) {
        let w = wer(&reference[id], t);
        assert!(w <= 0.2, "{id}: WER {w:.2}: {t:?} vs {:?}", reference[id]);
    }
}
