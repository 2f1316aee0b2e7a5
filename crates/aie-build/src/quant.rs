//! Host-built tables and parameter blocks that the int8 kernels take as inputs.

/// Length (i32 values) of the requantization parameter buffer of an `n`-column GEMM cut into
/// `tile_n`-column tiles: per tile `offset[tile_n], mult[tile_n], shift[tile_n], zero_point`,
/// padded to a multiple of 16 values (64 bytes) so that every tile's block stays aligned.
pub fn requant_params_len(n: usize, tile_n: usize) -> usize {
    (n / tile_n) * requant_block_len(tile_n)
}

/// Values of one tile's parameter block.
pub fn requant_block_len(tile_n: usize) -> usize {
    3 * tile_n + 16
}

/// Builds the parameter buffer for per-channel requantization
/// `out[i][j] = requantize_one(acc[i][j] + offsets[j], mults[j], shifts[j], zero_point)`.
///
/// `offsets` fold in whatever the host knows per column (bias in accumulator units minus the
/// activation zero point times the weight column sum).
///
/// # Panics
/// If the slices are not `n` long, `n` is not a multiple of `tile_n`, or a shift is outside
/// `[-31, 30]`.
pub fn requant_params(offsets: &[i32], mults: &[i32], shifts: &[i32], zero_point: i32, tile_n: usize) -> Vec<i32> {
    let n = mults.len();
    assert!(offsets.len() == n && shifts.len() == n, "aie-build: requant_params: offsets, mults and shifts need {n} values each");
    assert!(n % tile_n == 0, "aie-build: requant_params: {n} columns is not a multiple of the {tile_n}-column tile");
    assert!(shifts.iter().all(|s| (-31..=30).contains(s)), "aie-build: requant_params: shifts must lie in [-31, 30]");
    let blk = requant_block_len(tile_n);
    let mut out = vec![0i32; requant_params_len(n, tile_n)];
    for t in 0..n / tile_n {
        let b = &mut out[t * blk..(t + 1) * blk];
        let cols = t * tile_n..(t + 1) * tile_n;
        b[..tile_n].copy_from_slice(&offsets[cols.clone()]);
        b[tile_n..2 * tile_n].copy_from_slice(&mults[cols.clone()]);
        b[2 * tile_n..3 * tile_n].copy_from_slice(&shifts[cols]);
        b[3 * tile_n] = zero_point;
    }
    out
}

/// Quantization of one int8 tensor: `real = scale · (q − zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

/// The GELU table of the `gelu_lut_i8` kernel: `lut[q + 128]` is the output code of
/// `gelu(input.scale · (q − input.zero_point))`, rounded half to even onto the output grid and
/// saturated to i8. `gelu` maps f32 inputs to f32 outputs (the NPU backend passes the exact
/// erf GELU of kernels::reference).
///
/// # Panics
/// If a scale is not finite and positive.
pub fn gelu_lut_i8(input: QParams, output: QParams, gelu: impl Fn(f32) -> f32) -> [i8; 256] {
    assert!(input.scale.is_finite() && input.scale > 0.0 && output.scale.is_finite() && output.scale > 0.0, "aie-build: gelu_lut_i8: scales must be finite and > 0");
    let mut lut = [0i8; 256];
    for (i, e) in lut.iter_mut().enumerate() {
        let q = i as i32 - 128;
        let x = input.scale * (q - input.zero_point) as f32;
        let y = gelu(x);
        let code = (y / output.scale).round_ties_even() + output.zero_point as f32;
        *e = code.clamp(-128.0, 127.0) as i8;
    }
    lut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_blocks_are_laid_out_per_tile() {
        let n = 8;
        let off: Vec<i32> = (0..n).collect();
        let mul: Vec<i32> = (100..100 + n).collect();
        let sh: Vec<i32> = vec![-3; n as usize];
        let p = requant_params(&off, &mul, &sh, 7, 4);
        assert_eq!(p.len(), 2 * (12 + 16));
        assert_eq!(&p[..4], &[0, 1, 2, 3]);
        assert_eq!(&p[4..8], &[100, 101, 102, 103]);
        assert_eq!(p[12], 7);
        assert_eq!(&p[28..32], &[4, 5, 6, 7]);
    }

    #[test]
    fn gelu_table_saturates_and_is_monotone_for_positive_inputs() {
        let lut = gelu_lut_i8(QParams { scale: 0.05, zero_point: 0 }, QParams { scale: 0.05, zero_point: -20 }, |x| x.max(0.0));
        assert_eq!(lut[128], -20, "relu(0) = 0 maps to the zero point");
        assert_eq!(lut[255], 107, "127 * 0.05 / 0.05 - 20");
        assert!(lut[128..].windows(2).all(|w| w[0] <= w[1]));
    }
}
