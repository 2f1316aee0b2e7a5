//! The server's one error type, answered in OpenAI's error shape
//! `{"error": {"message", "type", "param", "code"}}` on every endpoint.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error that becomes an HTTP response. `message` says what went wrong and what to do.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The form field at fault, if one is.
    pub param: Option<String>,
    /// A stable machine-readable code (`invalid_value`, `queue_full`, ...).
    pub code: &'static str,
    /// Seconds a client should wait before retrying (503 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code,
            retry_after: None,
        }
    }

    /// 400 for a bad form field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_value", message).param(param)
    }

    pub fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_string());
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// OpenAI's `type`: client mistakes are `invalid_request_error`, the rest `server_error`.
    pub fn kind(&self) -> &'static str {
        if self.status.is_client_error() {
            "invalid_request_error"
        } else {
            "server_error"
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({ "error": {
            "message": self.message, "type": self.kind(), "param": self.param, "code": self.code,
        }})
    }

    /// Maps an engine error: bad audio and bad options are the client's, the rest are ours.
    pub fn from_whisper(e: &whisper::Error) -> Self {
        match e {
            whisper::Error::Audio { reason, .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_audio",
                format!("the uploaded file could not be decoded as audio: {reason}"),
            )
            .param("file"),
            whisper::Error::AudioTooLong { limit_secs, .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "audio_too_long",
                format!("the uploaded audio is longer than the limit of {limit_secs} s; cut it into parts"),
            )
            .param("file"),
            whisper::Error::InvalidArgument(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_value", m.clone())
            }
            other => ApiError::internal(format!("transcription failed: {other}")),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.to_json())).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
