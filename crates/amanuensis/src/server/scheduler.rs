//! The job queue and its workers: a bounded queue feeds N worker threads, each driving one
//! transcription window by window; the 30 s windows that workers need encoded at the same time
//! go through the encoder together in one batch.
//!
//! The whisper engine is synchronous and CPU-bound, so it runs on plain threads, never on the
//! async runtime; the HTTP side talks to the workers through channels only.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::sync::{mpsc as tmpsc, oneshot};
use whisper::mel::Mel;
use whisper::model::{KvCache, Whisper};
use whisper::transcribe::{Segment, TranscribeOptions, Transcriber, Transcript};

use super::error::ApiError;
use super::metrics::{Metrics, Outcome};

/// Most windows encoded in one batch: bounds the encoder's activation memory.
const MAX_ENCODER_BATCH: usize = 8;

/// One transcription request, decoded and validated, waiting for a worker.
pub struct Job {
    pub id: String,
    pub samples: Vec<f32>,
    pub opts: TranscribeOptions,
    /// After this instant the job is abandoned with 504.
    pub deadline: Instant,
    /// Segments are sent here as they are decoded (streaming requests only).
    pub events: Option<tmpsc::UnboundedSender<Segment>>,
    pub reply: oneshot::Sender<Result<Transcript, ApiError>>,
}

/// The queue's sending side; cheap to share between request handlers.
pub struct Pool {
    tx: SyncSender<Job>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Pool {
    /// Starts `workers` threads on `model` behind a queue of `capacity` waiting jobs.
    pub fn start(
        model: &'static Whisper,
        workers: usize,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Pool> {
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let batcher = Arc::new(EncoderBatcher::new(model, metrics.clone()));
        for i in 0..workers {
            let (rx, batcher, metrics) = (rx.clone(), batcher.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("transcribe-{i}"))
                .spawn(move || worker_loop(model, rx, batcher, metrics))?;
        }
        metrics.workers.store(workers as u64, Ordering::Relaxed);
        metrics
            .queue_capacity
            .store(capacity as u64, Ordering::Relaxed);
        Ok(Pool {
            tx,
            capacity,
            metrics,
        })
    }

    /// Whether a new job would be refused right now.
    pub fn is_full(&self) -> bool {
        self.metrics.queue_depth.load(Ordering::Relaxed) >= self.capacity as i64
    }

    /// Queues `job`, or answers 503 (with Retry-After) when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => queue_full(self.capacity),
                    TrySendError::Disconnected(_) => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "shutting_down",
                        "the server is shutting down",
                    )
                    .retry_after(5),
                })
            }
        }
    }
}

pub fn queue_full(capacity: usize) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "queue_full",
        format!("the server is busy: all workers are transcribing and {capacity} job(s) are already waiting; retry later"),
    )
    .retry_after(2)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Text of a panic payload, for the error message and the log.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn worker_loop(
    model: &'static Whisper,
    rx: Arc<Mutex<Receiver<Job>>>,
    batcher: Arc<EncoderBatcher>,
    metrics: Arc<Metrics>,
) {
    let tr = match Transcriber::new(model) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("worker cannot start: {e}");
            return;
        }
    };
    let mut cache: Option<KvCache> = None;
    loop {
        // Holding the lock while waiting is fine: whoever holds it takes the next job.
        let job = match lock(&rx).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let Job {
            id,
            samples,
            opts,
            deadline,
            events,
            reply,
        } = job;
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_job(
                &tr, &batcher, &mut cache, &samples, &opts, deadline, events, &reply,
            )
        }));
        let result = match result {
            Ok(r) => r,
            Err(p) => {
                // The cache may be half-written; start the next job with a fresh one.
                cache = None;
                let msg = panic_text(p.as_ref());
                tracing::error!(job = %id, "transcription panicked: {msg}");
                Err(Failure::Error(ApiError::internal(format!(
                    "the transcription failed unexpectedly ({msg}); the server is still running: retry, and report the problem if it persists"
                ))))
            }
        };
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(Failure::Cancelled) => Outcome::Cancelled,
            Err(Failure::Error(e)) if e.status == StatusCode::GATEWAY_TIMEOUT => Outcome::TimedOut,
            Err(Failure::Error(_)) => Outcome::Failed,
        };
        metrics.record_job(outcome);
        tracing::info!(job = %id, ?outcome, seconds, "job finished");
        let answer = match result {
            Ok(t) => Ok(t),
            Err(Failure::Error(e)) => Err(e),
            Err(Failure::Cancelled) => continue,
        };
        // The handler may have given up in the meantime; then nobody needs the answer.
        let _ = reply.send(answer);
    }
}

/// Why a job produced no transcript.
enum Failure {
    /// The client went away; nobody is waiting for an answer.
    Cancelled,
    Error(ApiError),
}

impl From<whisper::Error> for Failure {
    fn from(e: whisper::Error) -> Self {
        Failure::Error(ApiError::from_whisper(&e))
    }
}

fn deadline_passed() -> Failure {
    Failure::Error(ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        "the transcription did not finish within the server's job time limit (--job-timeout-secs); \
         send shorter audio, or retry when the server is less busy",
    ))
}

/// Runs one job to the end, checking between windows whether the client is still there and
/// the deadline still ahead.
#[allow(clippy::too_many_arguments)]
fn run_job(
    tr: &Transcriber<'static>,
    batcher: &EncoderBatcher,
    cache: &mut Option<KvCache>,
    samples: &[f32],
    opts: &TranscribeOptions,
    deadline: Instant,
    events: Option<tmpsc::UnboundedSender<Segment>>,
    reply: &oneshot::Sender<Result<Transcript, ApiError>>,
) -> Result<Transcript, Failure> {
    let check = || {
        if reply.is_closed() {
            Err(Failure::Cancelled)
        } else if Instant::now() >= deadline {
            Err(deadline_passed())
        } else {
            Ok(())
        }
    };
    check()?;
    fault_injection(opts);
    let mut session = tr.start(samples, opts)?;
    let cache = cache.get_or_insert_with(|| session.new_cache());
    while !session.is_done() {
        check()?;
        let encoded = match session.window_mel()? {
            Some(mel) => Some(batcher.encode(mel)?),
            None => None,
        };
        check()?;
        session.step(encoded, cache, &mut |seg| {
            if let Some(tx) = &events {
                // A closed receiver means the client left; the next check() notices.
                let _ = tx.send(seg.clone());
            }
        })?;
    }
    Ok(session.finish())
}

/// Debug builds only: a job whose prompt equals `$AMANUENSIS_FAULT_PANIC_PROMPT` panics inside
/// its worker, so that the tests can check that a panicking job leaves the server serving.
fn fault_injection(opts: &TranscribeOptions) {
    if cfg!(debug_assertions) {
        if let (Ok(trigger), Some(prompt)) = (
            std::env::var("AMANUENSIS_FAULT_PANIC_PROMPT"),
            opts.initial_prompt.as_deref(),
        ) {
            if !trigger.is_empty() && trigger == prompt {
                panic!("fault injected by AMANUENSIS_FAULT_PANIC_PROMPT");
            }
        }
    }
}

/// Encodes the windows that workers ask for at the same time in one batch ("group commit"):
/// the first worker to arrive while the encoder is idle runs it on everything waiting; workers
/// arriving meanwhile wait and are served by the next run. Nobody waits for a batch to fill.
pub struct EncoderBatcher {
    model: &'static Whisper,
    metrics: Arc<Metrics>,
    state: Mutex<BatchState>,
    done: Condvar,
}

#[derive(Default)]
struct BatchState {
    next_ticket: u64,
    pending: Vec<(u64, Mel)>,
    results: HashMap<u64, Result<Vec<f32>, Failure>>,
    busy: bool,
}

impl EncoderBatcher {
    fn new(model: &'static Whisper, metrics: Arc<Metrics>) -> Self {
        EncoderBatcher {
            model,
            metrics,
            state: Mutex::new(BatchState::default()),
            done: Condvar::new(),
        }
    }

    fn encode(&self, mel: Mel) -> Result<Vec<f32>, Failure> {
        let mut st = lock(&self.state);
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.pending.push((ticket, mel));
        loop {
            if let Some(r) = st.results.remove(&ticket) {
                return r;
            }
            if !st.busy && !st.pending.is_empty() {
                st.busy = true;
                let n = st.pending.len().min(MAX_ENCODER_BATCH);
                let batch: Vec<(u64, Mel)> = st.pending.drain(..n).collect();
                drop(st);
                let results = self.run(batch);
                st = lock(&self.state);
                st.busy = false;
                st.results.extend(results);
                self.done.notify_all();
                continue;
            }
            // The timeout only guards against a lost wake-up; normally notify_all comes first.
            st = self
                .done
                .wait_timeout(st, Duration::from_secs(1))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Encodes a batch; if the batch fails as a whole, each window is retried alone so that
    /// one bad window fails only its own job. Never panics.
    fn run(&self, batch: Vec<(u64, Mel)>) -> Vec<(u64, Result<Vec<f32>, Failure>)> {
        let (tickets, mels): (Vec<u64>, Vec<Mel>) = batch.into_iter().unzip();
        self.metrics.encoder_batches.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .encoder_windows
            .fetch_add(mels.len() as u64, Ordering::Relaxed);
        let encode =
            |mels: &[Mel]| match catch_unwind(AssertUnwindSafe(|| self.model.encode_batch(mels))) {
                Ok(Ok(v)) if v.len() == mels.len() => Ok(v),
                Ok(Ok(v)) => Err(Failure::Error(ApiError::internal(format!(
                    "the encoder returned {} outputs for {} windows",
                    v.len(),
                    mels.len()
                )))),
                Ok(Err(e)) => Err(Failure::from(e)),
                Err(p) => Err(Failure::Error(ApiError::internal(format!(
                    "the encoder failed unexpectedly ({})",
                    panic_text(p.as_ref())
                )))),
            };
        match encode(&mels) {
            Ok(outs) => tickets.into_iter().zip(outs.into_iter().map(Ok)).collect(),
            Err(e) if mels.len() == 1 => vec![(tickets[0], Err(e))],
            Err(_) => tickets
                .into_iter()
                .zip(&mels)
                .map(|(t, m)| (t, encode(std::slice::from_ref(m)).map(|mut v| v.remove(0))))
                .collect(),
        }
    }
}
