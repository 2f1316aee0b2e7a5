//! The job queue and the engine: a bounded queue feeds one engine thread that decodes every
//! admitted request through one continuous batch. The tokens of all the requests' current
//! 30 s windows share each decoder pass (`whisper::batch::ContinuousBatch`), and the windows
//! that need encoding at the same time go through the encoder together
//! (`Whisper::encode_batch`).
//!
//! The whisper engine is synchronous and CPU-bound, so it runs on a plain thread, never on the
//! async runtime; the HTTP side talks to it through channels only.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::sync::{mpsc as tmpsc, oneshot};
use whisper::batch::ContinuousBatch;
use whisper::mel::Mel;
use whisper::model::{CrossKv, Whisper};
use whisper::transcribe::{Segment, Session, TranscribeOptions, Transcriber, Transcript};
use whisper::window::WindowResult;

use super::budget::Reservation;
use super::error::ApiError;
use super::live::{self, LiveConfig, LiveHandle, LiveStream, OpenStream};
use super::metrics::{Metrics, Outcome, Phase};

/// Most windows encoded in one batch: bounds the encoder's activation memory.
const MAX_ENCODER_BATCH: usize = 8;

/// A segment as soon as it is final, with its tokens' log-probabilities.
pub struct SegmentEvent {
    pub segment: Segment,
    pub logprobs: Vec<f32>,
}

/// A finished transcription: the transcript and, parallel to its segments and their tokens,
/// each token's log-probability.
pub struct Finished {
    pub transcript: Transcript,
    pub token_logprobs: Vec<Vec<f32>>,
}

pub type Reply = oneshot::Sender<Result<Finished, ApiError>>;

/// One transcription request, decoded and validated, waiting for the engine.
pub struct Job {
    pub id: String,
    pub samples: Vec<f32>,
    pub opts: TranscribeOptions,
    /// After this instant the job is abandoned with 504.
    pub deadline: Instant,
    /// Segments are sent here as they are decoded (streaming requests only).
    pub events: Option<tmpsc::UnboundedSender<SegmentEvent>>,
    pub reply: Reply,
    /// Its audio counted against `--max-queued-audio-secs` until the job ends.
    pub audio: Reservation,
}

/// What the engine thread receives: a request, or a live stream to run.
enum EngineMsg {
    Job(Job),
    Stream(OpenStream),
}

/// The queue's sending side; cheap to share between request handlers.
pub struct Pool {
    tx: SyncSender<EngineMsg>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Pool {
    /// Starts the engine thread on `model`: at most `concurrent` jobs decoded together, behind
    /// a queue of `capacity` waiting jobs.
    pub fn start(
        model: &'static Whisper,
        concurrent: usize,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Pool> {
        let (tx, rx) = mpsc::sync_channel::<EngineMsg>(capacity);
        let tr = Transcriber::new(model)?;
        let engine = Engine {
            model,
            tr,
            batch: ContinuousBatch::new(model, concurrent),
            jobs: BTreeMap::new(),
            requests: 0,
            streams: BTreeMap::new(),
            next_key: 0,
            max_jobs: concurrent,
            metrics: metrics.clone(),
        };
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || engine.run(rx))?;
        metrics.workers.store(concurrent as u64, Ordering::Relaxed);
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
        match self.tx.try_send(EngineMsg::Job(job)) {
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

impl Pool {
    /// Opens a live stream on the engine (see `live`). Errors when the engine cannot take
    /// another stream.
    pub fn open_stream(&self, config: LiveConfig) -> Result<LiveHandle, ApiError> {
        let (input_tx, input) = tmpsc::channel(live::INPUT_CAPACITY);
        let (events, events_rx) = tmpsc::channel(live::EVENT_CAPACITY);
        match self.tx.try_send(EngineMsg::Stream(OpenStream { config, input, events })) {
            Ok(()) => Ok(LiveHandle { input: input_tx, events: events_rx }),
            Err(TrySendError::Full(_)) => Err(queue_full(self.capacity)),
            Err(TrySendError::Disconnected(_)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            )),
        }
    }
}

pub fn queue_full(capacity: usize) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "queue_full",
        format!("the server is busy: every decoding slot is taken and {capacity} job(s) are already waiting; retry later"),
    )
    .retry_after(2)
}

/// Text of a panic payload, for the error message and the log.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn panicked(p: &(dyn std::any::Any + Send)) -> Failure {
    Failure::Error(ApiError::internal(format!(
        "the transcription failed unexpectedly ({}); the server is still running: retry, and report the problem if it persists",
        panic_text(p)
    )))
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

/// Whether a job should stop: its client left, or its deadline passed.
fn check(reply: &Reply, deadline: Instant) -> Result<(), Failure> {
    if reply.is_closed() {
        Err(Failure::Cancelled)
    } else if Instant::now() >= deadline {
        Err(deadline_passed())
    } else {
        Ok(())
    }
}

/// Tag of a job in the continuous batch.
type JobKey = u64;

/// A job the engine has admitted.
struct Running {
    id: String,
    session: Session<'static>,
    deadline: Instant,
    events: Option<tmpsc::UnboundedSender<SegmentEvent>>,
    owner: Owner,
    started: Instant,
    /// Its current window is in the continuous batch.
    in_batch: bool,
    /// A request's audio budget, given back when the job ends (none for live streams).
    _audio: Option<Reservation>,
}

/// Who waits for a job: a request's handler, or a live stream (the job is one of its decodings).
enum Owner {
    Request(Reply),
    Stream(StreamKey),
}

type StreamKey = u64;

/// The engine thread's state: every admitted job's session and the batch decoding their
/// current windows.
struct Engine {
    model: &'static Whisper,
    tr: Transcriber<'static>,
    batch: ContinuousBatch<'static, JobKey>,
    jobs: BTreeMap<JobKey, Running>,
    /// Jobs in `jobs` that are requests (the rest are live streams' decodings).
    requests: usize,
    streams: BTreeMap<StreamKey, LiveStream>,
    next_key: JobKey,
    max_jobs: usize,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// Admits queued jobs while there is room, encodes the windows that need it, joins them to
    /// the batch, runs one decoder pass, applies the finished windows; blocks on the queue
    /// when there is nothing to do. Returns when the queue is closed and every job is done.
    fn run(mut self, rx: Receiver<EngineMsg>) {
        let mut closed = false;
        loop {
            while self.requests < self.max_jobs && !closed {
                let msg = if self.jobs.is_empty() && self.streams.is_empty() {
                    match rx.recv() {
                        Ok(m) => m,
                        Err(_) => return,
                    }
                } else if self.jobs.is_empty() {
                    // Only live streams: wait a little for their audio, or a new message.
                    match rx.recv_timeout(Duration::from_millis(10)) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                } else {
                    match rx.try_recv() {
                        Ok(m) => m,
                        Err(_) => break,
                    }
                };
                match msg {
                    EngineMsg::Job(job) => whisper::pool::on_pool(|| self.admit(job)),
                    EngineMsg::Stream(open) => self.open_stream(open),
                }
            }
            if closed && self.jobs.is_empty() && self.streams.is_empty() {
                return;
            }
            // One turn on a worker of the pool (see `on_pool`); the queue is waited on here,
            // outside the pool, so a 1-thread pool never waits on itself.
            whisper::pool::on_pool(|| {
                self.poll_streams();
                self.check_all();
                self.feed();
                self.step();
            });
        }
    }

    fn admit(&mut self, job: Job) {
        self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let t0 = Instant::now();
        let Job {
            id,
            samples,
            opts,
            deadline,
            events,
            reply,
            audio,
        } = job;
        self.requests += 1;
        let tr = &self.tr;
        let session = catch_unwind(AssertUnwindSafe(|| {
            check(&reply, deadline)?;
            fault_injection(&opts);
            Ok::<_, Failure>(tr.start(&samples, &opts)?)
        }))
        .unwrap_or_else(|p| {
            tracing::error!(job = %id, "transcription panicked: {}", panic_text(p.as_ref()));
            Err(panicked(p.as_ref()))
        });
        drop(samples);
        self.metrics.record_phase(Phase::Start, t0);
        match session {
            Ok(session) => {
                let key = self.next_key;
                self.next_key += 1;
                let done = session.is_done();
                self.jobs.insert(
                    key,
                    Running {
                        id,
                        session,
                        deadline,
                        events,
                        owner: Owner::Request(reply),
                        started,
                        in_batch: false,
                        _audio: Some(audio),
                    },
                );
                if done {
                    self.finish(key, Ok(()));
                }
            }
            Err(f) => {
                self.requests -= 1;
                self.conclude(&id, started, reply, Err(f))
            }
        }
    }

    /// Ends job `key`: `Ok` replies with its transcript. Its window leaves the batch.
    fn finish(&mut self, key: JobKey, result: Result<(), Failure>) {
        let Some(job) = self.jobs.remove(&key) else {
            return;
        };
        if job.in_batch {
            self.batch.retain(|k| *k != key);
        }
        let Running {
            id,
            session,
            owner,
            started,
            ..
        } = job;
        let reply = match owner {
            Owner::Request(reply) => reply,
            Owner::Stream(sk) => return self.finish_stream_decode(sk, session, result),
        };
        self.requests -= 1;
        // The events sender drops with `job`, before the reply: every segment comes first.
        let result = result.and_then(|()| {
            catch_unwind(AssertUnwindSafe(|| {
                let token_logprobs = session.token_logprobs().to_vec();
                Finished { transcript: session.finish(), token_logprobs }
            }))
            .map_err(|p| panicked(p.as_ref()))
        });
        self.conclude(&id, started, reply, result);
    }

    fn conclude(
        &self,
        id: &str,
        started: Instant,
        reply: Reply,
        result: Result<Finished, Failure>,
    ) {
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(Failure::Cancelled) => Outcome::Cancelled,
            Err(Failure::Error(e)) if e.status == StatusCode::GATEWAY_TIMEOUT => Outcome::TimedOut,
            Err(Failure::Error(_)) => Outcome::Failed,
        };
        self.metrics.record_job(outcome);
        tracing::info!(job = %id, ?outcome, seconds, "job finished");
        let answer = match result {
            Ok(t) => Ok(t),
            Err(Failure::Error(e)) => Err(e),
            Err(Failure::Cancelled) => return,
        };
        // The handler may have given up in the meantime; then nobody needs the answer.
        let _ = reply.send(answer);
    }

    /// Drops the jobs whose client left or whose deadline passed (their windows leave the batch).
    fn check_all(&mut self) {
        let stop: Vec<(JobKey, Failure)> = self
            .jobs
            .iter()
            .filter_map(|(k, j)| match &j.owner {
                Owner::Request(reply) => check(reply, j.deadline).err().map(|f| (*k, f)),
                Owner::Stream(sk) => self
                    .streams
                    .get(sk)
                    .is_none_or(|s| s.gone)
                    .then_some((*k, Failure::Cancelled)),
            })
            .collect();
        for (k, f) in stop {
            self.finish(k, Err(f));
        }
    }

    /// Brings the current window of every job not in the batch into it: encodes those that
    /// need it (up to MAX_ENCODER_BATCH per pass; the rest wait for the next round).
    fn feed(&mut self) {
        let mut to_encode: Vec<(JobKey, Mel)> = Vec::new();
        let mut ready: Vec<(JobKey, Option<Vec<f32>>)> = Vec::new();
        let mut failed: Vec<(JobKey, Failure)> = Vec::new();
        for (&key, job) in self.jobs.iter() {
            if job.in_batch {
                continue;
            }
            if to_encode.len() >= MAX_ENCODER_BATCH {
                break;
            }
            match catch_unwind(AssertUnwindSafe(|| job.session.window_mel())) {
                Ok(Ok(Some(mel))) => to_encode.push((key, mel)),
                Ok(Ok(None)) => ready.push((key, None)),
                Ok(Err(e)) => failed.push((key, e.into())),
                Err(p) => failed.push((key, panicked(p.as_ref()))),
            }
        }
        if !to_encode.is_empty() {
            let (keys, mels): (Vec<JobKey>, Vec<Mel>) = to_encode.into_iter().unzip();
            let t0 = Instant::now();
            let encoded = self.encode(mels);
            self.metrics.record_phase(Phase::Encode, t0);
            for (key, r) in keys.into_iter().zip(encoded) {
                match r {
                    Ok(audio) => ready.push((key, Some(audio))),
                    Err(f) => failed.push((key, f)),
                }
            }
        }
        let t0 = Instant::now();
        for (key, encoded) in ready {
            let Some(job) = self.jobs.get_mut(&key) else {
                continue;
            };
            let batch = &mut self.batch;
            let joined = catch_unwind(AssertUnwindSafe(|| {
                let audio = job.session.window_audio(encoded)?;
                let (prompt, opts) = (job.session.window_prompt(), job.session.window_options());
                batch.join(key, &audio, prompt, opts).map_err(|(_, e)| Failure::from(e))
            }))
            .unwrap_or_else(|p| Err(panicked(p.as_ref())));
            match joined {
                Ok(()) => job.in_batch = true,
                Err(f) => failed.push((key, f)),
            }
        }
        self.metrics.record_phase(Phase::Join, t0);
        for (key, f) in failed {
            self.finish(key, Err(f));
        }
    }

    /// Encodes windows in one encoder pass; if the pass fails as a whole, each window is
    /// retried alone so that one bad window fails only its own job. Never panics.
    fn encode(&self, mels: Vec<Mel>) -> Vec<Result<Vec<f32>, Failure>> {
        let model = self.model;
        let metrics = &self.metrics;
        let encode = |mels: &[Mel]| {
            metrics.encoder_batches.fetch_add(1, Ordering::Relaxed);
            metrics
                .encoder_windows
                .fetch_add(mels.len() as u64, Ordering::Relaxed);
            match catch_unwind(AssertUnwindSafe(|| model.encode_batch(mels))) {
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
            }
        };
        match encode(&mels) {
            Ok(outs) => outs.into_iter().map(Ok).collect(),
            Err(e) if mels.len() == 1 => vec![Err(e)],
            Err(_) => mels
                .iter()
                .map(|m| encode(std::slice::from_ref(m)).map(|mut v| v.remove(0)))
                .collect(),
        }
    }

    /// Starts a live stream on the engine.
    fn open_stream(&mut self, open: OpenStream) {
        let key = self.next_key;
        self.next_key += 1;
        let model = self.model;
        match catch_unwind(AssertUnwindSafe(|| LiveStream::open(model, open))) {
            Ok(stream) => {
                self.streams.insert(key, stream);
                tracing::info!(stream = key, "live stream opened");
            }
            Err(p) => tracing::error!("opening a live stream panicked: {}", panic_text(p.as_ref())),
        }
    }

    /// Takes each live stream's audio, drops the streams whose session went away, and starts
    /// the decodings that are due (they join the batch like any request's window).
    fn poll_streams(&mut self) {
        let model = self.model;
        let keys: Vec<StreamKey> = self.streams.keys().copied().collect();
        for sk in keys {
            let Some(stream) = self.streams.get_mut(&sk) else { continue };
            let polled = catch_unwind(AssertUnwindSafe(|| {
                stream.poll_input(model);
                if stream.decoding { None } else { stream.next_decode() }
            }));
            let request = match polled {
                Ok(r) => r,
                Err(p) => {
                    tracing::error!(stream = sk, "a live stream panicked: {}", panic_text(p.as_ref()));
                    stream.fail(format!("the live stream failed unexpectedly ({}); open a new session", panic_text(p.as_ref())));
                    None
                }
            };
            if stream.gone {
                self.streams.remove(&sk);
                tracing::info!(stream = sk, "live stream closed");
                continue;
            }
            let Some(req) = request else { continue };
            let tr = &self.tr;
            let session = catch_unwind(AssertUnwindSafe(|| tr.start(&req.samples, &req.options)));
            match session {
                Ok(Ok(session)) => {
                    stream.decoding = true;
                    let key = self.next_key;
                    self.next_key += 1;
                    let now = Instant::now();
                    self.jobs.insert(
                        key,
                        Running {
                            id: format!("live-{sk}"),
                            session,
                            deadline: now + Duration::from_secs(3600),
                            events: None,
                            owner: Owner::Stream(sk),
                            started: now,
                            in_batch: false,
                            _audio: None,
                        },
                    );
                }
                Ok(Err(e)) => stream.complete(Err(e.to_string())),
                Err(p) => stream.complete(Err(format!("decoding failed unexpectedly ({})", panic_text(p.as_ref())))),
            }
        }
    }

    /// A live stream's decoding ended: its transcript (or failure) goes back to the stream.
    fn finish_stream_decode(&mut self, sk: StreamKey, session: Session<'static>, result: Result<(), Failure>) {
        let Some(stream) = self.streams.get_mut(&sk) else { return };
        let outcome = result.and_then(|()| {
            catch_unwind(AssertUnwindSafe(|| session.finish())).map_err(|p| panicked(p.as_ref()))
        });
        let outcome = match outcome {
            Ok(t) => Ok(t),
            Err(Failure::Cancelled) => Err("the decoding was cancelled".to_string()),
            Err(Failure::Error(e)) => Err(e.message),
        };
        if catch_unwind(AssertUnwindSafe(|| stream.complete(outcome))).is_err() {
            stream.fail("the live stream failed unexpectedly; open a new session".into());
        }
        if stream.gone {
            self.streams.remove(&sk);
        }
    }

    /// One decoder pass over every window in the batch; finished windows go back to their
    /// sessions, and finished sessions are answered.
    fn step(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let (sequences, rows) = (self.batch.len(), self.batch.rows());
        self.metrics.decoder_passes.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .decoder_sequences
            .fetch_add(sequences as u64, Ordering::Relaxed);
        self.metrics
            .decoder_rows
            .fetch_add(rows as u64, Ordering::Relaxed);
        let batch = &mut self.batch;
        let t0 = Instant::now();
        // The cross-attention K/V of each finished window come back for its word alignment.
        let stepped = catch_unwind(AssertUnwindSafe(|| batch.step_with_cross()));
        self.metrics.record_phase(Phase::Decode, t0);
        let t0 = Instant::now();
        let finished = match stepped {
            Ok(f) => f,
            Err(p) => {
                // The batch's state is unknown: fail the jobs it held and start a new one.
                let msg = panic_text(p.as_ref());
                tracing::error!("a decoder pass panicked ({msg}); failing the {sequences} job(s) in it");
                self.batch = ContinuousBatch::new(self.model, self.max_jobs);
                let keys: Vec<JobKey> = self
                    .jobs
                    .iter_mut()
                    .filter(|(_, j)| j.in_batch)
                    .map(|(k, j)| {
                        j.in_batch = false;
                        *k
                    })
                    .collect();
                for k in keys {
                    self.finish(k, Err(panicked(p.as_ref())));
                }
                return;
            }
        };
        for (key, result, cross) in finished {
            let Some(job) = self.jobs.get_mut(&key) else {
                continue;
            };
            job.in_batch = false;
            let outcome = match (result, cross) {
                (Ok(window), Some(cross)) => complete(job, window, &cross),
                (Ok(_), None) => Err(Failure::Error(ApiError::internal("a decoded window came back without its cross-attention K/V"))),
                (Err(e), _) => Err(e.into()),
            };
            match outcome {
                Ok(true) => self.finish(key, Ok(())),
                Ok(false) => {}
                Err(f) => {
                    tracing::warn!(job = %job.id, "window failed");
                    self.finish(key, Err(f))
                }
            }
        }
        self.metrics.record_phase(Phase::Complete, t0);
    }
}

/// Applies a decoded window to its session (with its words, when the job asks for them, from
/// `cross`, the K/V the window was decoded with), sending its segments to the client when it
/// streams. Returns whether the session is done.
fn complete(job: &mut Running, window: WindowResult, cross: &CrossKv) -> Result<bool, Failure> {
    let Running {
        session, events, ..
    } = job;
    catch_unwind(AssertUnwindSafe(|| {
        let before = session.segments().len();
        session.complete_window_with_words(window, cross, &mut |_| {})?;
        if let Some(tx) = events {
            for (seg, lp) in session.segments()[before..].iter().zip(&session.token_logprobs()[before..]) {
                // A closed receiver means the client left; the next check notices.
                let _ = tx.send(SegmentEvent { segment: seg.clone(), logprobs: lp.clone() });
            }
        }
        Ok(session.is_done())
    }))
    .unwrap_or_else(|p| {
        tracing::error!(job = %job.id, "applying a window panicked: {}", panic_text(p.as_ref()));
        Err(panicked(p.as_ref()))
    })
}

/// Debug builds only: a job whose prompt equals `$AMANUENSIS_FAULT_PANIC_PROMPT` panics when the
/// engine admits it, so that the tests can check that a panicking job leaves the server serving.
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

