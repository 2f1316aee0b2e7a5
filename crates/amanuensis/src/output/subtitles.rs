//! Subtitles (srt, vtt) cut the way openai-whisper's writers cut them (`SubtitlesWriter` in its
//! `utils.py`; its `--max_line_width`, `--max_line_count`, `--max_words_per_line`,
//! `--highlight_words`), checked byte for byte against files its own code wrote
//! (`testdata/subtitles/`).
//!
//! Without words, one cue per segment. With words (any segment has them), cues are made of
//! words: by default one per segment, spanning its first word's start to its last word's end.
//! - `max_line_width` alone: a segment's words are wrapped into lines of at most that many
//!   characters (a word longer than the width gets a line of its own).
//! - with `max_line_count` too, segments are no longer kept: words flow from cue to cue, a cue
//!   ends after `max_line_count` lines, or before a word that starts more than 3 s after the
//!   previous word's start.
//! - `max_words_per_line` (when segments are kept): each run of that many words of a segment
//!   starts a new cue (openai-whisper's help says "no effect with max_line_width"; its code
//!   does apply it when `max_line_count` is absent, and so do we).
//! - `highlight_words`: each cue is repeated once per word, spanning that word, with the word
//!   in `<u>…</u>`; a gap between words repeats the cue without a mark.
//!
//! Widths count characters (Unicode scalar values), as Python's `len`. Times round to the
//! millisecond half to even, as Python's `round`. Deliberate differences: vtt times always carry
//! the hours (as OpenAI's API writes them, and as our vtt always did), and `-->` inside a cue's
//! text becomes `->` in word cues too (openai-whisper does it only for segment cues).

use std::fmt::Write;

use whisper::transcribe::{Segment, Transcript};
use whisper::words::Word;

/// Largest accepted `max_line_width` (openai-whisper's stand-in for "no limit" is 1000).
pub const MAX_LINE_WIDTH: usize = 1000;
/// Largest accepted `max_line_count`.
pub const MAX_LINE_COUNT: usize = 100;
/// Largest accepted `max_words_per_line` (openai-whisper's stand-in for "no limit" is 1000).
pub const MAX_WORDS_PER_LINE: usize = 1000;

/// How word cues are cut (openai-whisper's writer options). `None` (or 0, as in
/// openai-whisper) is "not given".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubtitleOptions {
    /// Characters in a line before it breaks.
    pub max_line_width: Option<usize>,
    /// Lines in a cue (only with `max_line_width`; segments are then not kept as cues).
    pub max_line_count: Option<usize>,
    /// Words of a segment in a cue (with segments kept as cues).
    pub max_words_per_line: Option<usize>,
    /// Underline the word being spoken.
    pub highlight_words: bool,
}

impl SubtitleOptions {
    /// Whether any option differs from the default.
    pub fn is_set(&self) -> bool {
        *self != SubtitleOptions::default()
    }

    /// Refuses values out of range and combinations where an option would have no effect;
    /// the messages name the command-line options.
    pub fn check(&self) -> Result<(), String> {
        let bounds = [
            ("--max-line-width", self.max_line_width, MAX_LINE_WIDTH, "characters"),
            ("--max-line-count", self.max_line_count, MAX_LINE_COUNT, "lines"),
            ("--max-words-per-line", self.max_words_per_line, MAX_WORDS_PER_LINE, "words"),
        ];
        for (name, value, max, unit) in bounds {
            if let Some(v) = value.filter(|&v| v == 0 || v > max) {
                return Err(format!("{name} {v}: give from 1 to {max} {unit}"));
            }
        }
        if self.max_line_count.is_some() && self.max_line_width.is_none() {
            return Err("--max-line-count needs --max-line-width: lines are counted where the width breaks them".into());
        }
        if self.max_words_per_line.is_some() && self.max_line_width.is_some() && self.max_line_count.is_some() {
            return Err("--max-words-per-line has no effect with both --max-line-width and --max-line-count (openai-whisper ignores it then): drop it, or drop --max-line-count to cut each segment every N words and wrap those lines at the width".into());
        }
        Ok(())
    }
}

/// `HH:MM:SS,mmm` (srt) or `HH:MM:SS.mmm` (vtt), rounded to the millisecond half to even.
pub fn timestamp(seconds: f64, decimal: char) -> String {
    let ms_total = (seconds.max(0.0) * 1000.0).round_ties_even() as u64;
    let (h, rem) = (ms_total / 3_600_000, ms_total % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    format!("{h:02}:{m:02}:{s:02}{decimal}{ms:03}")
}

/// The srt file: numbered cues.
pub fn srt(t: &Transcript, o: &SubtitleOptions) -> String {
    let mut out = String::new();
    for (i, c) in cues(t, o, ',').into_iter().enumerate() {
        let _ = write!(out, "{}\n{} --> {}\n{}\n\n", i + 1, c.start, c.end, c.text);
    }
    out
}

/// The vtt file.
pub fn vtt(t: &Transcript, o: &SubtitleOptions) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues(t, o, '.') {
        let _ = write!(out, "{} --> {}\n{}\n\n", c.start, c.end, c.text);
    }
    out
}

/// One cue, its times formatted (highlighting compares formatted times, as openai-whisper).
#[derive(Debug)]
struct Cue {
    start: String,
    end: String,
    text: String,
}

/// A word placed in a cue: its text with the leading space, a line break, or nothing.
struct Placed {
    text: String,
    start: f64,
    end: f64,
}

fn cues(t: &Transcript, o: &SubtitleOptions, decimal: char) -> Vec<Cue> {
    let ts = |x: f64| timestamp(x, decimal);
    let clean = |s: &str| s.replace("-->", "->");
    if !t.segments.iter().any(|s| s.words.is_some()) {
        return t.segments.iter().map(|s| Cue { start: ts(s.start), end: ts(s.end), text: clean(s.text.trim()) }).collect();
    }
    let mut out = Vec::new();
    for group in word_groups(t, o) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else { continue };
        let text: String = group.iter().map(|p| p.text.as_str()).collect();
        if !o.highlight_words {
            out.push(Cue { start: ts(first.start), end: ts(last.end), text: clean(&text) });
            continue;
        }
        let mut shown_until = ts(first.start);
        for (i, word) in group.iter().enumerate() {
            let (start, end) = (ts(word.start), ts(word.end));
            if shown_until != start {
                out.push(Cue { start: shown_until, end: start.clone(), text: clean(&text) });
            }
            let marked: String = group.iter().enumerate().map(|(j, p)| if j == i { underline(&p.text) } else { p.text.clone() }).collect();
            out.push(Cue { start, end: end.clone(), text: clean(&marked) });
            shown_until = end;
        }
    }
    out
}

/// `<u>…</u>` around a word, after its leading whitespace (a space or a line break).
fn underline(word: &str) -> String {
    let body = word.trim_start();
    let lead = &word[..word.len() - body.len()];
    let (body, tail) = match body.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (body, ""),
    };
    if body.contains('\n') {
        // openai-whisper's pattern does not match a word with a line break inside.
        return word.to_string();
    }
    format!("{lead}<u>{body}</u>{tail}")
}

fn words_of(s: &Segment) -> &[Word] {
    s.words.as_deref().unwrap_or(&[])
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// The words of the transcript cut into cues (openai-whisper's `iterate_subtitles`).
fn word_groups(t: &Transcript, o: &SubtitleOptions) -> Vec<Vec<Placed>> {
    let width = o.max_line_width.filter(|&w| w > 0);
    let count = o.max_line_count.filter(|&c| c > 0);
    let keep_segments = width.is_none() || count.is_none();
    let width = width.unwrap_or(1000);
    let per_cue = o.max_words_per_line.filter(|&n| n > 0).unwrap_or(1000);
    let first_start = t.segments.iter().flat_map(words_of).next().map(|w| w.start);
    let mut previous_start = first_start.or(t.segments.first().map(|s| s.start)).unwrap_or(0.0);
    let (mut line_len, mut line_count) = (0usize, 1usize);
    let (mut groups, mut group) = (Vec::new(), Vec::new());
    for seg in &t.segments {
        for chunk in words_of(seg).chunks(per_cue) {
            for (i, w) in chunk.iter().enumerate() {
                let mut text = w.word.clone();
                let long_pause = !keep_segments && w.start - previous_start > 3.0;
                let has_room = line_len + chars(&text) <= width;
                let segment_break = i == 0 && !group.is_empty() && keep_segments;
                if line_len > 0 && has_room && !long_pause && !segment_break {
                    line_len += chars(&text);
                } else {
                    text = text.trim().to_string();
                    let full = count.is_some_and(|c| long_pause || line_count >= c);
                    if (!group.is_empty() && full) || segment_break {
                        groups.push(std::mem::take(&mut group));
                        line_count = 1;
                    } else if line_len > 0 {
                        line_count += 1;
                        text.insert(0, '\n');
                    }
                    line_len = chars(text.trim());
                }
                group.push(Placed { text, start: w.start, end: w.end });
                previous_start = w.start;
            }
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests;
