//! The jobs' HTTP handlers: `POST /v1/jobs`, `GET /v1/jobs`, `GET /v1/jobs/{id}`,
//! `GET /v1/jobs/{id}/result`, `DELETE /v1/jobs/{id}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::backend::JobBackend;
use super::store::{transcript_from_json, Status};
use crate::output::{self, Format};
use crate::server::api::{read_form, Endpoint};
use crate::server::error::ApiError;
use crate::server::params::{parse_params, Ask};
use crate::server::render;
use crate::server::AppState;

/// Most jobs one `GET /v1/jobs` lists.
const MAX_LIST: usize = 1000;

fn jobs(app: &AppState) -> Result<JobBackend, ApiError> {
    app.jobs.clone().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "jobs_unavailable", "the jobs store could not be opened when the server started (see its log; check --data-dir)")
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "job_not_found", format!("no job `{id}` (it may have been deleted, or pruned after --job-retention)")).param("id")
}

fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("job_{:016x}", h.finish())
}

/// Checks a webhook address: `http://host[:port]/path` (this build has no TLS client).
pub(crate) fn check_webhook(url: &str) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::invalid("webhook_url", format!("webhook_url `{url}` {why}"));
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("is not a valid URL"));
    }
    if url.starts_with("https://") {
        return Err(bad("uses https, which this server cannot send (it is built without TLS); use an http:// address, e.g. a local relay"));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(bad("must start with http://"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(h, port)| if port.parse::<u16>().is_ok() { h } else { "" });
    if name.is_empty() || host.contains('@') {
        return Err(bad("has no valid host (use http://host[:port]/path)"));
    }
    Ok(())
}

/// `POST /v1/jobs`: the form of `/v1/audio/transcriptions` plus `webhook_url`. Answers 202
/// once the audio and the job's row are on disk.
pub async fn submit(State(app): State<Arc<AppState>>, mp: Result<Multipart, MultipartRejection>) -> Response {
    match submit_inner(app, mp).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn submit_inner(app: Arc<AppState>, mp: Result<Multipart, MultipartRejection>) -> Result<Response, ApiError> {
    let jobs = jobs(&app)?;
    // The options are checked against the loaded model, as for a synchronous request.
    app.engine()?;
    let mp = mp.map_err(|r| ApiError::new(r.status(), "invalid_multipart", format!("send a multipart/form-data body with the audio in a field named `file` ({})", r.body_text())))?;
    let mut allowed: Vec<&str> = Endpoint::Transcriptions.fields().to_vec();
    allowed.push("webhook_url");
    let limit = app.cfg.max_upload_bytes;
    let mut form = match tokio::time::timeout(app.cfg.read_timeout, read_form(mp, &allowed, limit)).await {
        Ok(f) => f?,
        Err(_) => return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request body was not received in time; upload faster or send a smaller file")),
    };
    let webhook_url = form.get("webhook_url")?.map(str::to_string);
    if let Some(u) = &webhook_url {
        check_webhook(u)?;
    }
    form.fields.retain(|(n, _)| n != "webhook_url");
    let params = parse_params(&form, Endpoint::Transcriptions, &app)?;
    if params.stream {
        return Err(ApiError::invalid("stream", "a job is not streamed: leave `stream` out, and poll GET /v1/jobs/{id} (or give a webhook_url)"));
    }
    let Some((bytes, filename)) = form.file.take() else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "missing_file", "no audio: send the file in a multipart field named `file` (e.g. curl -F file=@audio.wav ...)").param("file"));
    };
    if bytes.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_audio", "the uploaded file is empty (0 bytes)").param("file"));
    }
    let id = new_id();
    let row = jobs.submit(&id, bytes, filename, form.fields, webhook_url).await?;
    tracing::info!(job = %id, "job accepted");
    let mut resp = (StatusCode::ACCEPTED, Json(row.to_json())).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

pub async fn status(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match jobs(&app)?.get(&id).await? {
        Some(row) => Ok(Json(row.to_json()).into_response()),
        None => Err(not_found(&id)),
    }
}

pub async fn list(State(app): State<Arc<AppState>>, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let jobs = jobs(&app)?;
    for k in q.keys() {
        if k != "status" && k != "limit" {
            return Err(ApiError::invalid(k, format!("unknown query parameter `{k}`; use status and limit")));
        }
    }
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| ApiError::invalid("status", format!("unknown status `{s}`; use queued, running, done, failed or cancelled")))?),
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l.parse::<usize>().ok().filter(|n| (1..=MAX_LIST).contains(n)).ok_or_else(|| ApiError::invalid("limit", format!("limit must be a whole number from 1 to {MAX_LIST}, not `{l}`")))?,
    };
    let rows = jobs.list(status, limit).await?;
    Ok(Json(json!({ "object": "list", "data": rows.iter().map(|r| r.to_json()).collect::<Vec<_>>() })).into_response())
}

/// `DELETE /v1/jobs/{id}`: a queued or running job is cancelled (and kept, as `cancelled`);
/// a finished one is deleted with its result.
pub async fn delete(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let jobs = jobs(&app)?;
    let row = jobs.get(&id).await?.ok_or_else(|| not_found(&id))?;
    if row.status.is_final() {
        jobs.delete(&id).await?;
        return Ok(Json(json!({ "id": id, "object": "transcription.job", "deleted": true })).into_response());
    }
    let row = jobs.cancel(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(row.to_json()).into_response())
}

fn parse_format(f: &str) -> Result<Format, ApiError> {
    Ok(match f {
        "json" => Format::Json,
        "verbose_json" => Format::VerboseJson,
        "text" => Format::Txt,
        "srt" => Format::Srt,
        "vtt" => Format::Vtt,
        other => return Err(ApiError::invalid("format", format!("unknown format `{other}`; use one of json, text, srt, verbose_json, vtt"))),
    })
}

/// `GET /v1/jobs/{id}/result?format=...`: the transcript as `/v1/audio/transcriptions` would
/// have answered it (default: the job's `response_format`, else json). 409 until it is done.
pub async fn result(State(app): State<Arc<AppState>>, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let jobs = jobs(&app)?;
    let asked = q.get("format").map(|f| parse_format(f)).transpose()?;
    let (row, result) = jobs.result(&id).await?;
    let row = row.ok_or_else(|| not_found(&id))?;
    let result = match (row.status, result) {
        (Status::Done, Some(r)) => r,
        (s, _) => {
            let mut e = ApiError::new(StatusCode::CONFLICT, "job_not_done", format!("job `{id}` is {}, so it has no result{}", s.as_str(), if s.is_final() { "" } else { " yet; poll GET /v1/jobs/{id} until its status is done" }));
            if !s.is_final() {
                e = e.retry_after(2);
            }
            return Err(e);
        }
    };
    let format = match asked {
        Some(f) => f,
        None => parse_format(result["response_format"].as_str().unwrap_or("json"))?,
    };
    let t = transcript_from_json(&result["transcript"]).ok_or_else(|| ApiError::internal("the stored result cannot be read"))?;
    let flag = |k: &str| result["ask"][k].as_bool().unwrap_or(false);
    let ask = Ask { words: flag("words"), segments: result["ask"]["segments"].as_bool().unwrap_or(true), logprobs: flag("logprobs"), usage: flag("usage") };
    let task = if result["task"] == "translate" { whisper::tokenizer::Task::Translate } else { whisper::tokenizer::Task::Transcribe };
    let lps: Vec<Vec<f32>> = serde_json::from_value(result["token_logprobs"].clone()).unwrap_or_default();
    Ok(match format {
        Format::Json => {
            let model = app.model().ok_or_else(crate::server::loading)?;
            Json(render::openai_json(&t, ask, &lps, &model.tokenizer)).into_response()
        }
        Format::VerboseJson => Json(render::openai_verbose(&t, ask, task)).into_response(),
        fmt => {
            let mut r = output::render(&t, fmt, render::task_name(task)).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(fmt.content_type()));
            r
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        for ok in ["http://127.0.0.1:9/hook", "http://example.com", "http://h:80/a?b=c"] {
            assert!(check_webhook(ok).is_ok(), "{ok}");
        }
        for bad in ["ftp://x/", "http://", "http:///x", "https://x/", "http://a b/", "not a url", "http://u@h/", "http://h:99999/"] {
            assert_eq!(check_webhook(bad).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(parse_format("srt").unwrap(), Format::Srt);
        assert!(parse_format("txt").is_err());
    }
}
