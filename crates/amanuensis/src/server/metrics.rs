//! Counters and gauges of the server, rendered as Prometheus text on `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// How a job ended, for `amanuensis_jobs_total{outcome=...}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    Failed,
    TimedOut,
    Cancelled,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// What the engine thread spends its time on, for `amanuensis_engine_seconds_total{phase=...}`.
#[derive(Clone, Copy, Debug)]
pub enum Phase {
    /// Starting sessions (log-mel, language detection).
    Start,
    Encode,
    /// Joining windows to the batch (cross-attention K/V).
    Join,
    /// Decoder passes (with logit rules and search).
    Decode,
    /// Applying finished windows to their sessions.
    Complete,
}

impl Phase {
    pub const ALL: [Phase; 5] = [Phase::Start, Phase::Encode, Phase::Join, Phase::Decode, Phase::Complete];

    fn label(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Encode => "encode",
            Phase::Join => "join",
            Phase::Decode => "decode",
            Phase::Complete => "complete",
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    /// (route, status) -> responses.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    jobs: Mutex<BTreeMap<Outcome, u64>>,
    /// Seconds of audio and of wall time of successful jobs.
    seconds: Mutex<(f64, f64)>,
    pub queue_depth: AtomicI64,
    pub in_flight: AtomicI64,
    /// Decoded audio held by requests (decoding, queued, running), in 16 kHz samples (`budget`).
    pub audio_held_samples: AtomicU64,
    pub encoder_batches: AtomicU64,
    pub encoder_windows: AtomicU64,
    /// Decoder passes of the continuous batch, and the windows (sequences) and hypothesis rows
    /// (beams) they advanced, summed over passes.
    pub decoder_passes: AtomicU64,
    pub decoder_sequences: AtomicU64,
    pub decoder_rows: AtomicU64,
    /// Microseconds the engine thread spent in each phase (see `Phase`).
    pub engine_micros: [AtomicU64; Phase::ALL.len()],
    pub model_loaded: AtomicBool,
    pub workers: AtomicU64,
    pub queue_capacity: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not turn every later metrics update into another panic.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    pub fn record_request(&self, route: &str, status: u16) {
        *lock(&self.requests)
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    pub fn record_job(&self, outcome: Outcome) {
        *lock(&self.jobs).entry(outcome).or_default() += 1;
    }

    pub fn record_phase(&self, phase: Phase, since: std::time::Instant) {
        self.engine_micros[phase as usize]
            .fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    pub fn record_audio(&self, audio_seconds: f64, processing_seconds: f64) {
        let mut s = lock(&self.seconds);
        s.0 += audio_seconds;
        s.1 += processing_seconds;
    }

    pub fn render(&self) -> String {
        fn head(out: &mut String, name: &str, kind: &str, help: &str) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        let mut out = String::new();
        let n = "amanuensis_http_requests_total";
        head(
            &mut out,
            n,
            "counter",
            "HTTP responses by route and status code.",
        );
        for ((route, status), count) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "{n}{{route=\"{}\",status=\"{status}\"}} {count}",
                escape(route)
            );
        }
        let n = "amanuensis_jobs_total";
        head(
            &mut out,
            n,
            "counter",
            "Transcription jobs by outcome (ok, failed, timeout, cancelled).",
        );
        let jobs = lock(&self.jobs).clone();
        for o in [
            Outcome::Ok,
            Outcome::Failed,
            Outcome::TimedOut,
            Outcome::Cancelled,
        ] {
            let _ = writeln!(
                out,
                "{n}{{outcome=\"{}\"}} {}",
                o.label(),
                jobs.get(&o).copied().unwrap_or(0)
            );
        }
        let n = "amanuensis_engine_seconds_total";
        head(
            &mut out,
            n,
            "counter",
            "Wall seconds the engine thread spent by phase (start, encode, join, decode, complete).",
        );
        for p in Phase::ALL {
            let us = self.engine_micros[p as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "{n}{{phase=\"{}\"}} {:.6}", p.label(), us as f64 / 1e6);
        }
        let (audio, processing) = *lock(&self.seconds);
        let load = |a: &AtomicI64| a.load(Ordering::Relaxed).max(0).to_string();
        let load_u = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let held = self.audio_held_samples.load(Ordering::Relaxed) as f64 / 16_000.0;
        let singles: [(&str, &str, &str, String); 13] = [
            ("amanuensis_audio_seconds_total", "counter", "Seconds of audio transcribed successfully.", format!("{audio:.6}")),
            (
                "amanuensis_processing_seconds_total",
                "counter",
                "Wall seconds from upload received to transcript ready, summed over successful jobs.",
                format!("{processing:.6}"),
            ),
            ("amanuensis_queue_depth", "gauge", "Jobs waiting to be admitted to the engine.", load(&self.queue_depth)),
            ("amanuensis_jobs_in_flight", "gauge", "Jobs being transcribed now.", load(&self.in_flight)),
            (
                "amanuensis_audio_held_seconds",
                "gauge",
                "Seconds of decoded audio held by requests (decoding, queued or running); bounded by --max-queued-audio-secs.",
                format!("{held:.3}"),
            ),
            ("amanuensis_queue_capacity", "gauge", "Jobs that may wait before requests get 503.", load_u(&self.queue_capacity)),
            ("amanuensis_workers", "gauge", "Jobs decoded at the same time (the continuous batch's bound, --workers).", load_u(&self.workers)),
            (
                "amanuensis_encoder_batches_total",
                "counter",
                "Encoder runs; each encodes the 30 s windows of one or more jobs together.",
                load_u(&self.encoder_batches),
            ),
            ("amanuensis_encoder_windows_total", "counter", "30 s windows encoded.", load_u(&self.encoder_windows)),
            (
                "amanuensis_decoder_passes_total",
                "counter",
                "Decoder passes; each advances every window in the continuous batch by one token.",
                load_u(&self.decoder_passes),
            ),
            (
                "amanuensis_decoder_sequences_total",
                "counter",
                "Windows advanced, summed over decoder passes (divided by passes: windows sharing a pass).",
                load_u(&self.decoder_sequences),
            ),
            (
                "amanuensis_decoder_rows_total",
                "counter",
                "Hypothesis rows (beams of every window) decoded, summed over decoder passes.",
                load_u(&self.decoder_rows),
            ),
            (
                "amanuensis_model_loaded",
                "gauge",
                "1 once the model is loaded and requests are served.",
                u8::from(self.model_loaded.load(Ordering::Relaxed)).to_string(),
            ),
        ];
        for (name, kind, help, value) in singles {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

/// Label values escape backslash, quote and newline (Prometheus text format).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.record_request("/transcribe", 200);
        m.record_request("/transcribe", 200);
        m.record_request("/v1/audio/transcriptions", 400);
        m.record_job(Outcome::Ok);
        m.record_audio(2.5, 0.5);
        m.queue_depth.store(3, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains(
                "amanuensis_http_requests_total{route=\"/transcribe\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("amanuensis_http_requests_total{route=\"/v1/audio/transcriptions\",status=\"400\"} 1\n"), "{text}");
        assert!(
            text.contains("amanuensis_jobs_total{outcome=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("amanuensis_audio_seconds_total 2.500000\n"),
            "{text}"
        );
        assert!(text.contains("amanuensis_queue_depth 3\n"), "{text}");
        // Every sample line belongs to a family announced by a TYPE line.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE for {name}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
