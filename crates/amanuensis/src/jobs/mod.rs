//! Durable transcription jobs: `POST /v1/jobs` spools the audio and commits a row in an
//! embedded SQLite database under `--data-dir`, answers 202, and the runner transcribes it on
//! the server's engine; clients poll `GET /v1/jobs/{id}` and fetch `/result`, or get a webhook.
//! Included as a child of `server` (it uses the server's form parsing, options and rendering).

pub mod api;
pub mod runner;
pub mod store;
