//! Silero VAD v6 (faster-whisper 1.2.1's `silero_vad_v6.onnx`) on ONNX Runtime.
//!
//! The only module of the crate that uses `ort`. ONNX Runtime is loaded at run time from the
//! path given to [`SileroVad::load`] (never downloaded); one process loads one runtime.
//!
//! The model takes `input [n, 576]` (each 512-sample window preceded by the last 64 samples of
//! the window before it, zeros before the first) and the LSTM state `h`, `c` `[1, 1, 128]`; it
//! runs its LSTM along the `n` axis, so the windows of one call form a sequence, and returns one
//! probability per window and the state after the last one. faster-whisper runs a whole file
//! as one sequence (in batches of 10000 windows, passing the state on); carrying `h`, `c` and the
//! 64 context samples from call to call does exactly that, whatever the block sizes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::{Array2, Array3};
use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::Session;
use ort::value::TensorRef;

use super::{Vad, CONTEXT, WINDOW};
use crate::error::{Error, Result};

/// Size of the LSTM state.
const STATE: usize = 128;
/// Most windows per model run: bounds the input buffer (about 0.6 MB) on long calls, and the
/// runtime's memory arena, which grows to the largest run and is kept as long as the session
/// (1024 windows held about 40 MB through a whole batched transcription; 256 about a quarter).
const MAX_BATCH: usize = 256;
/// The command that installs the model and the runtime.
const INSTALL: &str = "amanuensis models pull silero-vad";

/// Probabilities, `hn`, `cn` of one model run.
type RunOutput = (Vec<f32>, Array3<f32>, Array3<f32>);

/// The ONNX Runtime library loaded in this process and its environment.
static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

fn vad_error(path: &Path, reason: String) -> Error {
    Error::Vad {
        path: path.to_path_buf(),
        reason,
    }
}

/// Loads ONNX Runtime from `path` once per process and returns its environment.
fn environment(path: &Path) -> Result<Environment> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(vad_error(
                path,
                format!("is not a file; expected the ONNX Runtime library (libonnxruntime.so), installed by `{INSTALL}`"),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(vad_error(
                path,
                format!("ONNX Runtime library not found; install it with `{INSTALL}`"),
            ))
        }
        Err(e) => return Err(Error::io(path, e)),
    }
    let canonical = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let mut runtime = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((loaded, env)) = runtime.as_ref() {
        if *loaded == canonical {
            return Ok(env.clone());
        }
        return Err(vad_error(
            path,
            format!(
                "cannot load this ONNX Runtime library: this process already loaded {} (one process can load only one)",
                loaded.display()
            ),
        ));
    }
    let builder = ort::init_from(&canonical).map_err(|e| {
        vad_error(
            path,
            format!(
                "not a usable ONNX Runtime library: {e}; reinstall it with `{INSTALL} --force`"
            ),
        )
    })?;
    let env = builder
        .with_name("amanuensis-vad")
        .build()
        .map_err(|e| vad_error(path, format!("ONNX Runtime failed to start: {e}")))?;
    *runtime = Some((canonical, env.clone()));
    Ok(env)
}

/// Silero VAD v6 run by ONNX Runtime: a stateful [`Vad`].
pub struct SileroVad {
    session: Session,
    model_path: PathBuf,
    h: Array3<f32>,
    c: Array3<f32>,
    /// The last [`CONTEXT`] samples of the previous window.
    context: [f32; CONTEXT],
    /// Reused model input, `[windows, CONTEXT + WINDOW]` row-major.
    input: Vec<f32>,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad")
            .field("model_path", &self.model_path)
            .finish_non_exhaustive()
    }
}

impl SileroVad {
    /// Loads the model `model` (`silero_vad_v6.onnx`) with the ONNX Runtime library `runtime`
    /// (`libonnxruntime.so`), one thread, as faster-whisper does. Missing files, a library that
    /// is not ONNX Runtime (or too old) and a file that is not this model give errors.
    pub fn load(model: &Path, runtime: &Path) -> Result<Self> {
        match std::fs::metadata(model) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(vad_error(
                    model,
                    format!("is not a file; expected the Silero VAD model (silero_vad_v6.onnx), installed by `{INSTALL}`"),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(vad_error(
                    model,
                    format!("Silero VAD model not found; install it with `{INSTALL}`"),
                ))
            }
            Err(e) => return Err(Error::io(model, e)),
        }
        let env = environment(runtime)?;
        let bad_model = |e: String| {
            vad_error(
                model,
                format!("not a valid Silero VAD model: {e}; reinstall it with `{INSTALL} --force`"),
            )
        };
        let session = Session::builder(&env)
            .and_then(|b| Ok(b.with_intra_threads(1)?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            .and_then(|b| Ok(b.with_log_level(LogLevel::Fatal)?))
            .map_err(|e| vad_error(runtime, format!("ONNX Runtime session options: {e}")))?
            .commit_from_file(model)
            .map_err(|e| bad_model(e.to_string()))?;
        let names = |outlets: &[ort::value::Outlet]| -> Vec<String> {
            outlets.iter().map(|o| o.name().to_string()).collect()
        };
        let (inputs, outputs) = (names(session.inputs()), names(session.outputs()));
        if inputs != ["input", "h", "c"] || outputs != ["speech_probs", "hn", "cn"] {
            return Err(bad_model(format!(
                "inputs {inputs:?} and outputs {outputs:?}, expected [\"input\", \"h\", \"c\"] and [\"speech_probs\", \"hn\", \"cn\"]"
            )));
        }
        let mut vad = SileroVad {
            session,
            model_path: model.to_path_buf(),
            h: Array3::zeros((1, 1, STATE)),
            c: Array3::zeros((1, 1, STATE)),
            context: [0.0; CONTEXT],
            input: Vec::new(),
        };
        // One run now, so a model that loads but cannot run fails here rather than mid-file.
        vad.probabilities(&[0.0; WINDOW])?;
        vad.reset();
        Ok(vad)
    }

    /// The model file this was loaded from.
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// Runs `samples.len() / WINDOW` (≤ MAX_BATCH) windows, appending their probabilities.
    fn run_batch(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let n = samples.len() / WINDOW;
        let row = CONTEXT + WINDOW;
        self.input.clear();
        self.input.reserve(n * row);
        for w in samples.chunks_exact(WINDOW) {
            self.input.extend_from_slice(&self.context);
            self.input.extend_from_slice(w);
            self.context.copy_from_slice(&w[WINDOW - CONTEXT..]);
        }
        let fail =
            |e: ort::Error| vad_error(&self.model_path, format!("Silero VAD failed to run: {e}"));
        let input = Array2::from_shape_vec((n, row), std::mem::take(&mut self.input))
            .expect("input has n rows of CONTEXT + WINDOW");
        let result = (|| -> std::result::Result<RunOutput, ort::Error> {
            let outputs = self.session.run(ort::inputs![
                "input" => TensorRef::from_array_view(&input)?,
                "h" => TensorRef::from_array_view(&self.h)?,
                "c" => TensorRef::from_array_view(&self.c)?,
            ])?;
            let probs = outputs["speech_probs"].try_extract_array::<f32>()?;
            let hn = outputs["hn"].try_extract_array::<f32>()?;
            let cn = outputs["cn"].try_extract_array::<f32>()?;
            let shape_err = |what: &str, shape: &[usize]| {
                ort::Error::new(format!("unexpected shape {shape:?} of output `{what}`"))
            };
            if probs.len() != n {
                return Err(shape_err("speech_probs", probs.shape()));
            }
            let hn = hn
                .into_shape_with_order((1, 1, STATE))
                .map_err(|_| ort::Error::new("unexpected shape of output `hn`"))?
                .to_owned();
            let cn = cn
                .into_shape_with_order((1, 1, STATE))
                .map_err(|_| ort::Error::new("unexpected shape of output `cn`"))?
                .to_owned();
            Ok((probs.iter().copied().collect(), hn, cn))
        })();
        self.input = input.into_raw_vec_and_offset().0;
        let (probs, hn, cn) = result.map_err(fail)?;
        self.h = hn;
        self.c = cn;
        out.extend_from_slice(&probs);
        Ok(())
    }
}

impl Vad for SileroVad {
    fn reset(&mut self) {
        self.h.fill(0.0);
        self.c.fill(0.0);
        self.context = [0.0; CONTEXT];
    }

    fn probabilities(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        if !samples.len().is_multiple_of(WINDOW) {
            return Err(Error::InvalidArgument(format!(
                "the VAD takes whole windows of {WINDOW} samples; got {} samples",
                samples.len()
            )));
        }
        let mut out = Vec::with_capacity(samples.len() / WINDOW);
        for batch in samples.chunks(MAX_BATCH * WINDOW) {
            self.run_batch(batch, &mut out)?;
        }
        Ok(out)
    }
}
