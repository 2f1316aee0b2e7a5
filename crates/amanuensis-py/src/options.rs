//! Python dicts (built by `python/amanuensis/transcribe.py` from faster-whisper's keyword
//! arguments) into the engine's `TranscribeOptions` and `VadOptions`. Field for field; values
//! are checked by the engine (`TranscribeOptions::validate`, `VadOptions::validate`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use whisper::tokenizer::Task;
use whisper::transcribe::TranscribeOptions;
use whisper::vad::VadOptions;

fn item<'py, T: FromPyObject<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
    match d.get_item(key)? {
        Some(v) => v.extract::<T>().map_err(|e| PyValueError::new_err(format!("{key}: {e}"))),
        None => Err(PyValueError::new_err(format!("missing option `{key}`"))),
    }
}

pub fn transcribe_options(options: &Bound<'_, PyAny>) -> PyResult<TranscribeOptions> {
    let d = options.downcast::<PyDict>()?;
    let task: String = item(d, "task")?;
    let clip: Vec<f64> = item(d, "clip_timestamps")?;
    let opts = TranscribeOptions {
        language: item(d, "language")?,
        task: match task.as_str() {
            "transcribe" => Task::Transcribe,
            "translate" => Task::Translate,
            other => return Err(PyValueError::new_err(format!("task `{other}`: use \"transcribe\" or \"translate\""))),
        },
        beam_size: item(d, "beam_size")?,
        best_of: item(d, "best_of")?,
        patience: item(d, "patience")?,
        length_penalty: item(d, "length_penalty")?,
        temperatures: item(d, "temperatures")?,
        compression_ratio_threshold: item(d, "compression_ratio_threshold")?,
        log_prob_threshold: item(d, "log_prob_threshold")?,
        no_speech_threshold: item(d, "no_speech_threshold")?,
        condition_on_previous_text: item(d, "condition_on_previous_text")?,
        prompt_reset_on_temperature: item(d, "prompt_reset_on_temperature")?,
        initial_prompt: item(d, "initial_prompt")?,
        without_timestamps: item(d, "without_timestamps")?,
        max_initial_timestamp: item(d, "max_initial_timestamp")?,
        suppress_blank: item(d, "suppress_blank")?,
        suppress_tokens: item(d, "suppress_tokens")?,
        repetition_penalty: item(d, "repetition_penalty")?,
        no_repeat_ngram_size: item(d, "no_repeat_ngram_size")?,
        hotwords: item(d, "hotwords")?,
        clip_timestamps: clip,
        prefix: item(d, "prefix")?,
        word_timestamps: item(d, "word_timestamps")?,
        prepend_punctuations: item(d, "prepend_punctuations")?,
        append_punctuations: item(d, "append_punctuations")?,
        hallucination_silence_threshold: item(d, "hallucination_silence_threshold")?,
        ..TranscribeOptions::default()
    };
    opts.validate().map_err(crate::to_py)?;
    Ok(opts)
}

/// `clip_timestamps` as faster-whisper's string (`"0"`, `"1.5,3,10"`) in seconds, checked by
/// the engine's parser.
#[pyfunction]
pub fn parse_clip_timestamps(s: &str) -> PyResult<Vec<f64>> {
    whisper::clip::parse(s).map_err(crate::to_py)
}

pub fn vad_options(v: &Bound<'_, PyAny>) -> PyResult<VadOptions> {
    let d = v.downcast::<PyDict>()?;
    let o = VadOptions {
        threshold: item(d, "threshold")?,
        neg_threshold: item(d, "neg_threshold")?,
        min_speech_duration_ms: item(d, "min_speech_duration_ms")?,
        max_speech_duration_s: item(d, "max_speech_duration_s")?,
        min_silence_duration_ms: item(d, "min_silence_duration_ms")?,
        speech_pad_ms: item(d, "speech_pad_ms")?,
    };
    o.validate().map_err(crate::to_py)?;
    Ok(o)
}
