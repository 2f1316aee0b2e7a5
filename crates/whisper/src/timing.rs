//! The numeric steps that turn cross-attention weights into token timings, as CTranslate2's
//! `Whisper::align` runs them (and openai-whisper's `timing.py` describes them): softmax over
//! the audio positions, normalisation of each position over the tokens, a median filter along
//! time, the mean over the alignment heads, then dynamic time warping of the negated matrix.
//!
//! Everything here is plain `f32` arithmetic in the order CTranslate2's CPU kernels use, so
//! the same weights give the same path.

/// Softmax of each row of `x` (`cols` values per row), in place (the vectorised kernel:
/// CTranslate2 uses a vectorised exponential too).
pub fn softmax_rows(x: &mut [f32], cols: usize) {
    if cols == 0 {
        return;
    }
    let rows = x.len() / cols;
    kernels::softmax_f32(&mut x[..rows * cols], rows, cols);
}

/// Normalises every column of the `rows x cols` matrix `x` over its rows to zero mean and unit
/// variance (CTranslate2's `LayerNorm(axis=-2, epsilon=0)`: population variance from the sums
/// of values and squares, clamped at 0). A constant column becomes NaN, as there.
pub fn normalize_columns(x: &mut [f32], rows: usize, cols: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    let mut sum = vec![0f32; cols];
    let mut sum_sq = vec![0f32; cols];
    for row in x.chunks_exact(cols).take(rows) {
        for ((s, q), &v) in sum.iter_mut().zip(sum_sq.iter_mut()).zip(row) {
            *s += v;
            *q += v * v;
        }
    }
    let n = rows as f32;
    let mean: Vec<f32> = sum.iter().map(|s| s / n).collect();
    let rstd: Vec<f32> = sum_sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| 1.0 / (q / n - m * m).max(0.0).sqrt())
        .collect();
    for row in x.chunks_exact_mut(cols).take(rows) {
        for ((v, m), r) in row.iter_mut().zip(&mean).zip(&rstd) {
            *v = (*v - m) * r;
        }
    }
}

/// Median filter of odd `width` along each row of `x` (`cols` values per row), the edges
/// reflected without repeating the edge value (`[2, 1, 0, 1, 2, ...]`). Rows no longer than
/// half the width are copied unchanged (CTranslate2's guard).
pub fn median_filter_rows(x: &[f32], cols: usize, width: usize) -> Vec<f32> {
    let rank = width / 2;
    if cols <= rank || width < 3 {
        return x.to_vec();
    }
    let mut out = vec![0f32; x.len()];
    let mut window = vec![0f32; 2 * rank + 1];
    // Width 7 on rows at least that long: the positions whose window lies inside the row go
    // through the row-wide network, the edges through the general path.
    let interior = if width == 7 && cols >= width { rank..cols - rank } else { 0..0 };
    for (row, dst) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        if !interior.is_empty() {
            median7_interior(row, &mut dst[interior.clone()]);
        }
        for (j, d) in dst.iter_mut().enumerate() {
            if interior.contains(&j) {
                continue;
            }
            for (k, w) in window.iter_mut().enumerate() {
                let mut read = (j + k).abs_diff(rank);
                if read >= cols {
                    read = (2 * cols).saturating_sub(read + 2);
                }
                *w = row[read.min(cols - 1)];
            }
            *d = if width == 7 {
                median7(window[..7].try_into().expect("seven values"))
            } else {
                // The median of a handful of values; NaNs sort last rather than panicking.
                window.sort_unstable_by(|a, b| a.total_cmp(b));
                window[rank]
            };
        }
    }
    out
}

/// A sorting network for seven values (16 compare-exchanges).
const NETWORK7: [(usize, usize); 16] =
    [(0, 6), (2, 3), (4, 5), (0, 2), (1, 4), (3, 6), (0, 1), (2, 5), (3, 4), (1, 2), (4, 6), (2, 3), (4, 5), (1, 2), (3, 4), (5, 6)];

/// The median of seven values (the alignment's filter width, at the edges of a row).
fn median7(mut v: [f32; 7]) -> f32 {
    for (a, b) in NETWORK7 {
        let (lo, hi) = if v[b] < v[a] { (v[b], v[a]) } else { (v[a], v[b]) };
        v[a] = lo;
        v[b] = hi;
    }
    v[3]
}

/// The width-7 median of every position of `row` whose window lies inside it, into `out`
/// (`row.len() - 6` values): the network runs on whole shifted copies of the row, one
/// compare-exchange at a time, so it vectorises (the filter sees every weight of every
/// alignment head).
fn median7_interior(row: &[f32], out: &mut [f32]) {
    let n = out.len();
    let mut v: [Vec<f32>; 7] = std::array::from_fn(|k| row[k..k + n].to_vec());
    for (a, b) in NETWORK7 {
        let (lo, hi) = v.split_at_mut(b);
        for (x, y) in lo[a].iter_mut().zip(hi[0].iter_mut()) {
            let (l, h) = if *y < *x { (*y, *x) } else { (*x, *y) };
            *x = l;
            *y = h;
        }
    }
    out.copy_from_slice(&v[3]);
}

/// Dynamic time warping of the `rows x cols` matrix `x` negated (the path through the highest
/// weights), from `(0, 0)` to `(rows - 1, cols - 1)`: `(row, col)` pairs in order. Ties go as in
/// CTranslate2 and openai-whisper: the diagonal only when strictly cheapest, then the step down
/// the rows, else the step along time.
pub fn negative_dtw(x: &[f32], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    if rows == 0 || cols == 0 || x.len() < rows * cols {
        return Vec::new();
    }
    let (n, m) = (rows, cols);
    let w = m + 1;
    let mut cost = vec![f32::INFINITY; (n + 1) * w];
    // 0: diagonal, 1: previous row, 2: previous column.
    let mut trace = vec![2u8; (n + 1) * w];
    cost[0] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let c0 = cost[(i - 1) * w + j - 1];
            let c1 = cost[(i - 1) * w + j];
            let c2 = cost[i * w + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            cost[i * w + j] = -x[(i - 1) * m + j - 1] + c;
            trace[i * w + j] = t;
        }
    }
    let (mut i, mut j) = (n, m);
    let mut path = Vec::with_capacity(n + m);
    while i > 0 && j > 0 {
        path.push((i - 1, j - 1));
        match trace[i * w + j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    // Only NaN weights can leave the walk on a border before the origin; such steps name no
    // cell and are left out.
    path.reverse();
    path
}

/// For each row of a DTW path, the column where the path first enters it (the time index at
/// which that token starts): faster-whisper's `jump_times` in 20 ms units.
pub fn row_starts(path: &[(usize, usize)]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut previous = None;
    for &(row, col) in path {
        if previous != Some(row) {
            out.push(col);
            previous = Some(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one() {
        let mut x = vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        softmax_rows(&mut x, 3);
        assert!((x[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((x[2] - 0.665_240_9).abs() < 1e-6);
        // Wider rows (the vector path) agree with the definition.
        let mut y: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let want: Vec<f64> = y
            .chunks(50)
            .flat_map(|r| {
                let sum: f64 = r.iter().map(|&v| (v as f64).exp()).sum();
                r.iter().map(move |&v| (v as f64).exp() / sum)
            })
            .collect();
        softmax_rows(&mut y, 50);
        for (got, want) in y.iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 1e-6 * want.max(1e-3), "{got} vs {want}");
        }
        for v in &x[3..] {
            assert!((v - 1.0 / 3.0).abs() < 1e-7);
        }
        softmax_rows(&mut [], 0);
    }

    #[test]
    fn columns_normalised_over_rows() {
        // Column 0: 1, 3 → -1, 1. Column 1: 2, 2 → constant, NaN (as CTranslate2).
        let mut x = vec![1.0, 2.0, 3.0, 2.0];
        normalize_columns(&mut x, 2, 2);
        assert_eq!((x[0], x[2]), (-1.0, 1.0));
        assert!(x[1].is_nan() && x[3].is_nan());
        // Three rows: 0, 1, 5 → mean 2, population std √(14/3).
        let mut y = vec![0.0, 1.0, 5.0];
        normalize_columns(&mut y, 3, 1);
        let s = (14f32 / 3.0).sqrt();
        for (got, want) in y.iter().zip([-2.0 / s, -1.0 / s, 3.0 / s]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn median_filter_reflects_edges() {
        // Hand-checked, width 3: edges reflect [x1, x0, x1, ...] and [..., xn-2, xn-1, xn-2].
        let x = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(median_filter_rows(&x, 5, 3), vec![1.0, 4.0, 2.0, 3.0, 2.0]);
        // Width 7 on 8 values: position 0 sees x3 x2 x1 x0 x1 x2 x3.
        let x = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0];
        let y = median_filter_rows(&x, 8, 7);
        assert_eq!(y[0], 20.0); // {30,20,10,0,10,20,30} → 20
        assert_eq!(y[3], 30.0); // {0..60} → 30
        assert_eq!(y[7], 50.0); // x4 x5 x6 x7 x6 x5 x4 → {40,50,60,70,60,50,40} → 50
        // Two rows are filtered independently; a spike is removed.
        let x = [1.0, 1.0, 9.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0];
        assert_eq!(median_filter_rows(&x, 5, 3), vec![1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
        // Too short for the width: unchanged.
        assert_eq!(median_filter_rows(&[3.0, 1.0, 2.0], 3, 7), vec![3.0, 1.0, 2.0]);
        // Rows between half the width and the width: all edges, reflected (CTranslate2's
        // indices: |j + k|, then 2·len − i − 2 past the end). Four values: position 0 sees
        // x3 x2 x1 x0 x1 x2 x3 = {2,1,3,4,3,1,2} → 2; position 2 sees x1 x0 x1 x2 x3 x2 x1 =
        // {3,4,3,1,2,1,3} → 3; position 3 sees x0 x1 x2 x3 x2 x1 x0 = {4,3,1,2,1,3,4} → 3.
        assert_eq!(median_filter_rows(&[4.0, 3.0, 1.0, 2.0], 4, 7), vec![2.0, 2.0, 3.0, 3.0]);
        for cols in 4..=8 {
            let x: Vec<f32> = (0..cols).map(|i| (i * 7 % 5) as f32).collect();
            assert_eq!(median_filter_rows(&x, cols, 7).len(), cols);
        }
    }

    #[test]
    fn median_of_seven_network_sorts() {
        // A comparator network sorts every input iff it sorts every 0/1 input.
        for bits in 0u32..128 {
            let v: [f32; 7] = std::array::from_fn(|i| ((bits >> i) & 1) as f32);
            let mut sorted = v;
            sorted.sort_by(f32::total_cmp);
            assert_eq!(median7(v), sorted[3], "{v:?}");
        }
        let mut s = 12345u32;
        for _ in 0..1000 {
            let v: [f32; 7] = std::array::from_fn(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / 65536.0 - 128.0
            });
            let mut sorted = v;
            sorted.sort_by(f32::total_cmp);
            assert_eq!(median7(v), sorted[3]);
        }
        // The row-wide version gives the same medians as the windows one by one.
        let row: Vec<f32> = (0..40).map(|i| ((i * 37 % 11) as f32).sin()).collect();
        let mut out = vec![0f32; 34];
        median7_interior(&row, &mut out);
        for (j, &m) in out.iter().enumerate() {
            assert_eq!(m, median7(row[j..j + 7].try_into().unwrap()));
        }
    }

    #[test]
    fn dtw_follows_the_highest_weights() {
        // Expected paths checked against a direct Python transcription of CTranslate2's
        // `negative_dtw` (float32 costs, same tie rules).
        // Two tokens over four frames: token 0 on frames 0-1, token 1 on frames 2-3. The
        // path enters row 1 at frame 1: (1, 1) costs as much as (0, 1) then (1, 2).
        let x = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let path = negative_dtw(&x, 2, 4);
        assert_eq!(path, vec![(0, 0), (0, 1), (1, 1), (1, 2), (1, 3)]);
        assert_eq!(row_starts(&path), vec![0, 1]);
        // Three tokens over five frames.
        let x = [
            1.0, 1.0, 1.0, 0.0, 0.0, //
            0.0, 0.0, 0.0, 1.0, 1.0, //
            0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let path = negative_dtw(&x, 3, 5);
        assert_eq!(path, vec![(0, 0), (0, 1), (0, 2), (1, 2), (1, 3), (1, 4), (2, 4)]);
        assert_eq!(row_starts(&path), vec![0, 2, 4]);
        // Equal costs: the diagonal is taken only when strictly cheapest, a row step only when
        // strictly cheapest, else the time step; so ties drop to the last row at once.
        assert_eq!(negative_dtw(&[0.0; 4], 2, 2), vec![(0, 0), (1, 0), (1, 1)]);
        assert_eq!(negative_dtw(&[0.0; 6], 2, 3), vec![(0, 0), (1, 0), (1, 1), (1, 2)]);
        // More rows than columns: rows step down in one column.
        let path = negative_dtw(&[1.0, 1.0, 1.0], 3, 1);
        assert_eq!(path, vec![(0, 0), (1, 0), (2, 0)]);
        assert_eq!(row_starts(&path), vec![0, 0, 0]);
    }

    #[test]
    fn dtw_odd_inputs_do_not_panic() {
        assert!(negative_dtw(&[], 0, 0).is_empty());
        assert!(negative_dtw(&[1.0], 2, 2).is_empty());
        let path = negative_dtw(&[f32::NAN; 12], 3, 4);
        assert!(path.iter().all(|&(r, c)| r < 3 && c < 4));
        assert!(row_starts(&[]).is_empty());
    }
}
