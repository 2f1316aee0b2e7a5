//! Conversion of decoded audio to 16 kHz mono on the s16 grid, as libswresample does it for
//! faster-whisper (`AudioResampler(format="s16", layout="mono", rate=16000)`).
//!
//! swr picks an internal sample format from the input's: with this FFmpeg (8.x, libswresample
//! 6, as bundled by PyAV 18.1) s16, u8, s32 and float input are resampled and mixed in f32
//! (fixed-point Q15 resampling of s16 input gave 1–4 LSB differences on the goldens, the f32
//! path is exact), double input in f64. When the channel count drops, swr resamples every channel first
//! and mixes after (its `resample_first` rule holds for any downmix to mono). Stereo becomes
//! mono with the matrix `[½, ½]` (swr's `√½` per side, normalised so the row sums to 1 because
//! the output is s16), `½·l + ½·r` in f32. The result is
//! converted to s16 with `lrintf(x · 32768)` (round half to even, saturated), no dither.
//! Without resampling or mixing, swr converts directly: s32 → s16 keeps the top 16 bits.

use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Channels, Signal};
use symphonia::core::sample::{i24, u24};

use super::resample::{Channel, Elem, Plan};
use super::SAMPLE_RATE;

/// Output sample on the s16 grid as f32 (`s16 / 32768`).
fn grid(v: i16) -> f32 {
    v as f32 / 32768.0
}

/// swr's float → s16 (`av_clip_int16(lrintf(x * 32768))`); NaN saturates low like lrintf's
/// INT_MIN.
#[allow(clippy::manual_clamp)] // clamp would pass NaN through
pub(crate) fn f32_to_s16(x: f32) -> i16 {
    (x * 32768.0).round_ties_even().max(-32768.0).min(32767.0) as i16
}

#[allow(clippy::manual_clamp)]
fn f64_to_s16(x: f64) -> i16 {
    (x * 32768.0).round_ties_even().max(-32768.0).min(32767.0) as i16
}

/// An internal sample format: how channels are mixed and how results become s16.
pub(crate) trait Internal: Elem {
    /// One output sample from one sample per channel and the matrix row.
    fn mix(samples: &[Self], row: &MixRow) -> Self;
    fn to_s16(self) -> i16;
}

/// The mono row of swr's channel matrix, in the forms its kernels use.
#[derive(Clone, Debug)]
pub(crate) struct MixRow {
    coef: Vec<f64>,
}

impl MixRow {
    /// swr's automatic matrix to mono for the channels symphonia reports (bit order = WAV
    /// order = FFmpeg's native order). Checked exact against PyAV for mono, stereo and 5.1;
    /// other layouts follow swr's rules for the common speakers (centre, LFE, back/side
    /// pairs) but are unverified.
    fn to_mono(channels: Channels, count: usize) -> MixRow {
        const SQRT1_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
        // swr's clev/slev options are floats.
        let lev = SQRT1_2 as f32 as f64;
        let coef: Vec<f64> = if count <= 1 {
            vec![1.0]
        } else if count == 2 {
            vec![SQRT1_2, SQRT1_2]
        } else {
            let has_stereo = channels.contains(Channels::FRONT_LEFT | Channels::FRONT_RIGHT);
            channels
                .iter()
                .map(|c| {
                    if c == Channels::FRONT_LEFT || c == Channels::FRONT_RIGHT {
                        SQRT1_2
                    } else if c == Channels::FRONT_CENTRE {
                        if has_stereo {
                            lev * std::f64::consts::SQRT_2
                        } else {
                            1.0
                        }
                    } else if c == Channels::LFE1 {
                        0.0
                    } else if c == Channels::FRONT_LEFT_CENTRE || c == Channels::FRONT_RIGHT_CENTRE
                    {
                        SQRT1_2
                    } else {
                        // back and side speakers
                        lev * SQRT1_2
                    }
                })
                .chain(std::iter::repeat(0.0))
                .take(count)
                .collect()
        };
        let sum: f64 = coef.iter().map(|c| c.abs()).sum();
        // Output s16: the row is scaled down to sum to 1 when it sums to more.
        let coef: Vec<f64> = if sum > 1.0 {
            coef.iter().map(|c| c / sum).collect()
        } else {
            coef
        };
        MixRow { coef }
    }
}

impl Internal for f32 {
    fn mix(s: &[f32], row: &MixRow) -> f32 {
        s.iter()
            .zip(&row.coef)
            .fold(0f32, |a, (&x, &c)| a + c as f32 * x)
    }
    fn to_s16(self) -> i16 {
        f32_to_s16(self)
    }
}

impl Internal for f64 {
    fn mix(s: &[f64], row: &MixRow) -> f64 {
        s.iter().zip(&row.coef).fold(0f64, |a, (&x, &c)| a + c * x)
    }
    fn to_s16(self) -> i16 {
        f64_to_s16(self)
    }
}

/// Resampling and mixing in one internal format.
struct Stage<T> {
    plan: Option<Plan<T>>,
    chans: Vec<Channel<T>>,
    row: MixRow,
    /// Converted input, one plane per channel (reused).
    planes: Vec<Vec<T>>,
    /// Resampled planes (reused).
    res: Vec<Vec<T>>,
    frame: Vec<T>,
}

impl<T: Internal> Stage<T> {
    fn new(rate: u32, channels: Channels, count: usize) -> Self {
        let plan = (rate as usize != SAMPLE_RATE).then(|| Plan::new(rate, SAMPLE_RATE as u32));
        let chans = match &plan {
            Some(p) => (0..count).map(|_| Channel::new(p)).collect(),
            None => Vec::new(),
        };
        Stage {
            plan,
            chans,
            row: MixRow::to_mono(channels, count),
            planes: vec![Vec::new(); count],
            res: vec![Vec::new(); count],
            frame: vec![T::default(); count],
        }
    }

    /// Resamples the current `planes` (or, with `flush`, the end) and mixes into `out`.
    fn run(&mut self, flush: bool, out: &mut Vec<f32>) {
        let planes = match &self.plan {
            Some(plan) => {
                for ((ch, input), res) in self.chans.iter_mut().zip(&self.planes).zip(&mut self.res)
                {
                    res.clear();
                    if flush {
                        ch.finish(plan, res);
                    } else {
                        ch.push(plan, input, res);
                    }
                }
                &self.res
            }
            None if flush => return,
            None => &self.planes,
        };
        let n = planes.iter().map(Vec::len).min().unwrap_or(0);
        if planes.len() == 1 {
            out.extend(planes[0][..n].iter().map(|&x| grid(x.to_s16())));
            return;
        }
        for i in 0..n {
            for (f, p) in self.frame.iter_mut().zip(planes) {
                *f = p[i];
            }
            out.push(grid(T::mix(&self.frame, &self.row).to_s16()));
        }
    }
}

/// The sample format class of a decoded buffer, which decides swr's internal format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// 8- and 16-bit integer (FFmpeg decodes these to u8/s16); s16 passes through untouched
    /// when nothing is to be done.
    I16,
    /// 24- and 32-bit integer (s32 in FFmpeg): f32 path, or top 16 bits when nothing else.
    I32,
    F32,
    F64,
}

enum Path {
    /// 8/16-bit integer input: converted to f32 (`v · 2^−15`) for the f32 stage.
    I16(Stage<f32>),
    /// 32-bit integer input: converted to f32 (`v · 2^−31`) for the f32 stage.
    I32(Stage<f32>),
    F32(Stage<f32>),
    F64(Stage<f64>),
    /// 24/32-bit integer mono at 16 kHz: swr's direct s32 → s16 (`v >> 16`).
    I32Direct,
}

/// Streaming converter of decoded buffers to 16 kHz mono s16-grid f32 samples.
pub(crate) struct Converter {
    path: Path,
    key: (Class, u32, usize),
    /// Plane for the i32 direct path (reused).
    direct: Vec<Vec<i32>>,
    /// Scratch planes for 8/16-bit input.
    tmp16: Vec<Vec<i16>>,
}

impl Converter {
    /// A converter for buffers like `buf`; `bits` is the stream's declared bits per sample.
    pub(crate) fn new(buf: &AudioBufferRef<'_>, bits: Option<u32>) -> Converter {
        let spec = *buf.spec();
        let class = class_of(buf, bits);
        let (rate, channels, count) = (spec.rate, spec.channels, spec.channels.count());
        let path = match class {
            Class::I16 => Path::I16(Stage::new(rate, channels, count)),
            Class::I32 if count == 1 && rate as usize == SAMPLE_RATE => Path::I32Direct,
            Class::I32 => Path::I32(Stage::new(rate, channels, count)),
            Class::F32 => Path::F32(Stage::new(rate, channels, count)),
            Class::F64 => Path::F64(Stage::new(rate, channels, count)),
        };
        Converter {
            path,
            key: (class, rate, count),
            direct: vec![Vec::new()],
            tmp16: vec![Vec::new(); count],
        }
    }

    /// True if `buf` can go through this converter (same format class, rate and channels).
    pub(crate) fn accepts(&self, buf: &AudioBufferRef<'_>, bits: Option<u32>) -> bool {
        let spec = buf.spec();
        self.key == (class_of(buf, bits), spec.rate, spec.channels.count())
    }

    /// Converts one buffer, dropping its first `skip` frames; appends to `out`.
    pub(crate) fn push(&mut self, buf: &AudioBufferRef<'_>, skip: usize, out: &mut Vec<f32>) {
        match &mut self.path {
            Path::I16(st) => {
                planes_i16(buf, skip, &mut self.tmp16);
                for (p, t) in st.planes.iter_mut().zip(&self.tmp16) {
                    p.clear();
                    p.extend(t.iter().map(|&v| v as f32 * (1.0 / 32768.0)));
                }
                st.run(false, out);
            }
            Path::I32(st) => {
                planes_i32(buf, skip, &mut st.planes, |v| {
                    v as f32 * (1.0 / 2_147_483_648.0)
                });
                st.run(false, out);
            }
            Path::I32Direct => {
                planes_i32(buf, skip, &mut self.direct, |v| v);
                out.extend(self.direct[0].iter().map(|&v| grid((v >> 16) as i16)));
            }
            Path::F32(st) => {
                planes_float(buf, skip, &mut st.planes, |v: f64| v as f32);
                st.run(false, out);
            }
            Path::F64(st) => {
                planes_float(buf, skip, &mut st.planes, |v: f64| v);
                st.run(false, out);
            }
        }
    }

    /// End of the stream: emits what the resampler still holds.
    pub(crate) fn finish(&mut self, out: &mut Vec<f32>) {
        match &mut self.path {
            Path::I16(st) | Path::I32(st) | Path::F32(st) => st.run(true, out),
            Path::F64(st) => st.run(true, out),
            Path::I32Direct => {}
        }
    }
}

fn class_of(buf: &AudioBufferRef<'_>, bits: Option<u32>) -> Class {
    match buf {
        AudioBufferRef::U8(_)
        | AudioBufferRef::S8(_)
        | AudioBufferRef::U16(_)
        | AudioBufferRef::S16(_) => Class::I16,
        // symphonia returns FLAC and some PCM at any depth as full-scale i32; FFmpeg decodes
        // up to 16 bits to s16.
        AudioBufferRef::S32(_) if bits.is_some_and(|b| b <= 16) => Class::I16,
        AudioBufferRef::U24(_)
        | AudioBufferRef::S24(_)
        | AudioBufferRef::U32(_)
        | AudioBufferRef::S32(_) => Class::I32,
        AudioBufferRef::F32(_) => Class::F32,
        AudioBufferRef::F64(_) => Class::F64,
    }
}

/// Copies every channel of `b` from frame `skip` on through `f` into `planes`.
fn fill<S: symphonia::core::sample::Sample, T>(
    b: &AudioBuffer<S>,
    skip: usize,
    planes: &mut [Vec<T>],
    f: impl Fn(S) -> T,
) {
    for (ch, plane) in planes.iter_mut().enumerate() {
        plane.clear();
        let src = b.chan(ch);
        plane.extend(src[skip.min(src.len())..].iter().map(|&s| f(s)));
    }
}

fn planes_i16(buf: &AudioBufferRef<'_>, skip: usize, planes: &mut [Vec<i16>]) {
    match buf {
        AudioBufferRef::U8(b) => fill(b, skip, planes, |v| ((v as i16) - 128) << 8),
        AudioBufferRef::S8(b) => fill(b, skip, planes, |v| (v as i16) << 8),
        AudioBufferRef::U16(b) => fill(b, skip, planes, |v| (v as i32 - 32768) as i16),
        AudioBufferRef::S16(b) => fill(b, skip, planes, |v| v),
        AudioBufferRef::S32(b) => fill(b, skip, planes, |v| (v >> 16) as i16),
        _ => unreachable!("class I16"),
    }
}

fn planes_i32<T>(
    buf: &AudioBufferRef<'_>,
    skip: usize,
    planes: &mut [Vec<T>],
    f: impl Fn(i32) -> T + Copy,
) {
    match buf {
        AudioBufferRef::U24(b) => fill(b, skip, planes, |v: u24| {
            f((v.inner() as i32 - (1 << 23)) << 8)
        }),
        AudioBufferRef::S24(b) => fill(b, skip, planes, |v: i24| f(v.inner() << 8)),
        AudioBufferRef::U32(b) => fill(b, skip, planes, |v| f((v ^ 0x8000_0000) as i32)),
        AudioBufferRef::S32(b) => fill(b, skip, planes, f),
        _ => unreachable!("class I32"),
    }
}

fn planes_float<T>(
    buf: &AudioBufferRef<'_>,
    skip: usize,
    planes: &mut [Vec<T>],
    f: impl Fn(f64) -> T + Copy,
) {
    match buf {
        AudioBufferRef::F32(b) => fill(b, skip, planes, |v| f(v as f64)),
        AudioBufferRef::F64(b) => fill(b, skip, planes, f),
        _ => unreachable!("float class"),
    }
}
