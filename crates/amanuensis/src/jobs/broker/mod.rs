//! Jobs on NATS JetStream (`serve --broker nats://HOST:4222`, `amanuensis worker --broker ...`).
//! All of the `async-nats` code of the app lives in this module and `worker`.
//!
//! What is where on the broker:
//! - stream `AMANUENSIS_JOBS` (work-queue retention, subject `amanuensis.jobs`): one message
//!   per accepted job, its id; the workers share the durable pull consumer
//!   `amanuensis_workers` (explicit acks, `AckWait` and `MaxDeliver` from the workers'
//!   `--ack-wait-secs` and `--max-attempts`). A message leaves the stream when it is acked.
//! - key-value bucket `amanuensis_jobs`: key = job id, value = the job's `Record` (status,
//!   progress, timestamps, error, the result object's name) as JSON. Every change after the
//!   create is a compare-and-set on the key's revision, so a job is finished once: a worker
//!   that finds it already done (a redelivery) only acks its message.
//! - object store `amanuensis_audio`: the uploaded audio (object = job id), in chunks far below
//!   the max payload; removed when the job ends.
//! - object store `amanuensis_results`: the result (object = `<id>.<nuid>`, one per attempt;
//!   the record names the one that won the compare-and-set, a losing attempt deletes its own).
//!
//! Retention: `serve` prunes finished jobs older than `--job-retention` every hour (record and
//! objects), as the SQLite store does; buckets have no TTL, so a job queued for long never
//! expires under a worker.

pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store::ObjectStore, stream};
use axum::http::StatusCode;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::store::{now, JobRow, Status};
use crate::server::error::ApiError;

pub const STREAM: &str = "AMANUENSIS_JOBS";
pub const SUBJECT: &str = "amanuensis.jobs";
pub const CONSUMER: &str = "amanuensis_workers";
pub const KV_BUCKET: &str = "amanuensis_jobs";
pub const AUDIO_BUCKET: &str = "amanuensis_audio";
pub const RESULT_BUCKET: &str = "amanuensis_results";
/// Object chunk size: well under NATS's default 1 MiB max payload.
const CHUNK: usize = 128 * 1024;
/// How long one broker request may take before the API answers 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A job as the key-value bucket holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub status: String,
    pub progress: f64,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub filename: Option<String>,
    pub fields: Vec<(String, String)>,
    pub webhook_url: Option<String>,
    pub error: Option<Value>,
    pub duration: Option<f64>,
    /// The result's object in `amanuensis_results`, once done.
    #[serde(default)]
    pub result: Option<String>,
    /// Deliveries of its message so far (1 on the first).
    #[serde(default)]
    pub attempts: i64,
    /// Who runs (or ran) it: `host/pid`.
    #[serde(default)]
    pub worker: Option<String>,
}

impl Record {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Failed)
    }

    pub fn set_status(&mut self, s: Status) {
        self.status = s.as_str().to_string();
    }

    pub fn row(&self) -> JobRow {
        JobRow {
            id: self.id.clone(),
            status: self.status(),
            progress: self.progress,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            filename: self.filename.clone(),
            fields: self.fields.clone(),
            webhook_url: self.webhook_url.clone(),
            error: self.error.clone(),
            duration: self.duration,
        }
    }

    fn bytes(&self) -> axum::body::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }
}

/// What a compare-and-set change did.
pub enum Change {
    /// Written; the record as it is now.
    Done(Record),
    /// Left alone (the closure said no); the record as it is.
    Kept(Record),
    /// No such job.
    Missing,
}

/// A connection to the broker with its stream, bucket and object stores (created if missing).
pub struct Broker {
    pub url: String,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub kv: kv::Store,
    pub audio: ObjectStore,
    pub results: ObjectStore,
}

/// A broker error as the HTTP API answers it: 503, retry later.
pub fn unavailable(url: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", format!("the job broker at {url} did not answer ({e}); retry later, and check that nats-server is running"))
        .retry_after(5)
}

impl Broker {
    /// Connects to `url` and makes sure the stream, the bucket and the object stores exist.
    /// Fails at once, naming the URL, if no NATS server with JetStream answers there.
    pub async fn connect(url: &str) -> anyhow::Result<Broker> {
        let hint = "start one with `nats-server -js` (JetStream on), or fix --broker (e.g. nats://127.0.0.1:4222)";
        // A cluster: several URLs separated by commas (the client learns the others too).
        let addrs = url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--broker {url}: not a NATS address ({e}); use nats://HOST:4222 (several separated by commas)"))?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name("amanuensis")
            .connect(addrs)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to the NATS broker at {url}: {e}; {hint}"))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        let no_js = |what: &str, e: &dyn std::fmt::Display| anyhow::anyhow!("the NATS server at {url} refused to set up {what}: {e}; it needs JetStream: start it with `nats-server -js`");
        js.get_or_create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec![SUBJECT.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| no_js(&format!("the stream {STREAM}"), &e))?;
        // The bucket's stream is made here as `create_key_value` would (it first asks for the
        // account's info, which nats-server 2.9's answer fails to parse in async-nats 0.51).
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{KV_BUCKET}"),
            description: Some("amanuensis job records".into()),
            subjects: vec![format!("$KV.{KV_BUCKET}.>")],
            max_messages_per_subject: 1,
            max_message_size: -1,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| no_js(&format!("the key-value bucket {KV_BUCKET}"), &e))?;
        let kv = js.get_key_value(KV_BUCKET).await.map_err(|e| no_js(&format!("the key-value bucket {KV_BUCKET}"), &e))?;
        let mut stores = Vec::new();
        for name in [AUDIO_BUCKET, RESULT_BUCKET] {
            let s = match js.get_object_store(name).await {
                Ok(s) => s,
                Err(_) => js
                    .create_object_store(async_nats::jetstream::object_store::Config { bucket: name.into(), storage: stream::StorageType::File, ..Default::default() })
                    .await
                    .map_err(|e| no_js(&format!("the object store {name}"), &e))?,
            };
            stores.push(s);
        }
        let results = stores.pop().unwrap();
        let audio = stores.pop().unwrap();
        Ok(Broker { url: url.to_string(), client, js, kv, audio, results })
    }

    fn err(&self, e: impl std::fmt::Display) -> ApiError {
        unavailable(&self.url, e)
    }

    /// Runs one broker operation within the request timeout (503 past it).
    async fn timed<T, E: std::fmt::Display>(&self, f: impl std::future::Future<Output = Result<T, E>>) -> Result<T, ApiError> {
        // Cut off from the broker (the client reconnects in the background): 503 at once
        // rather than after the request timeout.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(self.err("not connected; reconnecting"));
        }
        match tokio::time::timeout(REQUEST_TIMEOUT * 2, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.err(e)),
            Err(_) => Err(self.err("timed out")),
        }
    }

    /// Stores the audio, creates the job's record, then queues its id. 503 if any step fails
    /// (what was stored is removed again).
    pub async fn submit(&self, id: &str, audio: Vec<u8>, filename: Option<String>, fields: Vec<(String, String)>, webhook_url: Option<String>) -> Result<JobRow, ApiError> {
        let meta = async_nats::jetstream::object_store::ObjectMetadata { name: id.to_string(), chunk_size: Some(CHUNK), ..Default::default() };
        let mut reader: &[u8] = &audio;
        self.timed(self.audio.put(meta, &mut reader)).await?;
        let rec = Record {
            id: id.to_string(),
            status: Status::Queued.as_str().into(),
            progress: 0.0,
            created_at: now(),
            started_at: None,
            finished_at: None,
            filename,
            fields,
            webhook_url,
            error: None,
            duration: None,
            result: None,
            attempts: 0,
            worker: None,
        };
        let queued = async {
            self.timed(self.kv.create(id, rec.bytes())).await?;
            let ack = self.timed(self.js.publish(SUBJECT, id.to_string().into())).await?;
            self.timed(std::future::IntoFuture::into_future(ack)).await
        };
        if let Err(e) = queued.await {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let _ = self.kv.purge(id).await;
                let _ = self.audio.delete(id).await;
            })
            .await;
            return Err(e);
        }
        Ok(rec.row())
    }

    /// The job's record and its revision.
    pub async fn get(&self, id: &str) -> Result<Option<(Record, u64)>, ApiError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let entry = self.timed(self.kv.entry(id)).await?;
        Ok(entry.filter(|e| e.operation == kv::Operation::Put).and_then(|e| serde_json::from_slice::<Record>(&e.value).ok().map(|r| (r, e.revision))))
    }

    /// Changes the job's record with `f` by compare-and-set, again on a concurrent change;
    /// `f` returns false to leave it alone.
    pub async fn change(&self, id: &str, f: impl Fn(&mut Record) -> bool) -> Result<Change, ApiError> {
        for _ in 0..20 {
            let Some((mut rec, rev)) = self.get(id).await? else { return Ok(Change::Missing) };
            if !f(&mut rec) {
                return Ok(Change::Kept(rec));
            }
            match tokio::time::timeout(REQUEST_TIMEOUT * 2, self.kv.update(id, rec.bytes(), rev)).await {
                Ok(Ok(_)) => return Ok(Change::Done(rec)),
                Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Ok(Err(e)) => return Err(self.err(e)),
                Err(_) => return Err(self.err("timed out")),
            }
        }
        Err(self.err("the job's record kept changing under 20 compare-and-set attempts"))
    }

    /// Every job's record (in no order).
    pub async fn all(&self) -> Result<Vec<Record>, ApiError> {
        let keys: Vec<String> = self
            .timed(async {
                let keys = self.kv.keys().await.map_err(|e| e.to_string())?;
                keys.try_collect::<Vec<String>>().await.map_err(|e| e.to_string())
            })
            .await?;
        let got: Vec<Result<Option<(Record, u64)>, ApiError>> = futures_util::stream::iter(keys).map(|k| async move { self.get(&k).await }).buffer_unordered(32).collect().await;
        let mut out = Vec::with_capacity(got.len());
        for g in got {
            if let Some((r, _)) = g? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Jobs newest first, optionally of one status.
    pub async fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<JobRow>, ApiError> {
        let mut all: Vec<Record> = self.all().await?.into_iter().filter(|r| status.is_none_or(|s| r.status() == s)).collect();
        all.sort_by(|a, b| b.created_at.total_cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        Ok(all.iter().take(limit).map(Record::row).collect())
    }

    /// Marks a queued or running job cancelled; the worker running it sees it at its next
    /// check (at most a second later) and drops it, with its audio.
    pub async fn cancel(&self, id: &str) -> Result<Option<JobRow>, ApiError> {
        let changed = self
            .change(id, |r| {
                if r.status().is_final() {
                    return false;
                }
                r.set_status(Status::Cancelled);
                r.finished_at = Some(now());
                r.error = Some(super::backend::cancelled_error());
                true
            })
            .await?;
        // The audio stays: a worker may be reading it; the worker that sees the cancel (or
        // takes the message later) deletes it.
        Ok(match changed {
            Change::Done(r) | Change::Kept(r) => Some(r.row()),
            Change::Missing => None,
        })
    }

    /// Deletes a job's record, audio and result.
    pub async fn delete(&self, id: &str) -> Result<(), ApiError> {
        let rec = self.get(id).await?;
        self.timed(self.kv.purge(id)).await?;
        self.remove_objects(id, rec.and_then(|(r, _)| r.result)).await;
        Ok(())
    }

    async fn remove_objects(&self, id: &str, result: Option<String>) {
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let _ = self.audio.delete(id).await;
            if let Some(r) = result {
                let _ = self.results.delete(&r).await;
            }
        })
        .await;
    }

    /// The job and, once done, its result.
    pub async fn result(&self, id: &str) -> Result<(Option<JobRow>, Option<Value>), ApiError> {
        let Some((rec, _)) = self.get(id).await? else { return Ok((None, None)) };
        let result = match (&rec.result, rec.status()) {
            (Some(name), Status::Done) => Some(self.read_json(name).await?),
            _ => None,
        };
        Ok((Some(rec.row()), result))
    }

    async fn read_json(&self, name: &str) -> Result<Value, ApiError> {
        let bytes = self.read_object(&self.results, name).await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(format!("the stored result {name} cannot be read: {e}")))
    }

    /// A whole object's bytes.
    pub async fn read_object(&self, store: &ObjectStore, name: &str) -> Result<Vec<u8>, ApiError> {
        self.timed(async {
            let mut obj = store.get(name).await.map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            obj.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(buf)
        })
        .await
    }

    /// Deletes the jobs finished before `before` (seconds since the epoch) with their objects;
    /// returns how many.
    pub async fn prune(&self, before: f64) -> Result<usize, ApiError> {
        let mut n = 0;
        for r in self.all().await? {
            if r.status().is_final() && r.finished_at.is_some_and(|f| f < before) {
                self.timed(self.kv.purge(&r.id)).await?;
                self.remove_objects(&r.id, r.result.clone()).await;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Job ids are `job_<hex>`: anything else is no key of ours (and may not be a valid subject).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Prunes finished jobs hourly (`serve --broker`).
pub async fn retention(broker: Arc<Broker>, keep: Duration) {
    loop {
        match broker.prune(now() - keep.as_secs_f64()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("job retention: {n} old job(s) deleted from the broker"),
            Err(e) => tracing::warn!("job retention: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_records() {
        assert!(valid_id("job_0123abcd") && !valid_id("a.b") && !valid_id("") && !valid_id("*"));
        let r = Record {
            id: "job_1".into(),
            status: "running".into(),
            progress: 0.5,
            created_at: 1.0,
            started_at: Some(2.0),
            finished_at: None,
            filename: Some("a.wav".into()),
            fields: vec![("language".into(), "en".into())],
            webhook_url: None,
            error: None,
            duration: Some(3.0),
            result: None,
            attempts: 1,
            worker: Some("h/1".into()),
        };
        let back: Record = serde_json::from_slice(&r.bytes()).unwrap();
        assert_eq!(back.row().to_json(), r.row().to_json());
        assert_eq!(back.status(), Status::Running);
    }
}
