//! Hostile uploads: small files that decode to hours. `--max-audio-secs` refuses them while
//! decoding (413), `--max-queued-audio-secs` bounds the audio all requests hold together (503),
//! and the server's memory stays bounded and /health keeps answering.

use std::time::{Duration, Instant};

mod server_support;
use server_support::{concatenated, get, testdata, Form, Server};

const LIBRIVOX_0880: &str = "audio/human/librivox_0880.wav";

/// A FLAC file of `seconds` of digital silence at 16 kHz, 16-bit mono: every frame is one
/// CONSTANT subframe of 16384 samples (about 10 bytes), so three hours take about 100 KB.
fn flac_silence(seconds: u64) -> Vec<u8> {
    const BLOCK: u64 = 16384;
    let total = seconds * 16000;
    let frames = total.div_ceil(BLOCK);
    let mut out = b"fLaC".to_vec();
    // STREAMINFO, the last metadata block: block sizes, frame sizes unknown, rate, channels,
    // bits per sample, total samples, no MD5.
    out.extend_from_slice(&[0x80, 0, 0, 34]);
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    let packed: u64 = (16000u64 << 44) | (15u64 << 36) | (frames * BLOCK);
    out.extend_from_slice(&packed.to_be_bytes());
    out.extend_from_slice(&[0; 16]);
    for n in 0..frames {
        // Sync + fixed blocking, block size code 1110 (16384), rate code 0101 (16 kHz),
        // mono, 16 bits; the frame number in FLAC's UTF-8 coding; CRC-8 of the header.
        let mut f = vec![0xFF, 0xF8, 0xE5, 0x08];
        f.extend(utf8_number(n));
        f.push(crc8(&f));
        // CONSTANT subframe, value 0.
        f.extend_from_slice(&[0x00, 0x00, 0x00]);
        let crc = crc16(&f);
        f.extend_from_slice(&crc.to_be_bytes());
        out.extend(f);
    }
    out
}

fn utf8_number(n: u64) -> Vec<u8> {
    match n {
        0..=0x7F => vec![n as u8],
        0x80..=0x7FF => vec![0xC0 | (n >> 6) as u8, 0x80 | (n & 0x3F) as u8],
        _ => {
            assert!(n < 0x10000);
            vec![0xE0 | (n >> 12) as u8, 0x80 | ((n >> 6) & 0x3F) as u8, 0x80 | (n & 0x3F) as u8]
        }
    }
}

fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 { (crc << 1) ^ 0x07 } else { crc << 1 };
        }
    }
    crc
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x8005 } else { crc << 1 };
        }
    }
    crc
}

/// Peak resident memory of a process (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

#[test]
fn the_generated_flac_decodes_to_its_length() {
    let flac = flac_silence(60);
    assert!(flac.len() < 2000, "{} bytes", flac.len());
    let samples = whisper::audio::decode_audio_bytes(flac, Some("flac")).unwrap();
    assert_eq!(samples.len() as u64, 16384 * 59);
    assert!(samples.iter().all(|&s| s == 0.0));
}

#[test]
fn audio_over_max_audio_secs_gets_413_with_the_limit() {
    let s = Server::start(&["--max-audio-secs", "5", "--max-queued-audio-secs", "60"]);
    let url = s.url("/v1/audio/transcriptions");
    // A 7 s recording, and three hours of silence in about 100 KB.
    let seven = concatenated(&["librivox_0880", "librivox_0880"]);
    let hours = flac_silence(3 * 3600);
    assert!(hours.len() < 150_000, "{} bytes", hours.len());
    for (name, bytes) in [("seven.wav", &seven), ("silence.flac", &hours)] {
        let t0 = Instant::now();
        let r = Form::new().file("file", name, bytes).post(&url);
        assert_eq!(r.status, 413, "{name}: {}", r.body);
        let msg = r.error_message();
        assert_eq!(r.json()["error"]["code"], "audio_too_long", "{}", r.body);
        assert_eq!(r.json()["error"]["param"], "file", "{}", r.body);
        for part in ["5 s", "--max-audio-secs", "Cut the recording"] {
            assert!(msg.contains(part), "{name}: message lacks {part:?}: {msg}");
        }
        // Refused while decoding: three hours are never decoded whole.
        assert!(t0.elapsed() < Duration::from_secs(20), "{name}: {:?}", t0.elapsed());
    }
    assert_eq!(s.metric("amanuensis_audio_held_seconds"), 0.0);
    // Under the limit, the same server transcribes.
    let ok = Form::new().clip(LIBRIVOX_0880).text("beam_size", "1").post(&url);
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn concurrent_uploads_that_decode_to_hours_keep_memory_bounded() {
    let s = Server::start(&["--max-audio-secs", "600", "--max-queued-audio-secs", "1200"]);
    let url = s.url("/transcribe");
    let hours = flac_silence(3 * 3600);
    let before = peak_rss_mb(s.pid());
    let n = 16;
    std::thread::scope(|sc| {
        let uploads: Vec<_> = (0..n)
            .map(|_| sc.spawn(|| Form::new().file("file", "silence.flac", &hours).post(&url)))
            .collect();
        // The server keeps answering /health while it refuses them.
        let mut healthy = 0;
        while !uploads.iter().all(|u| u.is_finished()) {
            let t0 = Instant::now();
            let h = get(&s.url("/health"));
            assert_eq!(h.status, 200, "{}", h.body);
            assert!(t0.elapsed() < Duration::from_secs(5), "/health took {:?}", t0.elapsed());
            healthy += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        for u in uploads {
            let r = u.join().unwrap();
            // 413 past the length limit, or 503 while the others hold the budget.
            match r.status {
                413 => assert_eq!(r.json()["error"]["code"], "audio_too_long", "{}", r.body),
                503 => {
                    assert_eq!(r.json()["error"]["code"], "audio_queue_full", "{}", r.body);
                    assert!(r.header("retry-after").is_some());
                }
                other => panic!("status {other}: {}", r.body),
            }
        }
        eprintln!("/health answered {healthy} times during the uploads");
    });
    let peak = peak_rss_mb(s.pid());
    eprintln!("peak RSS: {before:.0} MB before, {peak:.0} MB after {n} uploads of 3 h each");
    // Decoded whole, each upload would be 3 h x 64 KB/s = 691 MB of samples; the budget
    // (1200 s = 77 MB) is what may be held, plus the model and the decoder's buffers.
    assert!(peak < before + 400.0, "peak RSS {peak:.0} MB (was {before:.0} MB)");
    s.wait_for("every reservation given back", |s| s.metric("amanuensis_audio_held_seconds") == 0.0);
    let ok = Form::new().clip(LIBRIVOX_0880).text("beam_size", "1").post(&url);
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn audio_held_by_running_jobs_counts_against_the_budget() {
    // 52.9 s of speech running; 9.3 s more would pass the 60 s budget.
    let s = Server::start(&["--workers", "1", "--max-audio-secs", "60", "--max-queued-audio-secs", "60"]);
    let long = concatenated(&["s11", "s08", "s03", "s06"]);
    let url = s.url("/transcribe");
    std::thread::scope(|sc| {
        let first = sc.spawn(|| Form::new().file("file", "long.wav", &long).text("beam_size", "1").post(&url));
        s.wait_for("the first job to run", |s| s.metric("amanuensis_jobs_in_flight") == 1.0);
        let held = s.metric("amanuensis_audio_held_seconds");
        assert!((52.0..54.0).contains(&held), "held {held}");
        let clip = std::fs::read(testdata().join("audio/tts/s03.wav")).unwrap();
        let r = Form::new().file("file", "s03.wav", &clip).post(&url);
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], "audio_queue_full");
        assert!(r.error_message().contains("--max-queued-audio-secs"));
        assert!(r.header("retry-after").is_some());
        // A short clip still fits.
        let small = Form::new().clip(LIBRIVOX_0880).text("beam_size", "1").post(&url);
        assert_eq!(small.status, 200, "{}", small.body);
        let first = first.join().unwrap();
        assert_eq!(first.status, 200, "{}", first.body);
        let again = Form::new().file("file", "s03.wav", &clip).text("beam_size", "1").post(&url);
        assert_eq!(again.status, 200, "{}", again.body);
    });
    // A response goes out before its job's reservation is dropped: given back soon after.
    s.wait_for("every reservation given back", |s| s.metric("amanuensis_audio_held_seconds") == 0.0);
}
