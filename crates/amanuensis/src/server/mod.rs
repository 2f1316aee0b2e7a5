//! `amanuensis serve`: an HTTP server (axum on tokio) in front of one shared Whisper model —
//! `POST /transcribe`, OpenAI's `/v1/audio/transcriptions` and `/v1/audio/translations`,
//! OpenAI's realtime transcription WebSocket at `/v1/realtime`, `/health`, `/v1/models`,
//! `/metrics`, and a small web page at `/`.
//!
//! The whisper crate knows nothing of HTTP: this module reads requests, and the scheduler
//! feeds the engine thread (one continuous batch for every request).

mod api;
mod budget;
mod error;
/// Arbitrary bytes through the server's parsers: the fuzz targets' entry points.
pub mod fuzzing;
#[path = "../jobs/mod.rs"]
mod jobs;
mod live;
mod metrics;
mod openai;
mod params;
mod realtime;
mod render;
mod scheduler;
mod vad;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use whisper::model::Whisper;

use crate::engine::{load_model, ComputeType};
use api::Endpoint;
use error::ApiError;
use metrics::Metrics;
use scheduler::Pool;
pub use jobs::broker::worker::{run as run_worker, WorkerArgs};

/// Room for the form's other fields and multipart framing on top of the file itself.
const FORM_OVERHEAD_BYTES: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (the address is printed on stdout).
    #[arg(long, default_value_t = 9004)]
    pub port: u16,
    /// Model name in the store (tiny.en, base) or a directory with config.json, model.bin, tokenizer.json.
    #[arg(long, default_value = "base", env = "AMANUENSIS_MODEL")]
    pub model: String,
    /// Numeric type of the engine (default: the engine's choice, `ComputeType::DEFAULT`).
    #[arg(long, value_enum)]
    pub compute_type: Option<ComputeType>,
    /// Jobs decoded at the same time: their current 30 s windows share every decoder pass
    /// (one continuous batch) and are encoded together.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Jobs that may wait to be admitted; beyond that, requests get 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest accepted upload in MB (MiB); larger ones get 413.
    #[arg(long, default_value_t = 25)]
    pub max_upload_mb: usize,
    /// Longest audio one upload may decode to, in seconds (default 4 h); longer uploads get 413,
    /// refused while decoding (a small file that decodes to hours is never held whole).
    #[arg(long, default_value_t = 14400.0)]
    pub max_audio_secs: f64,
    /// Seconds of decoded audio all requests together may hold (decoding, queued, running;
    /// default 5 h, about 1.15 GB of samples, so that the server stays under 2 GB whatever the
    /// uploads); beyond it uploads get 503 with Retry-After. At least --max-audio-secs.
    #[arg(long, default_value_t = 18000.0)]
    pub max_queued_audio_secs: f64,
    /// Seconds a job may take from upload to transcript before it is abandoned with 504.
    #[arg(long, default_value_t = 600.0)]
    pub job_timeout_secs: f64,
    /// Seconds a client may take to send the request headers, and again the body; slower gets 408.
    #[arg(long, default_value_t = 60.0)]
    pub read_timeout_secs: f64,
    /// Beam width for requests that do not set beam_size (1 is greedy).
    #[arg(long, default_value_t = 5)]
    pub beam_size: usize,
    /// Engine threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Another name clients may send as `model` for the loaded model (repeatable), e.g.
    /// gpt-4o-transcribe; listed by /v1/models. `whisper-1` is always accepted on OpenAI's routes.
    #[arg(long = "model-alias", value_name = "NAME")]
    pub model_aliases: Vec<String>,
    /// Realtime WebSocket sessions (/v1/realtime) open at once; further ones get an error
    /// event and a close.
    #[arg(long, default_value_t = 8)]
    pub max_streams: usize,
    /// Largest audio one realtime `input_audio_buffer.append` may carry, in MB (MiB) of PCM16
    /// (OpenAI's limit is 15); also bounds the WebSocket message size.
    #[arg(long, default_value_t = 15)]
    pub max_append_mb: usize,
    /// Seconds of audio a realtime session with turn_detection null (manual commits) may
    /// append without committing; further appends get an error event.
    #[arg(long, default_value_t = 300.0)]
    pub max_uncommitted_secs: f64,
    /// Seconds a realtime session may go without a client message or a transcription event
    /// (or a client may take to read one) before it is closed with an error event.
    #[arg(long, default_value_t = 60.0)]
    pub stream_idle_timeout_secs: f64,
    /// Folder of the jobs API's store (SQLite database and spooled audio); default
    /// $XDG_DATA_HOME/amanuensis, else ~/.local/share/amanuensis.
    #[arg(long, value_name = "DIR", env = "AMANUENSIS_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// How long finished jobs (results, rows) are kept: seconds, or with a unit (90m, 12h, 7d).
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub job_retention: String,
    /// Put jobs on this NATS JetStream server (nats://HOST:4222, `nats-server -js`) instead of
    /// the --data-dir store: `amanuensis worker --broker URL` processes run them, this server
    /// does not (it still answers /v1/audio/* itself).
    #[arg(long, value_name = "URL", env = "AMANUENSIS_BROKER")]
    pub broker: Option<String>,
}

/// Settings every request reads.
pub struct Config {
    pub model_spec: String,
    /// What clients call the model: the store name, or the directory's name.
    pub model_name: String,
    pub compute_type: ComputeType,
    pub workers: usize,
    pub queue: usize,
    pub max_upload_bytes: usize,
    /// `--max-audio-secs`, `--max-queued-audio-secs`.
    pub audio: budget::AudioLimits,
    pub job_timeout: Duration,
    pub read_timeout: Duration,
    pub beam_size: usize,
    /// `--model-alias` names, checked and without duplicates.
    pub model_aliases: Vec<String>,
    /// Bounds of the realtime WebSocket sessions.
    pub realtime: realtime::Limits,
    /// The jobs store's folder, and how long finished jobs are kept.
    pub data_dir: std::path::PathBuf,
    pub job_retention: Duration,
}

/// The name OpenAI clients send most: accepted on OpenAI's routes whatever model is loaded.
pub const WHISPER_1: &str = "whisper-1";

impl Config {
    /// Other names of the loaded model: `--model-alias` names, and on OpenAI's routes
    /// `whisper-1` first.
    pub fn aliases(&self, openai: bool) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let all = openai.then_some(WHISPER_1).into_iter().chain(self.model_aliases.iter().map(String::as_str));
        for a in all {
            if a != self.model_name && !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

/// Checks the `--model-alias` names: printable, no spaces, at most 128 bytes.
fn model_aliases(names: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let ok = !n.is_empty() && n.len() <= 128 && n.chars().all(|c| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_whitespace() && !c.is_control()));
        if !ok {
            bail!("--model-alias {n:?}: use a name of 1 to 128 characters without spaces, e.g. gpt-4o-transcribe");
        }
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// The loaded model and the queue in front of it; set once loading has finished.
pub struct Engine {
    pub model: &'static Whisper,
    pub pool: Pool,
    pub loaded_at: u64,
}

pub struct AppState {
    pub cfg: Config,
    pub metrics: Arc<Metrics>,
    pub engine: OnceLock<Engine>,
    /// Bounds the audio decodes running at once (CPU work outside the engine thread).
    pub decode_slots: tokio::sync::Semaphore,
    /// Realtime sessions open now.
    pub realtime: realtime::Streams,
    /// The jobs API (`None` if its store could not be opened).
    pub jobs: Option<jobs::backend::JobBackend>,
}

impl AppState {
    pub fn engine(&self) -> Result<&Engine, ApiError> {
        self.engine.get().ok_or_else(loading)
    }

    pub fn model(&self) -> Option<&'static Whisper> {
        self.engine.get().map(|e| e.model)
    }
}

pub fn loading() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "model_loading",
        "the model is still loading; retry in a few seconds",
    )
    .retry_after(5)
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    if !(v.is_finite() && v > 0.0 && v <= 7.0 * 86400.0) {
        bail!("--{name} {v}: use a number of seconds above 0");
    }
    Ok(Duration::from_secs_f64(v))
}

/// Name clients use for the model given as `spec`: `tiny.en` for both `tiny.en` and `/models/tiny.en/`.
fn model_name(spec: &str) -> String {
    std::path::Path::new(spec)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| spec.to_string())
}

fn compute_name(c: ComputeType) -> String {
    use clap::ValueEnum;
    c.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{c:?}"))
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        if !(1..=256).contains(&self.workers) {
            bail!("--workers {}: use a number from 1 to 256", self.workers);
        }
        if !(1..=100_000).contains(&self.queue) {
            bail!("--queue {}: use a number from 1 to 100000", self.queue);
        }
        if !(1..=4096).contains(&self.max_upload_mb) {
            bail!(
                "--max-upload-mb {}: use a number from 1 to 4096",
                self.max_upload_mb
            );
        }
        if !(1..=16).contains(&self.beam_size) {
            bail!("--beam-size {}: use a number from 1 to 16", self.beam_size);
        }
        if !(1..=4096).contains(&self.max_streams) {
            bail!("--max-streams {}: use a number from 1 to 4096", self.max_streams);
        }
        if !(1..=256).contains(&self.max_append_mb) {
            bail!("--max-append-mb {}: use a number from 1 to 256", self.max_append_mb);
        }
        let uncommitted = secs("max-uncommitted-secs", self.max_uncommitted_secs)?;
        let max_audio = secs("max-audio-secs", self.max_audio_secs)?.as_secs_f64();
        let max_queued = secs("max-queued-audio-secs", self.max_queued_audio_secs)?.as_secs_f64();
        if max_queued < max_audio {
            bail!("--max-queued-audio-secs {max_queued} is below --max-audio-secs {max_audio}: one upload of the longest accepted length would never fit; raise it");
        }
        Ok(Config {
            model_spec: self.model.clone(),
            model_name: model_name(&self.model),
            compute_type: self.compute_type.unwrap_or(ComputeType::DEFAULT),
            workers: self.workers,
            queue: self.queue,
            max_upload_bytes: self.max_upload_mb * 1024 * 1024,
            audio: budget::AudioLimits { max_audio_secs: max_audio, max_queued_audio_secs: max_queued },
            job_timeout: secs("job-timeout-secs", self.job_timeout_secs)?,
            read_timeout: secs("read-timeout-secs", self.read_timeout_secs)?,
            beam_size: self.beam_size,
            model_aliases: model_aliases(&self.model_aliases)?,
            realtime: realtime::Limits {
                max_streams: self.max_streams,
                max_append_bytes: self.max_append_mb * 1024 * 1024,
                max_uncommitted: (uncommitted.as_secs_f64() * 16000.0).round().max(1.0) as u64,
                idle: secs("stream-idle-timeout-secs", self.stream_idle_timeout_secs)?,
            },
            data_dir: self.data_dir.clone().unwrap_or_else(jobs::store::default_data_dir),
            job_retention: retention(&self.job_retention)?,
        })
    }
}

/// `--job-retention`: seconds, or a number with s, m, h or d.
fn retention(v: &str) -> anyhow::Result<Duration> {
    let v = v.trim();
    let (num, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c),
        _ => (v, 's'),
    };
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => bail!("--job-retention {v}: use seconds or a number with s, m, h or d (e.g. 7d)"),
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n * scale < 1e10 => Ok(Duration::from_secs_f64(n * scale)),
        _ => bail!("--job-retention {v}: use seconds or a number with s, m, h or d (e.g. 7d)"),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.config()?;
    if let Some(n) = args.threads {
        crate::engine::set_threads(n)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("http")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg, &args.host, args.port, args.broker.as_deref()))
}

async fn serve(cfg: Config, host: &str, port: u16, broker: Option<&str>) -> anyhow::Result<()> {
    // An unreachable broker stops the server at once, naming the URL.
    let broker = match broker {
        Some(url) => Some(Arc::new(jobs::broker::Broker::connect(url).await?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} (is another server using the port? try --port 0 for any free one)"))?;
    let addr: SocketAddr = listener.local_addr()?;
    {
        use std::io::Write;
        // Tests and scripts read this line to find the port chosen for --port 0.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "amanuensis serve: listening on http://{addr} (model {}, loading)",
            cfg.model_name
        );
        let _ = out.flush();
    }
    let metrics = Arc::new(Metrics::default());
    let decode_slots = tokio::sync::Semaphore::new(
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2),
    );
    let local = match &broker {
        Some(_) => Ok(None),
        None => jobs::runner::Jobs::open(&cfg.data_dir, cfg.job_retention, cfg.workers).map(|j| Some(Arc::new(j))),
    };
    let jobs = match local {
        Ok(j) => j,
        Err(e) => {
            // The rest of the server works without it; /v1/jobs answers 503 with the reason.
            eprintln!("amanuensis serve: the jobs API is off: {e:#}");
            None
        }
    };
    let state = Arc::new(AppState {
        cfg,
        metrics,
        engine: OnceLock::new(),
        decode_slots,
        realtime: realtime::Streams::default(),
        jobs: match (&broker, &jobs) {
            (Some(b), _) => Some(jobs::backend::JobBackend::Broker(b.clone())),
            (None, Some(j)) => Some(jobs::backend::JobBackend::Local(j.clone())),
            (None, None) => None,
        },
    });
    if let Some(j) = jobs {
        tokio::spawn(jobs::runner::run(state.clone(), j));
    }
    if let Some(b) = broker {
        tokio::spawn(jobs::broker::retention(b, state.cfg.job_retention));
    }

    // The server answers (health 503, requests 503) while the model loads.
    let (load_failed_tx, load_failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    {
        let state = state.clone();
        tokio::task::spawn_blocking(move || match load_engine(&state) {
            Ok(engine) => {
                let _ = state.engine.set(engine);
                state.metrics.model_loaded.store(true, Ordering::Relaxed);
                tracing::info!("model {} loaded; serving", state.cfg.model_name);
                eprintln!(
                    "amanuensis serve: model {} loaded, ready",
                    state.cfg.model_name
                );
            }
            Err(e) => {
                let _ = load_failed_tx.send(e);
            }
        });
    }

    let app = router(state.clone());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.cfg.read_timeout);
    // Graceful shutdown by hand (hyper-util's `GracefulShutdown` cannot watch connections that
    // may be upgraded): `stop` tells every connection to finish its requests and close, and
    // each connection task holds a `done` sender, so `done_rx` ends when the last one has.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // Resolves only if loading fails (a successful load drops the sender).
    let load_failed = async move {
        match load_failed_rx.await {
            Ok(e) => e,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::pin!(load_failed);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                // Upgrades: the realtime WebSocket takes the connection over.
                let conn = http.serve_connection(TokioIo::new(stream), svc).with_upgrades();
                let (mut stop, done) = (stop_rx.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let _done = done;
                    tokio::pin!(conn);
                    let ended = tokio::select! {
                        r = conn.as_mut() => r,
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = ended {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            _ = &mut shutdown => break,
            e = &mut load_failed => {
                return Err(e.context(format!("the server cannot start without its model ({})", state.cfg.model_spec)));
            }
        }
    }
    drop(listener);
    let in_flight = state.metrics.in_flight.load(Ordering::Relaxed)
        + state.metrics.queue_depth.load(Ordering::Relaxed);
    eprintln!("amanuensis serve: shutting down; no new connections, finishing {in_flight} job(s) in flight");
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = done_rx.recv().await;
    eprintln!("amanuensis serve: stopped");
    Ok(())
}

fn load_engine(state: &AppState) -> anyhow::Result<Engine> {
    let cfg = &state.cfg;
    if cfg!(debug_assertions) {
        // Debug builds only: lets the tests observe the server while the model loads.
        if let Some(ms) = std::env::var("AMANUENSIS_FAULT_LOAD_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    let t0 = Instant::now();
    let model: &'static Whisper =
        Box::leak(Box::new(load_model(&cfg.model_spec, cfg.compute_type)?));
    tracing::info!(seconds = t0.elapsed().as_secs_f64(), "model loaded");
    let pool = Pool::start(model, cfg.workers, cfg.queue, state.metrics.clone())?;
    let loaded_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Engine {
        model,
        pool,
        loaded_at,
    })
}

/// Resolves on SIGINT or SIGTERM. A second signal while draining exits at once.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("amanuensis serve: second interrupt, exiting without finishing jobs");
        std::process::exit(130);
    });
}

fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.cfg.max_upload_bytes + FORM_OVERHEAD_BYTES;
    Router::new()
        .route(
            "/",
            get(|| static_file("text/html; charset=utf-8", include_str!("web/index.html"))),
        )
        .route(
            "/app.js",
            get(|| static_file("text/javascript; charset=utf-8", include_str!("web/app.js"))),
        )
        .route(
            "/style.css",
            get(|| static_file("text/css; charset=utf-8", include_str!("web/style.css"))),
        )
        .route(
            "/player.js",
            get(|| static_file("text/javascript; charset=utf-8", include_str!("web/player.js"))),
        )
        .route(
            "/live.js",
            get(|| static_file("text/javascript; charset=utf-8", include_str!("web/live.js"))),
        )
        .route(
            "/pcm-worklet.js",
            get(|| static_file("text/javascript; charset=utf-8", include_str!("web/pcm-worklet.js"))),
        )
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/transcribe", post(transcribe_native))
        .route("/v1/audio/transcriptions", post(transcribe_openai))
        .route("/v1/audio/translations", post(translate_openai))
        .route("/v1/realtime", get(realtime::handler))
        .route("/v1/jobs", post(jobs::api::submit).get(jobs::api::list))
        .route("/v1/jobs/{id}", get(jobs::api::status).delete(jobs::api::delete))
        .route("/v1/jobs/{id}/result", get(jobs::api::result))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Multipart reading stops with 413 at this many bytes (chunked uploads included).
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Counts every response by route and status, and refuses a declared oversized upload with
/// 413 before reading any of it.
async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| p.as_str())
        .to_string();
    let limit = state.cfg.max_upload_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let resp = if req.method() == Method::POST
        && declared.is_some_and(|n| n > (limit + FORM_OVERHEAD_BYTES) as u64)
    {
        let mut r = api::too_large(limit).into_response();
        // The body stays unread, so the connection cannot be reused.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    } else {
        next.run(req).await
    };
    state.metrics.record_request(&route, resp.status().as_u16());
    resp
}

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no endpoint at {}; see GET / for the web page, POST /transcribe or POST /v1/audio/transcriptions", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let cfg = &state.cfg;
    let body = json!({
        "status": if state.engine.get().is_some() { "ok" } else { "loading" },
        "model": cfg.model_name,
        "compute_type": compute_name(cfg.compute_type),
        "workers": cfg.workers,
        "queue_capacity": cfg.queue,
        "queue_depth": state.metrics.queue_depth.load(Ordering::Relaxed).max(0),
        "in_flight": state.metrics.in_flight.load(Ordering::Relaxed).max(0),
    });
    if state.engine.get().is_some() {
        Json(body).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(body),
        )
            .into_response()
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The ids clients may send as `model`: the loaded model's name, `whisper-1` and the
/// `--model-alias` names.
fn model_objects(state: &AppState) -> Vec<serde_json::Value> {
    let created = state.engine.get().map_or(0, |e| e.loaded_at);
    std::iter::once(state.cfg.model_name.as_str())
        .chain(state.cfg.aliases(true))
        .map(|id| json!({ "id": id, "object": "model", "created": created, "owned_by": "amanuensis" }))
        .collect()
}

async fn list_models(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({ "object": "list", "data": model_objects(&state) })).into_response()
}

async fn get_model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match model_objects(&state).into_iter().find(|m| m["id"] == id.as_str()) {
        Some(m) => Json(m).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("model `{id}` does not exist here; this server runs `{}` (also known as {})", state.cfg.model_name, state.cfg.aliases(true).iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")),
        )
        .param("model")
        .into_response(),
    }
}

async fn transcribe_native(
    State(state): State<Arc<AppState>>,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    api::handle(state, Endpoint::Native, mp).await
}

async fn transcribe_openai(
    State(state): State<Arc<AppState>>,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    api::handle(state, Endpoint::Transcriptions, mp).await
}

async fn translate_openai(
    State(state): State<Arc<AppState>>,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    api::handle(state, Endpoint::Translations, mp).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        assert_eq!(model_name("tiny.en"), "tiny.en");
        assert_eq!(model_name("/root/models/tiny.en/"), "tiny.en");
        assert_eq!(model_name("base"), "base");
    }

    #[test]
    fn retentions() {
        assert_eq!(retention("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(retention("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(retention("30").unwrap(), Duration::from_secs(30));
        assert!(retention("7w").is_err() && retention("-1h").is_err() && retention("").is_err());
    }
}
