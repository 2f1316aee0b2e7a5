//! Admission by audio held, not only by job count: every decoded sample of a request counts
//! against `--max-queued-audio-secs` from the moment it is decoded (reserved while decoding,
//! before it is stored) until its job ends, so whatever mix of uploads arrives, the server
//! never holds more than the budget of decoded audio. `--max-audio-secs` bounds one upload.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;

use super::error::ApiError;
use super::metrics::Metrics;

/// The two bounds, in 16 kHz samples.
#[derive(Clone, Copy, Debug)]
pub struct AudioLimits {
    /// Longest audio one request may decode to (`--max-audio-secs`).
    pub max_audio_secs: f64,
    /// Audio that may be held (decoding, queued or running) at once (`--max-queued-audio-secs`).
    pub max_queued_audio_secs: f64,
}

impl AudioLimits {
    fn budget_samples(&self) -> u64 {
        (self.max_queued_audio_secs * whisper::audio::SAMPLE_RATE as f64) as u64
    }

    /// Whether the budget is spent (a new upload would be refused at once).
    pub fn is_spent(&self, metrics: &Metrics) -> bool {
        metrics.audio_held_samples.load(Ordering::Relaxed) >= self.budget_samples()
    }
}

/// Samples of one request counted against the budget; given back when dropped (the job
/// ended, failed or was refused).
pub struct Reservation {
    metrics: Arc<Metrics>,
    samples: u64,
}

impl Reservation {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Reservation { metrics, samples: 0 }
    }

    /// Reserves `n` more samples; `false` (nothing reserved) when that would pass the budget.
    pub fn grow(&mut self, n: usize, limits: &AudioLimits) -> bool {
        let n = n as u64;
        let budget = limits.budget_samples();
        let held = &self.metrics.audio_held_samples;
        let mut cur = held.load(Ordering::Relaxed);
        loop {
            if cur + n > budget {
                return false;
            }
            match held.compare_exchange_weak(cur, cur + n, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    self.samples += n;
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.metrics.audio_held_samples.fetch_sub(self.samples, Ordering::AcqRel);
    }
}

/// 413: the upload decodes to more than `--max-audio-secs`.
pub fn too_long(limits: &AudioLimits) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "audio_too_long",
        format!(
            "the uploaded audio is longer than this server's limit of {} s ({}); decoding stopped \
             there. Cut the recording into parts of at most that length and send each, or ask \
             the operator to raise --max-audio-secs",
            limits.max_audio_secs,
            hms(limits.max_audio_secs)
        ),
    )
    .param("file")
}

/// 503: the audio already held (decoding, queued, running) leaves no room for this upload.
pub fn budget_spent(limits: &AudioLimits) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audio_queue_full",
        format!(
            "the server is busy: the audio it already holds (decoding, queued or being \
             transcribed) fills its budget of {} s ({}, --max-queued-audio-secs); retry later",
            limits.max_queued_audio_secs,
            hms(limits.max_queued_audio_secs)
        ),
    )
    .retry_after(5)
}

fn hms(secs: f64) -> String {
    let s = secs.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_budget_and_are_given_back() {
        let m = Arc::new(Metrics::default());
        let limits = AudioLimits { max_audio_secs: 1.0, max_queued_audio_secs: 2.0 };
        let mut a = Reservation::new(m.clone());
        let mut b = Reservation::new(m.clone());
        assert!(a.grow(20_000, &limits));
        assert!(b.grow(12_000, &limits));
        assert!(!b.grow(1, &limits), "32000 samples = 2 s is the whole budget");
        assert!(limits.is_spent(&m));
        drop(a);
        assert_eq!(m.audio_held_samples.load(Ordering::Relaxed), 12_000);
        assert!(b.grow(20_000, &limits));
        drop(b);
        assert_eq!(m.audio_held_samples.load(Ordering::Relaxed), 0);
        assert_eq!(hms(14400.0), "4:00:00");
    }
}
