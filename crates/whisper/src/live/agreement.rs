//! LocalAgreement-2 (Macháček, Dabre and Bojar 2023, as whisper_streaming runs it): each new
//! hypothesis of the buffered audio is compared word by word with the previous one, and the
//! longest common prefix is committed. Words the audio already committed are dropped from a
//! new hypothesis by time (they end before the last committed word) and by text (a repeated
//! n-gram of up to five words at the seam).

use crate::words::Word;

/// Words of a new hypothesis that start this much before the last committed word's end are
/// still taken as new (word times from the alignment are ±tens of milliseconds).
const TIME_SLACK: f64 = 0.1;
/// Longest n-gram at the seam compared with the committed words.
const MAX_SEAM_NGRAM: usize = 5;
/// A hypothesis that starts within this many seconds of the last committed word is checked
/// for a repeated n-gram at the seam.
const SEAM_WINDOW: f64 = 1.0;

/// A fresh hypothesis that begins by repeating this many words committed lately (in order) is
/// the decoder reading the previous speech, still in the buffer, into the new audio: those
/// words are dropped. (Seen at utterance starts: "The new software update fixed several" said
/// again where the next sentence begins.)
const REPEAT_MIN: usize = 4;
/// Two hypotheses that differ on one word still agree on it (the newer one's word is taken)
/// when the next this many words of both agree and the two words start within
/// [`SUBSTITUTION_SHIFT`] seconds of each other: the decoder revising one word ("Gloss" then
/// "Grows") would otherwise hold back every word after it until the utterance ends, the long
/// tail of the word latency.
const SUBSTITUTION_CONTEXT: usize = 2;
const SUBSTITUTION_SHIFT: f64 = 0.5;
/// Committed words kept (see [`Agreement::forget`]): the seam, the committed end and that
/// test need no more.
const RECENT_WORDS: usize = 64;

/// The text a word is compared by: lower case, letters and digits only (so "Hello," agrees
/// with "hello"); a word of punctuation only compares by its text.
pub fn word_key(word: &str) -> String {
    let k: String = word.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    if k.is_empty() {
        word.trim().to_string()
    } else {
        k
    }
}

/// The state of a stream's agreement: what is committed (the last words, see
/// [`Agreement::forget`]), and the previous hypothesis's uncommitted words. Times are seconds
/// of the decoded buffer's timeline.
#[derive(Clone, Debug, Default)]
pub struct Agreement {
    committed: Vec<Word>,
    pending: Vec<Word>,
}

impl Agreement {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every committed word so far, in order.
    pub fn committed(&self) -> &[Word] {
        &self.committed
    }

    /// The previous hypothesis's words that are not committed yet (the partial text).
    pub fn pending(&self) -> &[Word] {
        &self.pending
    }

    /// End of the last committed word (0 when none).
    pub fn committed_end(&self) -> f64 {
        self.committed.last().map_or(0.0, |w| w.end)
    }

    /// Drops from `hypothesis` what is already committed: words ending before the last
    /// committed word (by time), then a repeated n-gram at the seam (by text).
    fn fresh(&self, hypothesis: Vec<Word>) -> Vec<Word> {
        let Some(last) = self.committed.last() else { return hypothesis };
        let t = last.end;
        let mut new: Vec<Word> = hypothesis.into_iter().filter(|w| w.start > t - TIME_SLACK).collect();
        if let Some(first) = new.first() {
            if (first.start - t).abs() < SEAM_WINDOW {
                let most = MAX_SEAM_NGRAM.min(self.committed.len()).min(new.len());
                for n in (1..=most).rev() {
                    let tail = &self.committed[self.committed.len() - n..];
                    if tail.iter().zip(&new[..n]).all(|(a, b)| word_key(&a.word) == word_key(&b.word)) {
                        new.drain(..n);
                        break;
                    }
                }
            }
        }
        let keys: Vec<String> = self.committed.iter().map(|w| word_key(&w.word)).collect();
        let repeated = repeated_run(&keys, &new, |_| true);
        if repeated >= REPEAT_MIN {
            new.drain(..repeated);
        }
        // Further in: a sentence that starts by repeating the start of a sentence committed
        // lately (seen: "...harder to use. The new software update fixed several" where the
        // committed text had "The new software update fixed and all problems, ...").
        let mut i = 1;
        while i < new.len() {
            let sentence_start = |j: usize| j == 0 || ends_sentence(&self.committed[j - 1].word);
            let run = if ends_sentence(&new[i - 1].word) { repeated_run(&keys, &new[i..], sentence_start) } else { 0 };
            if run >= REPEAT_MIN {
                new.drain(i..i + run);
            } else {
                i += 1;
            }
        }
        new
    }


    /// Takes a new hypothesis (stream times) and commits the longest prefix on which it
    /// agrees with the previous one (a lone differing word agrees when the words after it
    /// do, see [`SUBSTITUTION_CONTEXT`]); returns the words committed now.
    pub fn insert(&mut self, hypothesis: Vec<Word>) -> Vec<Word> {
        let mut new = self.fresh(hypothesis);
        let agreed = agreed_prefix(&self.pending, &new);
        let rest = new.split_off(agreed);
        self.committed.extend(new.iter().cloned());
        self.pending = rest;
        new
    }

    /// Takes the last hypothesis of the utterance and commits all of it; returns the words
    /// committed now.
    pub fn finish(&mut self, hypothesis: Vec<Word>) -> Vec<Word> {
        let new = self.fresh(hypothesis);
        self.committed.extend(new.iter().cloned());
        self.pending.clear();
        new
    }

    /// Commits the pending words whose middle is at or before `until` (the buffer is cut
    /// there, or an utterance ended there, and nothing agreed yet); returns them.
    pub fn force(&mut self, until: f64) -> Vec<Word> {
        let n = self.pending.iter().take_while(|w| (w.start + w.end) / 2.0 <= until).count();
        let forced: Vec<Word> = self.pending.drain(..n).collect();
        self.committed.extend(forced.iter().cloned());
        forced
    }

    /// Forgets the pending words whose middle is at or before `until` (heard where nothing
    /// is to be committed: after an utterance's speech ended).
    pub fn drop_pending(&mut self, until: f64) {
        let n = self.pending.iter().take_while(|w| (w.start + w.end) / 2.0 <= until).count();
        self.pending.drain(..n);
    }

    /// Forgets the pending words (their audio was dropped).
    pub fn clear_pending(&mut self) {
        self.pending.clear();
    }

    /// Keeps only the last [`RECENT_WORDS`] committed words: enough for the seam, the
    /// committed end and the repeat test, so a stream of any length holds a bounded history.
    pub fn forget(&mut self) {
        let n = self.committed.len().saturating_sub(RECENT_WORDS);
        self.committed.drain(..n);
    }

    /// The committed text (words' texts joined, leading space trimmed).
    pub fn text(&self) -> String {
        join(&self.committed)
    }
}

/// The longest run of `words`' first words equal, in order, to the committed words (their
/// `keys`) from a position `from` accepts.
fn repeated_run(keys: &[String], words: &[Word], from: impl Fn(usize) -> bool) -> usize {
    (0..keys.len())
        .filter(|&j| from(j))
        .map(|j| keys[j..].iter().zip(words).take_while(|(k, w)| **k == word_key(&w.word)).count())
        .max()
        .unwrap_or(0)
}

/// Whether `word` ends a sentence (its text ends with `.`, `?` or `!`).
fn ends_sentence(word: &str) -> bool {
    word.trim_end().ends_with(['.', '?', '!'])
}

/// How many first words of `new` agree with `previous`: equal keys, or, where the two differ,
/// a lone substituted, missing or extra word followed by [`SUBSTITUTION_CONTEXT`] equal keys
/// (the newer hypothesis's words are what is committed).
fn agreed_prefix(previous: &[Word], new: &[Word]) -> usize {
    let a: Vec<String> = previous.iter().map(|w| word_key(&w.word)).collect();
    let b: Vec<String> = new.iter().map(|w| word_key(&w.word)).collect();
    let k = SUBSTITUTION_CONTEXT;
    let agree = |i: usize, j: usize| i + k <= a.len() && j + k <= b.len() && a[i..i + k] == b[j..j + k];
    let near = |i: usize, j: usize| (previous[i].start - new[j].start).abs() < SUBSTITUTION_SHIFT;
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] || (agree(i + 1, j + 1) && near(i, j)) {
            // Equal, or one word revised.
            i += 1;
            j += 1;
        } else if agree(i + 1, j) && near(i + 1, j) {
            // The new hypothesis lost a word: nothing of it to commit.
            i += 1;
        } else if agree(i, j + 1) && near(i, j + 1) {
            // The new hypothesis has a word more: committed with the rest.
            j += 1;
        } else {
            break;
        }
    }
    j
}

/// Words' texts concatenated (each carries its leading space), trimmed.
pub fn join(words: &[Word]) -> String {
    words.iter().map(|w| w.word.as_str()).collect::<String>().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(spec: &[(&str, f64, f64)]) -> Vec<Word> {
        spec.iter().map(|&(w, s, e)| Word { word: format!(" {w}"), start: s, end: e, probability: 0.9 }).collect()
    }

    #[test]
    fn commits_the_common_prefix_of_two_hypotheses() {
        let mut a = Agreement::new();
        assert!(a.insert(words(&[("the", 0.0, 0.2), ("cat", 0.2, 0.5)])).is_empty());
        assert_eq!(join(a.pending()), "the cat");
        let c = a.insert(words(&[("the", 0.0, 0.2), ("cat", 0.2, 0.5), ("sat", 0.6, 0.9)]));
        assert_eq!(join(&c), "the cat");
        assert_eq!(join(a.pending()), "sat");
        // The next hypothesis revises "sat": nothing more agrees.
        let c = a.insert(words(&[("the", 0.0, 0.2), ("cat", 0.2, 0.5), ("sang", 0.6, 0.9), ("on", 1.0, 1.1)]));
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(join(a.pending()), "sang on");
        let c = a.insert(words(&[("cat", 0.2, 0.5), ("sang,", 0.6, 0.9), ("on", 1.0, 1.1), ("the", 1.1, 1.2)]));
        assert_eq!(join(&c), "sang, on");
        assert_eq!(a.text(), "the cat sang, on");
        assert!((a.committed_end() - 1.1).abs() < 1e-9);
    }

    #[test]
    fn comparison_ignores_case_and_punctuation() {
        assert_eq!(word_key(" Hello,"), "hello");
        assert_eq!(word_key(" ..."), "...");
        let mut a = Agreement::new();
        a.insert(words(&[("Hello", 0.0, 0.3)]));
        let c = a.insert(words(&[("hello,", 0.0, 0.3), ("world", 0.4, 0.8)]));
        assert_eq!(join(&c), "hello,");
    }

    #[test]
    fn drops_words_already_committed_by_time_and_at_the_seam() {
        let mut a = Agreement::new();
        a.insert(words(&[("one", 0.0, 0.3), ("two", 0.4, 0.7)]));
        a.insert(words(&[("one", 0.0, 0.3), ("two", 0.4, 0.7), ("three", 0.8, 1.0)]));
        assert_eq!(a.text(), "one two");
        // The buffer was cut: the new hypothesis repeats "two" with a time just after the cut.
        let c = a.insert(words(&[("two", 0.75, 0.9), ("three", 0.9, 1.1), ("four", 1.2, 1.4)]));
        assert_eq!(join(&c), "three");
        assert_eq!(join(a.pending()), "four");
        // Time alone: words that start before the committed end are not new.
        let c = a.finish(words(&[("one", 0.0, 0.3), ("three", 0.8, 1.0), ("four", 1.2, 1.4), ("five", 1.5, 1.6)]));
        assert_eq!(join(&c), "four five");
        assert_eq!(a.text(), "one two three four five");
        assert!(a.pending().is_empty());
    }

    #[test]
    fn a_repeat_of_lately_committed_words_is_dropped() {
        let mut a = Agreement::new();
        let first = words(&[("the", 0.0, 0.2), ("new", 0.2, 0.4), ("update", 0.4, 0.6), ("fixed", 0.6, 0.8), ("problems", 0.8, 1.0), ("today", 1.0, 1.2)]);
        a.insert(first.clone());
        a.insert(first);
        assert_eq!(a.text(), "the new update fixed problems today");
        a.forget();
        // The next utterance's decoding starts by saying four of them again, then new words.
        let again = words(&[("The", 3.0, 3.2), ("new", 3.2, 3.4), ("update", 3.4, 3.6), ("fixed", 3.6, 3.8), ("he", 3.9, 4.0), ("ran", 4.0, 4.2)]);
        a.insert(again.clone());
        assert_eq!(join(a.pending()), "he ran");
        // Three repeated words are kept: people do say that.
        let mut b = Agreement::new();
        b.insert(words(&[("we", 0.0, 0.2), ("will", 0.2, 0.4), ("go", 0.4, 0.6)]));
        b.insert(words(&[("we", 0.0, 0.2), ("will", 0.2, 0.4), ("go", 0.4, 0.6)]));
        b.insert(words(&[("we", 3.0, 3.2), ("will", 3.2, 3.4), ("go", 3.4, 3.6), ("now", 3.6, 3.8)]));
        assert_eq!(join(b.pending()), "we will go now");
    }

    #[test]
    fn a_lone_revised_word_agrees_when_the_words_after_it_do() {
        let mut a = Agreement::new();
        a.insert(words(&[("Gloss", 0.0, 0.3), ("tomatoes", 0.3, 0.8), ("beans", 0.9, 1.2), ("and", 1.2, 1.3)]));
        let c = a.insert(words(&[("Grows", 0.05, 0.3), ("tomatoes", 0.3, 0.8), ("beans", 0.9, 1.2), ("and", 1.2, 1.3), ("peppers", 1.3, 1.8)]));
        // The newer word is committed, and the agreement goes on past it.
        assert_eq!(join(&c), "Grows tomatoes beans and");
        assert_eq!(join(a.pending()), "peppers");
        // One agreeing word after the difference is not enough, nor two differences in a row,
        // nor the same words far apart in time.
        for (next, want) in [
            (vec![("x", 2.0, 2.2), ("y", 2.2, 2.4), ("z", 2.4, 2.6)], ""),
            (vec![("b", 2.0, 2.2), ("y", 2.2, 2.4)], ""),
            (vec![("b", 2.0, 2.2), ("y", 2.2, 2.4), ("w", 2.4, 2.6)], "b y w"),
        ] {
            let mut b = Agreement::new();
            b.insert(words(&[("a", 2.0, 2.2), ("y", 2.2, 2.4), ("w", 2.4, 2.6)]));
            b.insert(words(&next));
            assert_eq!(join(b.committed()), want, "{next:?}");
        }
        let mut b = Agreement::new();
        b.insert(words(&[("a", 2.0, 2.2), ("b", 2.2, 2.4), ("c", 2.4, 2.6), ("d", 2.6, 2.8)]));
        assert!(b.insert(words(&[("x", 2.0, 2.2), ("y", 2.2, 2.4), ("c", 2.4, 2.6), ("d", 2.6, 2.8)])).is_empty());
        let mut b = Agreement::new();
        b.insert(words(&[("a", 2.0, 2.2), ("b", 2.2, 2.4), ("c", 2.4, 2.6)]));
        assert!(b.insert(words(&[("x", 1.0, 2.2), ("b", 2.2, 2.4), ("c", 2.4, 2.6)])).is_empty());
    }

    #[test]
    fn a_lone_lost_or_added_word_agrees_when_the_words_after_it_do() {
        let said = [("the", 0.0, 0.2), ("engineers", 0.2, 0.7), ("tested", 0.8, 1.1), ("the", 1.1, 1.2), ("engine", 1.2, 1.6)];
        // Lost: "the" before "engineers" is gone from the newer hypothesis.
        let mut a = Agreement::new();
        a.insert(words(&said));
        let c = a.insert(words(&[("engineers", 0.15, 0.7), ("tested", 0.8, 1.1), ("the", 1.1, 1.2), ("engine", 1.2, 1.6), ("for", 1.7, 1.8)]));
        assert_eq!(join(&c), "engineers tested the engine");
        assert_eq!(join(a.pending()), "for");
        // Added: the newer hypothesis has "new" before "engine".
        let mut a = Agreement::new();
        a.insert(words(&said));
        let c = a.insert(words(&[("the", 0.0, 0.2), ("engineers", 0.2, 0.7), ("tested", 0.8, 1.1), ("the", 1.1, 1.2), ("new", 1.2, 1.3), ("engine", 1.3, 1.6), ("for", 1.7, 1.8)]));
        // "new engine" then needs two agreeing words after it: "engine" alone is not enough.
        assert_eq!(join(&c), "the engineers tested the");
        let mut a = Agreement::new();
        a.insert(words(&[("we", 0.0, 0.2), ("saw", 0.2, 0.4), ("a", 0.4, 0.5), ("cat", 0.5, 0.8), ("today", 0.8, 1.1)]));
        let c = a.insert(words(&[("we", 0.0, 0.2), ("saw", 0.2, 0.4), ("a", 0.4, 0.5), ("black", 0.5, 0.7), ("cat", 0.7, 0.9), ("today", 0.9, 1.1), ("again", 1.1, 1.3)]));
        assert_eq!(join(&c), "we saw a black cat today");
        assert_eq!(join(a.pending()), "again");
    }

    #[test]
    fn a_sentence_that_restarts_a_committed_sentence_is_dropped() {
        let mut a = Agreement::new();
        let said = words(&[("The", 0.0, 0.2), ("new", 0.2, 0.4), ("update", 0.4, 0.6), ("fixed", 0.6, 0.8), ("all", 0.8, 1.0), ("problems", 1.0, 1.2)]);
        a.insert(said.clone());
        a.insert(said);
        // The rest of the utterance, then the same sentence's start read again.
        let next = words(&[("but", 1.3, 1.5), ("not", 1.5, 1.7), ("today.", 1.7, 2.0), ("The", 2.0, 2.1), ("new", 2.1, 2.2), ("update", 2.2, 2.3), ("fixed", 2.3, 2.4), ("several", 2.4, 2.5)]);
        a.insert(next);
        assert_eq!(join(a.pending()), "but not today. several");
        // Not at a sentence start, or fewer than four words: kept.
        let mut b = Agreement::new();
        let said = words(&[("At", 0.0, 0.2), ("the", 0.2, 0.4), ("end", 0.4, 0.6), ("of", 0.6, 0.8), ("the", 0.8, 1.0), ("day.", 1.0, 1.2)]);
        b.insert(said.clone());
        b.insert(said);
        b.insert(words(&[("Mark", 1.3, 1.5), ("the", 1.5, 1.7), ("end", 1.7, 2.0), ("of", 2.0, 2.1), ("the", 2.1, 2.2), ("term.", 2.2, 2.3), ("At", 2.3, 2.4), ("the", 2.4, 2.5), ("end.", 2.5, 2.6)]));
        assert_eq!(join(b.pending()), "Mark the end of the term. At the end.");
    }

    #[test]
    fn force_commits_pending_words_up_to_a_time() {
        let mut a = Agreement::new();
        a.insert(words(&[("a", 0.0, 1.0), ("b", 1.0, 2.0), ("c", 2.0, 3.0)]));
        let f = a.force(2.0);
        assert_eq!(join(&f), "a b");
        assert_eq!(join(a.pending()), "c");
    }
}
