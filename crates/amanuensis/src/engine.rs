//! Model loading for the app: resolves `--model`, picks the compute backend, sets threads.

use anyhow::Context;
use whisper::compute::CpuF32;
use whisper::model::Whisper;

/// Numeric type of the engine's matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeType {
    /// 32-bit float everywhere (reference accuracy).
    F32,
}

/// Sets the number of worker threads (once per process).
pub fn set_threads(n: usize) -> anyhow::Result<()> {
    if n == 0 || n > 1024 {
        anyhow::bail!("--threads {n}: use a number between 1 and 1024");
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .context("the thread pool was already started")
}

/// Loads `spec` (a store name or a model directory) with the chosen compute type.
pub fn load_model(spec: &str, compute: ComputeType) -> anyhow::Result<Whisper> {
    let dir = crate::store::resolve_model(spec)?;
    let backend = match compute {
        ComputeType::F32 => Box::new(CpuF32),
    };
    Whisper::load(&dir, backend).with_context(|| format!("loading model {}", dir.display()))
}
