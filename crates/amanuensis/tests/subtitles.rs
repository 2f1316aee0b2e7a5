//! Subtitle options and the tsv/lrc formats through the real binary (tiny.en): line widths and
//! counts respected, highlight tags where they belong, tsv and lrc well formed and agreeing with
//! verbose_json, and clear refusals of options that cannot work. The cutting itself is checked
//! byte for byte against openai-whisper's writers in `output::subtitles` (unit tests).



use serde_json::Value;

mod server_support;
use server_support::{run, testdata, tiny};

/// Parses `HH:MM:SS,mmm` / `HH:MM:SS.mmm` into seconds.
fn seconds(ts: &str) -> f64 {
    let parts: Vec<&str> = ts.split([':', ',', '.']).collect();
    assert_eq!(parts.len(), 4, "{ts}");
    let n: Vec<f64> = parts.iter().map(|p| p.parse::<f64>().unwrap_or_else(|_| panic!("{ts}"))).collect();
    n[0] * 3600.0 + n[1] * 60.0 + n[2] + n[3] / 1000.0
}

/// srt or vtt cues: (start, end, text lines).
fn cues(body: &str) -> Vec<(f64, f64, Vec<String>)> {
    let body = body.strip_prefix("WEBVTT\n\n").unwrap_or(body);
    assert!(body.ends_with("\n\n"), "{body:?}");
    body.trim_end()
        .split("\n\n")
        .map(|cue| {
            let mut lines = cue.lines();
            let mut timing = lines.next().unwrap();
            if !timing.contains("-->") {
                timing = lines.next().unwrap(); // srt: the number first
            }
            let (a, b) = timing.split_once(" --> ").unwrap_or_else(|| panic!("{cue}"));
            (seconds(a), seconds(b), lines.map(str::to_string).collect())
        })
        .collect()
}

fn words_of(v: &Value) -> Vec<(String, f64, f64, f64)> {
    let segments = v["segments"].as_array().unwrap();
    let words = segments.iter().flat_map(|s| s["words"].as_array().unwrap_or_else(|| panic!("no words: {s}")).clone());
    words.map(|w| (w["word"].as_str().unwrap().to_string(), w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap(), w["probability"].as_f64().unwrap())).collect()
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn subtitle_options_and_tsv_lrc_end_to_end() {
    let Some(model) = tiny() else { return };
    let clip = testdata().join("audio/tts/s11.wav");
    let out = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let o = run(&[
        "transcribe", clip.to_str().unwrap(), "--model", &model, "--beam-size", "1", "--word-timestamps",
        "--max-line-width", "32", "--max-line-count", "2", "--output-format", "all", "--output-dir", out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |ext: &str| std::fs::read_to_string(out.path().join(format!("s11.{ext}"))).unwrap();
    let v: Value = serde_json::from_str(&read("verbose.json")).unwrap();
    assert_eq!(v["language"], "en");
    assert_eq!(v["language_probability"], 1.0, "tiny.en is English-only");
    let json: Value = serde_json::from_str(&read("json")).unwrap();
    assert_eq!(json["language"], "en");
    assert_eq!(json["language_probability"], 1.0);
    let words = words_of(&v);
    assert!(words.len() > 30, "{words:?}");
    assert!(words.iter().all(|w| (0.0..=1.0).contains(&w.3)), "word probabilities: {words:?}");
    let all_words = squash(&words.iter().map(|w| w.0.as_str()).collect::<String>());

    // srt and vtt: at most 2 lines of at most 32 characters, in time order, holding every word.
    for ext in ["srt", "vtt"] {
        let body = read(ext);
        let cues = cues(&body);
        assert!(cues.len() >= 4, "{ext}: {body}");
        let mut previous_end = 0.0;
        for (start, end, lines) in &cues {
            assert!(previous_end <= *start && start <= end, "{ext}: times out of order in {body}");
            assert!((1..=2).contains(&lines.len()), "{ext}: {lines:?}");
            assert!(lines.iter().all(|l| l.chars().count() <= 32), "{ext}: {lines:?}");
            previous_end = *end;
        }
        let text = squash(&cues.iter().flat_map(|c| c.2.clone()).collect::<Vec<_>>().join(" "));
        assert_eq!(text, all_words, "{ext}");
        assert!((cues[0].0 - words[0].1).abs() < 0.0015, "{ext}: the first cue starts with the first word");
    }

    // tsv: a header, then one row per segment, in integer milliseconds.
    let tsv = read("tsv");
    let mut rows = tsv.lines();
    assert_eq!(rows.next(), Some("start\tend\ttext"));
    let segments = v["segments"].as_array().unwrap();
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split('\t').collect()).collect();
    assert_eq!(rows.len(), segments.len(), "{tsv}");
    for (row, seg) in rows.iter().zip(segments) {
        assert_eq!(row.len(), 3, "{row:?}");
        let (a, b): (u64, u64) = (row[0].parse().unwrap(), row[1].parse().unwrap());
        assert_eq!(a, (seg["start"].as_f64().unwrap() * 1000.0).round() as u64);
        assert_eq!(b, (seg["end"].as_f64().unwrap() * 1000.0).round() as u64);
        assert_eq!(row[2], seg["text"].as_str().unwrap().trim());
    }

    // lrc: whisper.cpp's shape, a [by:] header then `[mm:ss.xx]text` per segment.
    let lrc = read("lrc");
    let mut lines = lrc.lines();
    assert_eq!(lines.next(), Some("[by:amanuensis]"));
    let lines: Vec<&str> = lines.collect();
    assert_eq!(lines.len(), segments.len(), "{lrc}");
    for (line, seg) in lines.iter().zip(segments) {
        let (tag, text) = line[1..].split_once(']').unwrap_or_else(|| panic!("{line}"));
        let (m, s) = tag.split_once(':').unwrap();
        assert!(m.len() == 2 && s.len() == 5 && s.as_bytes()[2] == b'.', "{line}");
        let t = m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap();
        assert!((t - seg["start"].as_f64().unwrap()).abs() < 0.006, "{line} vs {seg}");
        assert_eq!(text, seg["text"].as_str().unwrap().trim());
    }

    // --highlight-words: one cue per word, that word (and only it) underlined.
    #[rustfmt::skip]
    let o = run(&[
        "transcribe", clip.to_str().unwrap(), "--model", &model, "--beam-size", "1", "--word-timestamps",
        "--highlight-words", "--max-words-per-line", "6", "--output-format", "vtt",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let body = String::from_utf8(o.stdout).unwrap();
    let marked: Vec<_> = cues(&body).into_iter().filter(|c| c.2.join("\n").contains("<u>")).collect();
    assert_eq!(marked.len(), words.len(), "{body}");
    for ((start, end, lines), word) in marked.iter().zip(&words) {
        let text = lines.join("\n");
        assert_eq!(text.matches("<u>").count(), 1, "{text}");
        let inner = text.split_once("<u>").unwrap().1.split_once("</u>").unwrap().0;
        assert_eq!(inner, word.0.trim(), "{text}");
        assert!((start - word.1).abs() < 0.0015 && (end - word.2).abs() < 0.0015, "{text}: {word:?}");
        // At most 6 words in a cue.
        assert!(text.split_whitespace().count() <= 6, "{text}");
    }
}

#[test]
fn subtitle_options_refused_with_reasons() {
    let clip = testdata().join("audio/human/librivox_0880.wav");
    let clip = clip.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--max-line-width", "40", "--output-format", "srt"], "--word-timestamps"),
        (&["--highlight-words", "--output-format", "srt"], "--word-timestamps"),
        (&["--word-timestamps", "--max-line-width", "0"], "0 is not in 1..=1000"),
        (&["--word-timestamps", "--max-line-width", "-4"], "-4 is not in 1..=1000"),
        (&["--word-timestamps", "--max-line-width", "100000000000000000000000"], "too large"),
        (&["--word-timestamps", "--max-words-per-line", "0"], "0 is not in 1..=1000"),
        (&["--word-timestamps", "--max-line-width", "40", "--max-line-count", "101"], "101 is not in 1..=100"),
        (&["--word-timestamps", "--max-line-count", "2", "--output-format", "srt"], "--max-line-count needs --max-line-width"),
        (
            &["--word-timestamps", "--max-line-width", "40", "--max-line-count", "2", "--max-words-per-line", "3", "--output-format", "srt"],
            "--max-words-per-line has no effect",
        ),
        (&["--word-timestamps", "--max-line-width", "40", "--output-format", "tsv"], "--output-format tsv has none"),
        (&["--word-timestamps", "--highlight-words"], "--output-format txt has none"),
    ];
    for (args, needle) in cases {
        // A model that does not exist: the options are refused before any model is looked for.
        let mut all = vec!["transcribe", clip, "--model", "/nonexistent/model"];
        all.extend_from_slice(args);
        let o = run(&all);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} accepted");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(o.stdout.is_empty());
    }
}
