//! Log-mel features computed window by window from a [`SampleSource`], so a long input never
//! has its whole spectrogram (or its samples) in memory.
//!
//! `StreamingFeatures::window(start, n)` equals `MelExtractor::compute(&all).window(start, n)`
//! bit for bit: the frames run through the same code on the same samples (STFT context and
//! the mirrored start/end included), and the clamp at `global max − 8` uses the maximum over
//! the whole input, found by a first streaming pass at construction.
//!
//! Memory: one block of samples and frames at a time (about 4 MB during the first pass, the
//! size of the asked window after).

use crate::audio::SampleSource;
use crate::mel::{Mel, MelExtractor, HOP_LENGTH};
use crate::Result;

/// Frames computed per block in the first pass (about 65 s of audio).
const PASS_FRAMES: usize = 4096;

/// Whisper's log-mel of a [`SampleSource`], served by windows.
pub struct StreamingFeatures<S> {
    source: S,
    extractor: MelExtractor,
    /// Maximum log10 mel energy over the whole input.
    max: f32,
    /// Frames of the whole input, as [`Mel::n_frames`] of [`MelExtractor::compute`].
    pub n_frames: usize,
}

impl<S: SampleSource> StreamingFeatures<S> {
    /// Scans `source` once (to find the global maximum) with a new `n_mels` extractor.
    pub fn new(source: S, n_mels: usize) -> Result<Self> {
        Self::with_extractor(source, MelExtractor::new(n_mels)?)
    }

    /// As [`StreamingFeatures::new`] with a given extractor.
    pub fn with_extractor(source: S, extractor: MelExtractor) -> Result<Self> {
        let len = source.len();
        let n_frames = MelExtractor::n_frames_for(len);
        let mut max = f32::NEG_INFINITY;
        let mut t0 = 0;
        while t0 < n_frames {
            let t1 = (t0 + PASS_FRAMES).min(n_frames);
            let (_, m) = frames(&source, &extractor, t0..t1)?;
            max = max.max(m);
            t0 = t1;
        }
        Ok(StreamingFeatures {
            source,
            extractor,
            max,
            n_frames,
        })
    }

    /// Frames of the whole input.
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }

    pub fn n_mels(&self) -> usize {
        self.extractor.n_mels()
    }

    /// Samples of the input.
    pub fn n_samples(&self) -> usize {
        self.source.len()
    }

    /// The sample source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Frames `[start_frame, min(start_frame + n_frames, self.n_frames))`, like
    /// [`Mel::window`] of the whole input's mel (shorter, possibly empty, past the end);
    /// follow with [`Mel::pad_or_trim`] for an encoder input. Errors only if the source
    /// cannot be read.
    pub fn window(&self, start_frame: usize, n_frames: usize) -> Result<Mel> {
        let start = start_frame.min(self.n_frames);
        let end = start_frame.saturating_add(n_frames).min(self.n_frames);
        let (frame_major, _) = frames(&self.source, &self.extractor, start..end)?;
        Ok(self.extractor.finish(&frame_major, end - start, self.max))
    }

    /// Samples per frame (the STFT hop).
    pub const HOP: usize = HOP_LENGTH;
}

/// Frame-major log10 values of `range` and their maximum, reading only the samples needed.
fn frames<S: SampleSource>(
    source: &S,
    extractor: &MelExtractor,
    range: std::ops::Range<usize>,
) -> Result<(Vec<f32>, f32)> {
    let len = source.len();
    let input = MelExtractor::frames_input(len, range.clone());
    let seg = source.read(input.clone())?;
    Ok(extractor.log10_frames(&seg, input.start, len, range))
}
