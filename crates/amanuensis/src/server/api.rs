//! The transcription endpoints: `POST /transcribe` (this server's own shape) and OpenAI's
//! `POST /v1/audio/transcriptions` and `/v1/audio/translations`, with optional streaming of
//! segments as server-sent events. Reads and checks the form, decodes the audio, queues a job,
//! renders the answer.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use whisper::transcribe::{Segment, Transcript};

use whisper::model::Whisper;
use whisper::vad::SpeechTimeline;

use super::params::{parse_params, Ask};

use super::budget::{self, Reservation};
use super::error::ApiError;
use super::render::{self, segment_json, summary_json, task_name, Timing};
use super::scheduler::{queue_full, Finished, Job, SegmentEvent};
use super::vad;
use super::AppState;
use crate::output::{self, Format};

/// Which API a request came through: it decides the accepted fields and the JSON shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /transcribe`
    Native,
    /// `POST /v1/audio/transcriptions`
    Transcriptions,
    /// `POST /v1/audio/translations`
    Translations,
}

impl Endpoint {
    /// Form fields this endpoint accepts; anything else is refused with 400 so that a
    /// misspelt field is never silently ignored.
    pub(super) fn fields(self) -> &'static [&'static str] {
        match self {
            Endpoint::Native => &[
                "file",
                "model",
                "language",
                "task",
                "beam_size",
                "vad_filter",
                "vad_threshold",
                "vad_neg_threshold",
                "vad_min_speech_duration_ms",
                "vad_max_speech_duration_s",
                "vad_min_silence_duration_ms",
                "vad_speech_pad_ms",
                "no_repeat_ngram_size",
                "repetition_penalty",
                "compression_ratio_threshold",
                "log_prob_threshold",
                "no_speech_threshold",
                "hotwords",
                "suppress_tokens",
                "clip_timestamps",
                "prefix",
                "word_timestamps",
                "hallucination_silence_threshold",
                "response_format",
                "prompt",
                "temperature",
                "stream",
            ],
            Endpoint::Transcriptions => &[
                "file",
                "model",
                "language",
                "prompt",
                "temperature",
                "response_format",
                "timestamp_granularities[]",
                "timestamp_granularities",
                "stream",
                "beam_size",
                "chunking_strategy",
                "chunking_strategy[type]",
                "chunking_strategy[threshold]",
                "chunking_strategy[prefix_padding_ms]",
                "chunking_strategy[silence_duration_ms]",
                "include[]",
                "include",
                "keywords[]",
                "keywords",
                "languages[]",
                "languages",
                "known_speaker_names[]",
                "known_speaker_names",
                "known_speaker_references[]",
                "known_speaker_references",
            ],
            Endpoint::Translations => &[
                "file",
                "model",
                "prompt",
                "temperature",
                "response_format",
                "stream",
                "beam_size",
            ],
        }
    }

    pub(super) fn is_openai(self) -> bool {
        self != Endpoint::Native
    }
}

/// The uploaded form: the audio file and the other fields as text, in order.
pub(super) struct Form {
    pub file: Option<(Vec<u8>, Option<String>)>,
    pub fields: Vec<(String, String)>,
}

impl Form {
    /// The one value of `name`, if given; a field given twice is an error.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut it = self.fields.iter().filter(|(n, _)| n == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(ApiError::invalid(
                name,
                format!("field `{name}` was given more than once; send it once"),
            ));
        }
        // An empty value means "not given", as HTML forms send empty inputs.
        Ok(first.map(str::trim).filter(|v| !v.is_empty()))
    }
}

/// Largest text field (the prompt is the only long one).
const MAX_FIELD_BYTES: usize = 64 * 1024;

pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!(
            "the upload is larger than this server's limit of {} MB (--max-upload-mb); send a shorter or compressed file \
             (16 kHz mono FLAC or MP3 are small)",
            limit / (1024 * 1024)
        ),
    )
    .param("file")
}

fn multipart_error(e: MultipartError, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(limit);
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_multipart",
        format!(
            "the multipart/form-data body could not be read ({}); it may be truncated or malformed",
            e.body_text()
        ),
    )
}

/// Reads the form; fields outside `allowed` are refused with 400.
pub(super) async fn read_form(mut mp: Multipart, allowed: &[&str], limit: usize) -> Result<Form, ApiError> {
    let mut form = Form {
        file: None,
        fields: Vec::new(),
    };
    while let Some(mut field) = mp
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let name = field.name().unwrap_or("").to_string();
        if !allowed.contains(&name.as_str()) {
            let err = ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_field",
                format!(
                    "unknown form field `{name}`; this endpoint accepts: {}",
                    allowed.join(", ")
                ),
            )
            .param(&name);
            // Read (and drop) the rest of the body first, within the size limit and the read
            // timeout around this function: a client that sends its whole upload before
            // reading the answer then gets the 400, not a broken pipe.
            while let Ok(Some(_)) = field.chunk().await {}
            drop(field);
            while let Ok(Some(mut f)) = mp.next_field().await {
                while let Ok(Some(_)) = f.chunk().await {}
            }
            return Err(err);
        }
        let cap = if name == "file" {
            limit
        } else {
            MAX_FIELD_BYTES
        };
        let mut buf = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
            if buf.len() + chunk.len() > cap {
                return Err(if name == "file" {
                    too_large(limit)
                } else {
                    ApiError::invalid(
                        &name,
                        format!(
                            "field `{name}` is longer than {} KiB",
                            MAX_FIELD_BYTES / 1024
                        ),
                    )
                });
            }
            buf.extend_from_slice(&chunk);
        }
        if name == "file" {
            if form.file.is_some() {
                return Err(ApiError::invalid(
                    "file",
                    "more than one `file` field; send one audio file per request",
                ));
            }
            form.file = Some((buf, field.file_name().map(str::to_string)));
        } else {
            let text = String::from_utf8(buf).map_err(|_| {
                ApiError::invalid(&name, format!("field `{name}` is not valid UTF-8 text"))
            })?;
            form.fields.push((name, text));
        }
    }
    Ok(form)
}

fn new_job_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    static SEED: OnceLock<u64> = OnceLock::new();
    // A per-process random prefix keeps ids unique across restarts; the counter within one.
    let seed = *SEED.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    format!(
        "job_{:08x}{:06}",
        seed as u32,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn with_job_id(mut resp: Response, job_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(job_id) {
        resp.headers_mut().insert("x-job-id", v);
    }
    resp
}

/// Waits for the engine's answer; 504 if even the deadline's grace period passes (the engine
/// checks the deadline before every decoder pass, so this only fires if a pass or an encoder
/// run takes very long).
async fn await_reply(
    rx: oneshot::Receiver<Result<Finished, ApiError>>,
    deadline: Instant,
) -> Result<Finished, ApiError> {
    let grace =
        deadline.saturating_duration_since(Instant::now()) + std::time::Duration::from_secs(30);
    match tokio::time::timeout(grace, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(ApiError::internal("the engine stopped without an answer (the server may be shutting down); retry")),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the transcription did not finish within the server's job time limit (--job-timeout-secs)",
        )),
    }
}

pub async fn handle(
    app: Arc<AppState>,
    ep: Endpoint,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    match handle_inner(app, ep, mp).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(endpoint = ?ep, "request refused: {e}");
            e.into_response()
        }
    }
}

/// Reads and discards the rest of a request body, within the upload limit (enforced by the
/// body-limit layer) and the read timeout.
async fn drain(mp: Result<Multipart, MultipartRejection>, timeout: std::time::Duration) {
    let Ok(mut mp) = mp else { return };
    let _ = tokio::time::timeout(timeout, async move {
        while let Ok(Some(mut field)) = mp.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    })
    .await;
}

async fn handle_inner(
    app: Arc<AppState>,
    ep: Endpoint,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    // Refuse before decoding anything while the model loads or the queue is full; the body is
    // still read (and dropped) first, so a client that sends its whole upload before reading
    // the answer gets the 503 rather than a broken pipe.
    let engine = match app.engine() {
        Ok(e) => e,
        Err(e) => {
            drain(mp, app.cfg.read_timeout).await;
            return Err(e);
        }
    };
    if engine.pool.is_full() {
        drain(mp, app.cfg.read_timeout).await;
        return Err(queue_full(app.cfg.queue));
    }
    if app.cfg.audio.is_spent(&app.metrics) {
        drain(mp, app.cfg.read_timeout).await;
        return Err(budget::budget_spent(&app.cfg.audio));
    }
    let mp = mp.map_err(|r| {
        ApiError::new(
            r.status(),
            "invalid_multipart",
            format!(
                "send a multipart/form-data body with the audio in a field named `file` ({})",
                r.body_text()
            ),
        )
    })?;
    let limit = app.cfg.max_upload_bytes;
    let form = match tokio::time::timeout(app.cfg.read_timeout, read_form(mp, ep.fields(), limit)).await {
        Ok(f) => f?,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the request body was not received within {} s; upload faster or send a smaller file", app.cfg.read_timeout.as_secs_f64()),
            ))
        }
    };
    let received = Instant::now();
    let params = parse_params(&form, ep, &app)?;
    let Some((bytes, filename)) = form.file else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_file",
            "no audio: send the file in a multipart field named `file` (e.g. curl -F file=@audio.wav ...)",
        )
        .param("file"));
    };
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_audio",
            "the uploaded file is empty (0 bytes)",
        )
        .param("file"));
    }
    let ext = filename
        .as_deref()
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric()));
    let (samples, audio) = decode_upload(&app, bytes, ext).await?;
    if samples.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_audio",
            "the uploaded file could not be decoded as audio: it holds no audio samples",
        )
        .param("file"));
    }
    let duration = samples.len() as f64 / whisper::audio::SAMPLE_RATE as f64;
    // With the VAD only the speech is queued; the segments' times are mapped back.
    let (samples, timeline) = match params.vad.clone() {
        None => (samples, None),
        Some(vo) => {
            let (speech, map) = tokio::task::spawn_blocking(move || vad::speech_only(&samples, &vo))
                .await
                .map_err(|_| ApiError::internal("voice activity detection failed unexpectedly"))??;
            (speech, Some(Arc::new(map)))
        }
    };
    let job_id = new_job_id();
    let (reply_tx, reply_rx) = oneshot::channel();
    let (events_tx, events_rx) = if params.stream {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let deadline = received + app.cfg.job_timeout;
    let task = params.opts.task;
    if samples.is_empty() {
        // The VAD found no speech: nothing to decode, and nothing to hallucinate.
        let language = params.opts.language.clone().unwrap_or_else(|| "en".into());
        let transcript = Transcript { language, language_probability: 1.0, duration: 0.0, segments: Vec::new() };
        let _ = reply_tx.send(Ok(Finished { transcript, token_logprobs: Vec::new() }));
    } else {
        engine.pool.submit(Job {
        id: job_id.clone(),
        samples,
        opts: params.opts,
        deadline,
        events: events_tx,
        reply: reply_tx,
        audio,
        })?;
        tracing::debug!(job = %job_id, "queued");
    }
    let restore = Restore { timeline, duration };
    let ask = params.ask;
    let model = engine.model;
    if let Some(events) = events_rx {
        return Ok(stream_response(
            app, job_id, events, reply_rx, deadline, received, restore, ask, model,
        ));
    }
    let Finished { transcript: mut t, token_logprobs } = await_reply(reply_rx, deadline).await?;
    restore.transcript(&mut t);
    let timing = Timing::of(&t, received);
    app.metrics.record_audio(t.duration, timing.processing);
    let json_text = |body: String| ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    let resp = match (ep, params.format) {
        (Endpoint::Native, Format::Json) => {
            axum::Json(summary_json(&t, &job_id, &app.cfg.model_name, &timing)).into_response()
        }
        (Endpoint::Native, Format::VerboseJson) => json_text(render::native_verbose(&t, task)),
        (_, Format::Json) => axum::Json(render::openai_json(&t, ask, &token_logprobs, &model.tokenizer)).into_response(),
        (_, Format::VerboseJson) => axum::Json(render::openai_verbose(&t, ask, task)).into_response(),
        (_, fmt) => {
            let mut r = output::render(&t, fmt, task_name(task)).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(fmt.content_type()),
            );
            r
        }
    };
    Ok(with_job_id(resp, &job_id))
}

/// Decodes an upload on a blocking thread (at most one per core at a time), refusing it while
/// decoding when it passes `--max-audio-secs` (413) or when the audio already held leaves no
/// room for it (`--max-queued-audio-secs`, 503): every sample is reserved before it is stored.
/// The reservation goes with the job and is given back when it ends.
pub(super) async fn decode_upload(
    app: &Arc<AppState>,
    bytes: Vec<u8>,
    ext: Option<String>,
) -> Result<(Vec<f32>, Reservation), ApiError> {
    let _permit = app
        .decode_slots
        .acquire()
        .await
        .map_err(|_| ApiError::internal("decoder closed"))?;
    let limits = app.cfg.audio;
    let mut held = Reservation::new(app.metrics.clone());
    let (result, spent, held) = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut spent = false;
        let input = whisper::audio::AudioInput::Bytes { data: bytes, ext };
        let result = input.stream_limited(Some(limits.max_audio_secs), &mut |s| {
            if !held.grow(s.len(), &limits) {
                spent = true;
                return Err("the audio budget is spent".into());
            }
            out.extend_from_slice(s);
            Ok(())
        });
        (result.map(|_| out), spent, held)
    })
    .await
    .map_err(|_| ApiError::internal("the audio decoder failed unexpectedly; the file may be corrupt"))?;
    match result {
        Ok(samples) => Ok((samples, held)),
        Err(whisper::Error::AudioTooLong { .. }) => Err(budget::too_long(&limits)),
        Err(_) if spent => Err(budget::budget_spent(&limits)),
        Err(e) => Err(ApiError::from_whisper(&e)),
    }
}

/// Maps what was decoded from the speech only (with the VAD) back to the upload's timeline.
struct Restore {
    timeline: Option<Arc<SpeechTimeline>>,
    duration: f64,
}

impl Restore {
    fn segment(&self, s: &mut Segment) {
        if let Some(m) = &self.timeline {
            vad::restore(s, m);
        }
    }

    fn transcript(&self, t: &mut Transcript) {
        if let Some(m) = &self.timeline {
            vad::restore_all(t, m, self.duration);
        }
    }
}

/// Server-sent events: one `transcript.text.delta` per segment as it is decoded, then one
/// `transcript.text.done` with the whole result, or one `error` (OpenAI's event names).
#[allow(clippy::too_many_arguments)]
fn stream_response(
    app: Arc<AppState>,
    job_id: String,
    events: mpsc::UnboundedReceiver<SegmentEvent>,
    reply: oneshot::Receiver<Result<Finished, ApiError>>,
    deadline: Instant,
    received: Instant,
    restore: Restore,
    ask: Ask,
    model: &'static Whisper,
) -> Response {
    struct St {
        model: &'static Whisper,
        app: Arc<AppState>,
        job_id: String,
        events: Option<mpsc::UnboundedReceiver<SegmentEvent>>,
        reply: Option<oneshot::Receiver<Result<Finished, ApiError>>>,
        restore: Restore,
    }
    let st = St {
        model,
        restore,
        app,
        job_id: job_id.clone(),
        events: Some(events),
        reply: Some(reply),
    };
    let stream = futures_util::stream::unfold(st, move |mut st| async move {
        if let Some(rx) = st.events.as_mut() {
            // The engine drops its sender when the job ends, so every segment comes before
            // the final event.
            match rx.recv().await {
                Some(SegmentEvent { segment: mut seg, logprobs }) => {
                    st.restore.segment(&mut seg);
                    let mut data = json!({ "type": "transcript.text.delta", "delta": seg.text, "segment": segment_json(&seg) });
                    if ask.logprobs {
                        data["logprobs"] = render::logprobs_json(&st.model.tokenizer, [(&seg, logprobs.as_slice())]);
                    }
                    return Some((
                        Ok::<_, Infallible>(Event::default().data(data.to_string())),
                        st,
                    ));
                }
                None => st.events = None,
            }
        }
        let reply = st.reply.take()?;
        let data = match await_reply(reply, deadline).await {
            Ok(Finished { transcript: mut t, token_logprobs }) => {
                st.restore.transcript(&mut t);
                let timing = Timing::of(&t, received);
                st.app.metrics.record_audio(t.duration, timing.processing);
                let mut v = summary_json(&t, &st.job_id, &st.app.cfg.model_name, &timing);
                v["type"] = json!("transcript.text.done");
                if ask.logprobs {
                    let pairs = t.segments.iter().zip(token_logprobs.iter().map(Vec::as_slice));
                    v["logprobs"] = render::logprobs_json(&st.model.tokenizer, pairs);
                }
                v
            }
            Err(e) => {
                let mut v = e.to_json();
                v["type"] = json!("error");
                v["status"] = json!(e.status.as_u16());
                v
            }
        };
        Some((Ok(Event::default().data(data.to_string())), st))
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies such as nginx would otherwise hold the events back.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    with_job_id(resp, &job_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::params::parse_bool;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            file: None,
            fields: fields
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn duplicate_and_empty_fields() {
        let f = form(&[("language", "en"), ("language", "fr"), ("prompt", "  ")]);
        assert!(f
            .get("language")
            .unwrap_err()
            .message
            .contains("more than once"));
        assert_eq!(f.get("prompt").unwrap(), None);
        assert_eq!(f.get("model").unwrap(), None);
    }

    #[test]
    fn booleans() {
        assert!(parse_bool("stream", "TRUE").unwrap());
        assert!(!parse_bool("stream", "0").unwrap());
        assert_eq!(
            parse_bool("stream", "maybe").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn job_ids_are_unique() {
        let a = new_job_id();
        let b = new_job_id();
        assert_ne!(a, b);
        assert!(a.starts_with("job_"));
    }

    #[test]
    fn every_endpoint_takes_file_and_model() {
        for ep in [
            Endpoint::Native,
            Endpoint::Transcriptions,
            Endpoint::Translations,
        ] {
            assert!(ep.fields().contains(&"file") && ep.fields().contains(&"model"));
        }
        assert!(!Endpoint::Translations.fields().contains(&"language"));
    }
}
