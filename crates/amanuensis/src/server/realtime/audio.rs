//! The audio of `input_audio_buffer.append`: base64 text of 16-bit little-endian mono PCM at
//! 24 kHz (OpenAI's rate) or 16 kHz, turned into the engine's 16 kHz samples in [-1, 1].
//!
//! 24 kHz is brought to 16 kHz (a 2:3 ratio) by a windowed-sinc low-pass filter evaluated at
//! the output instants: output sample `n` sits at input position `1.5 n`, so only two filter
//! phases exist (at a whole sample and half-way between two). The resampler keeps the input
//! samples that later outputs still need, so audio may arrive in chunks of any length and
//! gives the same samples as one chunk would.

use base64::Engine as _;

/// The sample rates a session may declare.
pub const RATES: [u32; 2] = [16000, 24000];

/// Why an append's audio was refused.
#[derive(Debug, PartialEq)]
pub enum AudioError {
    Base64(String),
    /// Not a whole number of 16-bit samples.
    OddBytes(usize),
    TooLarge { bytes: usize, limit: usize },
}

impl std::fmt::Display for AudioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioError::Base64(e) => write!(f, "`audio` is not valid base64 ({e}); send the PCM16 bytes base64-encoded (standard alphabet, with padding)"),
            AudioError::OddBytes(n) => write!(f, "`audio` holds {n} bytes, not a whole number of 16-bit samples: send 16-bit little-endian mono PCM (an even number of bytes per append)"),
            AudioError::TooLarge { bytes, limit } => write!(f, "`audio` holds {bytes} bytes, more than the {limit} bytes one append may carry on this server (--max-append-mb); send the audio in smaller appends"),
        }
    }
}

/// Base64 text into PCM16 bytes: a whole number of samples, at most `limit` bytes.
pub fn decode_base64(text: &str, limit: usize) -> Result<Vec<u8>, AudioError> {
    // Checked before decoding so that an oversized append costs no memory.
    let approx = text.len() / 4 * 3;
    if approx > limit + 3 {
        return Err(AudioError::TooLarge { bytes: approx, limit });
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| AudioError::Base64(e.to_string()))?;
    if bytes.len() > limit {
        return Err(AudioError::TooLarge { bytes: bytes.len(), limit });
    }
    if bytes.len() % 2 != 0 {
        return Err(AudioError::OddBytes(bytes.len()));
    }
    Ok(bytes)
}

/// 16-bit little-endian samples as floats in [-1, 1).
pub fn pcm16_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// Half the number of taps per phase.
const HALF: usize = 16;
/// Pass band edge in Hz (the output's Nyquist frequency is 8 kHz).
const CUTOFF_HZ: f64 = 7400.0;

/// A streaming 24 kHz → 16 kHz resampler (or a pass-through at 16 kHz).
pub struct Resampler {
    rate: u32,
    /// The filter at offsets `k - HALF + 1 .. k + HALF` from a whole input sample (phase 0)
    /// and from half-way between two (phase 1).
    phases: [[f32; 2 * HALF]; 2],
    /// Input samples from `base` on that outputs still need.
    pending: Vec<f32>,
    /// Input index of `pending[0]`.
    base: u64,
    /// Next output index.
    next: u64,
}

impl Resampler {
    pub fn new(rate: u32) -> Resampler {
        let fc = CUTOFF_HZ / 24000.0;
        let mut phases = [[0f32; 2 * HALF]; 2];
        for (p, taps) in phases.iter_mut().enumerate() {
            let frac = p as f64 * 0.5;
            let mut sum = 0.0;
            let mut vals = [0f64; 2 * HALF];
            for (j, v) in vals.iter_mut().enumerate() {
                // Distance from the output instant (floor + frac) to input floor - HALF + 1 + j.
                let d = frac + HALF as f64 - 1.0 - j as f64;
                let x = 2.0 * fc * d;
                let sinc = if x.abs() < 1e-12 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) };
                // Blackman window over [-HALF, HALF].
                let w = d / HALF as f64;
                let win = if w.abs() >= 1.0 { 0.0 } else { 0.42 + 0.5 * (std::f64::consts::PI * w).cos() + 0.08 * (2.0 * std::f64::consts::PI * w).cos() };
                *v = 2.0 * fc * sinc * win;
                sum += *v;
            }
            // Unit gain at DC.
            for (t, v) in taps.iter_mut().zip(vals) {
                *t = (v / sum) as f32;
            }
        }
        Resampler { rate, phases, pending: Vec::new(), base: 0, next: 0 }
    }

    /// The 16 kHz samples that `input` (at the declared rate) completes.
    pub fn push(&mut self, input: &[f32]) -> Vec<f32> {
        if self.rate == 16000 {
            return input.to_vec();
        }
        self.pending.extend_from_slice(input);
        let end = self.base + self.pending.len() as u64;
        let mut out = Vec::with_capacity(input.len() * 2 / 3 + 1);
        loop {
            // Output n sits at input position 1.5 n = floor + (n odd ? 0.5 : 0).
            let floor = self.next * 3 / 2;
            let phase = (self.next % 2) as usize;
            // The last input it reads is floor + HALF.
            if floor + HALF as u64 + 1 > end {
                break;
            }
            let mut acc = 0f32;
            for (j, &t) in self.phases[phase].iter().enumerate() {
                let idx = floor as i64 - HALF as i64 + 1 + j as i64;
                if idx >= self.base as i64 {
                    acc += t * self.pending[(idx as u64 - self.base) as usize];
                }
                // Inputs before the stream began are silence.
            }
            out.push(acc);
            self.next += 1;
        }
        // Keep what the next output still reads.
        let keep_from = (self.next * 3 / 2).saturating_sub(HALF as u64);
        if keep_from > self.base {
            let drop = ((keep_from - self.base) as usize).min(self.pending.len());
            self.pending.drain(..drop);
            self.base += drop as u64;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn base64_and_sample_checks() {
        assert_eq!(decode_base64(&b64(&[1, 0, 255, 127]), 100).unwrap(), vec![1, 0, 255, 127]);
        assert_eq!(pcm16_to_f32(&[0, 0x80, 255, 127]), vec![-1.0, 32767.0 / 32768.0]);
        assert!(matches!(decode_base64("not base64!", 100), Err(AudioError::Base64(_))));
        assert_eq!(decode_base64(&b64(&[1, 2, 3]), 100), Err(AudioError::OddBytes(3)));
        assert!(matches!(decode_base64(&b64(&[0; 400]), 100), Err(AudioError::TooLarge { .. })));
        assert!(matches!(decode_base64(&b64(&[0; 102]), 100), Err(AudioError::TooLarge { bytes: 102, .. })));
        assert_eq!(decode_base64("", 100).unwrap(), Vec::<u8>::new());
    }

    fn tone(freq: f64, rate: f64, n: usize) -> Vec<f32> {
        (0..n).map(|i| (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as f32).collect()
    }

    #[test]
    fn resampling_keeps_speech_band_and_removes_what_16k_cannot_hold() {
        let input = tone(1000.0, 24000.0, 24000);
        let out = Resampler::new(24000).push(&input);
        assert!((out.len() as i64 - 16000).abs() <= HALF as i64, "{}", out.len());
        let want = tone(1000.0, 16000.0, out.len());
        // Past the filter's start-up, the 1 kHz tone at 16 kHz (the filter delay is zero).
        let err = out[100..out.len() - 100].iter().zip(&want[100..]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 0.01, "max error {err}");
        // 10 kHz (above 8 kHz) would alias to 6 kHz: it must be filtered out.
        let high = Resampler::new(24000).push(&tone(10000.0, 24000.0, 24000));
        let peak = high[100..high.len() - 100].iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak < 0.01, "alias peak {peak}");
    }

    #[test]
    fn chunks_of_any_size_give_the_same_samples() {
        let input = tone(440.0, 24000.0, 5000);
        let whole = Resampler::new(24000).push(&input);
        let mut r = Resampler::new(24000);
        let mut parts = Vec::new();
        let mut i = 0;
        for size in [1usize, 2, 7, 480, 3, 1000].iter().cycle() {
            if i >= input.len() {
                break;
            }
            let end = (i + size).min(input.len());
            parts.extend(r.push(&input[i..end]));
            i = end;
        }
        assert_eq!(parts, whole);
        assert!(r.pending.len() <= 2 * HALF + 2, "history bounded: {}", r.pending.len());
        assert_eq!(Resampler::new(16000).push(&input), input);
    }
}
