//! The fields of OpenAI's transcription API beyond the common ones, as the official `openai`
//! SDK sends them: `timestamp_granularities[]`, `include[]`, `chunking_strategy` (the SDK sends
//! an object as `chunking_strategy[type]`, `chunking_strategy[threshold]`, ...), `keywords[]`,
//! `languages[]`, and the diarization fields this server refuses with the reason.

use whisper::transcribe::TranscribeOptions;

use super::api::{Endpoint, Form};
use super::error::ApiError;
use super::params::{unsupported, Ask};
use crate::output::Format;

/// The keys of a `server_vad` chunking strategy.
pub(super) const CHUNKING_KEYS: [&str; 4] = ["type", "threshold", "prefix_padding_ms", "silence_duration_ms"];

/// Every value of a list field, sent as `name[]` (the SDK's way) or repeated `name`.
fn list<'a>(form: &'a Form, name: &str) -> Vec<(&'a str, &'a str)> {
    let bracketed = format!("{name}[]");
    form.fields
        .iter()
        .filter(|(n, _)| *n == name || *n == bracketed)
        .map(|(n, v)| (n.as_str(), v.trim()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// `chunking_strategy` as one value (`auto`, or a JSON object), or assembled from the SDK's
/// `chunking_strategy[key]` fields into that JSON object.
pub(super) fn chunking_strategy(form: &Form) -> Result<Option<String>, ApiError> {
    let whole = form.get("chunking_strategy")?;
    let mut obj = serde_json::Map::new();
    for key in CHUNKING_KEYS {
        let name = format!("chunking_strategy[{key}]");
        if let Some(v) = form.get(&name)? {
            let value = match key {
                "type" => serde_json::Value::from(v),
                _ => v.parse::<f64>().ok().filter(|x| x.is_finite()).map(serde_json::Value::from).ok_or_else(|| ApiError::invalid(&name, format!("{name} must be a number, not `{v}`")))?,
            };
            obj.insert(key.to_string(), value);
        }
    }
    match (whole, obj.is_empty()) {
        (Some(_), false) => Err(ApiError::invalid("chunking_strategy", "send chunking_strategy either whole or as chunking_strategy[type], chunking_strategy[threshold], ... fields, not both")),
        (Some(w), true) => Ok(Some(w.to_string())),
        (None, false) => Ok(Some(serde_json::Value::Object(obj).to_string())),
        (None, true) => Ok(None),
    }
}

/// Reads the OpenAI-only fields of `/v1/audio/transcriptions` and `/v1/audio/translations`
/// into `opts`, and says which parts the answer holds.
/// `language` checks a language the way the `language` field is checked (`None`: detect).
pub(super) fn parse(form: &Form, ep: Endpoint, format: Format, stream: bool, opts: &mut TranscribeOptions, language: &dyn Fn(&str) -> Result<Option<String>, ApiError>) -> Result<Ask, ApiError> {
    let mut ask = Ask { words: false, segments: true, logprobs: false, usage: ep == Endpoint::Transcriptions };
    if ep != Endpoint::Transcriptions {
        return Ok(ask);
    }
    let granularities = list(form, "timestamp_granularities");
    for &(name, v) in &granularities {
        if v != "word" && v != "segment" {
            return Err(ApiError::invalid(name, format!("timestamp granularity must be `word` or `segment`, not `{v}`")));
        }
    }
    let wants = |g: &str| granularities.iter().any(|&(_, v)| v == g);
    if wants("word") {
        if format != Format::VerboseJson {
            // OpenAI answers 400 here too: word timestamps exist only in verbose_json.
            return Err(ApiError::invalid("timestamp_granularities[]", "timestamp_granularities[]=word needs response_format=verbose_json (words are part of verbose_json only)"));
        }
        ask.words = true;
        // OpenAI leaves segments out when only words are asked for.
        ask.segments = wants("segment");
        opts.word_timestamps = true;
    }
    for (name, v) in list(form, "include") {
        if v != "logprobs" {
            return Err(ApiError::invalid(name, format!("include[] may hold `logprobs`, not `{v}`")));
        }
        if format != Format::Json && !stream {
            return Err(ApiError::invalid(name, "include[]=logprobs needs response_format=json (or stream=true), as OpenAI's API has it"));
        }
        ask.logprobs = true;
    }
    let keywords: Vec<&str> = list(form, "keywords").into_iter().map(|(_, v)| v).collect();
    if !keywords.is_empty() {
        // Words that guide the transcription: the model sees them before every window.
        opts.hotwords = Some(keywords.join(", "));
    }
    let languages = list(form, "languages");
    match languages.as_slice() {
        [] => {}
        [(name, v)] => {
            // One candidate language is the language; checked like `language`.
            let code = language(v).map_err(|e| e.param(name))?;
            match (&opts.language, code) {
                (Some(l), Some(c)) if *l != c => {
                    return Err(ApiError::invalid(name, format!("{name}={v} and language={l} disagree; send one of them")));
                }
                (None, c) => opts.language = c,
                _ => {}
            }
        }
        [(name, _), ..] => {
            return Err(unsupported(name, "several candidate languages[] are not supported: Whisper detects among all its languages; send one (languages[]=xx or language=xx), or leave both out to detect it"));
        }
    }
    for name in ["known_speaker_names", "known_speaker_references"] {
        if let Some((field, _)) = list(form, name).first() {
            return Err(unsupported(field, &format!("{field} is for speaker diarization (OpenAI's gpt-4o-transcribe-diarize), which this server does not do: Whisper models tell no speakers apart; leave {field} out")));
        }
    }
    Ok(ask)
}
