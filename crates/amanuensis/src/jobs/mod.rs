//! Durable transcription jobs: `POST /v1/jobs` stores the audio and the job, answers 202, and
//! the job is transcribed later; clients poll `GET /v1/jobs/{id}` and fetch `/result`, or get
//! a webhook. Two backends behind `backend::JobBackend`: the embedded SQLite store under
//! `--data-dir` (`store`, run on this server's engine by `runner`), or NATS JetStream with
//! `serve --broker` (`broker`: a work queue, a key-value bucket and object stores; jobs run
//! by `amanuensis worker` processes). Included as a child of `server` (it uses the server's
//! form parsing, options and rendering).

pub mod api;
pub mod backend;
pub mod broker;
pub mod runner;
pub mod store;
