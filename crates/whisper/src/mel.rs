//! Whisper's log-mel spectrogram, computed exactly as faster-whisper 1.2.1's `FeatureExtractor`.
//!
//! Pipeline for a clip of `len` samples at 16 kHz:
//! 1. append 160 zero samples (faster-whisper's `padding=160`);
//! 2. STFT with n_fft 400, hop 160, periodic Hann window, `center=True` (reflect-pad 200 samples
//!    on each side), power spectrum `|X|²`;
//! 3. drop the last STFT frame, so `n_frames = (len + 160) / 160`;
//! 4. slaney-normalised mel filter bank (80 or 128 filters, as librosa's `filters.mel` with
//!    `htk=False, norm="slaney"`);
//! 5. `log10(max(x, 1e-10))`, clamp below at (global max − 8), then `(x + 4) / 4`.
//!
//! Everything is float32 like the reference (numpy ≥ 2 computes float32 FFTs in float32).
//! The filter product is sparse: each filter covers only a short run of FFT bins, so each mel
//! value is a dot product over that run instead of over all 201 bins.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::audio::SAMPLE_RATE;
use crate::{Error, Result};

pub const N_FFT: usize = 400;
pub const HOP_LENGTH: usize = 160;
/// Seconds of audio in one encoder window.
pub const CHUNK_LENGTH: usize = 30;
/// Samples in one 30 s window.
pub const N_SAMPLES: usize = CHUNK_LENGTH * SAMPLE_RATE;
/// Frames in one 30 s window.
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;
/// FFT bins of the one-sided spectrum.
pub const N_BINS: usize = N_FFT / 2 + 1;

/// Zero samples faster-whisper appends before the STFT (its `padding=160` default).
const TAIL_PADDING: usize = HOP_LENGTH;
/// Floor before the log, as in Whisper.
const LOG_FLOOR: f32 = 1e-10;
/// Dynamic range kept below the loudest value, in log10 units (80 dB).
const DYNAMIC_RANGE: f32 = 8.0;
/// Frames handled by one parallel task: big enough that the task overhead is noise, small
/// enough that two cores share a 30 s clip.
const FRAMES_PER_TASK: usize = 512;

/// Slaney-style mel filter bank, row-major `[n_mels][N_FFT / 2 + 1]`.
///
/// Same numbers as librosa's `filters.mel(sr=16000, n_fft=400, n_mels, htk=False,
/// norm="slaney")`: linear mel scale below 1 kHz, logarithmic above, 0 Hz to 8 kHz, triangles
/// normalised to constant area. Computed in f64 and rounded to f32 as faster-whisper does.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    // Slaney mel scale: 3 mels per 200 Hz below 1 kHz, then log-spaced with 27 mels per
    // factor 6.4.
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |hz: f64| {
        if hz >= MIN_LOG_HZ {
            MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / logstep
        } else {
            hz / F_SP
        }
    };
    let mel_to_hz = |mel: f64| {
        if mel >= MIN_LOG_MEL {
            MIN_LOG_HZ * (logstep * (mel - MIN_LOG_MEL)).exp()
        } else {
            F_SP * mel
        }
    };

    let max_mel = hz_to_mel(SAMPLE_RATE as f64 / 2.0);
    let n_points = n_mels + 2;
    // Band edges, evenly spaced in mel (numpy.linspace: start + i * step, last point exact).
    let step = max_mel / (n_points - 1) as f64;
    let edges: Vec<f64> = (0..n_points)
        .map(|i| {
            if i + 1 == n_points {
                max_mel
            } else {
                i as f64 * step
            }
        })
        .map(mel_to_hz)
        .collect();

    let mut out = vec![0f32; n_mels * N_BINS];
    for m in 0..n_mels {
        let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for k in 0..N_BINS {
            let f = k as f64 * SAMPLE_RATE as f64 / N_FFT as f64;
            let rising = (f - lo) / (mid - lo);
            let falling = (hi - f) / (hi - mid);
            let w = rising.min(falling).max(0.0);
            out[m * N_BINS + k] = (w * enorm) as f32;
        }
    }
    out
}

/// Log-mel of a whole clip, row-major `[n_mels][n_frames]`.
#[derive(Clone, Debug)]
pub struct Mel {
    pub n_mels: usize,
    pub n_frames: usize,
    pub data: Vec<f32>,
}

impl Mel {
    /// Copy of frames `[start, min(start + n_frames, self.n_frames))`: shorter than asked
    /// (possibly empty) when the window runs past the end. Callers that need a fixed-size
    /// encoder input follow with [`Mel::pad_or_trim`].
    pub fn window(&self, start_frame: usize, n_frames: usize) -> Mel {
        let start = start_frame.min(self.n_frames);
        let end = start_frame.saturating_add(n_frames).min(self.n_frames);
        let len = end - start;
        let mut data = Vec::with_capacity(self.n_mels * len);
        for row in self
            .data
            .chunks_exact(self.n_frames.max(1))
            .take(self.n_mels)
        {
            data.extend_from_slice(&row[start..end]);
        }
        Mel {
            n_mels: self.n_mels,
            n_frames: len,
            data,
        }
    }

    /// Exactly `n_frames` frames: the first ones, padded with 0.0 after the normalisation
    /// (faster-whisper pads its feature matrix with zeros, not with silence's log-mel).
    pub fn pad_or_trim(&self, n_frames: usize) -> Mel {
        let keep = self.n_frames.min(n_frames);
        let mut data = vec![0f32; self.n_mels * n_frames];
        if keep > 0 {
            for (dst, src) in data
                .chunks_exact_mut(n_frames)
                .zip(self.data.chunks_exact(self.n_frames))
            {
                dst[..keep].copy_from_slice(&src[..keep]);
            }
        }
        Mel {
            n_mels: self.n_mels,
            n_frames,
            data,
        }
    }

    /// The `n_frames` values of one mel band.
    pub fn row(&self, mel: usize) -> &[f32] {
        &self.data[mel * self.n_frames..(mel + 1) * self.n_frames]
    }
}

/// The non-zero run of one filter: weights for bins `start..start + weights.len()`.
#[derive(Clone, Debug)]
struct SparseFilter {
    start: usize,
    weights: Vec<f32>,
}

/// Reusable log-mel extractor: filter bank, window and FFT plan are built once.
/// `Send + Sync`, so one instance can serve many threads.
pub struct MelExtractor {
    n_mels: usize,
    window: Vec<f32>,
    filters: Vec<SparseFilter>,
    fft: Arc<dyn RealToComplex<f32>>,
}

/// Per-thread buffers, so the frame loop never allocates.
struct Scratch {
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    fft_scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

impl MelExtractor {
    /// An extractor for `n_mels` bands: 80 (all Whisper models up to large-v2) or 128
    /// (large-v3).
    pub fn new(n_mels: usize) -> Result<Self> {
        if n_mels != 80 && n_mels != 128 {
            return Err(Error::InvalidArgument(format!(
                "n_mels = {n_mels}: Whisper models use 80 mel bands (128 for large-v3); check \
                 the model's num_mel_bins"
            )));
        }
        let dense = mel_filters(n_mels);
        let filters = dense
            .chunks_exact(N_BINS)
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0);
                let last = row.iter().rposition(|&w| w != 0.0);
                match (first, last) {
                    (Some(a), Some(b)) => SparseFilter {
                        start: a,
                        weights: row[a..=b].to_vec(),
                    },
                    _ => SparseFilter {
                        start: 0,
                        weights: Vec::new(),
                    },
                }
            })
            .collect();
        // Periodic Hann (numpy.hanning(N_FFT + 1)[:-1]), computed in f64 then rounded.
        let window = (0..N_FFT)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64;
                (0.5 - 0.5 * phase.cos()) as f32
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        Ok(MelExtractor {
            n_mels,
            window,
            filters,
            fft,
        })
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Number of frames [`MelExtractor::compute`] returns for `n_samples` samples.
    pub fn n_frames_for(n_samples: usize) -> usize {
        (n_samples + TAIL_PADDING) / HOP_LENGTH
    }

    /// Log-mel of a whole clip of 16 kHz mono samples (any length, also empty).
    /// Long clips are split across rayon's threads; a 30 s clip is cheap on one core.
    pub fn compute(&self, samples: &[f32]) -> Mel {
        let n_frames = Self::n_frames_for(samples.len());
        let (frame_major, max) = self.log10_frames(samples, 0, samples.len(), 0..n_frames);
        self.finish(&frame_major, n_frames, max)
    }

    /// log10 mel energies of STFT frames `frames`, frame-major `[frame][n_mels]`, and their
    /// maximum. `seg` holds samples `offset..offset + seg.len()` of a clip of `len` samples;
    /// it must cover every sample the frames read (see [`MelExtractor::frames_input`]).
    pub(crate) fn log10_frames(
        &self,
        seg: &[f32],
        offset: usize,
        len: usize,
        frames: std::ops::Range<usize>,
    ) -> (Vec<f32>, f32) {
        let n_mels = self.n_mels;
        let mut frame_major = vec![0f32; frames.len() * n_mels];
        let max = frame_major
            .par_chunks_mut(FRAMES_PER_TASK * n_mels)
            .enumerate()
            .map_init(
                || self.scratch(),
                |scratch, (task, chunk)| {
                    let first = frames.start + task * FRAMES_PER_TASK;
                    let mut max = f32::NEG_INFINITY;
                    for (i, out) in chunk.chunks_exact_mut(n_mels).enumerate() {
                        self.frame_log_mel(seg, offset, len, first + i, scratch, out);
                        max = out.iter().fold(max, |a, &b| a.max(b));
                    }
                    max
                },
            )
            .reduce(|| f32::NEG_INFINITY, f32::max);
        (frame_major, max)
    }

    /// The samples frames `frames` of a clip of `len` samples read: a range of the clip
    /// (STFT context and the mirrored edges included).
    pub(crate) fn frames_input(
        len: usize,
        frames: std::ops::Range<usize>,
    ) -> std::ops::Range<usize> {
        if frames.is_empty() {
            return 0..0;
        }
        // Short clips reflect back and forth: read them whole.
        if len < 4 * N_FFT {
            return 0..len;
        }
        let lo = (frames.start * HOP_LENGTH).saturating_sub(N_FFT / 2);
        // The mirror at the start reads samples 1..=N_FFT/2.
        let hi = ((frames.end - 1) * HOP_LENGTH + N_FFT / 2).max(N_FFT / 2 + 1);
        lo..hi.min(len)
    }

    /// Clamps frame-major log10 values at `max − 8`, scales them to `(x + 4) / 4` and
    /// transposes them into a row-major [`Mel`].
    pub(crate) fn finish(&self, frame_major: &[f32], n_frames: usize, max: f32) -> Mel {
        let n_mels = self.n_mels;
        let floor = max - DYNAMIC_RANGE;
        let mut data = vec![0f32; n_mels * n_frames];
        // Blocked transpose: a block of frames stays in cache while every row is written.
        const BLOCK: usize = 64;
        for t0 in (0..n_frames).step_by(BLOCK) {
            let t1 = (t0 + BLOCK).min(n_frames);
            for m in 0..n_mels {
                let row = &mut data[m * n_frames + t0..m * n_frames + t1];
                for (t, dst) in (t0..t1).zip(row.iter_mut()) {
                    *dst = (frame_major[t * n_mels + m].max(floor) + 4.0) / 4.0;
                }
            }
        }
        Mel {
            n_mels,
            n_frames,
            data,
        }
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            frame: vec![0f32; N_FFT],
            spectrum: self.fft.make_output_vec(),
            fft_scratch: self.fft.make_scratch_vec(),
            power: vec![0f32; N_BINS],
        }
    }

    /// log10 mel energies of STFT frame `t` into `out` (length n_mels). `seg` holds samples
    /// `offset..` of the clip of `len` samples.
    fn frame_log_mel(
        &self,
        seg: &[f32],
        offset: usize,
        len: usize,
        t: usize,
        s: &mut Scratch,
        out: &mut [f32],
    ) {
        // Frame t covers [t·hop − n_fft/2, t·hop + n_fft/2) of the zero-extended clip.
        let padded_len = len + TAIL_PADDING;
        let start = (t * HOP_LENGTH) as isize - (N_FFT / 2) as isize;
        if start >= offset as isize
            && start as usize + N_FFT <= len
            && start as usize + N_FFT <= offset + seg.len()
        {
            let x = &seg[start as usize - offset..start as usize - offset + N_FFT];
            for ((f, &x), &w) in s.frame.iter_mut().zip(x).zip(&self.window) {
                *f = x * w;
            }
        } else {
            // Edge frames: reflect-pad (numpy "reflect", edge sample not repeated) the clip
            // extended with its zero tail.
            for (k, (f, &w)) in s.frame.iter_mut().zip(&self.window).enumerate() {
                let i = reflect(start + k as isize, padded_len);
                let x = if i < len {
                    seg.get(i.wrapping_sub(offset)).copied().unwrap_or(0.0)
                } else {
                    0.0
                };
                *f = x * w;
            }
        }
        self.fft
            .process_with_scratch(&mut s.frame, &mut s.spectrum, &mut s.fft_scratch)
            .expect("FFT buffers are sized by the plan");
        for (p, c) in s.power.iter_mut().zip(&s.spectrum) {
            *p = c.re * c.re + c.im * c.im;
        }
        for (o, f) in out.iter_mut().zip(&self.filters) {
            let bins = &s.power[f.start..f.start + f.weights.len()];
            let e: f32 = bins.iter().zip(&f.weights).map(|(p, w)| p * w).sum();
            *o = e.max(LOG_FLOOR).log10();
        }
    }
}

/// Index into a signal of length `n` (n ≥ 2) after numpy-style reflection about both ends,
/// repeated as often as needed (period 2(n − 1)).
fn reflect(i: isize, n: usize) -> usize {
    if n < 2 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let mut j = i.rem_euclid(period);
    if j >= n as isize {
        j = period - j;
    }
    j as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy_pad_reflect() {
        // np.pad([0,1,2,3], 5, mode="reflect") == [1,2,3,2,1, 0,1,2,3, 2,1,0,1,2]
        let got: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, [1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
    }

    #[test]
    fn frame_count_follows_tail_padding() {
        let ext = MelExtractor::new(80).unwrap();
        for len in [0usize, 1, 159, 160, 161, 16_000, 47_840] {
            let mel = ext.compute(&vec![0.1; len]);
            assert_eq!(mel.n_frames, (len + 160) / 160, "len {len}");
            assert_eq!(mel.data.len(), 80 * mel.n_frames);
        }
        assert_eq!(N_FRAMES, 3000);
        assert_eq!(MelExtractor::n_frames_for(N_SAMPLES), 3001);
    }

    #[test]
    fn silence_is_floor_everywhere() {
        // All-zero input: every value is log10(1e-10) = -10, so (−10 + 4) / 4 = −1.5.
        let mel = MelExtractor::new(80).unwrap().compute(&vec![0.0; 8000]);
        assert!(mel.data.iter().all(|&v| (v + 1.5).abs() < 1e-6));
    }

    #[test]
    fn tone_peaks_in_its_band_and_range_is_clamped() {
        // A 1 kHz sine: the loudest band is the one whose centre is nearest 1 kHz, and the
        // clamp keeps every value within 8/4 = 2 of the maximum.
        let x: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let ext = MelExtractor::new(80).unwrap();
        let mel = ext.compute(&x);
        let t = mel.n_frames / 2;
        let column: Vec<f32> = (0..80).map(|m| mel.data[m * mel.n_frames + t]).collect();
        let best = column
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        let filters = mel_filters(80);
        let bin_1k = 1000 * N_FFT / SAMPLE_RATE; // bin 25
        let best_by_weight = (0..80)
            .max_by(|&a, &b| filters[a * N_BINS + bin_1k].total_cmp(&filters[b * N_BINS + bin_1k]))
            .unwrap();
        assert_eq!(best, best_by_weight);
        let max = mel.data.iter().copied().fold(f32::MIN, f32::max);
        let min = mel.data.iter().copied().fold(f32::MAX, f32::min);
        assert!(max - min <= 2.0 + 1e-6, "range {min}..{max}");
    }

    #[test]
    fn filters_are_nonnegative_triangles_with_few_bins() {
        for n_mels in [80, 128] {
            let f = mel_filters(n_mels);
            assert_eq!(f.len(), n_mels * N_BINS);
            assert!(f.iter().all(|&w| w >= 0.0));
            for row in f.chunks_exact(N_BINS) {
                let nz = row.iter().filter(|&&w| w > 0.0).count();
                assert!((1..=20).contains(&nz), "filter has {nz} non-zero bins");
            }
        }
    }

    #[test]
    fn window_and_pad_or_trim() {
        let mel = Mel {
            n_mels: 2,
            n_frames: 5,
            data: (0..10).map(|v| v as f32).collect(),
        };
        let w = mel.window(3, 4);
        assert_eq!((w.n_frames, w.data.clone()), (2, vec![3.0, 4.0, 8.0, 9.0]));
        assert_eq!(mel.window(7, 3).n_frames, 0);
        let p = w.pad_or_trim(3);
        assert_eq!(p.data, vec![3.0, 4.0, 0.0, 8.0, 9.0, 0.0]);
        let t = mel.pad_or_trim(2);
        assert_eq!(t.data, vec![0.0, 1.0, 5.0, 6.0]);
        assert_eq!(mel.window(0, 0).pad_or_trim(1).data, vec![0.0, 0.0]);
        assert_eq!(mel.row(1), &[5.0, 6.0, 7.0, 8.0, 9.0]);
    }

    #[test]
    fn rejects_unknown_band_count() {
        assert!(MelExtractor::new(81).is_err());
        assert!(MelExtractor::new(0).is_err());
    }

    #[test]
    fn extractor_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<MelExtractor>();
    }
}
