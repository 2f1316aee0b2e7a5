//! Reference implementations of every kernel: plain loops, f64 accumulation for float kernels,
//! written independently of the fast paths (integer formats are re-derived from their
//! documented definitions). Slow; meant for tests, here and in other crates.

use crate::conv::{conv1d_out_len, ConvInput};
use crate::int8::{dequantize_one, quantize_rows_u8, quantize_weights_i8};
use crate::softmax::{SoftmaxI16Params, SoftmaxLut};
use crate::util::origin_offset;
use half::bf16;

/// `C = alpha·A·B + beta·C` with strides as [`crate::sgemm`] (f64 accumulation; beta == 0 does
/// not read C).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
) {
    let ao = origin_offset("A", m, k, rsa, csa, a.len()) as isize;
    let bo = origin_offset("B", k, n, rsb, csb, b.len()) as isize;
    let co = origin_offset("C", m, n, rsc, csc, c.len()) as isize;
    for i in 0..m as isize {
        for j in 0..n as isize {
            let mut acc = 0.0f64;
            for p in 0..k as isize {
                acc += a[(ao + i * rsa + p * csa) as usize] as f64 * b[(bo + p * rsb + j * csb) as usize] as f64;
            }
            let e = &mut c[(co + i * rsc + j * csc) as usize];
            let prev = if beta == 0.0 { 0.0 } else { beta as f64 * *e as f64 };
            *e = (alpha as f64 * acc + prev) as f32;
        }
    }
}

/// `y = x·Wᵀ + bias` with `w` row-major `[n][k]`.
pub fn linear(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, bias: Option<&[f32]>, y: &mut [f32]) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias.map_or(0.0, |b| b[j] as f64);
            for p in 0..k {
                acc += x[i * k + p] as f64 * w[j * k + p] as f64;
            }
            y[i * n + j] = acc as f32;
        }
    }
}

/// `C (i32) = A (u8, [m][k]) · Bᵀ` with `b` i8 `[n][k]`.
pub fn gemm_u8i8_i32(m: usize, n: usize, k: usize, a: &[u8], b: &[i8], c: &mut [i32]) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0i32;
            for p in 0..k {
                acc += a[i * k + p] as i32 * b[j * k + p] as i32;
            }
            c[i * n + j] = acc;
        }
    }
}

/// The int8 linear layer of [`crate::linear_i8`], step by step (same quantization, so results
/// are bit-identical).
pub fn linear_i8(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, bias: Option<&[f32]>, y: &mut [f32]) {
    let (wq, sw) = quantize_weights_i8(w, n, k);
    let mut q = vec![0u8; m * k];
    let (mut sx, mut zx) = (vec![0.0; m], vec![0; m]);
    quantize_rows_u8(x, m, k, &mut q, &mut sx, &mut zx);
    let mut acc = vec![0i32; m * n];
    gemm_u8i8_i32(m, n, k, &q, &wq, &mut acc);
    for j in 0..n {
        let cs: i32 = wq[j * k..(j + 1) * k].iter().map(|&v| v as i32).sum();
        for i in 0..m {
            y[i * n + j] = dequantize_one(acc[i * n + j], zx[i], cs, sx[i], sw[j], bias.map_or(0.0, |b| b[j]));
        }
    }
}

/// One requantized value from the definition, in i128 with explicit half-away rounding.
pub fn requantize_one(acc: i32, mult: i32, shift: i32, zero_point: i32) -> i8 {
    let total = (31 - shift) as u32;
    let x = acc as i128 * mult as i128;
    let mag = x.unsigned_abs();
    let mut q = mag >> total;
    let rem = mag - (q << total);
    if 2 * rem >= 1u128 << total {
        q += 1;
    }
    let r = if x < 0 { -(q as i128) } else { q as i128 };
    (r + zero_point as i128).clamp(-128, 127) as i8
}

/// Per-tensor requantization.
pub fn requantize(acc: &[i32], mult: i32, shift: i32, zero_point: i32, out: &mut [i8]) {
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = requantize_one(a, mult, shift, zero_point);
    }
}

/// Per-channel requantization of `[rows][channels]`.
pub fn requantize_per_channel(acc: &[i32], mults: &[i32], shifts: &[i32], zero_point: i32, out: &mut [i8]) {
    let ch = mults.len();
    for (idx, (o, &a)) in out.iter_mut().zip(acc).enumerate() {
        *o = requantize_one(a, mults[idx % ch], shifts[idx % ch], zero_point);
    }
}

fn to_bf16(v: f32) -> f64 {
    let b = v.to_bits();
    let r = (b + 0x7fff + ((b >> 16) & 1)) & 0xffff_0000;
    f32::from_bits(r) as f64
}

/// `y = bf16(x)·bf16(W)ᵀ + bias`, exact products, f64 sums.
pub fn linear_bf16(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, bias: Option<&[f32]>, y: &mut [f32]) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias.map_or(0.0, |b| b[j] as f64);
            for p in 0..k {
                acc += to_bf16(x[i * k + p]) * to_bf16(w[j * k + p]);
            }
            y[i * n + j] = acc as f32;
        }
    }
}

/// Row softmax in f64.
pub fn softmax(x: &mut [f32], rows: usize, cols: usize) {
    for r in 0..rows {
        let row = &mut x[r * cols..(r + 1) * cols];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        if m == f64::NEG_INFINITY {
            row.fill(0.0);
            continue;
        }
        let sum: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        for v in row.iter_mut() {
            *v = ((*v as f64 - m).exp() / sum) as f32;
        }
    }
}

/// Normalization shared by the integer softmaxes, from the documented format.
fn normalize_q15(e: &[u64], out: &mut [i16]) {
    let sum: u64 = e.iter().sum();
    if sum == 0 {
        out.fill(0);
        return;
    }
    let r = ((1u128 << 47) - 1) / sum as u128;
    for (o, &v) in out.iter_mut().zip(e) {
        *o = ((v as u128 * r + (1u128 << 31)) >> 32).min(32767) as i16;
    }
}

/// int8 LUT softmax, Q15 output (see [`crate::softmax`] for the format).
pub fn softmax_lut_i8(x: &[i8], rows: usize, cols: usize, lut: &SoftmaxLut, out: &mut [i16]) {
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row.iter().copied().max().unwrap_or(0) as i32;
        let e: Vec<u64> = row.iter().map(|&v| lut.table()[(m - v as i32) as usize] as u64).collect();
        normalize_q15(&e, &mut out[r * cols..(r + 1) * cols]);
    }
}

/// int16 fixed-point softmax, Q15 output.
pub fn softmax_i16(x: &[i16], rows: usize, cols: usize, params: SoftmaxI16Params, out: &mut [i16]) {
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row.iter().copied().max().unwrap_or(0) as i64;
        let e: Vec<u64> = row
            .iter()
            .map(|&v| {
                let d = ((m - v as i64) as u64).min(params.d_cap as u64);
                let t = (d * params.mult as u64) >> params.shift;
                let n = (t >> 16).min(31);
                let f = t & 0xffff;
                let tab = (32768.0 * 2f64.powf(-((f >> 11) as f64) / 32.0)).round() as u64;
                let lo = f & 0x7ff;
                let poly = 65536 - ((45426 * lo) >> 16) + ((15743 * ((lo * lo) >> 16)) >> 16);
                // Q31 value, rounded to Q15 (half up).
                let x = tab * poly;
                let q = (x as f64 / 2f64.powi(16 + n as i32) + 0.5).floor() as u64;
                if n > 15 { 0 } else { q }
            })
            .collect();
        normalize_q15(&e, &mut out[r * cols..(r + 1) * cols]);
    }
}

/// bf16 softmax: f64 math on the bf16 inputs, probabilities rounded to bf16.
pub fn softmax_bf16(x: &[bf16], rows: usize, cols: usize, out: &mut [bf16]) {
    let mut buf: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
    softmax(&mut buf, rows, cols);
    for (o, &v) in out.iter_mut().zip(&buf) {
        *o = bf16::from_f32(v);
    }
}

/// Multi-head attention, f64 (layout and causal rule as [`crate::attention_f32`]).
#[allow(clippy::too_many_arguments)]
pub fn attention(q: &[f32], k: &[f32], v: &[f32], n_q: usize, n_kv: usize, n_heads: usize, head_dim: usize, causal: bool, out: &mut [f32]) {
    let d = n_heads * head_dim;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let shift = n_kv as isize - n_q as isize;
    let mut s = vec![0.0f64; n_kv];
    for h in 0..n_heads {
        for i in 0..n_q {
            let visible = if causal { (i as isize + shift + 1).clamp(0, n_kv as isize) as usize } else { n_kv };
            for (j, sj) in s.iter_mut().enumerate().take(visible) {
                let mut acc = 0.0;
                for c in 0..head_dim {
                    acc += q[i * d + h * head_dim + c] as f64 * k[j * d + h * head_dim + c] as f64;
                }
                *sj = acc * scale;
            }
            let m = s[..visible].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = s[..visible].iter().map(|&x| (x - m).exp()).sum();
            for c in 0..head_dim {
                let mut acc = 0.0;
                for (j, &sj) in s.iter().enumerate().take(visible) {
                    acc += (sj - m).exp() / sum * v[j * d + h * head_dim + c] as f64;
                }
                out[i * d + h * head_dim + c] = if visible == 0 { 0.0 } else { acc as f32 };
            }
        }
    }
}

/// Layer norm in f64 (biased variance).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(x: &[f32], rows: usize, cols: usize, gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for c in 0..cols {
            out[r * cols + c] = ((row[c] as f64 - mean) * rstd * gamma[c] as f64 + beta[c] as f64) as f32;
        }
    }
}

/// erf in f64 (Maclaurin series below 2.5, continued fraction for erfc above); |error| < 1e-14.
pub fn erf(x: f64) -> f64 {
    let ax = x.abs();
    let r = if ax < 2.5 {
        // erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
        let mut term = ax;
        let mut sum = ax;
        let x2 = ax * ax;
        for n in 1..200 {
            term *= -x2 / n as f64;
            let t = term / (2 * n + 1) as f64;
            sum += t;
            if t.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if ax > 27.0 {
        1.0
    } else {
        // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
        let mut f = ax;
        for n in (1..120).rev() {
            f = ax + (n as f64 / 2.0) / f;
        }
        1.0 - (-ax * ax).exp() / (std::f64::consts::PI.sqrt() * f)
    };
    r.copysign(x)
}

/// Exact GELU in f64.
pub fn gelu(x: &mut [f32]) {
    for v in x.iter_mut() {
        let xf = *v as f64;
        *v = (0.5 * xf * (1.0 + erf(xf / std::f64::consts::SQRT_2))) as f32;
    }
}

/// Direct 1-D convolution: `w` is `[c_out][c_in][kernel]`, output time-major `[t_out][c_out]`.
#[allow(clippy::too_many_arguments)]
pub fn conv1d(
    x: &[f32],
    layout: ConvInput,
    c_in: usize,
    t: usize,
    w: &[f32],
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let t_out = conv1d_out_len(t, kernel, stride, padding);
    for to in 0..t_out {
        for co in 0..c_out {
            let mut acc = bias.map_or(0.0, |b| b[co] as f64);
            for ci in 0..c_in {
                for kk in 0..kernel {
                    let ti = (to * stride + kk) as isize - padding as isize;
                    if ti < 0 || ti as usize >= t {
                        continue;
                    }
                    let xv = match layout {
                        ConvInput::ChannelMajor => x[ci * t + ti as usize],
                        ConvInput::TimeMajor => x[ti as usize * c_in + ci],
                    };
                    acc += w[(co * c_in + ci) * kernel + kk] as f64 * xv as f64;
                }
            }
            out[to * c_out + co] = acc as f32;
        }
    }
}

/// f64 reference of [`crate::attention_kv_i8`]: the same quantized queries, exact dequantized scores,
/// f64 softmax and `P·V` over the dequantized values.
pub fn attention_kv_i8(q: &[f32], kv: &crate::CrossKvI8, n_q: usize, out: &mut [f32]) {
    let (hd, n) = (kv.head_dim, kv.n_kv);
    let d = kv.n_heads * hd;
    let mut qu = vec![0u8; hd];
    let mut s = vec![0f64; n];
    for h in 0..kv.n_heads {
        for i in 0..n_q {
            let (sq, zp) = crate::dec_attention_i8::quantize_query(&q[i * d + h * hd..i * d + (h + 1) * hd], &mut qu);
            for (j, sj) in s.iter_mut().enumerate() {
                // Dequantized smoothed key times the dequantized query.
                let mut acc = 0f64;
                for c in 0..hd {
                    let code = kv.k[h * hd * kv.stride + (c / 4) * kv.stride * 4 + j * 4 + c % 4] as f64;
                    acc += (qu[c] as f64 - zp as f64) * sq as f64 * code * kv.k_scale[h * kv.stride + j] as f64;
                }
                *sj = acc / (hd as f64).sqrt();
            }
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = s.iter().map(|&x| (x - m).exp()).sum();
            for c in 0..hd {
                let acc: f64 = s.iter().enumerate().map(|(j, &sj)| (sj - m).exp() / sum * kv.value(h, c, j) as f64).sum();
                out[i * d + h * hd + c] = if n == 0 { 0.0 } else { acc as f32 };
            }
        }
    }
}
