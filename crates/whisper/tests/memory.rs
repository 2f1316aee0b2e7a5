//! A one-hour input spooled and served as log-mel windows stays at flat memory (its own test
//! binary, so no other test's allocations show in the process's peak RSS).

use std::io::Read;

use whisper::audio::{AudioInput, SampleSource, SpooledSource};
use whisper::features::StreamingFeatures;
use whisper::mel::N_FRAMES;

/// Peak resident set size of this process, in MB (Linux).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Raw s16le of a tone with a slow amplitude sweep, generated on the fly (`n` samples).
struct Tone {
    n: u64,
    i: u64,
}

impl Read for Tone {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut k = 0;
        while k + 2 <= buf.len() && self.i < self.n {
            let t = self.i as f64 / 22_050.0;
            let v = (t * 2.0 * std::f64::consts::PI * 440.0).sin() * (0.2 + 0.1 * (t / 60.0).sin());
            buf[k..k + 2].copy_from_slice(&((v * 32767.0) as i16).to_le_bytes());
            k += 2;
            self.i += 1;
        }
        Ok(k)
    }
}

#[test]
fn one_hour_input_keeps_memory_flat() {
    let before = peak_rss_mb();
    let hour = 3600 * 22_050;
    let input = AudioInput::Reader {
        reader: Box::new(Tone { n: hour, i: 0 }),
        label: "<tone>".into(),
        limit: 0,
    }
    .raw_s16le(22_050);
    let source = SpooledSource::from_input(input).unwrap();
    assert_eq!(source.len(), 3600 * 16_000);
    let feats = StreamingFeatures::new(source, 80).unwrap();
    let mut seek = 0;
    while seek < feats.n_frames {
        let w = feats.window(seek, N_FRAMES).unwrap().pad_or_trim(N_FRAMES);
        assert_eq!(w.data.len(), 80 * N_FRAMES);
        seek += N_FRAMES * 20; // a sample of windows across the hour
    }
    let grew = peak_rss_mb() - before;
    eprintln!("peak RSS grew by {grew:.1} MB for one hour of 22.05 kHz audio");
    // The whole hour would be 230 MB of samples and 115 MB of log-mel.
    assert!(grew < 48.0, "peak RSS grew by {grew:.1} MB");
}
