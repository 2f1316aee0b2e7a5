//! The tile layouts the AIE kernels compute on, and the host-side packing into them.
//!
//! A `rows x cols` tile in `br x bc` blocks: blocks in row-major order, each block row-major
//! (the order `aie::mmul` consumes). The kernels' sources compute the same index
//! (`am_blocked_index` in kernels/include/am_kernel.h). In a GEMM with mmul shape (r, s, t):
//! A tiles use r x s blocks, B tiles s x t, C tiles r x t. The designs' DMA produces the A
//! blocks from row-major activations and un-blocks C into row-major outputs; B (the weights,
//! fixed for the model's lifetime) is packed once on the host by [`pack_gemm_weights`].

/// Offset of (row, col) in a blocked tile of `cols` columns.
#[inline]
pub fn blocked_index(row: usize, col: usize, cols: usize, br: usize, bc: usize) -> usize {
    ((row / br) * (cols / bc) + col / bc) * (br * bc) + (row % br) * bc + col % bc
}

/// Row-major `rows x cols` (row stride `ld`) to the blocked layout.
///
/// # Panics
/// If the tile is not a whole number of blocks or `src` is too short.
pub fn pack_blocked<T: Copy + Default>(src: &[T], ld: usize, rows: usize, cols: usize, br: usize, bc: usize) -> Vec<T> {
    assert!(rows % br == 0 && cols % bc == 0, "aie-build: {rows}x{cols} tile is not a whole number of {br}x{bc} blocks");
    assert!(rows == 0 || src.len() >= (rows - 1) * ld + cols, "aie-build: pack_blocked: source too short");
    let mut out = vec![T::default(); rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[blocked_index(r, c, cols, br, bc)] = src[r * ld + c];
        }
    }
    out
}

/// Blocked layout back to row-major (`dst` row stride `ld`).
pub fn unpack_blocked<T: Copy>(src: &[T], rows: usize, cols: usize, br: usize, bc: usize, dst: &mut [T], ld: usize) {
    assert!(rows % br == 0 && cols % bc == 0 && src.len() >= rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            dst[r * ld + c] = src[blocked_index(r, c, cols, br, bc)];
        }
    }
}

/// Packs linear-layer weights `w` (row-major `[n][k]`, one row per output channel, i.e. Bᵀ)
/// into the DDR order the GEMM designs stream: for each n-tile, for each k-tile, the
/// `tk x tn` tile of B = Wᵀ in `s x t` blocks. Each core's B fetch is then one contiguous
/// range, so the design's B transfer needs no strides.
///
/// # Panics
/// If `k`/`n` are not multiples of the tile or the tile not of the blocks.
pub fn pack_gemm_weights<T: Copy + Default>(w: &[T], n: usize, k: usize, tile_k: usize, tile_n: usize, s: usize, t: usize) -> Vec<T> {
    assert_eq!(w.len(), n * k, "aie-build: pack_gemm_weights: {} weights for n*k = {n}*{k}", w.len());
    assert!(k % tile_k == 0 && n % tile_n == 0, "aie-build: K={k}, N={n} must be multiples of the {tile_k}x{tile_n} tile");
    assert!(tile_k % s == 0 && tile_n % t == 0);
    let mut out = vec![T::default(); n * k];
    let tile = tile_k * tile_n;
    for nt in 0..n / tile_n {
        for kt in 0..k / tile_k {
            let base = (nt * (k / tile_k) + kt) * tile;
            for p in 0..tile_k {
                for j in 0..tile_n {
                    out[base + blocked_index(p, j, tile_n, s, t)] = w[(nt * tile_n + j) * k + kt * tile_k + p];
                }
            }
        }
    }
    out
}

/// [`pack_gemm_weights`] for the fused-requantization GEMM: every `(nt, kt)` slot holds the
/// `tile_k x tile_n` weight tile followed by the n-tile's requantization parameter block
/// (`quant::requant_params`, i32 little-endian). The parameters travel with the weights
/// because a shim tile has only two input DMA channels (A and B): a third stream would not
/// fit. The kernel reads the block from the last K tile of each output tile.
///
/// # Panics
/// As [`pack_gemm_weights`], or if `params` is not one block per n-tile.
pub fn pack_gemm_weights_rq(w: &[i8], n: usize, k: usize, tile_k: usize, tile_n: usize, s: usize, t: usize, params: &[i32]) -> Vec<i8> {
    let blk = crate::quant::requant_block_len(tile_n);
    assert_eq!(params.len(), (n / tile_n) * blk, "aie-build: pack_gemm_weights_rq: {} parameters for {} n-tiles", params.len(), n / tile_n);
    let plain = pack_gemm_weights(w, n, k, tile_k, tile_n, s, t);
    let tile = tile_k * tile_n;
    let slot = rq_slot_len(tile_k, tile_n);
    let mut out = vec![0i8; (n / tile_n) * (k / tile_k) * slot];
    for nt in 0..n / tile_n {
        let pbytes: Vec<i8> = params[nt * blk..(nt + 1) * blk].iter().flat_map(|v| v.to_le_bytes()).map(|b| b as i8).collect();
        for kt in 0..k / tile_k {
            let i = nt * (k / tile_k) + kt;
            out[i * slot..i * slot + tile].copy_from_slice(&plain[i * tile..(i + 1) * tile]);
            out[i * slot + tile..(i + 1) * slot].copy_from_slice(&pbytes);
        }
    }
    out
}

/// Bytes of one `(nt, kt)` slot of [`pack_gemm_weights_rq`].
pub fn rq_slot_len(tile_k: usize, tile_n: usize) -> usize {
    tile_k * tile_n + 4 * crate::quant::requant_block_len(tile_n)
}

/// The `(nt, kt)` tile of weights packed by [`pack_gemm_weights`].
pub fn packed_weight_tile<T>(packed: &[T], k: usize, tile_k: usize, tile_n: usize, nt: usize, kt: usize) -> &[T] {
    let tile = tile_k * tile_n;
    let base = (nt * (k / tile_k) + kt) * tile;
    &packed[base..base + tile]
}

/// Rows to pad `m` up to a multiple of `multiple`.
pub fn padded_rows(m: usize, multiple: usize) -> usize {
    m.div_ceil(multiple) * multiple
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_round_trip_and_known_offsets() {
        let (rows, cols) = (8, 16);
        let src: Vec<u32> = (0..(rows * cols) as u32).collect();
        let packed = pack_blocked(&src, cols, rows, cols, 4, 8);
        // First block: rows 0..4 x cols 0..8, row-major.
        assert_eq!(&packed[..10], &[0, 1, 2, 3, 4, 5, 6, 7, 16, 17]);
        // Second block starts at (0, 8).
        assert_eq!(packed[32], 8);
        let mut back = vec![0u32; rows * cols];
        unpack_blocked(&packed, rows, cols, 4, 8, &mut back, cols);
        assert_eq!(back, src);
    }

    #[test]
    fn weights_are_transposed_into_tiles() {
        let (n, k) = (16, 16);
        let w: Vec<i32> = (0..(n * k) as i32).collect();
        let p = pack_gemm_weights(&w, n, k, 8, 8, 4, 4);
        // tile (nt=1, kt=0): B[p][j] = w[8 + j][p]
        let tile = packed_weight_tile(&p, k, 8, 8, 1, 0);
        for pp in 0..8 {
            for j in 0..8 {
                assert_eq!(tile[blocked_index(pp, j, 8, 4, 4)], w[(8 + j) * k + pp]);
            }
        }
        assert_eq!(padded_rows(1500, 256), 1536);
        assert_eq!(padded_rows(1536, 256), 1536);
    }
}
