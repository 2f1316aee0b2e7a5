//! Transcript writers: txt, json, verbose_json (OpenAI's shape), srt and vtt (`subtitles`,
//! openai-whisper's cutting options), tsv (openai-whisper's) and lrc (whisper.cpp's).

use std::fmt::Write;

use serde_json::json;
use whisper::transcribe::Transcript;

pub mod subtitles;

// `timestamp` stays reachable as `output::timestamp`, where it always was.
#[allow(unused_imports)]
pub use subtitles::{timestamp, SubtitleOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Format {
    Txt,
    Json,
    VerboseJson,
    Srt,
    Vtt,
    /// Tab-separated `start`, `end` (integer milliseconds) and `text` of each segment, with a
    /// header line (openai-whisper's tsv).
    Tsv,
    /// Lyrics: `[mm:ss.xx]text`, one line per segment (whisper.cpp's lrc).
    Lrc,
    /// Every format (only with --output-dir).
    All,
}

impl Format {
    pub const CONCRETE: [Format; 7] = [Format::Txt, Format::Json, Format::VerboseJson, Format::Srt, Format::Vtt, Format::Tsv, Format::Lrc];

    /// File extension of the format (`verbose_json` files end in `.verbose.json`).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Json => "json",
            Format::VerboseJson => "verbose.json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Tsv => "tsv",
            Format::Lrc => "lrc",
            Format::All => "all",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Txt | Format::Lrc => "text/plain; charset=utf-8",
            Format::Json | Format::VerboseJson | Format::All => "application/json",
            Format::Srt => "application/x-subrip; charset=utf-8",
            Format::Vtt => "text/vtt; charset=utf-8",
            Format::Tsv => "text/tab-separated-values; charset=utf-8",
        }
    }

    /// Whether the subtitle options (`SubtitleOptions`) shape this format's output.
    pub fn is_subtitles(self) -> bool {
        matches!(self, Format::Srt | Format::Vtt | Format::All)
    }
}

/// What `render_with` adds to the plain rendering.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions {
    /// How srt and vtt cues are cut from the words.
    pub subtitles: SubtitleOptions,
    /// `json` carries `language` and `language_probability` too (the CLI's json; OpenAI's json
    /// is only `text`, and `words` when asked for).
    pub json_language: bool,
}

/// Renders `t` in `format` (`task` is "transcribe" or "translate") with the default options.
pub fn render(t: &Transcript, format: Format, task: &str) -> String {
    render_with(t, format, task, &RenderOptions::default())
}

/// Renders `t` in `format` (`task` is "transcribe" or "translate").
pub fn render_with(t: &Transcript, format: Format, task: &str, o: &RenderOptions) -> String {
    match format {
        Format::Txt => format!("{}\n", t.text()),
        Format::Json => {
            let mut v = json!({ "text": t.text() });
            if o.json_language {
                v["language"] = t.language.clone().into();
                v["language_probability"] = f32_json(t.language_probability);
            }
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
                        "id": s.id.saturating_sub(1), "seek": s.seek, "start": round3(s.start), "end": round3(s.end),
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
                "task": task, "language": t.language, "language_probability": f32_json(t.language_probability),
                "duration": round3(t.duration), "text": t.text(), "segments": segments,
            });
            format!("{}\n", serde_json::to_string_pretty(&v).expect("json"))
        }
        Format::Srt => subtitles::srt(t, &o.subtitles),
        Format::Vtt => subtitles::vtt(t, &o.subtitles),
        Format::Tsv => tsv(t),
        Format::Lrc => lrc(t),
    }
}

/// openai-whisper's tsv: a header line, then each segment's start and end in integer
/// milliseconds (rounded half to even, as Python's `round`) and its text, trimmed, with tabs
/// (and line breaks, which would end the row) as spaces.
fn tsv(t: &Transcript) -> String {
    let ms = |x: f64| (x.max(0.0) * 1000.0).round_ties_even() as u64;
    let mut out = String::from("start\tend\ttext\n");
    for s in &t.segments {
        let text = s.text.trim().replace(['\t', '\n', '\r'], " ");
        let _ = writeln!(out, "{}\t{}\t{text}", ms(s.start), ms(s.end));
    }
    out
}

/// Lyrics as whisper.cpp's `--output-lrc` writes them: a `[by:…]` header line (ours names
/// amanuensis), then one `[mm:ss.xx]text` line per segment at its start (minutes past 99 take
/// more digits; centiseconds rounded), the text trimmed and on one line.
fn lrc(t: &Transcript) -> String {
    let mut out = String::from("[by:amanuensis]\n");
    for s in &t.segments {
        let cs = (s.start.max(0.0) * 100.0).round() as u64;
        let (m, rem) = (cs / 6000, cs % 6000);
        let text = s.text.trim().replace(['\n', '\r'], " ");
        let _ = writeln!(out, "[{m:02}:{:02}.{:02}]{text}", rem / 100, rem % 100);
    }
    out
}

/// An f32 as the JSON number of its shortest decimal form (0.97 rather than 0.9700000286102295).
fn f32_json(x: f32) -> serde_json::Value {
    match format!("{x}").parse::<f64>() {
        Ok(v) if v.is_finite() => v.into(),
        _ => serde_json::Value::Null,
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

    /// Found by the jobs_json fuzz target (fuzz/regressions/jobs_json/segment_id_0_verbose_json):
    /// a stored transcript whose segment has no id (read back as 0) overflowed `id - 1`.
    #[test]
    fn verbose_json_of_segment_id_0() {
        let mut t = sample();
        t.segments[0].id = 0;
        let v: serde_json::Value = serde_json::from_str(&render(&t, Format::VerboseJson, "transcribe")).unwrap();
        assert_eq!(v["segments"][0]["id"], 0);
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
        assert_eq!(render(&t, Format::Tsv, "transcribe"), "start\tend\ttext\n0\t1500\tHello there.\n3600000\t3661256\tBye.\n");
        assert_eq!(render(&t, Format::Lrc, "transcribe"), "[by:amanuensis]\n[00:00.00]Hello there.\n[60:00.00]Bye.\n");
    }

    #[test]
    fn language_probability_in_json_outputs() {
        let mut t = sample();
        t.language = "fr".into();
        t.language_probability = 0.97;
        let v: serde_json::Value = serde_json::from_str(&render(&t, Format::VerboseJson, "transcribe")).unwrap();
        assert_eq!(v["language"], "fr");
        assert_eq!(v["language_probability"], 0.97);
        // OpenAI's json is only the text; the CLI's json names the language too.
        let plain: serde_json::Value = serde_json::from_str(&render(&t, Format::Json, "transcribe")).unwrap();
        assert!(plain.get("language_probability").is_none());
        let o = RenderOptions { json_language: true, ..Default::default() };
        let cli: serde_json::Value = serde_json::from_str(&render_with(&t, Format::Json, "transcribe", &o)).unwrap();
        assert_eq!(cli["language"], "fr");
        assert_eq!(cli["language_probability"], 0.97);
    }

    #[test]
    fn tsv_and_lrc_lines_stay_whole() {
        let mut t = sample();
        t.segments[0].text = " Tab\there\nand a new line ".into();
        t.segments[0].start = 0.125;
        t.segments[1].start = 6000.004; // 100 minutes
        let tsv = render(&t, Format::Tsv, "transcribe");
        assert_eq!(tsv.lines().nth(1), Some("125\t1500\tTab here and a new line"));
        let lrc = render(&t, Format::Lrc, "transcribe");
        assert_eq!(lrc, "[by:amanuensis]\n[00:00.13]Tab\there and a new line\n[100:00.00]Bye.\n");
    }
}
