//! The VAD options of `transcribe` (faster-whisper's `vad_filter` and `VadOptions`) and the
//! loading of the Silero model from the store.

use anyhow::Context;
use whisper::vad::{SileroVad, VadOptions};

use crate::store;

#[derive(Debug, Default, clap::Args)]
pub struct VadArgs {
    /// Detect speech with Silero VAD and transcribe only the speech (silences removed,
    /// timestamps mapped back to the original timeline): no hallucinated text on silence or
    /// noise. Off by default; on by default with --batch-size > 1, whose windows are the merged
    /// speech chunks (`--no-vad-filter` then gives plain 30 s windows). Needs
    /// `amanuensis models pull silero-vad`.
    #[arg(long, conflicts_with = "no_vad_filter")]
    pub vad_filter: bool,
    /// Turn the VAD off (with --batch-size > 1: plain 30 s windows, which may cut words).
    #[arg(long)]
    pub no_vad_filter: bool,
    /// Speech probability above which a 32 ms frame is speech [default: 0.5].
    #[arg(long, value_name = "P")]
    pub vad_threshold: Option<f64>,
    /// Probability below which speech ends [default: threshold - 0.15].
    #[arg(long, value_name = "P")]
    pub vad_neg_threshold: Option<f64>,
    /// Speech chunks shorter than this are dropped [default: 0].
    #[arg(long, value_name = "MS")]
    pub vad_min_speech_ms: Option<u32>,
    /// Longer speech chunks are split [default: unlimited; 30 with --batch-size > 1].
    #[arg(long, value_name = "SECONDS")]
    pub vad_max_speech_s: Option<f64>,
    /// Silence that ends a speech chunk [default: 2000; 160 with --batch-size > 1].
    #[arg(long, value_name = "MS")]
    pub vad_min_silence_ms: Option<u32>,
    /// Padding kept on each side of a speech chunk [default: 400].
    #[arg(long, value_name = "MS")]
    pub vad_speech_pad_ms: Option<u32>,
}

impl VadArgs {
    /// Some `--vad-*` option is given.
    pub fn is_tuned(&self) -> bool {
        self.vad_threshold.is_some()
            || self.vad_neg_threshold.is_some()
            || self.vad_min_speech_ms.is_some()
            || self.vad_max_speech_s.is_some()
            || self.vad_min_silence_ms.is_some()
            || self.vad_speech_pad_ms.is_some()
    }

    /// The VAD options, or `None` when the VAD is off. `batched`: the batched pipeline's
    /// defaults (faster-whisper's `BatchedInferencePipeline`: on, 30 s chunks, 160 ms silences).
    pub fn options(&self, batched: bool) -> anyhow::Result<Option<VadOptions>> {
        let tuned = self.is_tuned();
        let on = self.vad_filter || (batched && !self.no_vad_filter);
        if !on {
            if tuned {
                anyhow::bail!("--vad-* options need the VAD: add --vad-filter");
            }
            return Ok(None);
        }
        let mut o = if batched { VadOptions::batched(30.0) } else { VadOptions::default() };
        if let Some(v) = self.vad_threshold {
            o.threshold = v;
        }
        if self.vad_neg_threshold.is_some() {
            o.neg_threshold = self.vad_neg_threshold;
        }
        if let Some(v) = self.vad_min_speech_ms {
            o.min_speech_duration_ms = v;
        }
        if let Some(v) = self.vad_max_speech_s {
            if batched && v > 30.0 {
                anyhow::bail!("--vad-max-speech-s {v}: with --batch-size > 1 speech chunks are at most 30 s (one window)");
            }
            o.max_speech_duration_s = v;
        }
        if let Some(v) = self.vad_min_silence_ms {
            o.min_silence_duration_ms = v;
        }
        if let Some(v) = self.vad_speech_pad_ms {
            o.speech_pad_ms = v;
        }
        o.validate().context("VAD options")?;
        Ok(Some(o))
    }
}

/// Loads Silero VAD from the store, or says how to install it.
pub fn load_vad() -> anyhow::Result<SileroVad> {
    let (model, runtime) = store::resolve_vad()?;
    Ok(SileroVad::load(&model, &runtime)?)
}
