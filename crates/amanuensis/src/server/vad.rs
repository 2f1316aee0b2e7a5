//! The VAD for server requests (`vad_filter` on `/transcribe`, `chunking_strategy` on OpenAI's
//! routes): finds the speech of an upload, so that only speech is queued, and maps the
//! segments' times back to the upload's timeline. One Silero instance, loaded on first use.

use std::sync::{Mutex, OnceLock};

use axum::http::StatusCode;
use serde_json::Value;
use whisper::transcribe::{Segment, Transcript};
use whisper::vad::{file_probabilities, speech_timestamps, SileroVad, SpeechTimeline, VadOptions};

use super::error::ApiError;

static VAD: OnceLock<Result<Mutex<SileroVad>, String>> = OnceLock::new();

fn unavailable(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "vad_unavailable",
        format!("voice activity detection is not available on this server ({why}); send the request without it, or install it on the server with `amanuensis models pull silero-vad`"),
    )
}

/// The speech of `samples` under `opts`, concatenated, and the map back to the original times.
/// Blocking (runs the model): call it off the async threads.
pub fn speech_only(samples: &[f32], opts: &VadOptions) -> Result<(Vec<f32>, SpeechTimeline), ApiError> {
    let vad = VAD.get_or_init(|| crate::vad_args::load_vad().map(Mutex::new).map_err(|e| format!("{e:#}")));
    let vad = vad.as_ref().map_err(|e| unavailable(e))?;
    let mut vad = vad.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let probs = file_probabilities(&mut *vad, samples).map_err(|e| ApiError::internal(format!("voice activity detection failed: {e}")))?;
    drop(vad);
    let chunks = speech_timestamps(&probs, samples.len(), opts);
    let speech = chunks.iter().flat_map(|c| samples[c.start..c.end].iter().copied()).collect();
    Ok((speech, SpeechTimeline::new(&chunks)))
}

/// Maps a segment decoded from the speech back to the original timeline (its words each by
/// the speech chunk of its middle, as faster-whisper does).
pub fn restore(seg: &mut Segment, map: &SpeechTimeline) {
    whisper::words::restore_speech_timestamps(seg, map);
}

/// Maps a whole transcript back; `duration` is the original one.
pub fn restore_all(t: &mut Transcript, map: &SpeechTimeline, duration: f64) {
    t.segments.iter_mut().for_each(|s| restore(s, map));
    t.duration = duration;
}

/// VAD options from the native endpoint's `vad_*` fields (faster-whisper's `VadOptions`).
pub fn native_options(get: &dyn Fn(&str) -> Result<Option<String>, ApiError>) -> Result<VadOptions, ApiError> {
    let mut o = VadOptions::default();
    let num = |name: &str| -> Result<Option<f64>, ApiError> {
        match get(name)? {
            None => Ok(None),
            Some(v) => v.parse::<f64>().ok().filter(|x| x.is_finite()).map(Some).ok_or_else(|| ApiError::invalid(name, format!("{name} must be a number, not `{v}`"))),
        }
    };
    let ms = |name: &str| -> Result<Option<u32>, ApiError> {
        match get(name)? {
            None => Ok(None),
            Some(v) => v.parse::<u32>().map(Some).map_err(|_| ApiError::invalid(name, format!("{name} must be a whole number of milliseconds, not `{v}`"))),
        }
    };
    if let Some(v) = num("vad_threshold")? {
        o.threshold = v;
    }
    if let Some(v) = num("vad_neg_threshold")? {
        o.neg_threshold = Some(v);
    }
    if let Some(v) = ms("vad_min_speech_duration_ms")? {
        o.min_speech_duration_ms = v;
    }
    if let Some(v) = num("vad_max_speech_duration_s")? {
        o.max_speech_duration_s = v;
    }
    if let Some(v) = ms("vad_min_silence_duration_ms")? {
        o.min_silence_duration_ms = v;
    }
    if let Some(v) = ms("vad_speech_pad_ms")? {
        o.speech_pad_ms = v;
    }
    o.validate().map_err(|e| ApiError::invalid("vad_filter", e.to_string()))?;
    Ok(o)
}

/// OpenAI's `chunking_strategy`: `"auto"`, or a JSON object `{"type": "server_vad",
/// "threshold", "prefix_padding_ms", "silence_duration_ms"}`.
pub fn chunking_strategy(v: &str) -> Result<VadOptions, ApiError> {
    const P: &str = "chunking_strategy";
    if v == "auto" {
        return Ok(VadOptions::default());
    }
    let obj: Value = serde_json::from_str(v).map_err(|_| {
        ApiError::invalid(P, format!("chunking_strategy must be \"auto\" or a JSON object {{\"type\": \"server_vad\", ...}}, not `{v}`"))
    })?;
    let Some(map) = obj.as_object() else {
        return Err(ApiError::invalid(P, "chunking_strategy must be \"auto\" or a JSON object"));
    };
    if map.get("type").and_then(Value::as_str) != Some("server_vad") {
        return Err(ApiError::invalid(P, "chunking_strategy's type must be \"server_vad\""));
    }
    let mut o = VadOptions::default();
    for (k, val) in map {
        let n = || val.as_f64().filter(|x| x.is_finite() && *x >= 0.0).ok_or_else(|| ApiError::invalid(P, format!("chunking_strategy.{k} must be a non-negative number")));
        match k.as_str() {
            "type" => {}
            "threshold" => o.threshold = n()?,
            "prefix_padding_ms" => o.speech_pad_ms = n()?.min(u32::MAX as f64) as u32,
            "silence_duration_ms" => o.min_silence_duration_ms = n()?.min(u32::MAX as f64) as u32,
            other => return Err(ApiError::invalid(P, format!("unknown chunking_strategy field `{other}`; known: type, threshold, prefix_padding_ms, silence_duration_ms"))),
        }
    }
    o.validate().map_err(|e| ApiError::invalid(P, format!("chunking_strategy: {e}")))?;
    Ok(o)
}
