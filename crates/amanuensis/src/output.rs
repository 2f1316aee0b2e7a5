//! Transcript writers: txt, json, verbose_json (OpenAI's shape), srt and vtt.

use std::fmt::Write;

use serde_json::json;
use whisper::transcribe::Transcript;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Format {
    Txt,
    Json,
    VerboseJson,
    Srt,
    Vtt,
    /// Every format (only with --output-dir).
    All,
}

impl Format {
    pub const CONCRETE: [Format; 5] = [Format::Txt, Format::Json, Format::VerboseJson, Format::Srt, Format::Vtt];

    /// File extension of the format (`verbose_json` files end in `.verbose.json`).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Json => "json",
            Format::VerboseJson => "verbose.json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::All => "all",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Txt => "text/plain; charset=utf-8",
            Format::Json | Format::VerboseJson | Format::All => "application/json",
            Format::Srt => "application/x-subrip; charset=utf-8",
            Format::Vtt => "text/vtt; charset=utf-8",
        }
    }
}

/// `HH:MM:SS,mmm` (srt) or `HH:MM:SS.mmm` (vtt).
pub fn timestamp(seconds: f64, decimal: char) -> String {
    let ms_total = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, rem) = (ms_total / 3_600_000, ms_total % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    format!("{h:02}:{m:02}:{s:02}{decimal}{ms:03}")
}

/// Renders `t` in `format` (`task` is "transcribe" or "translate").
pub fn render(t: &Transcript, format: Format, task: &str) -> String {
    match format {
        Format::Txt => format!("{}\n", t.text()),
        Format::Json => {
            let mut v = json!({ "text": t.text() });
            // With word timestamps, every word of the transcript in one list (OpenAI's shape).
            if t.segments.iter().any(|s| s.words.is_some()) {
                let words: Vec<_> = t.segments.iter().flat_map(|s| s.words.iter().flatten()).map(word_json).collect();
                v["words"] = words.into();
            }
            format!("{v}\n")
        }
        Format::VerboseJson | Format::All => {
            let segments: Vec<_> = t
                .segments
                .iter()
                .map(|s| {
                    let mut v = json!({
                        "id": s.id - 1, "seek": s.seek, "start": round3(s.start), "end": round3(s.end),
                        "text": s.text, "tokens": s.tokens, "temperature": s.temperature,
                        "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
                        "no_speech_prob": s.no_speech_prob,
                    });
                    if let Some(words) = &s.words {
                        v["words"] = words.iter().map(word_json).collect::<Vec<_>>().into();
                    }
                    v
                })
                .collect();
            let v = json!({
                "task": task, "language": t.language, "duration": round3(t.duration),
                "text": t.text(), "segments": segments,
            });
            format!("{}\n", serde_json::to_string_pretty(&v).expect("json"))
        }
        Format::Srt => {
            let mut out = String::new();
            for (i, s) in t.segments.iter().enumerate() {
                let _ = write!(out, "{}\n{} --> {}\n{}\n\n", i + 1, timestamp(s.start, ','), timestamp(s.end, ','), s.text.trim());
            }
            out
        }
        Format::Vtt => {
            let mut out = String::from("WEBVTT\n\n");
            for s in &t.segments {
                let _ = write!(out, "{} --> {}\n{}\n\n", timestamp(s.start, '.'), timestamp(s.end, '.'), s.text.trim());
            }
            out
        }
    }
}

fn word_json(w: &whisper::words::Word) -> serde_json::Value {
    json!({ "word": w.word, "start": round3(w.start), "end": round3(w.end), "probability": w.probability })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use whisper::transcribe::Segment;

    fn sample() -> Transcript {
        let seg = |id, start, end, text: &str| Segment {
            id,
            seek: 0,
            start,
            end,
            text: text.into(),
            tokens: vec![1, 2],
            temperature: 0.0,
            avg_logprob: -0.2,
            compression_ratio: 1.1,
            no_speech_prob: 0.01,
            words: None,
        };
        Transcript {
            language: "en".into(),
            language_probability: 1.0,
            duration: 3661.5,
            segments: vec![seg(1, 0.0, 1.5, " Hello there."), seg(2, 3600.0, 3661.256, " Bye.")],
        }
    }

    #[test]
    fn timestamps_format() {
        assert_eq!(timestamp(3661.256, ','), "01:01:01,256");
        assert_eq!(timestamp(0.0, '.'), "00:00:00.000");
    }

    #[test]
    fn formats_render() {
        let t = sample();
        assert_eq!(render(&t, Format::Txt, "transcribe"), "Hello there. Bye.\n");
        let j: serde_json::Value = serde_json::from_str(&render(&t, Format::Json, "transcribe")).unwrap();
        assert_eq!(j["text"], "Hello there. Bye.");
        let v: serde_json::Value = serde_json::from_str(&render(&t, Format::VerboseJson, "translate")).unwrap();
        assert_eq!(v["task"], "translate");
        assert_eq!(v["segments"][1]["id"], 1);
        assert_eq!(v["segments"][1]["end"], 3661.256);
        let srt = render(&t, Format::Srt, "transcribe");
        assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n01:00:00,000"));
        let vtt = render(&t, Format::Vtt, "transcribe");
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n"));
    }
}
