//! Polyphase windowed-sinc resampling that reproduces libswresample's default `swr` engine,
//! the one faster-whisper 1.2.1 goes through (PyAV's `AudioResampler` → lavfi `aresample`).
//!
//! What swr does with its defaults (`filter_size` 32, `phase_shift` 10, `linear_interp` 1,
//! `exact_rational` 1, `cutoff` 0.97, Kaiser window with β = 9), and what this file does too:
//! - `factor = min(out_rate · 0.97 / in_rate, 1)`; the filter has `L = ceil(32 / factor)` taps,
//!   rounded up to even;
//! - phase count: `out_rate / gcd(in_rate, out_rate)` when that is ≤ 1024 (exact rational:
//!   every output falls exactly on a phase, no interpolation), else 1024 phases with linear
//!   interpolation between neighbouring phases;
//! - phase `p` tap `i` is `sinc(π (i − c − p/P) · factor) · I0(β √(1 − w²))` with
//!   `c = (L − 1) / 2` and `w = 2 (i − c − p/P) / L`, every phase normalised by the sum of
//!   phase 0's taps; stored as f32 (float path) or f64 (double path);
//! - output `k` sits at input position `k · in / out`; its first tap reads input sample
//!   `floor(k · in / out) − c`;
//! - the start is mirrored without repeating the edge (`x[−j] = x[j]`), the end at the flush
//!   with the edge repeated (`x[N + j] = x[N − 1 − j]`, `L / 2` samples), so a clip of `N`
//!   samples gives `ceil(N · out / in)` outputs — none when `N < L + 1`, as swr;
//! - sums in the order of swr's x86 SIMD kernels (lanes, FMA), see [`super::kernels`]: with
//!   that, the output equals faster-whisper's sample for sample on the goldens.
//!
//! Numbers were checked against faster-whisper's `decode_audio` on the goldens in
//! `testdata/audio/resample/` (see `tests/resample.rs`).

use std::f64::consts::PI;

use super::kernels::{self, Kernel};

/// swr's defaults.
const FILTER_SIZE: f64 = 32.0;
const PHASE_COUNT_MAX: u64 = 1 << 10;
const CUTOFF: f64 = 0.97;
const KAISER_BETA: f64 = 9.0;

/// A sample type swr resamples in: f32 or f64. (swr also has a fixed-point path, Q15 taps and
/// `(acc + 2^14) >> 15`; this FFmpeg does not take it for s16 → s16, see `swr`.)
pub(crate) trait Elem: Copy + Default + Send + 'static {
    /// A tap from its normalised value (`tab / norm`, in f64), stored as swr stores it.
    fn tap(v: f64) -> Self;
    /// Σ src[i] · taps[i], summed in the order of swr's SIMD kernel.
    fn dot(kernel: Kernel, src: &[Self], taps: &[Self]) -> Self;
    /// swr's linear interpolation between two neighbouring phases.
    fn dot_linear(
        kernel: Kernel,
        src: &[Self],
        taps1: &[Self],
        taps2: &[Self],
        frac: i64,
        src_incr: i64,
    ) -> Self;
}

impl Elem for f32 {
    fn tap(v: f64) -> Self {
        v as f32
    }
    fn dot(kernel: Kernel, src: &[f32], taps: &[f32]) -> f32 {
        kernels::dot_f32(kernel, src, taps)
    }
    fn dot_linear(k: Kernel, src: &[f32], t1: &[f32], t2: &[f32], frac: i64, incr: i64) -> f32 {
        kernels::dot_linear_f32(k, src, t1, t2, frac, incr)
    }
}

impl Elem for f64 {
    fn tap(v: f64) -> Self {
        v
    }
    fn dot(_: Kernel, src: &[f64], taps: &[f64]) -> f64 {
        kernels::dot_f64(src, taps)
    }
    fn dot_linear(_: Kernel, src: &[f64], t1: &[f64], t2: &[f64], frac: i64, incr: i64) -> f64 {
        kernels::dot_linear_f64(src, t1, t2, frac, incr)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modified Bessel function of the first kind, order 0 (power series, to double precision).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut sum, mut term, mut k) = (1.0f64, 1.0f64, 1.0f64);
    loop {
        term *= q / (k * k);
        let next = sum + term;
        if next == sum {
            return sum;
        }
        sum = next;
        k += 1.0;
    }
}

/// The filter bank and stepping constants for one rate pair (shared by all channels).
#[derive(Clone, Debug)]
pub(crate) struct Plan<T> {
    /// Taps per phase (`L`).
    len: usize,
    /// Row stride of `bank` (`L` rounded up to 8, as swr allocates).
    alloc: usize,
    phases: i64,
    /// `phases + 1` rows; the last is phase 0 shifted by one tap (for interpolation).
    bank: Vec<T>,
    src_incr: i64,
    incr_div: i64,
    incr_mod: i64,
    linear: bool,
    kernel: Kernel,
}

impl<T: Elem> Plan<T> {
    pub(crate) fn new(in_rate: u32, out_rate: u32) -> Self {
        let (in_rate, out_rate) = (in_rate as u64, out_rate as u64);
        let factor = (out_rate as f64 * CUTOFF / in_rate as f64).min(1.0);
        let mut len = ((FILTER_SIZE / factor).ceil() as usize).max(1);
        if len > 1 {
            len = len.next_multiple_of(2);
        }
        let g = gcd(in_rate, out_rate);
        let phases = if out_rate / g <= PHASE_COUNT_MAX {
            out_rate / g
        } else {
            PHASE_COUNT_MAX
        };
        // src_incr / dst_incr = out_rate / (in_rate · phases), reduced, then both doubled up
        // to 2^20 as swr does (it keeps the interpolation fractions fine).
        let (num, den) = (out_rate, in_rate * phases);
        let g2 = gcd(num, den);
        let (mut src_incr, mut dst_incr) = ((num / g2) as i64, (den / g2) as i64);
        while dst_incr < (1 << 20) && src_incr < (1 << 20) {
            dst_incr *= 2;
            src_incr *= 2;
        }
        let alloc = len.next_multiple_of(8);
        let bank = build_bank::<T>(factor, len, alloc, phases as usize);
        Plan {
            len,
            alloc,
            phases: phases as i64,
            bank,
            src_incr,
            incr_div: dst_incr / src_incr,
            incr_mod: dst_incr % src_incr,
            linear: dst_incr % src_incr != 0,
            kernel: Kernel::detect(),
        }
    }

    fn row(&self, phase: i64) -> &[T] {
        let start = phase as usize * self.alloc;
        &self.bank[start..start + self.len]
    }
}

/// swr's `build_filter` for the Kaiser window.
fn build_bank<T: Elem>(factor: f64, len: usize, alloc: usize, phases: usize) -> Vec<T> {
    let mut bank = vec![T::default(); alloc * (phases + 1)];
    let center = ((len - 1) / 2) as f64;
    let computed = if phases % 2 == 1 {
        phases
    } else {
        phases / 2 + 1
    };
    let mut tab = vec![0f64; len];
    let mut norm = 0f64;
    for ph in 0..computed {
        // With factor 1, sin(x) alternates in sign along the taps: swr takes it from a table.
        let mut s = if factor == 1.0 {
            (PI * ph as f64 / phases as f64).sin() * if (len - 1) / 2 % 2 == 1 { 1.0 } else { -1.0 }
        } else {
            0.0
        };
        for (i, t) in tab.iter_mut().enumerate() {
            let x = PI * ((i as f64 - center) - ph as f64 / phases as f64) * factor;
            let mut y = if x == 0.0 {
                1.0
            } else if factor == 1.0 {
                s / x
            } else {
                x.sin() / x
            };
            let w = 2.0 * x / (factor * len as f64 * PI);
            y *= bessel_i0(KAISER_BETA * (1.0 - w * w).max(0.0).sqrt());
            *t = y;
            s = -s;
            if ph == 0 {
                norm += y;
            }
        }
        for i in 0..len {
            bank[ph * alloc + i] = T::tap(tab[i] / norm);
        }
        if phases.is_multiple_of(2) {
            for i in 0..len {
                bank[(phases - ph) * alloc + len - 1 - i] = bank[ph * alloc + i];
            }
        }
    }
    // Row `phases`: row 0 shifted right by one tap, its first tap the last of row 0's storage.
    let last_of_row0 = bank[alloc - 1];
    for j in 0..alloc - 1 {
        bank[phases * alloc + 1 + j] = bank[j];
    }
    bank[phases * alloc] = last_of_row0;
    bank
}

/// Streaming resampler of one channel. Memory stays at about one filter length plus the
/// last pushed block.
#[derive(Clone, Debug)]
pub(crate) struct Channel<T> {
    /// Padded input from absolute sample `base` on (negative before the start: the mirror).
    hist: Vec<T>,
    base: i64,
    /// False until the start mirror is in place (needs `L + 1` samples or the end).
    started: bool,
    /// Input samples received.
    n_in: i64,
    /// Position of the next output, in phase units (absolute), and its interpolation fraction.
    index: i64,
    frac: i64,
}

impl<T: Elem> Channel<T> {
    pub(crate) fn new(plan: &Plan<T>) -> Self {
        Channel {
            hist: Vec::new(),
            base: 0,
            started: false,
            n_in: 0,
            index: -plan.phases * ((plan.len as i64 - 1) / 2),
            frac: 0,
        }
    }

    /// Feeds input samples, appending every output that can be computed to `out`.
    pub(crate) fn push(&mut self, plan: &Plan<T>, input: &[T], out: &mut Vec<T>) {
        self.hist.extend_from_slice(input);
        self.n_in += input.len() as i64;
        if !self.started {
            if self.n_in < plan.len as i64 + 1 {
                return;
            }
            self.start(plan);
        }
        self.run(plan, self.n_in, out);
    }

    /// Mirrors the start: x[−j] = x[j] for the taps the first outputs reach.
    fn start(&mut self, plan: &Plan<T>) {
        let h = (plan.len - 1) / 2;
        let n = self.hist.len();
        let mut padded = Vec::with_capacity(h + n);
        for j in (1..=h).rev() {
            padded.push(self.hist[j.min(n.saturating_sub(1))]);
        }
        padded.extend_from_slice(&self.hist);
        self.hist = padded;
        self.base = -(h as i64);
        self.started = true;
    }

    /// Outputs while their taps lie before absolute sample `end`.
    fn run(&mut self, plan: &Plan<T>, end: i64, out: &mut Vec<T>) {
        let len = plan.len as i64;
        loop {
            let sample = self.index.div_euclid(plan.phases);
            let phase = self.index.rem_euclid(plan.phases);
            if sample + len > end {
                break;
            }
            let at = (sample - self.base) as usize;
            let src = &self.hist[at..at + plan.len];
            // swr's linear kernel adds (v2 − v1) · frac / src_incr, nothing when frac is 0
            // (it then runs the plain kernel).
            let y = if plan.linear && self.frac != 0 {
                let next = &plan.bank[(phase as usize + 1) * plan.alloc..][..plan.len];
                T::dot_linear(
                    plan.kernel,
                    src,
                    plan.row(phase),
                    next,
                    self.frac,
                    plan.src_incr,
                )
            } else {
                T::dot(plan.kernel, src, plan.row(phase))
            };
            out.push(y);
            self.frac += plan.incr_mod;
            self.index += plan.incr_div;
            if self.frac >= plan.src_incr {
                self.frac -= plan.src_incr;
                self.index += 1;
            }
        }
        // Drop input no later output reaches.
        let keep_from = self.index.div_euclid(plan.phases).max(self.base);
        let drop = (keep_from - self.base) as usize;
        if drop > 4096 && drop <= self.hist.len() {
            self.hist.drain(..drop);
            self.base = keep_from;
        }
    }

    /// End of input: mirrors the end and emits the remaining outputs.
    pub(crate) fn finish(&mut self, plan: &Plan<T>, out: &mut Vec<T>) {
        if self.n_in == 0 {
            return;
        }
        if !self.started {
            // swr waits for L + 1 samples before it mirrors the start; a shorter stream
            // gives no output at all (checked against PyAV).
            return;
        }
        let n = self.n_in;
        let pending = n - self.index.div_euclid(plan.phases);
        let reflect = ((pending.clamp(plan.len as i64 - 1, plan.len as i64)) + 1) / 2;
        let reflect = reflect.min(n);
        for j in 0..reflect {
            let v = self.hist[(n - 1 - j - self.base) as usize];
            self.hist.push(v);
        }
        self.run(plan, n + reflect, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_constants_follow_swr() {
        let p = Plan::<f32>::new(44_100, 16_000);
        assert_eq!((p.len, p.phases, p.linear), (92, 160, false));
        assert_eq!(p.incr_div, 441);
        let p = Plan::<f32>::new(48_000, 16_000);
        assert_eq!((p.len, p.phases, p.incr_div), (100, 1, 3));
        let p = Plan::<f32>::new(22_050, 16_000);
        assert_eq!((p.len, p.phases, p.incr_div), (46, 320, 441));
        let p = Plan::<f32>::new(8_000, 16_000);
        assert_eq!((p.len, p.phases, p.incr_div), (32, 2, 1));
        // 2000 phases would be needed: 1024 and interpolation.
        let p = Plan::<f32>::new(44_056, 16_000);
        assert!(p.linear && p.phases == 1024);
    }

    #[test]
    fn bessel_matches_known_values() {
        assert_eq!(bessel_i0(0.0), 1.0);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-15);
        assert!((bessel_i0(9.0) / 1_093.588_354_511_374_5 - 1.0).abs() < 1e-14);
    }

    #[test]
    fn length_is_ceil_of_ratio_and_dc_is_kept() {
        for rate in [8_000u32, 22_050, 44_100, 48_000, 44_056] {
            let plan = Plan::<f32>::new(rate, 16_000);
            for n in [150usize, 1000, 4411, 9600] {
                let mut ch = Channel::new(&plan);
                let mut out = Vec::new();
                for piece in vec![0.25f32; n].chunks(333) {
                    ch.push(&plan, piece, &mut out);
                }
                ch.finish(&plan, &mut out);
                assert_eq!(
                    out.len() as u64,
                    (n as u64 * 16_000).div_ceil(rate as u64),
                    "{rate} {n}"
                );
                assert!(out.iter().all(|&v| (v - 0.25).abs() < 1e-3), "{rate} {n}");
            }
        }
    }
}
