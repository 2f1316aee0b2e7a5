//! Turn detection for live audio: a [`Vad`] run window by window decides where speech starts
//! and where a long enough silence ends it (OpenAI's `server_vad` semantics: a speech
//! probability threshold, audio kept before the start, silence that ends a turn).

use crate::vad::{Vad, WINDOW};
use crate::{Error, Result};

/// When speech starts and ends.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnOptions {
    /// A window at or above this probability is speech (0..1).
    pub threshold: f32,
    /// Audio kept in front of the detected start of speech.
    pub prefix_padding_ms: u32,
    /// Silence (windows below `threshold - 0.15`) that ends a turn.
    pub silence_duration_ms: u32,
}

impl Default for TurnOptions {
    fn default() -> Self {
        TurnOptions { threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 }
    }
}

impl TurnOptions {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return bad(format!("the turn detection threshold {} must be between 0 and 1 (exclusive); 0.5 is the default", self.threshold));
        }
        if self.prefix_padding_ms > 10_000 {
            return bad(format!("prefix padding of {} ms is too long: at most 10000 ms", self.prefix_padding_ms));
        }
        if !(100..=30_000).contains(&self.silence_duration_ms) {
            return bad(format!("a silence duration of {} ms is out of range: 100 to 30000 ms", self.silence_duration_ms));
        }
        Ok(())
    }

    fn neg_threshold(&self) -> f32 {
        (self.threshold - 0.15).max(0.01)
    }
}

/// A change of turn at a sample position of the stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Turn {
    /// Speech starts at this sample (the start of the first window at the threshold).
    Started(u64),
    /// Speech ended at the first sample (the start of the silence that ended it); the silence
    /// was long enough at the second (the end of the window that made it so). Both depend on
    /// the audio alone, not on how it was chunked.
    Stopped(u64, u64),
}

/// Runs the VAD over a stream fed in chunks of any size; reports turn changes.
pub struct TurnDetector<V> {
    vad: V,
    opts: TurnOptions,
    /// Samples not yet a whole window.
    partial: Vec<f32>,
    /// Samples fed to the VAD so far (a multiple of WINDOW).
    position: u64,
    in_speech: bool,
    /// Where the current silence began, while in speech.
    silence_from: Option<u64>,
}

impl<V: Vad> TurnDetector<V> {
    pub fn new(vad: V, opts: TurnOptions) -> Self {
        TurnDetector { vad, opts, partial: Vec::new(), position: 0, in_speech: false, silence_from: None }
    }

    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    pub fn options(&self) -> &TurnOptions {
        &self.opts
    }

    /// Changes the thresholds from now on; the VAD state carries on.
    pub fn set_options(&mut self, opts: TurnOptions) {
        self.opts = opts;
    }

    /// Samples judged so far (whole windows).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Feeds `samples`; returns the turn changes among the whole windows now complete.
    pub fn feed(&mut self, samples: &[f32]) -> Result<Vec<Turn>> {
        self.partial.extend_from_slice(samples);
        let whole = self.partial.len() / WINDOW * WINDOW;
        if whole == 0 {
            return Ok(Vec::new());
        }
        let probs = self.vad.probabilities(&self.partial[..whole])?;
        self.partial.drain(..whole);
        let silence_windows = (self.opts.silence_duration_ms as u64 * 16).div_ceil(WINDOW as u64);
        let mut turns = Vec::new();
        for p in probs {
            let at = self.position;
            self.position += WINDOW as u64;
            if p >= self.opts.threshold {
                if !self.in_speech {
                    self.in_speech = true;
                    turns.push(Turn::Started(at));
                }
                self.silence_from = None;
            } else if self.in_speech && p < self.opts.neg_threshold() {
                let from = *self.silence_from.get_or_insert(at);
                if (self.position - from) / WINDOW as u64 >= silence_windows {
                    self.in_speech = false;
                    self.silence_from = None;
                    turns.push(Turn::Stopped(from, self.position));
                }
            }
        }
        Ok(turns)
    }

    /// Forgets the speech state (after a buffer clear); the VAD's own state carries on.
    pub fn reset_turn(&mut self) {
        self.in_speech = false;
        self.silence_from = None;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fake VAD: the probability of a window is its first sample.
    pub(crate) struct Level;
    impl Vad for Level {
        fn reset(&mut self) {}
        fn probabilities(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
            Ok(samples.chunks(WINDOW).map(|w| w[0]).collect())
        }
    }

    fn windows(levels: &[(f32, usize)]) -> Vec<f32> {
        levels.iter().flat_map(|&(l, n)| std::iter::repeat_n(l, n * WINDOW)).collect()
    }

    #[test]
    fn speech_starts_at_the_threshold_and_ends_after_the_silence() {
        let opts = TurnOptions { threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 320 };
        let mut d = TurnDetector::new(Level, opts);
        // 3 silent windows, 5 speech, 2 in between (continue speech), 4 silent (< 320 ms = 10
        // windows), 2 speech, 12 silent.
        let audio = windows(&[(0.0, 3), (0.9, 5), (0.4, 2), (0.1, 4), (0.8, 2), (0.0, 12)]);
        // Fed in odd-sized chunks, the result is the same.
        let mut turns = Vec::new();
        for chunk in audio.chunks(700) {
            turns.extend(d.feed(chunk).unwrap());
        }
        let w = WINDOW as u64;
        assert_eq!(turns, vec![Turn::Started(3 * w), Turn::Stopped(16 * w, 26 * w)]);
        assert!(!d.in_speech());
        assert_eq!(d.position(), 28 * w);
    }

    #[test]
    fn bad_options_are_refused() {
        for o in [
            TurnOptions { threshold: 1.0, ..Default::default() },
            TurnOptions { threshold: f32::NAN, ..Default::default() },
            TurnOptions { silence_duration_ms: 10, ..Default::default() },
            TurnOptions { prefix_padding_ms: 60_000, ..Default::default() },
        ] {
            assert!(o.validate().is_err(), "{o:?}");
        }
        TurnOptions::default().validate().unwrap();
    }
}
