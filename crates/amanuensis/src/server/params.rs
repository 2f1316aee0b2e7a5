//! The request's fields, checked: model, task, language, decoding and hallucination
//! controls, VAD options, response format. Anything misspelt or out of range gets a 400
//! that names the field.

use axum::http::StatusCode;
use whisper::tokenizer::Task;
use whisper::transcribe::TranscribeOptions;
use whisper::vad::VadOptions;

use super::api::{Endpoint, Form};
use super::error::ApiError;
use super::{openai, vad};
use super::AppState;
use crate::output::Format;

/// What a request asks for, checked.
pub(super) struct Params {
    pub opts: TranscribeOptions,
    /// Transcribe only the speech the VAD finds (`vad_filter`, `chunking_strategy`).
    pub vad: Option<VadOptions>,
    pub format: Format,
    pub stream: bool,
    /// What an OpenAI route's answer holds beyond the text (words, segments, log-probs).
    pub ask: Ask,
}

/// The parts of an answer a request asked for (OpenAI's `timestamp_granularities[]` and
/// `include[]`; the native endpoint's `word_timestamps`).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Ask {
    /// Top-level `words` (OpenAI's verbose_json) — word timestamps are computed.
    pub words: bool,
    /// `segments` in OpenAI's verbose_json (left out when only `word` is asked, as OpenAI does).
    pub segments: bool,
    /// `logprobs` of the text tokens (OpenAI's json and streamed events).
    pub logprobs: bool,
    /// `usage` in json and verbose_json (OpenAI's transcriptions; its translations have none).
    pub usage: bool,
}


pub(super) fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ApiError::invalid(
            name,
            format!("`{name}` must be true or false, not `{v}`"),
        )),
    }
}

pub(super) fn unsupported(param: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "unsupported_value", message).param(param)
}

pub(super) fn parse_params(form: &Form, ep: Endpoint, app: &AppState) -> Result<Params, ApiError> {
    let cfg = &app.cfg;
    let model = app.model().ok_or_else(super::loading)?;
    if let Some(m) = form.get("model")? {
        check_model(cfg, m, ep.is_openai())?;
    }
    let mut opts = TranscribeOptions {
        beam_size: cfg.beam_size,
        // Short uploads are the server's common case: one encoder pass for language detection
        // and the first window (the encoder bounds the server's throughput).
        detect_on_first_window: true,
        ..TranscribeOptions::default()
    };
    opts.task = match (ep, form.get("task")?) {
        (Endpoint::Translations, _) => Task::Translate,
        (_, None) | (_, Some("transcribe")) => Task::Transcribe,
        (_, Some("translate")) => Task::Translate,
        (_, Some(other)) => {
            return Err(ApiError::invalid(
                "task",
                format!("task must be `transcribe` or `translate`, not `{other}`"),
            ))
        }
    };
    if opts.task == Task::Translate && !model.tokenizer.multilingual {
        let param = if ep == Endpoint::Translations {
            "model"
        } else {
            "task"
        };
        return Err(ApiError::invalid(
            param,
            format!(
                "model `{}` is English-only and cannot translate; start the server with a multilingual model (e.g. --model base) to translate",
                cfg.model_name
            ),
        ));
    }
    if let Some(lang) = form.get("language")? {
        opts.language = parse_language(lang, model, &cfg.model_name)?;
    }
    if let Some(b) = form.get("beam_size")? {
        opts.beam_size = match b.parse::<usize>() {
            Ok(n) if (1..=16).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "beam_size",
                    format!(
                        "beam_size must be a whole number from 1 to 16 (1 = greedy), not `{b}`"
                    ),
                ))
            }
        };
    }
    if let Some(t) = form.get("temperature")? {
        match t.parse::<f32>() {
            // OpenAI's meaning: 0 lets the decoder raise the temperature when a window fails its
            // quality checks; any other value is the one sampling temperature to use.
            Ok(0.0) => {}
            Ok(x) if x.is_finite() && (0.0..=1.0).contains(&x) => opts.temperatures = vec![x],
            _ => {
                return Err(ApiError::invalid(
                    "temperature",
                    format!(
                    "temperature must be a number from 0 to 1 (0 = automatic fallback), not `{t}`"
                ),
                ))
            }
        }
    }
    if let Some(p) = form.get("prompt")? {
        opts.initial_prompt = Some(p.to_string());
    }
    let mut vad = None;
    if ep == Endpoint::Native {
        let on = match form.get("vad_filter")? {
            Some(v) => parse_bool("vad_filter", v)?,
            None => false,
        };
        let get = |n: &str| form.get(n).map(|v| v.map(str::to_string));
        let tuned = form.fields.iter().any(|(n, v)| n.starts_with("vad_") && n != "vad_filter" && !v.trim().is_empty());
        if on {
            vad = Some(vad::native_options(&get)?);
        } else if tuned {
            return Err(ApiError::invalid("vad_filter", "the vad_* fields need vad_filter=true"));
        }
        parse_decoding_controls(form, &mut opts)?;
        if let Some(v) = form.get("word_timestamps")? {
            opts.word_timestamps = parse_bool("word_timestamps", v)?;
        }
        if let Some(v) = form.get("hallucination_silence_threshold")? {
            let t = v.parse::<f32>().ok().filter(|t| t.is_finite() && *t >= 0.0).ok_or_else(|| {
                ApiError::invalid("hallucination_silence_threshold", format!("hallucination_silence_threshold must be a number of seconds >= 0, not `{v}`"))
            })?;
            if !opts.word_timestamps {
                return Err(ApiError::invalid("hallucination_silence_threshold", "hallucination_silence_threshold needs word_timestamps=true (it judges segments by their words)"));
            }
            opts.hallucination_silence_threshold = Some(t);
        }
        if let Some(p) = &opts.prefix {
            let tk = &model.tokenizer;
            if tk.encode(p).is_ok_and(|t| t.contains(&tk.eot)) {
                return Err(ApiError::invalid("prefix", "the prefix cannot contain the end-of-text token <|endoftext|>"));
            }
        }
        if vad.is_some() && !opts.clip_timestamps.is_empty() {
            // faster-whisper ignores vad_filter when clip_timestamps is given; say so instead.
            return Err(ApiError::invalid("clip_timestamps", "clip_timestamps replaces the VAD: send either clip_timestamps or vad_filter=true, not both"));
        }
    } else if let Some(c) = openai::chunking_strategy(form)? {
        vad = Some(vad::chunking_strategy(&c)?);
    }
    let format = match form.get("response_format")? {
        None | Some("json") => Format::Json,
        Some("text") => Format::Txt,
        Some("txt") if ep == Endpoint::Native => Format::Txt,
        Some("srt") => Format::Srt,
        Some("vtt") => Format::Vtt,
        Some("verbose_json") => Format::VerboseJson,
        Some("diarized_json") if ep.is_openai() => {
            return Err(unsupported("response_format", "response_format=diarized_json needs speaker diarization, which this server does not do (Whisper models have no speakers); use json, text, srt, verbose_json or vtt"))
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "response_format",
                format!(
                "unknown response_format `{other}`; use one of json, text, srt, verbose_json, vtt"
            ),
            ))
        }
    };
    let stream = match form.get("stream")? {
        Some(v) => parse_bool("stream", v)?,
        None => false,
    };
    let ask = match ep {
        Endpoint::Native => Ask { words: opts.word_timestamps, segments: true, logprobs: false, usage: false },
        _ => openai::parse(form, ep, format, stream, &mut opts, &|v| parse_language(v, model, &cfg.model_name))?,
    };
    opts.validate().map_err(|e| ApiError::from_whisper(&e))?;
    Ok(Params {
        opts,
        vad,
        format,
        stream,
        ask,
    })
}

/// The native endpoint's hallucination and decoding controls (faster-whisper's names).
pub(super) fn parse_decoding_controls(form: &Form, opts: &mut TranscribeOptions) -> Result<(), ApiError> {
    fn num<T: std::str::FromStr>(form: &Form, name: &str, what: &str) -> Result<Option<T>, ApiError> {
        match form.get(name)? {
            None => Ok(None),
            Some(v) => v.parse::<T>().map(Some).map_err(|_| ApiError::invalid(name, format!("{name} must be {what}, not `{v}`"))),
        }
    }
    if let Some(v) = num::<usize>(form, "no_repeat_ngram_size", "a whole number (0 = off)")? {
        opts.no_repeat_ngram_size = v;
    }
    if let Some(v) = num::<f32>(form, "repetition_penalty", "a positive number (1 = off)")? {
        opts.repetition_penalty = v;
    }
    for (name, slot) in [
        ("compression_ratio_threshold", &mut opts.compression_ratio_threshold),
        ("log_prob_threshold", &mut opts.log_prob_threshold),
        ("no_speech_threshold", &mut opts.no_speech_threshold),
    ] {
        if let Some(v) = num::<f32>(form, name, "a number")? {
            if !v.is_finite() {
                return Err(ApiError::invalid(name, format!("{name} must be a finite number")));
            }
            *slot = Some(v);
        }
    }
    if let Some(h) = form.get("hotwords")? {
        opts.hotwords = Some(h.to_string());
    }
    if let Some(c) = form.get("clip_timestamps")? {
        // `start,end,...` in seconds, or the same as a JSON list (`[0, 12.5]`).
        let list = c.trim().strip_prefix('[').and_then(|c| c.strip_suffix(']')).unwrap_or(c);
        opts.clip_timestamps = whisper::clip::parse(list).map_err(|e| match e {
            whisper::Error::InvalidArgument(m) => ApiError::invalid("clip_timestamps", m.replacen("clip timestamps", "clip_timestamps", 1)),
            e => ApiError::from_whisper(&e),
        })?;
    }
    if let Some(p) = form.get("prefix")? {
        opts.prefix = Some(p.to_string());
    }
    if let Some(s) = form.get("suppress_tokens")? {
        opts.suppress_tokens = crate::transcribe_cmd::parse_suppress_tokens(s).map_err(|e| ApiError::invalid("suppress_tokens", format!("{e:#}").replace("--suppress-tokens", "suppress_tokens")))?;
    }
    Ok(())
}

/// The model a client names: the loaded model's name or `--model` value, or an alias
/// (`whisper-1` on OpenAI's routes); else 400 naming them.
pub(super) fn check_model(cfg: &super::Config, m: &str, openai: bool) -> Result<(), ApiError> {
    let aliases = cfg.aliases(openai);
    if m == cfg.model_name || m == cfg.model_spec || aliases.contains(&m) {
        return Ok(());
    }
    let also = if aliases.is_empty() {
        String::new()
    } else {
        format!(" (or {})", aliases.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "))
    };
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "model_not_found",
        format!("model `{m}` is not loaded: this server runs `{}`; send model={}{also} or leave the field out", cfg.model_name, cfg.model_name),
    )
    .param("model"))
}

/// `None` for automatic detection; a code the model knows; or 400.
pub(super) fn parse_language(
    lang: &str,
    model: &whisper::model::Whisper,
    model_name: &str,
) -> Result<Option<String>, ApiError> {
    let code = lang.trim().to_ascii_lowercase();
    if code == "auto" {
        return Ok(None);
    }
    let tk = &model.tokenizer;
    if !tk.multilingual {
        return if code == "en" || code == "english" {
            Ok(Some("en".into()))
        } else {
            Err(ApiError::invalid(
                "language",
                format!("language `{lang}` is not available: model `{model_name}` is English-only; send language=en or leave it out"),
            ))
        };
    }
    match tk.language_token(&code) {
        Some(tok) => Ok(Some(tk.language_code(tok).unwrap_or(&code).to_string())),
        None => Err(ApiError::invalid(
            "language",
            format!("unknown language `{lang}`; use an ISO 639-1 code such as en, fr, de (or auto to detect it)"),
        )),
    }
}

