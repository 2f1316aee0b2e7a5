//! `clip_timestamps`: transcribe only given stretches of the recording, faster-whisper 1.2.1's
//! semantics. The clips are `start,end,start,end,...` in seconds; an odd count means the last
//! clip runs to the end of the audio. The sequential loop seeks to each clip's start and never
//! lets a window run past the clip's end ([`SeekClips`], `generate_segments`' seek logic); the
//! batched pipeline decodes each clip as its own windows ([`crate::pipeline::clip_windows`]).

use crate::mel::HOP_LENGTH;
use crate::{audio::SAMPLE_RATE, Error, Result};

/// Mel frames per second (faster-whisper's `frames_per_second`).
const FRAMES_PER_SECOND: f64 = (SAMPLE_RATE / HOP_LENGTH) as f64;

/// Parses `"start,end,start,end,..."` (seconds). An empty string (or faster-whisper's default
/// `"0"`) is no clipping: an empty list. Values are checked by [`validate`].
pub fn parse(s: &str) -> Result<Vec<f64>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let clips = s
        .split(',')
        .map(|v| {
            let v = v.trim();
            v.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| {
                Error::InvalidArgument(format!("clip timestamps: `{v}` is not a number of seconds (expected start,end,start,end,... such as 0,12.5,30,45)"))
            })
        })
        .collect::<Result<Vec<f64>>>()?;
    validate(&clips)?;
    // "0" is faster-whisper's default: the whole recording.
    Ok(if clips == [0.0] { Vec::new() } else { clips })
}

/// Checks clip times: finite, not negative, each clip's start before its end, and clips in
/// order without overlapping (a clip may start where the previous one ends).
pub fn validate(clips: &[f64]) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(format!("clip timestamps: {m}")));
    if let Some(v) = clips.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return bad(format!("{v} is not a time in seconds (times must be finite and >= 0)"));
    }
    for (i, pair) in clips.chunks(2).enumerate() {
        if let [start, end] = *pair {
            if start >= end {
                return bad(format!("clip {} starts at {start} s but ends at {end} s (the start must be before the end)", i + 1));
            }
        }
        if i > 0 {
            let previous_end = clips[2 * i - 1];
            if pair[0] < previous_end {
                return bad(format!(
                    "clip {} starts at {} s, before the end of clip {i} ({previous_end} s): clips must be in order and must not overlap",
                    i + 1,
                    pair[0]
                ));
            }
        }
    }
    Ok(())
}

/// Seconds to a mel frame as faster-whisper's `round(ts * frames_per_second)` does it
/// (Python rounds halves to even).
fn to_frame(seconds: f64) -> usize {
    (seconds * FRAMES_PER_SECOND).round_ties_even() as usize
}

/// Where faster-whisper detects the language when clips are given: the first clip time
/// truncated to a frame (`int(start * frames_per_second)`), or 0 when that is past the content.
pub fn detection_frame(clips: &[f64], content_frames: usize) -> usize {
    match clips.first() {
        Some(&start) if start * FRAMES_PER_SECOND < content_frames as f64 => (start * FRAMES_PER_SECOND) as usize,
        _ => 0,
    }
}

/// The seek state of the sequential loop over clips: `(start, end)` frame pairs, the current
/// clip and the seek. [`SeekClips::settle`] applies faster-whisper's rules between windows.
#[derive(Clone, Debug)]
pub struct SeekClips {
    clips: Vec<(usize, usize)>,
    index: usize,
    content_frames: usize,
    seek: usize,
}

impl SeekClips {
    /// The clips of `clips` (seconds; empty = the whole recording) over `content_frames`, the
    /// seek settled on the first window.
    pub fn new(clips: &[f64], content_frames: usize) -> Self {
        let mut points: Vec<usize> = clips.iter().map(|&t| to_frame(t)).collect();
        if points.is_empty() {
            points.push(0);
        }
        if points.len() % 2 == 1 {
            points.push(content_frames);
        }
        let clips: Vec<(usize, usize)> = points.chunks(2).map(|p| (p[0], p[1])).collect();
        let seek = clips[0].0;
        let mut s = SeekClips { clips, index: 0, content_frames, seek };
        s.settle();
        s
    }

    /// The first frame of the current window.
    pub fn seek(&self) -> usize {
        self.seek
    }

    /// Frames of audio content (the whole recording, whatever the clips).
    pub fn content_frames(&self) -> usize {
        self.content_frames
    }

    /// Moves the seek to `seek` (where a decoded window says to go on), then on as
    /// [`settle`](Self::settle) says.
    pub fn move_to(&mut self, seek: usize) {
        self.seek = seek;
        self.settle();
    }

    /// Moves the seek into the current clip, or on to the next clip when the current one is
    /// finished (faster-whisper: `if seek < start: seek = start`; `if seek >= end: next clip`).
    fn settle(&mut self) {
        while let Some(&(start, end)) = self.clips.get(self.index) {
            let end = end.min(self.content_frames);
            if self.seek < start {
                self.seek = start;
            }
            if self.seek < end {
                return;
            }
            self.index += 1;
            if let Some(&(next, _)) = self.clips.get(self.index) {
                self.seek = next;
            }
        }
    }

    /// Every clip is done.
    pub fn is_done(&self) -> bool {
        self.index >= self.clips.len()
    }

    /// Frames of the current window: at most 30 s, never past the content or the clip's end.
    pub fn segment_size(&self, max_frames: usize) -> usize {
        let end = self.clips.get(self.index).map_or(0, |c| c.1).min(self.content_frames);
        max_frames.min(end.saturating_sub(self.seek))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_faster_whisper_strings() {
        assert_eq!(parse("").unwrap(), Vec::<f64>::new());
        assert_eq!(parse("0").unwrap(), Vec::<f64>::new());
        assert_eq!(parse(" 1.5, 3 ,4").unwrap(), vec![1.5, 3.0, 4.0]);
        assert_eq!(parse("0,10").unwrap(), vec![0.0, 10.0]);
        assert_eq!(parse("2,6,6,8").unwrap(), vec![2.0, 6.0, 6.0, 8.0]);
    }

    #[test]
    fn rejects_bad_clips() {
        for (s, want) in [
            ("a,3", "`a` is not a number"),
            ("1,,3", "`` is not a number"),
            ("1,inf", "`inf` is not a number"),
            ("nan", "`nan` is not a number"),
            ("-1,3", "-1 is not a time"),
            ("3,3", "clip 1 starts at 3 s but ends at 3 s"),
            ("4,3", "clip 1 starts at 4 s but ends at 3 s"),
            ("0,5,4,8", "clip 2 starts at 4 s, before the end of clip 1"),
            ("0,5,2", "clip 2 starts at 2 s, before the end of clip 1"),
        ] {
            let e = parse(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn seeks_like_faster_whisper() {
        // Two clips, the second running to the end (odd count).
        let mut c = SeekClips::new(&[1.0, 5.5, 7.0], 1834);
        assert_eq!((c.seek, c.segment_size(3000)), (100, 450));
        c.move_to(552); // the window decoded past the clip's end
        assert_eq!((c.seek, c.segment_size(3000)), (700, 1134));
        c.move_to(1834);
        assert!(c.is_done());
        // A clip past the content is skipped; rounding is Python's (halves to even).
        let c = SeekClips::new(&[25.0, 30.0], 1834);
        assert!(c.is_done());
        assert_eq!(to_frame(0.125), 12);
        assert_eq!(to_frame(0.135), 14);
        // No clips: the whole recording, in 30 s windows.
        let c = SeekClips::new(&[], 4000);
        assert_eq!((c.seek, c.segment_size(3000)), (0, 3000));
        assert!(SeekClips::new(&[], 0).is_done());
        // Language detection truncates, and falls back to 0 past the content.
        assert_eq!(detection_frame(&[0.29, 1.0], 1000), 28);
        assert_eq!(detection_frame(&[12.0], 1000), 0);
        assert_eq!(detection_frame(&[], 1000), 0);
    }
}
