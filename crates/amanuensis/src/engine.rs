//! Model loading for the app: resolves `--model`, picks the compute backend, sets threads.

use anyhow::Context;
use whisper::compute::{Compute, Cpu, WeightType};
use whisper::model::Whisper;

/// Numeric type of the engine's matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeType {
    /// 32-bit float everywhere (reference accuracy).
    F32,
    /// int8 weights and activations with i32 accumulation (AVX-512 VNNI), f16 decoder caches; fastest.
    Int8,
    /// bfloat16 products with f32 accumulation (AVX512_BF16).
    Bf16,
}

impl ComputeType {
    /// The default of every command: int8 is the fastest type, and its WER pooled over the
    /// shared sets (clips and the 10-minute recording) is within 0.5 points of f32 for tiny.en
    /// and base — below it, in fact (`benches/accuracy.sh`, figures in docs/BENCHMARKS.md).
    pub const DEFAULT: ComputeType = ComputeType::Int8;

    pub fn weight_type(self) -> WeightType {
        match self {
            ComputeType::F32 => WeightType::F32,
            ComputeType::Int8 => WeightType::Int8,
            ComputeType::Bf16 => WeightType::Bf16,
        }
    }
}

/// Sets the number of worker threads (once per process).
pub fn set_threads(n: usize) -> anyhow::Result<()> {
    if n == 0 || n > 1024 {
        anyhow::bail!("--threads {n}: use a number between 1 and 1024");
    }
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("the thread pool was already started")
}

/// The `--device` choice, set once by `main` before any model loads.
static DEVICE: std::sync::OnceLock<npu::DeviceChoice> = std::sync::OnceLock::new();

/// Records the `--device` choice (first call wins).
pub fn set_device(choice: npu::DeviceChoice) {
    let _ = DEVICE.set(choice);
}

/// The backend for `--device` and `compute`: the NPU (int8 encoder projections on the NPU,
/// the rest on `Cpu::new(compute)`) when chosen and usable, else the CPU.
fn backend(compute: ComputeType) -> anyhow::Result<Box<dyn Compute>> {
    let cpu = Cpu::new(compute.weight_type());
    let choice = DEVICE.get().copied().unwrap_or(npu::DeviceChoice::Auto);
    if choice == npu::DeviceChoice::Cpu {
        return Ok(Box::new(cpu));
    }
    let root = npu::default_xclbin_root();
    if npu::resolve_device(choice, &npu::probe(&root)).map_err(anyhow::Error::msg)? {
        let backend = npu::NpuCompute::open(cpu, &root);
        if let Some(why) = backend.why_not() {
            if choice == npu::DeviceChoice::Npu {
                anyhow::bail!("--device npu: {why}");
            }
            tracing::info!("--device auto: using the CPU: {why}");
        } else {
            tracing::info!("using the NPU for the encoder projections (int8); the rest on cpu-{compute:?}");
        }
        return Ok(Box::new(backend));
    }
    Ok(Box::new(cpu))
}

/// Loads `spec` (a store name or a model directory) with the chosen compute type.
pub fn load_model(spec: &str, compute: ComputeType) -> anyhow::Result<Whisper> {
    let dir = crate::store::resolve_model(spec)?;
    let backend = backend(compute)?;
    Whisper::load(&dir, backend).with_context(|| format!("loading model {}", dir.display()))
}
