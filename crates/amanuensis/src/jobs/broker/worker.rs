//! `amanuensis worker --broker nats://HOST:4222`: loads the model as `serve` does and runs the
//! broker's jobs on the same engine code (`runner::transcribe`, the scheduler's continuous
//! batch), up to `--jobs` at once. Any number of workers, on any machine, share the durable
//! pull consumer.
//!
//! A job's message: pulled one at a time when a slot is free; while it runs, an in-progress
//! ack at least every `--ack-wait-secs`/3 (and at most a second apart), with a look at the
//! job's record (cancelled or deleted → the transcription is dropped) and its progress
//! written. A killed worker stops acking, so the message is redelivered after the ack wait to
//! another worker. Finishing is a compare-and-set on the record: the result object is written
//! first, then the record goes running → done naming it; if the record was already final (a
//! redelivery raced an earlier attempt), the attempt's own result object is deleted and the
//! message only acked, so a job is never done twice or half. Delivery `--max-attempts` + 1
//! marks the job failed (`too_many_attempts`) instead of running it again. The worker sends
//! the job's webhook, once, from the attempt that finished it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, AckKind};
use futures_util::StreamExt;
use tokio::sync::{mpsc, Semaphore};

use super::{Broker, Change, CONSUMER, STREAM};
use crate::engine::ComputeType;
use crate::server::error::ApiError;
use crate::server::jobs::runner::{self, Report, Stop};
use crate::server::jobs::store::{now, Status};
use crate::server::{budget, metrics::Metrics, realtime, AppState, Config};

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The NATS server (with JetStream: `nats-server -js`) that `serve --broker` puts jobs on.
    #[arg(long, value_name = "URL", env = "AMANUENSIS_BROKER")]
    pub broker: String,
    /// Model name in the store (tiny.en, base) or a model directory; use the model `serve` has.
    #[arg(long, default_value = "base", env = "AMANUENSIS_MODEL")]
    pub model: String,
    /// Numeric type of the engine (default: the engine's choice, `ComputeType::DEFAULT`).
    #[arg(long, value_enum)]
    pub compute_type: Option<ComputeType>,
    /// Engine threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Jobs this worker runs at once (their windows share the engine's batch).
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Beam width for jobs that do not set beam_size (1 is greedy); as `serve --beam-size`.
    #[arg(long, default_value_t = 5)]
    pub beam_size: usize,
    /// Longest audio one job may decode to, in seconds; longer jobs fail with 413's error.
    #[arg(long, default_value_t = 14400.0)]
    pub max_audio_secs: f64,
    /// Seconds the broker waits for an ack (or an in-progress ack) before it gives the job to
    /// another worker; the worker sends in-progress acks every third of it. Sets the shared
    /// consumer's AckWait: give every worker the same value.
    #[arg(long, default_value_t = 60.0)]
    pub ack_wait_secs: f64,
    /// Deliveries of one job before it is marked failed (a job whose workers keep dying,
    /// e.g. killed by the OOM killer). Sets the shared consumer's MaxDeliver (this + 1).
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
}

/// What every job of this worker shares.
struct Ctx {
    app: Arc<AppState>,
    broker: Arc<Broker>,
    /// In-progress acks and record checks this often.
    beat: Duration,
    max_attempts: i64,
    name: String,
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("amanuensis worker: {msg}");
}

fn config(a: &WorkerArgs) -> anyhow::Result<Config> {
    if !(1..=256).contains(&a.jobs) {
        anyhow::bail!("--jobs {}: use a number from 1 to 256", a.jobs);
    }
    if !(1..=16).contains(&a.beam_size) {
        anyhow::bail!("--beam-size {}: use a number from 1 to 16", a.beam_size);
    }
    if !(a.ack_wait_secs.is_finite() && (1.0..=86400.0).contains(&a.ack_wait_secs)) {
        anyhow::bail!("--ack-wait-secs {}: use a number of seconds from 1 to 86400", a.ack_wait_secs);
    }
    if !(1..=100).contains(&a.max_attempts) {
        anyhow::bail!("--max-attempts {}: use a number from 1 to 100", a.max_attempts);
    }
    if !(a.max_audio_secs.is_finite() && a.max_audio_secs > 0.0) {
        anyhow::bail!("--max-audio-secs {}: use a number of seconds above 0", a.max_audio_secs);
    }
    Ok(Config {
        model_spec: a.model.clone(),
        model_name: crate::server::model_name(&a.model),
        compute_type: a.compute_type.unwrap_or(ComputeType::DEFAULT),
        workers: a.jobs,
        queue: a.jobs,
        max_upload_bytes: 0,
        audio: budget::AudioLimits { max_audio_secs: a.max_audio_secs, max_queued_audio_secs: a.max_audio_secs * a.jobs as f64 },
        job_timeout: Duration::from_secs(24 * 3600),
        read_timeout: Duration::from_secs(60),
        beam_size: a.beam_size,
        model_aliases: Vec::new(),
        realtime: realtime::Limits { max_streams: 0, max_append_bytes: 0, max_uncommitted: 0, idle: Duration::from_secs(60) },
        data_dir: std::path::PathBuf::new(),
        job_retention: Duration::ZERO,
    })
}

pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    if let Some(n) = args.threads {
        crate::engine::set_threads(n)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("worker").build().context("starting the async runtime")?;
    rt.block_on(work(args, cfg))
}

fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}/{}", std::process::id())
}

async fn work(args: WorkerArgs, cfg: Config) -> anyhow::Result<()> {
    let broker = Arc::new(Broker::connect(&args.broker).await?);
    let ack_wait = Duration::from_secs_f64(args.ack_wait_secs);
    let consumer_cfg = consumer::pull::Config {
        durable_name: Some(CONSUMER.into()),
        description: Some("amanuensis workers".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        max_deliver: args.max_attempts as i64 + 1,
        ..Default::default()
    };
    let consumer: consumer::PullConsumer = broker
        .js
        .create_consumer_on_stream(consumer_cfg, STREAM)
        .await
        .map_err(|e| anyhow::anyhow!("the NATS server at {} refused the workers' consumer {CONSUMER}: {e}", args.broker))?;
    let app = Arc::new(AppState {
        cfg,
        metrics: Arc::new(Metrics::default()),
        engine: OnceLock::new(),
        decode_slots: Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)),
        realtime: realtime::Streams::default(),
        jobs: None,
    });
    {
        let a = app.clone();
        let engine = tokio::task::spawn_blocking(move || crate::server::load_engine(&a)).await.context("loading the model")??;
        let _ = app.engine.set(engine);
    }
    app.metrics.model_loaded.store(true, Ordering::Relaxed);
    let ctx = Arc::new(Ctx {
        app: app.clone(),
        broker: broker.clone(),
        beat: (ack_wait / 3).min(Duration::from_secs(1)),
        max_attempts: args.max_attempts as i64,
        name: worker_name(),
    });
    // Tests and scripts wait for this line.
    log(format_args!("ready: model {}, up to {} job(s) at once, ack wait {} s, pulling jobs from {}", app.cfg.model_name, args.jobs, args.ack_wait_secs, args.broker));
    let slots = Arc::new(Semaphore::new(args.jobs));
    let stop = crate::server::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut stop => break,
        };
        let pulled = tokio::select! {
            r = pull_one(&consumer) => r,
            _ = &mut stop => break,
        };
        match pulled {
            Ok(Some(msg)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    handle(&ctx, msg).await;
                    drop(permit);
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("pulling from {}: {e}", args.broker);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    log("stopping: no new jobs; finishing the running ones (a second interrupt exits at once)");
    let _ = slots.acquire_many(args.jobs as u32).await;
    log("stopped");
    Ok(())
}

/// One message, waiting up to 5 s for it.
async fn pull_one(c: &consumer::PullConsumer) -> Result<Option<jetstream::Message>, async_nats::Error> {
    let mut batch = c.batch().max_messages(1).expires(Duration::from_secs(5)).messages().await?;
    match batch.next().await {
        Some(Ok(m)) => Ok(Some(m)),
        Some(Err(e)) => Err(e.into()),
        None => Ok(None),
    }
}

async fn handle(ctx: &Ctx, msg: jetstream::Message) {
    let id = String::from_utf8_lossy(&msg.payload).into_owned();
    let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
    let ack = match run_job(ctx, &msg, &id, delivered).await {
        Ok(kind) => kind,
        Err(e) => {
            // The broker failed us mid-way: the job runs again (a new delivery).
            log(format_args!("job {id}: {e}; it will be delivered again"));
            AckKind::Nak(Some(Duration::from_secs(2)))
        }
    };
    if let Err(e) = msg.ack_with(ack).await {
        tracing::warn!(job = %id, "ack: {e}");
    }
}

fn failed(e: &ApiError) -> impl Fn(&mut super::Record) -> bool + '_ {
    move |r| {
        if r.status().is_final() {
            return false;
        }
        r.set_status(Status::Failed);
        r.finished_at = Some(now());
        r.error = Some(e.to_json()["error"].clone());
        true
    }
}

/// Runs one delivery of a job; returns how to ack its message.
async fn run_job(ctx: &Ctx, msg: &jetstream::Message, id: &str, delivered: i64) -> Result<AckKind, ApiError> {
    let b = &ctx.broker;
    let Some((rec, _)) = b.get(id).await? else {
        log(format_args!("job {id} has no record (deleted): dropped"));
        return Ok(AckKind::Ack);
    };
    if rec.status().is_final() {
        // Cancelled while queued: its audio goes now (the API leaves it to the worker).
        let _ = b.timed(b.audio.delete(id)).await;
        log(format_args!("job {id} is already {}: acked", rec.status));
        return Ok(AckKind::Ack);
    }
    if delivered > ctx.max_attempts {
        let mut e = ApiError::internal(format!(
            "the job was delivered {} time(s) and no worker finished it within the ack wait (workers killed, or cut off from the broker, while running it); it is not tried again (--max-attempts {})",
            delivered - 1,
            ctx.max_attempts
        ));
        e.code = "too_many_attempts";
        finish(ctx, id, b.change(id, failed(&e)).await?, None).await;
        log(format_args!("job {id} failed: delivered {} time(s) without finishing", delivered - 1));
        return Ok(AckKind::Ack);
    }
    let started = now();
    let rec = match b
        .change(id, |r| {
            if r.status().is_final() {
                return false;
            }
            r.set_status(Status::Running);
            r.started_at = Some(started);
            r.progress = 0.0;
            r.attempts = delivered;
            r.worker = Some(ctx.name.clone());
            true
        })
        .await?
    {
        Change::Done(r) => r,
        Change::Kept(_) | Change::Missing => return Ok(AckKind::Ack),
    };
    log(format_args!("job {id} started (attempt {delivered})"));
    let t0 = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The audio is read within the heartbeat loop too: a cancel (which may delete it) or a
    // slow read never holds the message past its ack wait.
    let work = async {
        let audio = match b.audio.get(id).await {
            Ok(mut obj) => {
                use tokio::io::AsyncReadExt;
                let mut buf = Vec::new();
                if let Err(e) = obj.read_to_end(&mut buf).await {
                    tracing::warn!(job = %id, "reading the audio: {e}");
                    return Err(Stop::Requeue);
                }
                buf
            }
            Err(e) if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound => {
                return Err(Stop::Failed(ApiError::internal(format!("the job's audio is missing from the broker's object store {}", super::AUDIO_BUCKET))));
            }
            Err(e) => {
                tracing::warn!(job = %id, "reading the audio: {e}");
                return Err(Stop::Requeue);
            }
        };
        runner::transcribe(&ctx.app, id, audio, rec.filename.as_deref(), &rec.fields, started, tx).await
    };
    tokio::pin!(work);
    let mut beat = tokio::time::interval(ctx.beat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut progress, mut duration) = (0.0f64, None::<f64>);
    let mut written = (0.0f64, None::<f64>);
    let outcome = loop {
        tokio::select! {
            r = &mut work => break Some(r),
            Some(rep) = rx.recv() => match rep {
                Report::Duration(d) => duration = Some(d),
                Report::Progress(p) => progress = progress.max(p),
            },
            _ = beat.tick() => {
                if let Err(e) = msg.ack_with(AckKind::Progress).await {
                    tracing::warn!(job = %id, "in-progress ack: {e}");
                }
                let now_seen = (progress, duration);
                let checked = b.change(id, |r| {
                    if r.status().is_final() || now_seen == written {
                        return false;
                    }
                    r.progress = progress;
                    r.duration = duration;
                    true
                }).await;
                match checked {
                    Ok(Change::Done(_)) => written = now_seen,
                    Ok(Change::Kept(r)) if r.status().is_final() => break None,
                    Ok(Change::Missing) => break None,
                    Ok(Change::Kept(_)) => {}
                    Err(e) => tracing::warn!(job = %id, "progress: {e}"),
                }
            }
        }
    };
    match outcome {
        // Dropping the transcription drops the engine's reply channel: the engine drops the job.
        None => {
            let _ = b.timed(b.audio.delete(id)).await;
            log(format_args!("job {id} cancelled: stopped"));
            Ok(AckKind::Ack)
        }
        Some(Ok(result)) => {
            let name = format!("{id}.{}", attempt_tag());
            let meta = async_nats::jetstream::object_store::ObjectMetadata { name: name.clone(), chunk_size: Some(super::CHUNK), ..Default::default() };
            let body = serde_json::to_vec(&result).unwrap_or_default();
            let mut reader: &[u8] = &body;
            b.timed(b.results.put(meta, &mut reader)).await?;
            let changed = b
                .change(id, |r| {
                    if r.status().is_final() {
                        return false;
                    }
                    r.set_status(Status::Done);
                    r.progress = 1.0;
                    r.finished_at = Some(now());
                    r.duration = duration.or(r.duration);
                    r.result = Some(name.clone());
                    r.error = None;
                    true
                })
                .await?;
            if matches!(changed, Change::Done(_)) {
                log(format_args!("job {id} done in {:.1} s", t0.elapsed().as_secs_f64()));
            } else {
                // Another attempt finished it first (or it was cancelled): ours is dropped.
                let _ = b.timed(b.results.delete(&name)).await;
                log(format_args!("job {id} was finished elsewhere meanwhile: acked"));
            }
            finish(ctx, id, changed, Some(result)).await;
            Ok(AckKind::Ack)
        }
        Some(Err(Stop::Failed(e))) => {
            log(format_args!("job {id} failed: {e}"));
            finish(ctx, id, b.change(id, failed(&e)).await?, None).await;
            Ok(AckKind::Ack)
        }
        Some(Err(Stop::Requeue)) => {
            b.change(id, |r| {
                if r.status().is_final() {
                    return false;
                }
                r.set_status(Status::Queued);
                r.started_at = None;
                r.progress = 0.0;
                true
            })
            .await?;
            Ok(AckKind::Nak(Some(Duration::from_secs(2))))
        }
    }
}

/// A random tag that names one attempt's result object.
fn attempt_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// After the job's final change: its audio is no longer needed, and its webhook (if any) is
/// sent — only by the attempt whose change ended it.
async fn finish(ctx: &Ctx, id: &str, changed: Change, result: Option<serde_json::Value>) {
    let Change::Done(rec) = changed else { return };
    let _ = ctx.broker.timed(ctx.broker.audio.delete(id)).await;
    if let Some(url) = rec.webhook_url.clone() {
        let body = runner::webhook_json(&rec.row(), result.as_ref());
        tokio::spawn(runner::webhook(id.to_string(), url, body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worker_flags_are_checked() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            w: WorkerArgs,
        }
        let parse = |extra: &[&str]| {
            let mut a = vec!["w", "--broker", "nats://127.0.0.1:4222"];
            a.extend_from_slice(extra);
            config(&Cli::try_parse_from(a).unwrap().w)
        };
        let c = parse(&["--model", "tiny.en", "--jobs", "2"]).unwrap();
        assert_eq!((c.workers, c.model_name.as_str()), (2, "tiny.en"));
        for bad in [&["--jobs", "0"][..], &["--ack-wait-secs", "0.5"], &["--max-attempts", "0"], &["--beam-size", "17"]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn too_many_attempts_error_is_json() {
        let mut e = ApiError::internal("x");
        e.code = "too_many_attempts";
        assert_eq!(e.to_json()["error"]["code"], json!("too_many_attempts"));
    }
}
