//! 1-D convolution as im2col + packed GEMM (Whisper's two front-end convolutions).
//!
//! Weights `[c_out][c_in][kernel]` (PyTorch / CTranslate2 layout) flatten to `[c_out][c_in·kernel]`
//! and are packed once with [`PackedF32::new`]`(w, c_out, c_in·kernel)`. The output is
//! **time-major** `[t_out][c_out]`, the layout the transformer consumes next.

use crate::gemm_f32::{linear_f32_with, PackedF32};
use crate::isa::Isa;

/// Output length of a convolution: `(t + 2·padding − kernel) / stride + 1` (0 if negative).
pub fn conv1d_out_len(t: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    if stride == 0 || t + 2 * padding < kernel {
        return 0;
    }
    (t + 2 * padding - kernel) / stride + 1
}

/// Layout of a convolution input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvInput {
    /// `[c_in][t]` (e.g. the log-mel spectrogram `[n_mels][n_frames]`).
    ChannelMajor,
    /// `[t][c_in]` (e.g. the output of a previous conv1d).
    TimeMajor,
}

/// `out[to][co] = bias[co] + Σ_{ci,kk} w[co][ci][kk] · x[ci][to·stride + kk − padding]`
/// (zero outside the input), with `x` channel-major `[c_in][t]` and `out` time-major
/// `[t_out][c_out]`.
///
/// # Panics
/// If `stride == 0`, `w` was not packed from `[c_out][c_in·kernel]`, or a slice length does not
/// match the shapes.
#[allow(clippy::too_many_arguments)]
pub fn conv1d(x: &[f32], c_in: usize, t: usize, w: &PackedF32, kernel: usize, stride: usize, padding: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    conv1d_with(Isa::detect(), ConvInput::ChannelMajor, x, c_in, t, w, kernel, stride, padding, bias, out)
}

/// [`conv1d`] on an explicit path and input layout.
#[allow(clippy::too_many_arguments)]
pub fn conv1d_with(
    isa: Isa,
    layout: ConvInput,
    x: &[f32],
    c_in: usize,
    t: usize,
    w: &PackedF32,
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert!(stride > 0, "kernels: conv1d: stride must be at least 1");
    assert_eq!(x.len(), c_in * t, "kernels: conv1d: x has {} values, expected c_in*t = {c_in}*{t}", x.len());
    assert_eq!(
        w.k(),
        c_in * kernel,
        "kernels: conv1d: weights were packed with k = {}, expected c_in*kernel = {c_in}*{kernel}",
        w.k()
    );
    let t_out = conv1d_out_len(t, kernel, stride, padding);
    let c_out = w.n_out();
    assert_eq!(out.len(), t_out * c_out, "kernels: conv1d: out has {} values, expected t_out*c_out = {t_out}*{c_out}", out.len());
    let kk = c_in * kernel;
    let mut cols = vec![0.0f32; t_out * kk];
    for (to, row) in cols.chunks_exact_mut(kk.max(1)).enumerate().take(t_out) {
        for ci in 0..c_in {
            for k in 0..kernel {
                let ti = (to * stride + k) as isize - padding as isize;
                if ti >= 0 && (ti as usize) < t {
                    let ti = ti as usize;
                    row[ci * kernel + k] = match layout {
                        ConvInput::ChannelMajor => x[ci * t + ti],
                        ConvInput::TimeMajor => x[ti * c_in + ci],
                    };
                }
            }
        }
    }
    linear_f32_with(isa, &cols, t_out, w, bias, out);
}
