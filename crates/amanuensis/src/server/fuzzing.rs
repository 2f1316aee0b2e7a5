//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz) and their regression tests: each
//! takes arbitrary bytes and runs them through the server's own parsers, as a request would.
//! None may panic, whatever the bytes; a crash found by the fuzzer is fixed in the parser and
//! its input kept as a unit test below (and under `fuzz/regressions/`).

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{header, Request};
use futures_util::FutureExt;
use serde_json::Value;
use whisper::transcribe::TranscribeOptions;

use super::api::{read_form, Endpoint, Form};
use super::error::ApiError;
use super::jobs::store::{transcript_from_json, JobRow, Status};
use super::params::{parse_bool, parse_decoding_controls, Ask};
use super::realtime::{audio, protocol};
use super::{jobs, openai, render, vad};
use crate::output::{self, Format, RenderOptions};
use crate::output::subtitles::SubtitleOptions;

/// The upload limit the multipart target reads with (the file's bytes).
const FILE_LIMIT: usize = 64 * 1024;

/// `multipart`: the first line is the `Content-Type` header, the rest the body. The form is
/// read by `read_form` (the handlers' reader) for each endpoint, then its fields are checked
/// as `parse_params` checks them, except the two checks that need the loaded model's
/// tokenizer (the language code, the prefix's tokens).
pub fn multipart(data: &[u8]) {
    let (ct, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut allowed: Vec<&str> = Endpoint::Transcriptions.fields().to_vec();
    allowed.push("webhook_url");
    allowed.extend(Endpoint::Native.fields());
    let req = match Request::builder().method("POST").uri("/v1/jobs").header(header::CONTENT_TYPE, ct).body(Body::from(body.to_vec())) {
        Ok(r) => r,
        Err(_) => return,
    };
    // The body is in memory: every future here is ready at its first poll.
    let Some(mp) = Multipart::from_request(req, &()).now_or_never() else { return };
    let Ok(mp) = mp else { return };
    let Some(form) = read_form(mp, &allowed, FILE_LIMIT).now_or_never() else { return };
    let Ok(form) = form else { return };
    if let Some((bytes, _)) = &form.file {
        assert!(bytes.len() <= FILE_LIMIT);
    }
    for ep in [Endpoint::Native, Endpoint::Transcriptions, Endpoint::Translations] {
        let _ = check_fields(&form, ep);
    }
    if let Ok(Some(u)) = form.get("webhook_url") {
        let _ = jobs::api::check_webhook(u);
    }
}

/// The model-independent part of `parse_params`, in its order.
fn check_fields(form: &Form, ep: Endpoint) -> Result<(), ApiError> {
    let mut opts = TranscribeOptions::default();
    for (name, _) in &form.fields {
        form.get(name)?;
    }
    if let Some(b) = form.get("beam_size")? {
        let _ = b.parse::<usize>();
    }
    if ep == Endpoint::Native {
        if let Some(v) = form.get("vad_filter")? {
            if parse_bool("vad_filter", v)? {
                let get = |n: &str| form.get(n).map(|v| v.map(str::to_string));
                vad::native_options(&get)?;
            }
        }
        parse_decoding_controls(form, &mut opts)?;
    } else if let Some(c) = openai::chunking_strategy(form)? {
        vad::chunking_strategy(&c)?;
    }
    let stream = match form.get("stream")? {
        Some(v) => parse_bool("stream", v)?,
        None => false,
    };
    if ep.is_openai() {
        openai::parse(form, ep, Format::VerboseJson, stream, &mut opts, &|_| Ok(None))?;
    }
    opts.validate().map_err(|e| ApiError::from_whisper(&e))?;
    Ok(())
}

/// `realtime_event`: one client event per line, as the WebSocket session reads them: parsed,
/// applied to the session's configuration, the session event written back; appended audio
/// decoded and resampled.
pub fn realtime_event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut config = protocol::SessionConfig::default();
    let mut resampler = audio::Resampler::new(config.rate);
    for line in text.split('\n') {
        match protocol::parse(line) {
            Ok(protocol::Parsed { event, event_id }) => match event {
                protocol::ClientEvent::Update { beta, patch } => {
                    let mut next = config.clone();
                    next.apply(patch);
                    if next.rate != config.rate {
                        resampler = audio::Resampler::new(next.rate);
                    }
                    config = next;
                    let _ = config.to_json("sess_fuzz", beta, "tiny.en");
                    let _ = config.live(config.transcription.language.clone());
                }
                protocol::ClientEvent::Append(a) => match audio::decode_base64(&a, 1 << 20) {
                    Ok(bytes) => {
                        let samples = resampler.push(&audio::pcm16_to_f32(&bytes));
                        assert!(samples.iter().all(|s| s.is_finite()));
                    }
                    Err(e) => {
                        let _ = protocol::error_event(&protocol::ProtoError::invalid("invalid_audio", Some("audio"), e.to_string()), event_id.as_deref());
                    }
                },
                protocol::ClientEvent::Commit | protocol::ClientEvent::Clear => {}
            },
            Err((event_id, e)) => {
                let _ = protocol::error_event(&e, event_id.as_deref());
            }
        }
    }
}

/// `jobs_json`: a job's stored JSON (the result column, or the fields column) read back as
/// `GET /v1/jobs/{id}/result` reads it, and rendered in every format; the transcript read
/// from a stored one must survive another round trip unchanged.
pub fn jobs_json(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    // The fields column.
    if let Ok(fields) = serde_json::from_value::<Vec<(String, String)>>(v.clone()) {
        let row = JobRow { id: "job_fuzz".into(), status: Status::Done, progress: 1.0, created_at: 0.0, started_at: None, finished_at: None, filename: None, fields, webhook_url: None, error: None, duration: None };
        let _ = row.to_json();
    }
    // The result column: {"transcript": ..., "ask": ..., "task": ..., "token_logprobs": ...}.
    let stored = if v.get("transcript").is_some() { &v["transcript"] } else { &v };
    let Some(t) = transcript_from_json(stored) else { return };
    let _: Vec<Vec<f32>> = serde_json::from_value(v["token_logprobs"].clone()).unwrap_or_default();
    let flag = |k: &str| v["ask"][k].as_bool().unwrap_or(false);
    let ask = Ask { words: flag("words"), segments: v["ask"]["segments"].as_bool().unwrap_or(true), logprobs: flag("logprobs"), usage: flag("usage") };
    for task in [whisper::tokenizer::Task::Transcribe, whisper::tokenizer::Task::Translate] {
        let _ = render::openai_verbose(&t, ask, task);
    }
    let words = SubtitleOptions { max_line_width: Some(20), max_line_count: Some(2), max_words_per_line: None, highlight_words: true };
    let per_line = SubtitleOptions { max_words_per_line: Some(3), ..SubtitleOptions::default() };
    for subtitles in [SubtitleOptions::default(), words, per_line] {
        let o = RenderOptions { subtitles, json_language: true };
        for f in [Format::Txt, Format::Json, Format::VerboseJson, Format::Srt, Format::Vtt, Format::Tsv, Format::Lrc] {
            let _ = output::render_with(&t, f, "transcribe", &o);
        }
    }
    // Stored again (the runner stores `serde_json::to_value(&transcript)`) and read back.
    let once = serde_json::to_value(&t).expect("a transcript serialises");
    let back = transcript_from_json(&once).expect("a stored transcript reads back");
    assert_eq!(serde_json::to_value(&back).expect("serialises"), once, "round trip changed the transcript");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed seed and every kept crash input of the three server targets, through
    /// the harnesses (so `cargo test` replays them without cargo-fuzz).
    #[test]
    fn corpora_and_regressions_replay() {
        let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let targets: [(&str, fn(&[u8])); 3] = [("multipart", multipart), ("realtime_event", realtime_event), ("jobs_json", jobs_json)];
        let mut n = 0;
        for (name, harness) in targets {
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(name)) else { continue };
                for e in entries.flatten() {
                    harness(&std::fs::read(e.path()).unwrap());
                    n += 1;
                }
            }
        }
        assert!(n >= 10, "the committed corpora were not found under {}", fuzz.display());
    }

    #[test]
    fn well_formed_inputs_run() {
        multipart(b"multipart/form-data; boundary=X\n--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--X\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\nsrt\r\n--X--\r\n");
        realtime_event(b"{\"type\":\"session.update\",\"session\":{\"type\":\"transcription\"}}\n{\"type\":\"input_audio_buffer.append\",\"audio\":\"AAAA\"}");
        jobs_json(br#"{"transcript":{"language":"en","duration":1.0,"segments":[{"id":1,"start":0.0,"end":1.0,"text":" Hi."}]}}"#);
    }
}
