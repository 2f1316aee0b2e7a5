//! A window's tokens cut into segments at timestamp pairs, and where the next window starts
//! (openai-whisper's rules), shared by the sequential loop and the batched pipeline.

use crate::transcribe::TIME_PRECISION;

/// Mel frames per encoder output position.
const INPUT_STRIDE: usize = 2;

/// Cuts a window's tokens into segments at timestamp pairs and says where to seek next
/// (openai-whisper's rules). Returns `(start, end, tokens)` pieces and the new seek.
pub fn split_by_timestamps(
    timestamp_begin: u32,
    tokens: &[u32],
    time_offset: f64,
    seek: usize,
    segment_size: usize,
    segment_duration: f64,
) -> (Vec<(f64, f64, Vec<u32>)>, usize) {
    let is_ts = |t: u32| t >= timestamp_begin;
    let n = tokens.len();
    let single_timestamp_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
    let consecutive: Vec<usize> = (1..n)
        .filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1]))
        .collect();
    let mut pieces = Vec::new();
    if !consecutive.is_empty() {
        let mut slices = consecutive;
        if single_timestamp_ending {
            slices.push(n);
        }
        let mut last = 0;
        for &cur in &slices {
            let sliced = &tokens[last..cur];
            let start = time_offset + (sliced[0] - timestamp_begin) as f64 * TIME_PRECISION;
            let end =
                time_offset + (sliced[sliced.len() - 1] - timestamp_begin) as f64 * TIME_PRECISION;
            pieces.push((start, end, sliced.to_vec()));
            last = cur;
        }
        let next = if single_timestamp_ending {
            seek + segment_size
        } else {
            seek + (tokens[last - 1] - timestamp_begin) as usize * INPUT_STRIDE
        };
        (pieces, next)
    } else {
        let mut duration = segment_duration;
        if let Some(&last_ts) = tokens.iter().rev().find(|&&t| is_ts(t)) {
            if last_ts != timestamp_begin {
                duration = (last_ts - timestamp_begin) as f64 * TIME_PRECISION;
            }
        }
        pieces.push((time_offset, time_offset + duration, tokens.to_vec()));
        (pieces, seek + segment_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_pairs_and_seek() {
        let tb = 100;
        // <0.00> a b <1.00><1.00> c <2.00>   (single timestamp ending)
        let toks = [tb, 1, 2, tb + 50, tb + 50, 3, tb + 100];
        let (pieces, seek) = split_by_timestamps(tb, &toks, 10.0, 1000, 3000, 30.0);
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[0].0, pieces[0].1), (10.0, 11.0));
        assert_eq!((pieces[1].0, pieces[1].1), (11.0, 12.0));
        assert_eq!(seek, 4000);
        // Unfinished last segment: seek to the last complete timestamp.
        let toks = [tb, 1, tb + 50, tb + 50, 3];
        let (pieces, seek) = split_by_timestamps(tb, &toks, 0.0, 0, 3000, 30.0);
        assert_eq!(pieces.len(), 1);
        assert_eq!(seek, 100);
        // No pairs: one segment up to the last timestamp.
        let toks = [tb, 1, 2, tb + 60];
        let (pieces, seek) = split_by_timestamps(tb, &toks, 0.0, 0, 700, 7.0);
        assert_eq!(pieces.len(), 1);
        assert!((pieces[0].1 - 1.2).abs() < 1e-9 && pieces[0].2 == toks);
        assert_eq!(seek, 700);
    }
}
