//! The one seam between the jobs API and where jobs live: the embedded SQLite store (`Local`,
//! the default: this server runs them) or a NATS JetStream broker (`Broker`, `serve --broker`:
//! `amanuensis worker` processes run them). The handlers in `api` talk to this enum only, so
//! the HTTP API behaves the same on both.

use std::sync::Arc;

use serde_json::{json, Value};

use super::broker::Broker;
use super::runner::{blocking, Jobs};
use super::store::{JobRow, Status};
use crate::server::error::ApiError;

#[derive(Clone)]
pub enum JobBackend {
    Local(Arc<Jobs>),
    Broker(Arc<Broker>),
}

/// The error a cancelled job carries.
pub fn cancelled_error() -> Value {
    json!({ "message": "cancelled by DELETE /v1/jobs/{id}", "code": "cancelled" })
}

impl JobBackend {
    /// Stores the audio and the queued job; answers once both are durable.
    pub async fn submit(&self, id: &str, audio: Vec<u8>, filename: Option<String>, fields: Vec<(String, String)>, webhook_url: Option<String>) -> Result<JobRow, ApiError> {
        match self {
            JobBackend::Local(jobs) => {
                let store = jobs.store.clone();
                let sid = id.to_string();
                let row = blocking(move || store.insert(&sid, &audio, filename.as_deref(), &fields, webhook_url.as_deref())).await?;
                jobs.wake();
                Ok(row)
            }
            JobBackend::Broker(b) => b.submit(id, audio, filename, fields, webhook_url).await,
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRow>, ApiError> {
        match self {
            JobBackend::Local(jobs) => {
                let (store, sid) = (jobs.store.clone(), id.to_string());
                blocking(move || store.get(&sid)).await
            }
            JobBackend::Broker(b) => Ok(b.get(id).await?.map(|(r, _)| r.row())),
        }
    }

    /// Jobs newest first, optionally of one status.
    pub async fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<JobRow>, ApiError> {
        match self {
            JobBackend::Local(jobs) => {
                let store = jobs.store.clone();
                blocking(move || store.list(status, limit)).await
            }
            JobBackend::Broker(b) => b.list(status, limit).await,
        }
    }

    /// Marks a queued or running job cancelled (and stops it); returns the job as it is now,
    /// `None` if there is no such job.
    pub async fn cancel(&self, id: &str) -> Result<Option<JobRow>, ApiError> {
        match self {
            JobBackend::Local(jobs) => {
                let (store, sid) = (jobs.store.clone(), id.to_string());
                blocking(move || store.fail(&sid, Status::Cancelled, &cancelled_error())).await?;
                jobs.cancel(id);
                self.get(id).await
            }
            JobBackend::Broker(b) => b.cancel(id).await,
        }
    }

    /// Deletes a finished job with its result.
    pub async fn delete(&self, id: &str) -> Result<(), ApiError> {
        match self {
            JobBackend::Local(jobs) => {
                let (store, sid) = (jobs.store.clone(), id.to_string());
                blocking(move || store.delete(&sid)).await.map(|_| ())
            }
            JobBackend::Broker(b) => b.delete(id).await,
        }
    }

    /// The job and its stored result (set once it is done).
    pub async fn result(&self, id: &str) -> Result<(Option<JobRow>, Option<Value>), ApiError> {
        match self {
            JobBackend::Local(jobs) => {
                let (store, sid) = (jobs.store.clone(), id.to_string());
                blocking(move || Ok((store.get(&sid)?, store.result(&sid)?))).await
            }
            JobBackend::Broker(b) => b.result(id).await,
        }
    }
}
