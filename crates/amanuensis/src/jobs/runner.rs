//! Runs the stored jobs on the server's engine: a dispatcher takes queued jobs oldest first
//! (at most `--workers` of them at once, so that synchronous requests keep room in the engine's
//! queue), decodes each one's spooled audio, submits it to the scheduler's pool like any
//! request, writes progress (segments' end over the duration) and the result to the store.
//! On start, jobs a killed server was running go back to the queue. Retention prunes finished
//! jobs hourly. Webhooks are posted on their own tasks with retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify};
use whisper::transcribe::Transcript;

use super::store::{now, JobRow, Status, Store};
use crate::server::api::{decode_upload, Endpoint, Form};
use crate::server::error::ApiError;
use crate::server::params::parse_params;
use crate::server::render::task_name;
use crate::server::scheduler::{Finished, Job, SegmentEvent};
use crate::server::{vad, AppState};

/// A stored job gives the engine this long before it is abandoned (jobs are for long audio;
/// `--job-timeout-secs` bounds the synchronous requests only).
const JOB_DEADLINE: Duration = Duration::from_secs(24 * 3600);
/// Progress is written at most this often per job.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Webhook attempts, and the wait before the first retry (doubled each time).
pub const WEBHOOK_ATTEMPTS: u32 = 5;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(500);

/// The jobs' store and what runs them.
pub struct Jobs {
    pub store: Arc<Store>,
    wake: Notify,
    /// Running jobs: dropping or sending on the sender cancels one.
    running: Mutex<HashMap<String, oneshot::Sender<()>>>,
    retention: Duration,
    slots: usize,
}

impl Jobs {
    /// Opens the store in `dir` and puts interrupted jobs back in the queue.
    pub fn open(dir: &std::path::Path, retention: Duration, slots: usize) -> anyhow::Result<Jobs> {
        let store = Store::open(dir)?;
        let n = store.requeue_interrupted()?;
        if n > 0 {
            eprintln!("amanuensis serve: {n} interrupted job(s) queued again");
        }
        Ok(Jobs { store: Arc::new(store), wake: Notify::new(), running: Mutex::new(HashMap::new()), retention, slots: slots.max(1) })
    }

    /// A new job was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops a running job (its row is already marked cancelled).
    pub fn cancel(&self, id: &str) {
        if let Some(tx) = self.running.lock().unwrap().remove(id) {
            let _ = tx.send(());
        }
    }

    fn busy(&self) -> usize {
        self.running.lock().unwrap().len()
    }
}

/// Runs blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal(format!("jobs store: {e:#}"))),
        Err(_) => Err(ApiError::internal("jobs store: the task failed")),
    }
}

/// The dispatcher: waits for the model, then starts queued jobs while there is room.
pub async fn run(app: Arc<AppState>, jobs: Arc<Jobs>) {
    while app.engine.get().is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let jobs = jobs.clone();
        tokio::spawn(async move {
            loop {
                let store = jobs.store.clone();
                let before = now() - jobs.retention.as_secs_f64();
                match blocking(move || store.prune(before)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("job retention: {n} old job(s) deleted"),
                    Err(e) => tracing::warn!("job retention: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
    }
    loop {
        let free = jobs.slots.saturating_sub(jobs.busy());
        if free > 0 {
            let store = jobs.store.clone();
            match blocking(move || store.queued(free)).await {
                Ok(rows) => {
                    for row in rows {
                        // Registered before it is marked running, so that a DELETE in between
                        // finds it to cancel.
                        let (cancel_tx, cancel_rx) = oneshot::channel();
                        jobs.running.lock().unwrap().insert(row.id.clone(), cancel_tx);
                        let store = jobs.store.clone();
                        let id = row.id.clone();
                        if !matches!(blocking(move || store.start(&id)).await, Ok(true)) {
                            jobs.running.lock().unwrap().remove(&row.id);
                            continue;
                        }
                        tokio::spawn(run_one(app.clone(), jobs.clone(), row, cancel_rx));
                    }
                }
                Err(e) => tracing::warn!("jobs: {e}"),
            }
        }
        tokio::select! {
            _ = jobs.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// How a job ended, short of a transcript.
pub enum Stop {
    Failed(ApiError),
    /// The engine's queue was full at the last moment: back to the queue.
    Requeue,
}

/// What a transcription reports on its way, in order.
pub enum Report {
    /// Seconds of audio, once decoded.
    Duration(f64),
    /// Fraction done (segments' end over the duration), below 1.
    Progress(f64),
}

async fn run_one(app: Arc<AppState>, jobs: Arc<Jobs>, row: JobRow, cancel: oneshot::Receiver<()>) {
    let id = row.id.clone();
    tracing::info!(job = %id, "job started");
    // Cancelling drops the transcription, and with it the engine's reply channel: the engine
    // then drops the job before its next decoder pass.
    let work = async {
        let path = jobs.store.audio_path(&row.id);
        let bytes = blocking(move || std::fs::read(&path).with_context(|| format!("the job's audio is missing from the spool ({})", path.display())))
            .await
            .map_err(Stop::Failed)?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let started = row.started_at.unwrap_or_else(now);
        let writes = async {
            let mut written: Option<Instant> = None;
            while let Some(r) = rx.recv().await {
                let (store, id) = (jobs.store.clone(), row.id.clone());
                let _ = match r {
                    Report::Duration(d) => blocking(move || store.set_duration(&id, d)).await,
                    Report::Progress(p) => {
                        if written.is_some_and(|w| w.elapsed() < PROGRESS_EVERY) {
                            continue;
                        }
                        written = Some(Instant::now());
                        blocking(move || store.set_progress(&id, p)).await
                    }
                };
            }
        };
        let (r, ()) = tokio::join!(transcribe(&app, &row.id, bytes, row.filename.as_deref(), &row.fields, started, tx), writes);
        r
    };
    let outcome = tokio::select! {
        r = work => Some(r),
        _ = cancel => None,
    };
    jobs.running.lock().unwrap().remove(&id);
    let store = jobs.store.clone();
    let sid = id.clone();
    let saved = match outcome {
        None => return,
        Some(Ok(result)) => blocking(move || store.finish(&sid, &result)).await,
        Some(Err(Stop::Requeue)) => {
            let r = blocking(move || { store.requeue(&sid)?; Ok(false) }).await;
            jobs.wake();
            r
        }
        Some(Err(Stop::Failed(e))) => {
            tracing::info!(job = %id, "job failed: {e}");
            blocking(move || store.fail(&sid, Status::Failed, &e.to_json()["error"])).await
        }
    };
    match saved {
        Ok(true) => {
            if let Some(url) = row.webhook_url.clone() {
                let (store, sid) = (jobs.store.clone(), id.clone());
                tokio::spawn(async move {
                    if let Ok(Some(body)) = blocking(move || webhook_body(&store, &sid)).await {
                        webhook(id, url, body).await;
                    }
                });
            }
        }
        Ok(false) => {}
        Err(e) => tracing::error!(job = %id, "cannot save the job's outcome: {e}"),
    }
    jobs.wake();
}

/// Decodes a job's audio (`bytes`, uploaded as `filename` with the form's `fields`), runs it
/// through the engine, and returns the result to store; reports the duration and progress on
/// `reports`. Shared by the embedded runner and the broker's workers.
pub async fn transcribe(
    app: &Arc<AppState>,
    id: &str,
    bytes: Vec<u8>,
    filename: Option<&str>,
    fields: &[(String, String)],
    started_at: f64,
    reports: mpsc::UnboundedSender<Report>,
) -> Result<Value, Stop> {
    let engine = app.engine().map_err(Stop::Failed)?;
    let form = Form { file: None, fields: fields.to_vec() };
    let params = parse_params(&form, Endpoint::Transcriptions, app).map_err(Stop::Failed)?;
    let ext = filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric()));
    // Decoded within --max-audio-secs and against the server's audio budget, as uploads are;
    // a spent budget puts the job back in the queue.
    let (samples, audio) = decode_upload(app, bytes, ext).await.map_err(|e| if e.code == "audio_queue_full" { Stop::Requeue } else { Stop::Failed(e) })?;
    if samples.is_empty() {
        return Err(Stop::Failed(ApiError::new(StatusCode::BAD_REQUEST, "invalid_audio", "the uploaded file could not be decoded as audio: it holds no audio samples").param("file")));
    }
    let duration = samples.len() as f64 / whisper::audio::SAMPLE_RATE as f64;
    let _ = reports.send(Report::Duration(duration));
    let (samples, timeline) = match params.vad.clone() {
        None => (samples, None),
        Some(vo) => {
            let (speech, map) = tokio::task::spawn_blocking(move || vad::speech_only(&samples, &vo))
                .await
                .map_err(|_| Stop::Failed(ApiError::internal("voice activity detection failed unexpectedly")))?
                .map_err(Stop::Failed)?;
            (speech, Some(map))
        }
    };
    let task = params.opts.task;
    let Finished { transcript: mut t, token_logprobs } = if samples.is_empty() {
        let language = params.opts.language.clone().unwrap_or_else(|| "en".into());
        Finished { transcript: Transcript { language, language_probability: 1.0, duration: 0.0, segments: Vec::new() }, token_logprobs: Vec::new() }
    } else {
        // Wait for room in the engine's queue rather than failing the job.
        while engine.pool.is_full() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (reply_tx, mut reply_rx) = oneshot::channel();
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<SegmentEvent>();
        engine
            .pool
            .submit(Job { id: id.to_string(), samples, opts: params.opts, deadline: Instant::now() + JOB_DEADLINE, events: Some(events_tx), reply: reply_tx, audio })
            .map_err(|e| if e.code == "queue_full" { Stop::Requeue } else { Stop::Failed(e) })?;
        // Every segment comes before the reply (the engine drops the events sender first).
        while let Some(SegmentEvent { segment: mut seg, .. }) = events_rx.recv().await {
            if let Some(m) = &timeline {
                vad::restore(&mut seg, m);
            }
            let p = if duration > 0.0 { (seg.end / duration).min(0.99) } else { 0.0 };
            let _ = reports.send(Report::Progress(p));
        }
        match (&mut reply_rx).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return Err(Stop::Failed(e)),
            Err(_) => return Err(Stop::Failed(ApiError::internal("the engine stopped without an answer (the server may be shutting down)"))),
        }
    };
    if let Some(m) = &timeline {
        vad::restore_all(&mut t, m, duration);
    }
    app.metrics.record_audio(t.duration, now() - started_at);
    let ask = params.ask;
    let response_format = fields.iter().find(|(n, _)| n == "response_format").map(|(_, v)| v.as_str());
    Ok(json!({
        "transcript": serde_json::to_value(&t).unwrap_or(Value::Null),
        "token_logprobs": token_logprobs,
        "task": task_name(task),
        "response_format": response_format,
        "ask": { "words": ask.words, "segments": ask.segments, "logprobs": ask.logprobs, "usage": ask.usage },
    }))
}

/// What a webhook receives: the job as `GET /v1/jobs/{id}` shows it, and the text when done.
pub fn webhook_json(row: &JobRow, result: Option<&Value>) -> Value {
    let mut v = json!({ "type": format!("job.{}", row.status.as_str()), "job": row.to_json() });
    if row.status == Status::Done {
        if let Some(t) = result.and_then(|r| super::store::transcript_from_json(&r["transcript"])) {
            v["text"] = t.text().into();
        }
    }
    v
}

fn webhook_body(store: &Store, id: &str) -> anyhow::Result<Option<Value>> {
    let Some(row) = store.get(id)? else { return Ok(None) };
    let result = if row.status == Status::Done { store.result(id)? } else { None };
    Ok(Some(webhook_json(&row, result.as_ref())))
}

/// POSTs the job's outcome to `url`: up to `WEBHOOK_ATTEMPTS` attempts, waiting 0.5 s, 1 s,
/// 2 s, ... between them; any 2xx answer ends it. Runs on its own task, never on the engine.
pub async fn webhook(id: String, url: String, body: Value) {
    let body = body.to_string();
    let mut wait = WEBHOOK_BACKOFF;
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let (u, b) = (url.clone(), body.clone());
        let sent = tokio::task::spawn_blocking(move || {
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
            match agent.post(&u).set("Content-Type", "application/json").send_string(&b) {
                Ok(r) => Ok(r.status()),
                Err(ureq::Error::Status(code, _)) => Err(format!("HTTP {code}")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        match sent {
            Ok(Ok(code)) => {
                tracing::info!(job = %id, attempt, code, "webhook delivered");
                return;
            }
            Ok(Err(e)) => tracing::warn!(job = %id, attempt, "webhook to {url} failed: {e}"),
            Err(_) => tracing::warn!(job = %id, attempt, "webhook task failed"),
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::warn!(job = %id, "webhook to {url} given up after {WEBHOOK_ATTEMPTS} attempts");
}
