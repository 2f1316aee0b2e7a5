//! Word-level timestamps the way faster-whisper 1.2.1 computes them, from the token timings of
//! the forced alignment pass ([`crate::model::Whisper::align`]): tokens grouped into words with
//! the tokenizer's rules, word times from the DTW path, the duration heuristics, punctuation
//! merged into the neighbouring words, and each segment's start and end refined from its words.
//!
//! The steps follow faster-whisper's `find_alignment`, `add_word_timestamps`,
//! `merge_punctuations` and `restore_speech_timestamps` (and openai-whisper's `timing.py`);
//! times are `f64` seconds computed in the same order, so they round to the same hundredths.

use crate::model::{AlignItem, CrossKv, Whisper};
use crate::tokenizer::Tokenizer;
use crate::transcribe::{Segment, TranscribeOptions};
use crate::vad::{round2, SpeechTimeline};
use crate::Result;

/// faster-whisper's default `prepend_punctuations`: merged into the following word.
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// faster-whisper's default `append_punctuations`: merged into the preceding word.
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";
const SENTENCE_END_MARKS: &str = ".。!！?？";
/// Python's `string.punctuation`.
const ASCII_PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// Punctuation that does not count as a word when judging hallucinations.
const HALLUCINATION_PUNCTUATION: &str = "\"'“¿([{-\"'.。,，!！?？:：”)]}、";
/// Languages written without spaces: words are split at every complete character.
const NO_SPACE_LANGUAGES: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];
/// Encoder positions (20 ms each) per second.
const POSITIONS_PER_SECOND: f64 = 50.0;

/// One word of a segment: its text (with its leading space and merged punctuation), start and
/// end in seconds, and the mean probability of its tokens in the alignment pass.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f64,
}

/// A word of a window's alignment: times in seconds from the window's start.
#[derive(Clone, Debug, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f64,
    pub end: f64,
    pub probability: f64,
}

/// The words of one window's alignment, ready to be handed to its segments: durations clamped
/// at sentence ends, punctuation merged, and the window's median and maximum word duration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowWords {
    pub timings: Vec<WordTiming>,
    pub median_duration: f64,
    pub max_duration: f64,
}

/// Python's `str.strip()`: Unicode whitespace plus the ASCII separators U+001C..U+001F.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// Splits tokens into words (faster-whisper's `split_to_word_tokens`): at complete characters
/// for languages written without spaces, else at spaces and punctuation. Returns each word's
/// text and tokens; trailing tokens that never form a complete character are dropped.
pub fn split_to_word_tokens(tk: &Tokenizer, language: &str, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    if NO_SPACE_LANGUAGES.contains(&language) {
        return split_on_unicode(tk, tokens);
    }
    let (subwords, subword_tokens) = split_on_unicode(tk, tokens);
    let mut words: Vec<String> = Vec::new();
    let mut word_tokens: Vec<Vec<u32>> = Vec::new();
    for (subword, toks) in subwords.into_iter().zip(subword_tokens) {
        let special = toks.first().is_some_and(|&t| t >= tk.eot);
        let with_space = subword.starts_with(' ');
        let punctuation = ASCII_PUNCTUATION.contains(py_strip(&subword));
        match (words.last_mut(), word_tokens.last_mut()) {
            (Some(w), Some(t)) if !(special || with_space || punctuation) => {
                w.push_str(&subword);
                t.extend(toks);
            }
            _ => {
                words.push(subword);
                word_tokens.push(toks);
            }
        }
    }
    (words, word_tokens)
}

/// Cuts tokens wherever the text decoded so far ends on a complete character (a replacement
/// character that is also in the whole text's decoding counts as complete).
fn split_on_unicode(tk: &Tokenizer, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    const REPLACEMENT: char = '\u{fffd}';
    let full: Vec<char> = tk.decode_with_timestamps(tokens).chars().collect();
    let (mut words, mut word_tokens) = (Vec::new(), Vec::new());
    let mut current = Vec::new();
    let mut offset = 0;
    for &t in tokens {
        current.push(t);
        let decoded = tk.decode_with_timestamps(&current);
        let bad = decoded.chars().position(|c| c == REPLACEMENT).map(|i| i + offset);
        let complete = match bad {
            None => true,
            Some(i) => full.get(i) == Some(&REPLACEMENT),
        };
        if complete {
            offset += decoded.chars().count();
            words.push(decoded);
            word_tokens.push(std::mem::take(&mut current));
        }
    }
    (words, word_tokens)
}

/// Words of one aligned sequence (faster-whisper's `find_alignment` after the model call):
/// `starts` gives, for each text token and then `<|endoftext|>`, the encoder position where the
/// DTW path enters it, `probs` each text token's probability. Empty when nothing aligns.
pub fn find_alignment(tk: &Tokenizer, language: &str, text_tokens: &[u32], starts: &[usize], probs: &[f32]) -> Vec<WordTiming> {
    let mut tokens = text_tokens.to_vec();
    tokens.push(tk.eot);
    let (words, word_tokens) = split_to_word_tokens(tk, language, &tokens);
    if word_tokens.len() <= 1 {
        return Vec::new();
    }
    // Token index where each word starts, and where the last (the one before <|endoftext|>) ends.
    let mut bounds = vec![0usize];
    for t in &word_tokens[..word_tokens.len() - 1] {
        bounds.push(bounds[bounds.len() - 1] + t.len());
    }
    let time = |i: usize| starts.get(i).map(|&p| p as f64 / POSITIONS_PER_SECOND);
    let mut out = Vec::with_capacity(bounds.len() - 1);
    for ((word, toks), b) in words.into_iter().zip(word_tokens).zip(bounds.windows(2)) {
        let (Some(start), Some(end)) = (time(b[0]), time(b[1])) else {
            // A path shorter than the tokens (no audio to align against): no words.
            return Vec::new();
        };
        let p = &probs[b[0].min(probs.len())..b[1].min(probs.len())];
        let probability = if p.is_empty() { 0.0 } else { p.iter().map(|&x| x as f64).sum::<f64>() / p.len() as f64 };
        out.push(WordTiming { word, tokens: toks, start, end, probability });
    }
    out
}

/// The segments of one decoded window, to be aligned with its audio.
pub struct WindowText<'a> {
    /// The cross-attention K/V the window was decoded with.
    pub cross: &'a CrossKv,
    pub segments: &'a [Segment],
    /// Mel frames of the window that hold audio.
    pub num_frames: usize,
}

/// The words of several windows, aligned in one decoder pass (faster-whisper's
/// `find_alignment` over a batch, then the per-window half of `add_word_timestamps`): each
/// window's text tokens, all its segments' in order, are one sequence of the pass.
pub fn align_windows(model: &Whisper, sot_sequence: &[u32], language: &str, windows: &[WindowText<'_>], opts: &TranscribeOptions) -> Result<Vec<WindowWords>> {
    let tk = &model.tokenizer;
    let texts: Vec<Vec<u32>> = windows
        .iter()
        .map(|w| w.segments.iter().flat_map(|s| s.tokens.iter().copied().filter(|&t| t < tk.eot)).collect())
        .collect();
    let items: Vec<AlignItem<'_>> = windows
        .iter()
        .zip(&texts)
        .map(|(w, text)| AlignItem { cross: w.cross, text_tokens: text, num_frames: w.num_frames })
        .collect();
    let aligned = model.align(sot_sequence, &items)?;
    Ok(texts
        .iter()
        .zip(aligned)
        .map(|(text, a)| {
            let timings = find_alignment(tk, language, text, &a.starts, &a.probs);
            window_words(timings, &opts.prepend_punctuations, &opts.append_punctuations)
        })
        .collect())
}

/// Median of the non-zero values (NumPy's: the mean of the two middle ones for an even count).
fn median_nonzero(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|&d| d != 0.0).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The per-window half of faster-whisper's `add_word_timestamps`: the median word duration
/// (at most 0.7 s) and twice it as the longest allowed, words at sentence ends cut to that
/// length, then punctuation merged into the neighbouring words.
pub fn window_words(mut timings: Vec<WordTiming>, prepend: &str, append: &str) -> WindowWords {
    let durations: Vec<f64> = timings.iter().map(|w| w.end - w.start).collect();
    let median = median_nonzero(&durations);
    let median_duration = median.unwrap_or(0.0).min(0.7);
    let max_duration = median_duration * 2.0;
    if median.is_some() {
        for i in 1..timings.len() {
            if timings[i].end - timings[i].start > max_duration {
                if SENTENCE_END_MARKS.contains(timings[i].word.as_str()) {
                    timings[i].end = timings[i].start + max_duration;
                } else if SENTENCE_END_MARKS.contains(timings[i - 1].word.as_str()) {
                    timings[i].start = timings[i].end - max_duration;
                }
            }
        }
    }
    merge_punctuations(&mut timings, prepend, append);
    WindowWords { timings, median_duration, max_duration }
}

/// faster-whisper's `merge_punctuations`: a word that is a space and an opening mark joins the
/// word after it, a closing mark joins the word before it (not after a trailing space). Merged
/// words are left empty in place. `prepended`/`appended` are matched as substrings, as there.
pub fn merge_punctuations(words: &mut [WordTiming], prepended: &str, appended: &str) {
    let n = words.len();
    if n >= 2 {
        let mut j = n - 1;
        for i in (0..n - 1).rev() {
            let previous = &words[i];
            if previous.word.starts_with(' ') && prepended.contains(py_strip(&previous.word)) {
                let (word, tokens) = (std::mem::take(&mut words[i].word), std::mem::take(&mut words[i].tokens));
                let following = &mut words[j];
                following.word = word + &following.word;
                following.tokens = [tokens, std::mem::take(&mut following.tokens)].concat();
            } else {
                j = i;
            }
        }
    }
    let mut i = 0;
    for j in 1..n {
        if !words[i].word.ends_with(' ') && appended.contains(words[j].word.as_str()) {
            let (word, tokens) = (std::mem::take(&mut words[j].word), std::mem::take(&mut words[j].tokens));
            words[i].word.push_str(&word);
            words[i].tokens.extend(tokens);
        } else {
            i = j;
        }
    }
}

/// The per-segment half of `add_word_timestamps`: hands the window's words to its segments in
/// order (by their text token counts), with times offset by `time_offset` and rounded to 0.01 s;
/// a first word after a pause longer than four median durations is cut to the maximum duration;
/// the segment's start and end move to its first and last word unless that word overruns the
/// segment's own timestamp by more than 0.5 s (then the word is cut instead). Returns the new
/// `last_speech_timestamp` (the end of the last segment that got words).
pub fn assign_words(words: &WindowWords, segments: &mut [Segment], time_offset: f64, mut last_speech_timestamp: f64, eot: u32) -> f64 {
    let (median, max) = (words.median_duration, words.max_duration);
    let mut next = 0;
    for seg in segments.iter_mut() {
        let n_text = seg.tokens.iter().filter(|&&t| t < eot).count();
        let mut saved = 0;
        let mut out = Vec::new();
        while next < words.timings.len() && saved < n_text {
            let t = &words.timings[next];
            if !t.word.is_empty() {
                out.push(Word {
                    word: t.word.clone(),
                    start: round2(time_offset + t.start),
                    end: round2(time_offset + t.end),
                    probability: t.probability,
                });
            }
            saved += t.tokens.len();
            next += 1;
        }
        if let Some(last) = out.len().checked_sub(1) {
            let long_first = out[0].end - out[0].start > max || (last > 0 && out[1].end - out[0].start > max * 2.0);
            if out[0].end - last_speech_timestamp > median * 4.0 && long_first {
                if last > 0 && out[1].end - out[1].start > max {
                    let boundary = f64::max(out[1].end / 2.0, out[1].end - max);
                    out[0].end = boundary;
                    out[1].start = boundary;
                }
                out[0].start = f64::max(0.0, out[0].end - max);
            }
            if seg.start < out[0].end && seg.start - 0.5 > out[0].start {
                out[0].start = f64::max(0.0, f64::min(out[0].end - median, seg.start));
            } else {
                seg.start = out[0].start;
            }
            if seg.end > out[last].start && seg.end + 0.5 < out[last].end {
                out[last].end = f64::max(out[last].start + median, seg.end);
            } else {
                seg.end = out[last].end;
            }
            last_speech_timestamp = seg.end;
        }
        seg.words = Some(out);
    }
    last_speech_timestamp
}

/// The end of the last word of `segments`, else the end of the last segment (faster-whisper's
/// `get_end`); `None` without segments.
pub fn last_end(segments: &[Segment]) -> Option<f64> {
    let word_end = segments.iter().rev().find_map(|s| s.words.as_ref().and_then(|w| w.last()).map(|w| w.end));
    word_end.or_else(|| segments.last().map(|s| s.end))
}

/// Maps a segment from the speech timeline (VAD chunks concatenated) back to the original
/// audio, as faster-whisper's `restore_speech_timestamps`: each word by the chunk of its middle
/// (both ends in that chunk), the segment to its first and last word; without words, the
/// segment's own start and end.
pub fn restore_speech_timestamps(seg: &mut Segment, timeline: &SpeechTimeline) {
    match seg.words.as_mut().filter(|w| !w.is_empty()) {
        Some(words) => {
            for w in words.iter_mut() {
                let chunk = timeline.chunk_index((w.start + w.end) / 2.0, false);
                w.start = timeline.original_time(w.start, Some(chunk), false);
                w.end = timeline.original_time(w.end, Some(chunk), false);
            }
            seg.start = words[0].start;
            seg.end = words[words.len() - 1].end;
        }
        None => {
            seg.start = timeline.original_time(seg.start, None, false);
            seg.end = timeline.original_time(seg.end, None, true);
        }
    }
}

/// How unlike speech a word looks (faster-whisper's `word_anomaly_score`): improbable, very
/// short or very long words score.
pub fn word_anomaly_score(w: &Word) -> f64 {
    let duration = w.end - w.start;
    let mut score = 0.0;
    if w.probability < 0.15 {
        score += 1.0;
    }
    if duration < 0.133 {
        score += (0.133 - duration) * 15.0;
    }
    if duration > 2.0 {
        score += duration - 2.0;
    }
    score
}

/// Whether a segment's first eight words (punctuation aside) look like a hallucination.
pub fn is_segment_anomaly(seg: Option<&Segment>) -> bool {
    let Some(words) = seg.and_then(|s| s.words.as_ref()).filter(|w| !w.is_empty()) else { return false };
    let words: Vec<&Word> = words.iter().filter(|w| !HALLUCINATION_PUNCTUATION.contains(w.word.as_str())).take(8).collect();
    let score: f64 = words.iter().map(|w| word_anomaly_score(w)).sum();
    score >= 3.0 || score + 0.01 >= words.len() as f64
}

/// Where a window of the sequential loop lies, for the hallucination rules.
pub struct WindowSpan {
    /// Its first mel frame.
    pub seek: usize,
    /// Its start and the duration of its audio, in seconds.
    pub time_offset: f64,
    pub duration: f64,
    /// Where a full 30 s window from `seek` would end, in seconds.
    pub end_time: f64,
    /// Mel frames of the whole input.
    pub content_frames: usize,
}

/// What to do about segments that look like hallucinations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HallucinationSkip {
    None,
    /// Drop the whole window and continue at `seek` (the silence before its first segment).
    Window { seek: usize },
    /// Keep the segments before `segment` and continue at `seek`.
    From { segment: usize, seek: usize },
}

/// faster-whisper's `hallucination_silence_threshold` rules for one window whose segments have
/// their words: a first segment that looks like a hallucination after more than `threshold`
/// seconds of silence skips that silence; a later one surrounded by silence (or by more
/// hallucinations) ends the window there.
pub fn skip_hallucinations(segments: &[Segment], threshold: f64, w: &WindowSpan, last_speech_timestamp: f64) -> HallucinationSkip {
    let has_words = |s: &&Segment| s.words.as_ref().is_some_and(|w| !w.is_empty());
    let frames = |t: f64| (t * 100.0).round_ties_even().max(0.0) as usize;
    if let Some(first) = segments.iter().find(has_words) {
        let gap = first.start - w.time_offset;
        if is_segment_anomaly(Some(first)) && gap > threshold {
            return HallucinationSkip::Window { seek: w.seek + frames(gap) };
        }
    }
    let mut last_end = last_speech_timestamp;
    for (i, seg) in segments.iter().enumerate() {
        if !has_words(&seg) {
            continue;
        }
        if is_segment_anomaly(Some(seg)) {
            let next = segments[i + 1..].iter().find(has_words);
            let next_start = next.and_then(|n| n.words.as_ref()).map_or(w.time_offset + w.duration, |words| words[0].start);
            let silence_before = seg.start - last_end > threshold || seg.start < threshold || seg.start - w.time_offset < 2.0;
            let silence_after = next_start - seg.end > threshold || is_segment_anomaly(next) || w.end_time - seg.end < 2.0;
            if silence_before && silence_after {
                let mut seek = frames(f64::max(w.time_offset + 1.0, seg.start));
                if w.content_frames as f64 * 0.01 - seg.end < threshold {
                    seek = w.content_frames;
                }
                return HallucinationSkip::From { segment: i, seek };
            }
        }
        last_end = seg.end;
    }
    HallucinationSkip::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(word: &str, tokens: &[u32], start: f64, end: f64) -> WordTiming {
        WordTiming { word: word.into(), tokens: tokens.to_vec(), start, end, probability: 0.5 }
    }

    fn texts(words: &[WordTiming]) -> Vec<&str> {
        words.iter().map(|w| w.word.as_str()).collect()
    }

    #[test]
    fn punctuation_merges_both_ways() {
        // openai-whisper's example: ` "` and ` (` open, `.` `,` `"` `)` close.
        let mut words = vec![
            w(" \"", &[1], 0.0, 0.1),
            w(" Hello", &[2], 0.1, 0.5),
            w(",", &[3], 0.5, 0.6),
            w(" (", &[4], 0.6, 0.7),
            w(" world", &[5, 6], 0.7, 1.0),
            w(")", &[7], 1.0, 1.1),
            w(".", &[8], 1.1, 1.2),
        ];
        merge_punctuations(&mut words, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        // Hand-worked through faster-whisper's loops: the emptied ` (` does not stop `,` from
        // joining ` " Hello` (an empty word is "in" the marks, as a Python substring).
        assert_eq!(texts(&words), vec!["", " \" Hello,", "", "", " ( world).", "", ""]);
        assert_eq!(words[1].tokens, vec![1, 2, 3]);
        assert_eq!(words[4].tokens, vec![4, 5, 6, 7, 8]);
        // Times stay those of the word that absorbed the marks.
        assert_eq!((words[4].start, words[4].end), (0.7, 1.0));
        // `."` is not a substring of the closing marks: it stays a word of its own.
        let mut words = vec![w(" a", &[1], 0.0, 0.1), w(".\"", &[2], 0.1, 0.2)];
        merge_punctuations(&mut words, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        assert_eq!(texts(&words), vec![" a", ".\""]);
        // A closing mark after a word ending in a space stays alone; an opening mark without a
        // space before it is not merged forward.
        let mut words = vec![w(" a ", &[1], 0.0, 0.1), w(".", &[2], 0.1, 0.2), w("-", &[3], 0.2, 0.3), w(" b", &[4], 0.3, 0.4)];
        merge_punctuations(&mut words, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        assert_eq!(texts(&words), vec![" a ", ".", "-", " b"]);
        // Nothing to merge, and no words at all.
        merge_punctuations(&mut [], PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let mut one = vec![w(" x", &[1], 0.0, 0.1)];
        merge_punctuations(&mut one, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        assert_eq!(texts(&one), vec![" x"]);
    }

    #[test]
    fn sentence_ends_are_clamped_to_twice_the_median() {
        // Durations 0.2, 0.2, 0.2, 1.0 ("." is long), 0.2: median 0.2, max 0.4.
        let words = vec![
            w(" a", &[1], 0.0, 0.2),
            w(" b", &[2], 0.2, 0.4),
            w(" c", &[3], 0.4, 0.6),
            w(".", &[4], 0.6, 1.6),
            w(" D", &[5], 1.6, 1.8),
        ];
        let ww = window_words(words, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        assert_eq!((ww.median_duration, ww.max_duration), (0.2, 0.4));
        // "." cut to 0.4 s, then merged into " c" (whose times stay).
        assert_eq!(texts(&ww.timings), vec![" a", " b", " c.", "", " D"]);
        // A long word after a sentence end starts max_duration before its end.
        let words = vec![w(" a", &[1], 0.0, 0.2), w(".", &[2], 0.2, 0.4), w(" B", &[3], 0.4, 2.0), w(" c", &[4], 2.0, 2.2)];
        let ww = window_words(words, "", "");
        assert!((ww.median_duration - 0.2).abs() < 1e-12);
        assert!((ww.timings[2].start - 1.6).abs() < 1e-12);
        // Median of an even count, capped at 0.7 s; zero durations ignored.
        let words = vec![w(" a", &[1], 0.0, 0.0), w(" b", &[2], 0.0, 1.0), w(" c", &[3], 1.0, 3.0)];
        assert_eq!(window_words(words, "", "").median_duration, 0.7);
        let words = vec![w(" a", &[1], 0.0, 0.2), w(" b", &[2], 0.2, 0.6)];
        assert!((window_words(words, "", "").median_duration - 0.3).abs() < 1e-12);
        assert_eq!(window_words(Vec::new(), "", ""), WindowWords::default());
    }

    fn seg(start: f64, end: f64, tokens: &[u32]) -> Segment {
        Segment {
            id: 1,
            seek: 0,
            start,
            end,
            text: String::new(),
            tokens: tokens.to_vec(),
            temperature: 0.0,
            avg_logprob: 0.0,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
            words: None,
        }
    }

    #[test]
    fn words_go_to_segments_and_refine_them() {
        const EOT: u32 = 100;
        let ww = WindowWords {
            timings: vec![w(" a", &[1], 0.0, 0.3), w(" b", &[2, 3], 0.3, 0.6), w("", &[], 0.6, 0.6), w(" c", &[4], 1.2, 1.5)],
            median_duration: 0.3,
            max_duration: 0.6,
        };
        // Timestamps (>= EOT) do not count as text tokens.
        let mut segs = vec![seg(10.0, 10.7, &[EOT + 1, 1, 2, 3, EOT + 30]), seg(11.0, 11.6, &[EOT + 50, 4, EOT + 80])];
        let last = assign_words(&ww, &mut segs, 10.0, 9.9, EOT);
        let w0 = segs[0].words.as_ref().unwrap();
        assert_eq!(w0.iter().map(|w| (w.word.as_str(), w.start, w.end)).collect::<Vec<_>>(), vec![(" a", 10.0, 10.3), (" b", 10.3, 10.6)]);
        // Start and end snap to the words.
        assert_eq!((segs[0].start, segs[0].end), (10.0, 10.6));
        assert_eq!((segs[1].start, segs[1].end), (11.2, 11.5));
        assert_eq!(last, 11.5);
        // Segment timestamps more than 0.5 s inside an overlong word cut the word (its start to
        // the segment's, its end to max(start + median, segment end)).
        let long = WindowWords { timings: vec![w(" long", &[1], 0.0, 3.0)], median_duration: 0.3, max_duration: 0.6 };
        let mut segs = vec![seg(1.0, 1.5, &[1])];
        // The last speech was recent (3.0 - 2.0 <= 4 medians): the pause rule does not apply.
        let last = assign_words(&long, &mut segs, 0.0, 2.0, EOT);
        let w0 = &segs[0].words.as_ref().unwrap()[0];
        assert_eq!((w0.start, w0.end), (1.0, 1.5));
        assert_eq!((segs[0].start, segs[0].end), (1.0, 1.5));
        assert_eq!(last, 1.5);
        // After a long pause an overlong first word is cut to max_duration before its end.
        let ww = WindowWords { timings: vec![w(" long", &[1], 0.0, 2.0)], median_duration: 0.3, max_duration: 0.6 };
        let mut segs = vec![seg(0.0, 2.0, &[1])];
        assign_words(&ww, &mut segs, 0.0, -10.0, EOT);
        let w0 = &segs[0].words.as_ref().unwrap()[0];
        assert_eq!((w0.start, w0.end), (1.4, 2.0));
        assert_eq!((segs[0].start, segs[0].end), (1.4, 2.0));
        // A segment without text tokens gets no words and keeps its times.
        let mut segs = vec![seg(3.0, 4.0, &[EOT + 1, EOT + 2])];
        assert_eq!(assign_words(&WindowWords::default(), &mut segs, 0.0, 2.5, EOT), 2.5);
        assert_eq!(segs[0].words.as_deref(), Some(&[][..]));
        assert_eq!((segs[0].start, segs[0].end), (3.0, 4.0));
        assert_eq!(last_end(&segs), Some(4.0));
        assert_eq!(last_end(&[]), None);
    }

    #[test]
    fn speech_timeline_restores_words_by_their_middle() {
        use crate::vad::SpeechChunk;
        // Speech at 1-2 s and 5-6 s: 1 s and then 4 s of silence removed.
        let timeline = SpeechTimeline::new(&[SpeechChunk { start: 16_000, end: 32_000 }, SpeechChunk { start: 80_000, end: 96_000 }]);
        let mut s = seg(0.5, 1.5, &[1, 2]);
        s.words = Some(vec![
            Word { word: " a".into(), start: 0.5, end: 0.9, probability: 0.9 },
            // Middle 0.95 is in the first chunk: both ends map with it, past its end too.
            Word { word: " b".into(), start: 0.9, end: 1.0, probability: 0.9 },
            Word { word: " c".into(), start: 1.1, end: 1.5, probability: 0.9 },
        ]);
        restore_speech_timestamps(&mut s, &timeline);
        let w = s.words.as_ref().unwrap();
        assert_eq!((w[0].start, w[0].end, w[1].start, w[1].end), (1.5, 1.9, 1.9, 2.0));
        assert_eq!((w[2].start, w[2].end), (5.1, 5.5));
        assert_eq!((s.start, s.end), (1.5, 5.5));
        let mut s = seg(0.5, 1.0, &[1]);
        restore_speech_timestamps(&mut s, &timeline);
        assert_eq!((s.start, s.end), (1.5, 2.0));
    }

    #[test]
    fn hallucinations_after_silence_are_skipped() {
        let word = |t: &str, start: f64, end: f64, p: f64| Word { word: t.into(), start, end, probability: p };
        let with = |start: f64, end: f64, words: Vec<Word>| Segment { words: Some(words), ..seg(start, end, &[1]) };
        let span = WindowSpan { seek: 1000, time_offset: 10.0, duration: 30.0, end_time: 40.0, content_frames: 6000 };
        let normal = || with(10.5, 12.0, vec![word(" fine", 10.5, 11.0, 0.9), word(" words", 11.0, 12.0, 0.9)]);
        // An improbable 50 ms word after 5 s of silence opens the window: skip the silence.
        let odd = with(15.0, 15.05, vec![word(" uh", 15.0, 15.05, 0.05)]);
        assert_eq!(skip_hallucinations(std::slice::from_ref(&odd), 2.0, &span, 10.0), HallucinationSkip::Window { seek: 1500 });
        // A shorter silence than the threshold: kept.
        assert_eq!(skip_hallucinations(std::slice::from_ref(&odd), 6.0, &span, 10.0), HallucinationSkip::None);
        // After normal speech, the same segment with silence on both sides ends the window.
        let segs = [normal(), odd.clone(), seg(20.0, 21.0, &[1])];
        assert_eq!(skip_hallucinations(&segs, 2.0, &span, 10.0), HallucinationSkip::From { segment: 1, seek: 1500 });
        // ... and near the end of the input the seek goes to its end.
        let near_end = WindowSpan { content_frames: 1600, ..span };
        assert_eq!(skip_hallucinations(&segs, 2.0, &near_end, 10.0), HallucinationSkip::From { segment: 1, seek: 1600 });
        // Speech right after it (no silence after): kept.
        let segs = [normal(), odd, with(15.5, 16.0, vec![word(" more", 15.5, 16.0, 0.9)])];
        assert_eq!(skip_hallucinations(&segs, 2.0, &span, 10.0), HallucinationSkip::None);
        assert_eq!(skip_hallucinations(&[normal()], 2.0, &span, 10.0), HallucinationSkip::None);
        assert_eq!(skip_hallucinations(&[], 2.0, &span, 10.0), HallucinationSkip::None);
    }

    #[test]
    fn anomalies() {
        let word = |p: f64, d: f64| Word { word: " x".into(), start: 1.0, end: 1.0 + d, probability: p };
        assert_eq!(word_anomaly_score(&word(0.9, 0.5)), 0.0);
        assert!((word_anomaly_score(&word(0.1, 3.0)) - 2.0).abs() < 1e-12);
        let mut s = seg(0.0, 1.0, &[1]);
        assert!(!is_segment_anomaly(Some(&s)));
        s.words = Some(vec![word(0.1, 0.05), word(0.9, 0.5)]);
        // 1 + 15 * 0.083 = 2.245 for the first word; 2.245 + 0.01 >= 2 words.
        assert!(is_segment_anomaly(Some(&s)));
        s.words = Some(vec![word(0.9, 0.5), word(0.9, 0.5)]);
        assert!(!is_segment_anomaly(Some(&s)));
        assert!(!is_segment_anomaly(None));
    }
}
