//! The audio a stream decodes: the speech of its utterances one after another (with turn
//! detection the silence between them is left out, as an offline VAD filter does), on a
//! timeline of its own ("buffer time"), and the map from that timeline back to the stream's.
//!
//! Positions on the buffer's timeline only grow: cutting the front moves the start, and
//! dropping everything moves the start to the end, so a word time once seen never names
//! other audio later.

use std::collections::VecDeque;

use super::SAMPLE_RATE;

#[derive(Default)]
pub struct Buffer {
    audio: Vec<f32>,
    /// Buffer-timeline sample of `audio[0]`.
    start: u64,
    /// (buffer sample, stream sample) at which each contiguous piece of stream audio begins;
    /// the first piece begins at or before `start`.
    pieces: VecDeque<(u64, u64)>,
    /// Buffer-timeline sample up to which a decoding has covered the audio: the steps are
    /// counted from here, so where they fall depends on the audio alone.
    decoded: u64,
}

impl Buffer {
    /// Buffer-timeline sample of the first held sample.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Buffer-timeline sample after the last held sample.
    pub fn end(&self) -> u64 {
        self.start + self.audio.len() as u64
    }

    pub fn audio(&self) -> &[f32] {
        &self.audio
    }

    /// Samples held beyond what a decoding covered.
    pub fn new_samples(&self) -> usize {
        (self.end() - self.decoded.max(self.start)) as usize
    }

    /// Buffer-timeline sample up to which a decoding covered the audio.
    pub fn decoded(&self) -> u64 {
        self.decoded.max(self.start)
    }

    /// A decoding of the audio up to buffer sample `b` was handed out.
    pub fn mark_decoded(&mut self, b: u64) {
        self.decoded = self.decoded.max(b.min(self.end()));
    }

    /// The audio held up to buffer sample `b`.
    pub fn audio_to(&self, b: u64) -> &[f32] {
        &self.audio[..(b.saturating_sub(self.start) as usize).min(self.audio.len())]
    }

    /// Appends `samples` that begin at stream sample `stream_pos`.
    pub fn append(&mut self, stream_pos: u64, samples: &[f32]) {
        if samples.is_empty() {
            return;
        }
        let b = self.end();
        let contiguous = self.pieces.back().is_some_and(|&(pb, ps)| ps + (b - pb) == stream_pos);
        if !contiguous {
            self.pieces.push_back((b, stream_pos));
        }
        self.audio.extend_from_slice(samples);
    }

    /// Drops the audio before buffer sample `b`.
    pub fn drop_before(&mut self, b: u64) {
        let n = (b.saturating_sub(self.start) as usize).min(self.audio.len());
        self.audio.drain(..n);
        self.start += n as u64;
        while self.pieces.len() >= 2 && self.pieces[1].0 <= self.start {
            self.pieces.pop_front();
        }
    }

    /// Drops everything held.
    pub fn drop_all(&mut self) {
        self.drop_before(self.end());
    }

    /// Stream seconds of buffer second `t`.
    pub fn to_stream(&self, t: f64) -> f64 {
        let b = t * SAMPLE_RATE as f64;
        let idx = self.pieces.partition_point(|&(pb, _)| pb as f64 <= b);
        let (pb, ps) = match idx {
            0 => self.pieces.front().copied().unwrap_or((0, 0)),
            i => self.pieces[i - 1],
        };
        (ps as f64 + (b - pb as f64)) / SAMPLE_RATE as f64
    }
}

/// Buffer seconds of buffer sample `b`.
pub fn seconds(b: u64) -> f64 {
    b as f64 / SAMPLE_RATE as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_buffer_time_to_stream_time_across_left_out_silence() {
        let mut b = Buffer::default();
        b.append(16_000, &[0.0; 16_000]); // stream 1..2 s
        b.append(32_000, &[0.0; 8_000]); // contiguous: stream 2..2.5 s
        b.append(80_000, &[0.0; 16_000]); // after a pause: stream 5..6 s
        assert_eq!(b.end(), 40_000);
        assert!((b.to_stream(0.0) - 1.0).abs() < 1e-9);
        assert!((b.to_stream(1.25) - 2.25).abs() < 1e-9);
        assert!((b.to_stream(1.5) - 5.0).abs() < 1e-9);
        assert!((b.to_stream(2.5) - 6.0).abs() < 1e-9);
        assert_eq!(b.new_samples(), 40_000);
        b.drop_before(30_000);
        assert_eq!((b.start(), b.audio().len()), (30_000, 10_000));
        assert!((b.to_stream(2.0) - 5.5).abs() < 1e-9);
        b.mark_decoded(35_000);
        assert_eq!((b.decoded(), b.new_samples(), b.audio_to(35_000).len()), (35_000, 5_000, 5_000));
        b.drop_all();
        assert_eq!((b.start(), b.end(), b.new_samples()), (40_000, 40_000, 0));
        b.append(160_000, &[0.0; 1600]);
        assert!((b.to_stream(2.55) - 10.05).abs() < 1e-9);
    }
}
