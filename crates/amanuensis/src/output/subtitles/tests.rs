//! The writers against files written by openai-whisper's own writer code
//! (`testdata/subtitles/make_expected.py`, provenance in testdata/README.md), from the same
//! committed transcripts: byte for byte.

use std::path::PathBuf;

use serde_json::Value;
use whisper::transcribe::{Segment, Transcript};
use whisper::words::Word;

use super::*;
use crate::output::{render_with, Format, RenderOptions};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/subtitles")
}

/// A transcript back from our verbose_json.
pub(crate) fn transcript_from_json(v: &Value) -> Transcript {
    let num = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    let segments = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| Segment {
            id: i + 1,
            seek: s["seek"].as_u64().unwrap_or(0) as usize,
            start: num(&s["start"]),
            end: num(&s["end"]),
            text: s["text"].as_str().unwrap().to_string(),
            tokens: s["tokens"].as_array().map(|t| t.iter().map(|x| x.as_u64().unwrap() as u32).collect()).unwrap_or_default(),
            temperature: s["temperature"].as_f64().unwrap_or(0.0) as f32,
            avg_logprob: s["avg_logprob"].as_f64().unwrap_or(0.0) as f32,
            compression_ratio: s["compression_ratio"].as_f64().unwrap_or(0.0) as f32,
            no_speech_prob: s["no_speech_prob"].as_f64().unwrap_or(0.0) as f32,
            words: s["words"].as_array().map(|ws| {
                ws.iter()
                    .map(|w| Word { word: w["word"].as_str().unwrap().to_string(), start: num(&w["start"]), end: num(&w["end"]), probability: num(&w["probability"]) })
                    .collect()
            }),
        })
        .collect();
    Transcript {
        language: v["language"].as_str().unwrap().to_string(),
        language_probability: v["language_probability"].as_f64().unwrap_or(1.0) as f32,
        duration: num(&v["duration"]),
        segments,
    }
}

fn load(name: &str) -> Transcript {
    let text = std::fs::read_to_string(dir().join(format!("{name}.verbose.json"))).unwrap();
    transcript_from_json(&serde_json::from_str(&text).unwrap())
}

fn expected(file: &str) -> String {
    std::fs::read_to_string(dir().join("expected").join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The first differing line, to make a failure readable.
fn first_difference(got: &str, want: &str) -> String {
    let (g, w): (Vec<_>, Vec<_>) = (got.split('\n').collect(), want.split('\n').collect());
    let i = g.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
    format!("line {}: got {:?}, want {:?}", i + 1, g.get(i), w.get(i))
}

#[test]
fn srt_vtt_tsv_equal_openai_whispers_writers() {
    let manifest: Value = serde_json::from_str(&expected("cases.json")).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let mut transcripts = std::collections::BTreeSet::new();
    for case in cases {
        let name = case["transcript"].as_str().unwrap();
        let o = &case["options"];
        let size = |k: &str| o.get(k).map(|v| v.as_u64().unwrap() as usize);
        let opts = SubtitleOptions {
            max_line_width: size("max_line_width"),
            max_line_count: size("max_line_count"),
            max_words_per_line: size("max_words_per_line"),
            highlight_words: o.get("highlight_words").is_some_and(|v| v.as_bool().unwrap()),
        };
        let t = load(name);
        let stem = format!("{name}.{}", case["case"].as_str().unwrap());
        for (got, ext) in [(srt(&t, &opts), "srt"), (vtt(&t, &opts), "vtt")] {
            let want = expected(&format!("{stem}.{ext}"));
            assert!(got == want, "{stem}.{ext}: {}", first_difference(&got, &want));
        }
        transcripts.insert(name.to_string());
    }
    assert!(transcripts.len() >= 3, "{transcripts:?}");
    for name in transcripts {
        let got = render_with(&load(&name), Format::Tsv, "transcribe", &RenderOptions::default());
        let want = expected(&format!("{name}.tsv"));
        assert!(got == want, "{name}.tsv: {}", first_difference(&got, &want));
    }
}

#[test]
fn line_options_shape_the_cues() {
    let t = load("mix");
    let o = SubtitleOptions { max_line_width: Some(42), max_line_count: Some(2), ..Default::default() };
    let out = srt(&t, &o);
    for cue in out.split("\n\n").filter(|c| !c.is_empty()) {
        let lines: Vec<&str> = cue.lines().skip(2).collect();
        assert!((1..=2).contains(&lines.len()), "{cue}");
        assert!(lines.iter().all(|l| l.chars().count() <= 42), "{cue}");
    }
    // Highlighting marks exactly one word per cue.
    let h = vtt(&t, &SubtitleOptions { highlight_words: true, ..Default::default() });
    let words: usize = t.segments.iter().map(|s| s.words.as_ref().unwrap().len()).sum();
    assert_eq!(h.matches("<u>").count(), words);
    assert_eq!(h.matches("</u>").count(), words);
}

#[test]
fn zero_and_huge_values_never_panic() {
    let t = load("edge");
    // 0 is "not given" in the writer (openai-whisper's `or` defaults); huge values are limits
    // that never bind.
    for v in [Some(0), Some(1), Some(usize::MAX / 2), None] {
        for highlight_words in [false, true] {
            let o = SubtitleOptions { max_line_width: v, max_line_count: v, max_words_per_line: v, highlight_words };
            assert!(srt(&t, &o).contains("01:02:05,012"));
        }
    }
    let zero = SubtitleOptions { max_line_width: Some(0), max_line_count: Some(0), max_words_per_line: Some(0), highlight_words: false };
    assert_eq!(srt(&t, &zero), srt(&t, &SubtitleOptions::default()));
    // Width 1: every word on a line of its own.
    let o = SubtitleOptions { max_line_width: Some(1), max_line_count: Some(1), ..Default::default() };
    let words: usize = t.segments.iter().map(|s| s.words.as_ref().unwrap().len()).sum();
    assert_eq!(srt(&t, &o).matches(" --> ").count(), words);
    // An empty transcript, and segments without any word.
    let empty = Transcript { language: "en".into(), language_probability: 1.0, duration: 0.0, segments: vec![] };
    assert_eq!(srt(&empty, &o), "");
    assert_eq!(vtt(&empty, &o), "WEBVTT\n\n");
    let mut bare = load("edge");
    bare.segments.iter_mut().for_each(|s| s.words = Some(Vec::new()));
    assert_eq!(srt(&bare, &o), "");
}

#[test]
fn options_are_checked() {
    let ok = |o: SubtitleOptions| o.check().map_err(|e| panic!("{o:?}: {e}")).ok();
    let err = |o: SubtitleOptions| o.check().expect_err(&format!("{o:?} accepted"));
    let width = |w| SubtitleOptions { max_line_width: Some(w), ..Default::default() };
    ok(SubtitleOptions::default());
    ok(width(1));
    ok(width(MAX_LINE_WIDTH));
    ok(SubtitleOptions { max_words_per_line: Some(3), ..width(30) });
    ok(SubtitleOptions { max_line_count: Some(2), highlight_words: true, ..width(30) });
    assert!(err(width(0)).contains("--max-line-width 0: give from 1 to 1000 characters"));
    assert!(err(width(MAX_LINE_WIDTH + 1)).contains("from 1 to 1000"));
    assert!(err(SubtitleOptions { max_line_count: Some(0), ..width(30) }).contains("--max-line-count 0"));
    assert!(err(SubtitleOptions { max_words_per_line: Some(100_000), ..Default::default() }).contains("--max-words-per-line"));
    assert!(err(SubtitleOptions { max_line_count: Some(2), ..Default::default() }).contains("needs --max-line-width"));
    let e = err(SubtitleOptions { max_line_count: Some(2), max_words_per_line: Some(3), ..width(30) });
    assert!(e.contains("no effect"), "{e}");
}

#[test]
fn underline_keeps_leading_space_and_line_breaks() {
    assert_eq!(underline(" word"), " <u>word</u>");
    assert_eq!(underline("\nword"), "\n<u>word</u>");
    assert_eq!(underline("word"), "<u>word</u>");
    assert_eq!(underline(" "), " <u></u>");
    assert_eq!(underline("a\nb"), "a\nb");
}

#[test]
fn timestamps_round_half_to_even_as_python() {
    assert_eq!(timestamp(3661.256, ','), "01:01:01,256");
    assert_eq!(timestamp(0.0, '.'), "00:00:00.000");
    assert_eq!(timestamp(1.0005, ','), "00:00:01,000"); // 1000.5 ms
    assert_eq!(timestamp(9.0625, '.'), "00:00:09.062");
    assert_eq!(timestamp(-1.0, ','), "00:00:00,000");
    assert_eq!(timestamp(360_000.0, ','), "100:00:00,000");
}
