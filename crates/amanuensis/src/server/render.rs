//! The JSON answers: `/transcribe`'s own shape (with words, their probabilities and the
//! language probability), OpenAI's `json` and `verbose_json` (OpenAI's field set: `text`,
//! `logprobs`, `usage`; `task`, `language` by name, `duration`, `segments`, `words`), and the
//! streamed events.

use std::time::Instant;

use serde_json::{json, Value};
use whisper::tokenizer::{Task, Tokenizer};
use whisper::transcribe::{Segment, Transcript};
use whisper::words::Word;

use super::params::Ask;
use crate::output::{self, Format};

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(super) fn task_name(t: Task) -> &'static str {
    match t {
        Task::Transcribe => "transcribe",
        Task::Translate => "translate",
    }
}

/// Timing figures of a finished job.
pub(super) struct Timing {
    pub processing: f64,
    /// Processing time over audio duration (below 1 is faster than real time).
    pub realtime_factor: f64,
}

impl Timing {
    pub fn of(t: &Transcript, received: Instant) -> Self {
        let processing = received.elapsed().as_secs_f64();
        Timing {
            processing,
            realtime_factor: if t.duration > 0.0 { processing / t.duration } else { 0.0 },
        }
    }
}

fn word_json(w: &Word) -> Value {
    json!({ "word": w.word, "start": round3(w.start), "end": round3(w.end), "probability": round3(w.probability) })
}

/// A segment in `/transcribe`'s shape (and in streamed events): id, times, text, and its words
/// with their probabilities when word timestamps were asked for.
pub(super) fn segment_json(s: &Segment) -> Value {
    let mut v = json!({ "id": s.id.saturating_sub(1), "start": round3(s.start), "end": round3(s.end), "text": s.text });
    if let Some(words) = &s.words {
        v["words"] = words.iter().map(word_json).collect::<Vec<_>>().into();
    }
    v
}

/// The JSON of `POST /transcribe`, also the payload of the final streaming event.
pub(super) fn summary_json(t: &Transcript, job_id: &str, model: &str, timing: &Timing) -> Value {
    json!({
        "job_id": job_id,
        "model": model,
        "text": t.text(),
        "language": t.language,
        "language_probability": round3(t.language_probability as f64),
        "duration": round3(t.duration),
        "processing_time": round3(timing.processing),
        "realtime_factor": (timing.realtime_factor * 10_000.0).round() / 10_000.0,
        "segments": t.segments.iter().map(segment_json).collect::<Vec<_>>(),
    })
}

/// `/transcribe`'s verbose_json: the CLI's (`amanuensis transcribe --output-format
/// verbose_json`), with the language probability.
pub(super) fn native_verbose(t: &Transcript, task: Task) -> String {
    let text = output::render(t, Format::VerboseJson, task_name(task));
    match serde_json::from_str::<Value>(&text) {
        Ok(mut v) if v.get("language_probability").is_none() => {
            v["language_probability"] = round3(t.language_probability as f64).into();
            format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or(text))
        }
        _ => text,
    }
}

/// OpenAI's usage object for models billed by duration: whole seconds, rounded up.
fn usage(duration: f64) -> Value {
    json!({ "type": "duration", "seconds": duration.max(0.0).ceil() as u64 })
}

/// `logprobs: [{token, logprob, bytes}]` of the text tokens of `segments` (timestamps and
/// other special tokens are not text); `token_logprobs` is parallel to the segments' tokens.
pub(super) fn logprobs_json<'a>(tk: &Tokenizer, segments: impl IntoIterator<Item = (&'a Segment, &'a [f32])>) -> Value {
    let mut out = Vec::new();
    for (seg, lps) in segments {
        for (i, &t) in seg.tokens.iter().enumerate() {
            if t >= tk.eot {
                continue;
            }
            let bytes = tk.token_bytes(t);
            let logprob = lps.get(i).copied().unwrap_or(0.0);
            out.push(json!({ "token": String::from_utf8_lossy(&bytes), "logprob": logprob, "bytes": bytes }));
        }
    }
    out.into()
}

fn paired<'a>(t: &'a Transcript, lps: &'a [Vec<f32>]) -> impl Iterator<Item = (&'a Segment, &'a [f32])> {
    t.segments.iter().enumerate().map(move |(i, s)| (s, lps.get(i).map_or(&[][..], Vec::as_slice)))
}

/// OpenAI's `json`: `text`, `usage` (transcriptions), and `logprobs` when asked for.
pub(super) fn openai_json(t: &Transcript, ask: Ask, lps: &[Vec<f32>], tk: &Tokenizer) -> Value {
    let mut v = json!({ "text": t.text() });
    if ask.usage {
        v["usage"] = usage(t.duration);
    }
    if ask.logprobs {
        v["logprobs"] = logprobs_json(tk, paired(t, lps));
    }
    v
}

/// OpenAI's `verbose_json`: `task`, `language` (its English name; translations are always
/// `english`), `duration`, `text`, `segments` (unless only words were asked for), `words`
/// (`{word, start, end}`, when asked for), `usage` (transcriptions).
pub(super) fn openai_verbose(t: &Transcript, ask: Ask, task: Task) -> Value {
    let language = match task {
        Task::Translate => "english".to_string(),
        Task::Transcribe => whisper::tokenizer::language_name(&t.language).map_or_else(|| t.language.clone(), str::to_string),
    };
    let mut v = json!({
        "task": task_name(task), "language": language, "duration": round3(t.duration), "text": t.text(),
    });
    if ask.usage {
        v["usage"] = usage(t.duration);
    }
    if ask.segments {
        let segments: Vec<Value> = t
            .segments
            .iter()
            .map(|s| {
                json!({
                    "id": s.id.saturating_sub(1), "seek": s.seek, "start": round3(s.start), "end": round3(s.end),
                    "text": s.text, "tokens": s.tokens, "temperature": s.temperature,
                    "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
                    "no_speech_prob": s.no_speech_prob,
                })
            })
            .collect();
        v["segments"] = segments.into();
    }
    if ask.words {
        let words: Vec<Value> = t
            .segments
            .iter()
            .flat_map(|s| s.words.iter().flatten())
            .map(|w| json!({ "word": w.word.trim(), "start": round3(w.start), "end": round3(w.end) }))
            .collect();
        v["words"] = words.into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(words: bool) -> Transcript {
        let w = |word: &str, start, end| Word { word: word.into(), start, end, probability: 0.91234 };
        let seg = Segment {
            id: 1,
            seek: 0,
            start: 0.0,
            end: 1.5,
            text: " Hello there.".into(),
            tokens: vec![50363, 15496, 612, 13, 50438],
            temperature: 0.0,
            avg_logprob: -0.2,
            compression_ratio: 1.1,
            no_speech_prob: 0.01,
            words: words.then(|| vec![w(" Hello", 0.0, 0.6), w(" there.", 0.6, 1.4)]),
        };
        Transcript { language: "en".into(), language_probability: 0.98765, duration: 2.2, segments: vec![seg] }
    }

    #[test]
    fn openai_verbose_fields() {
        let t = transcript(true);
        let only_words = openai_verbose(&t, Ask { words: true, segments: false, logprobs: false, usage: true }, Task::Transcribe);
        assert_eq!(only_words["language"], "english");
        assert_eq!(only_words["usage"], json!({ "type": "duration", "seconds": 3 }));
        assert!(only_words.get("segments").is_none());
        assert_eq!(only_words["words"], json!([{ "word": "Hello", "start": 0.0, "end": 0.6 }, { "word": "there.", "start": 0.6, "end": 1.4 }]));
        let both = openai_verbose(&t, Ask { words: true, segments: true, logprobs: false, usage: true }, Task::Transcribe);
        let seg = both["segments"][0].as_object().unwrap();
        let mut keys: Vec<&str> = seg.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["avg_logprob", "compression_ratio", "end", "id", "no_speech_prob", "seek", "start", "temperature", "text", "tokens"]);
        let segs = openai_verbose(&t, Ask { words: false, segments: true, logprobs: false, usage: false }, Task::Translate);
        assert_eq!(segs["language"], "english");
        assert_eq!(segs["task"], "translate");
        assert!(segs.get("words").is_none() && segs.get("usage").is_none());
    }

    #[test]
    fn native_shapes_carry_probabilities() {
        let t = transcript(true);
        let timing = Timing { processing: 0.5, realtime_factor: 0.25 };
        let v = summary_json(&t, "job_1", "tiny.en", &timing);
        assert_eq!(v["language_probability"], 0.988);
        assert_eq!(v["segments"][0]["words"][1], json!({ "word": " there.", "start": 0.6, "end": 1.4, "probability": 0.912 }));
        assert!(summary_json(&transcript(false), "j", "m", &timing)["segments"][0].get("words").is_none());
        let vj: Value = serde_json::from_str(&native_verbose(&t, Task::Transcribe)).unwrap();
        // verbose_json comes from the CLI's writer, which keeps the full value.
        let p = vj["language_probability"].as_f64().unwrap();
        assert!((p - 0.98765).abs() < 1e-6, "language_probability {p}");
        assert!(vj["segments"][0]["words"][0]["probability"].is_number());
    }
}
