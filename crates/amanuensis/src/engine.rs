//! Model loading for the app: resolves `--model`, picks the compute backend, sets threads.

use anyhow::Context;
use clap::ValueEnum;
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

/// What `--device` and `--compute-type` resolve to, before the NPU is opened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DevicePlan {
    /// The CPU with the asked compute type. `why`: the reason the NPU is not used (None for
    /// `--device cpu`); `warn`: the NPU was usable, so the reason is news to the user.
    Cpu { why: Option<String>, warn: bool },
    /// The NPU for the encoder's int8 projections, the rest on the CPU.
    Npu,
}

/// The device for `choice` and `compute`, given whether the NPU is usable (`Err`: why not).
/// Pure, so it is tested without hardware. The NPU runs int8 projections only, so a float
/// type (f32, bf16) never goes to it: `auto` keeps the asked type on the CPU (with a warning
/// when the NPU was usable), and `npu` is an error naming `--compute-type int8`.
pub(crate) fn plan_device(choice: npu::DeviceChoice, compute: ComputeType, npu_usable: Result<(), String>) -> Result<DevicePlan, String> {
    use npu::DeviceChoice::{Auto, Cpu as CpuChoice, Npu};
    let name = compute.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_else(|| format!("{compute:?}"));
    match (choice, compute, npu_usable) {
        (CpuChoice, _, _) => Ok(DevicePlan::Cpu { why: None, warn: false }),
        (Npu, ComputeType::F32 | ComputeType::Bf16, _) => Err(format!(
            "--device npu runs the encoder projections in int8 only, not {name}: pass --compute-type int8 for the NPU, \
             or --device cpu to keep --compute-type {name}"
        )),
        (Auto, ComputeType::F32 | ComputeType::Bf16, Ok(())) => Ok(DevicePlan::Cpu {
            why: Some(format!(
                "--device auto: the NPU runs the encoder projections in int8 only; keeping --compute-type {name} on the CPU \
                 (pass --compute-type int8 to use the NPU)"
            )),
            warn: true,
        }),
        (Auto, _, Err(r)) => Ok(DevicePlan::Cpu { why: Some(format!("--device auto: using the CPU: {r}")), warn: false }),
        (Npu, ComputeType::Int8, Err(r)) => Err(format!("--device npu: {r}")),
        (Auto | Npu, ComputeType::Int8, Ok(())) => Ok(DevicePlan::Npu),
    }
}

/// The backend for `--device` and `compute` ([`plan_device`]): the NPU (int8 encoder
/// projections on the NPU, the rest on `Cpu::new(compute)`) when chosen and usable, else the CPU.
fn backend(compute: ComputeType) -> anyhow::Result<Box<dyn Compute>> {
    let cpu = Cpu::new(compute.weight_type());
    let choice = DEVICE.get().copied().unwrap_or(npu::DeviceChoice::Auto);
    if choice == npu::DeviceChoice::Cpu {
        return Ok(Box::new(cpu));
    }
    let root = npu::default_xclbin_root();
    let usable = match npu::probe(&root) {
        a @ npu::Availability::Available { .. } => {
            tracing::info!("npu: {a}");
            Ok(())
        }
        npu::Availability::Unavailable(r) => Err(r.to_string()),
    };
    match plan_device(choice, compute, usable).map_err(anyhow::Error::msg)? {
        DevicePlan::Cpu { why, warn } => {
            match (why, warn) {
                (Some(why), true) => tracing::warn!("{why}"),
                (Some(why), false) => tracing::info!("{why}"),
                (None, _) => {}
            }
            Ok(Box::new(cpu))
        }
        DevicePlan::Npu => {
            let backend = npu::NpuCompute::open(cpu, &root);
            if let Some(why) = backend.why_not() {
                if choice == npu::DeviceChoice::Npu {
                    anyhow::bail!("--device npu: {why}");
                }
                tracing::info!("--device auto: using the CPU: {why}");
            } else {
                tracing::info!("using the NPU for the encoder projections (int8); the rest on cpu-{compute:?}");
            }
            Ok(Box::new(backend))
        }
    }
}

/// Loads `spec` (a store name or a model directory) with the chosen compute type.
pub fn load_model(spec: &str, compute: ComputeType) -> anyhow::Result<Whisper> {
    let dir = crate::store::resolve_model(spec)?;
    let backend = backend(compute)?;
    Whisper::load(&dir, backend).with_context(|| format!("loading model {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use npu::DeviceChoice::{Auto, Cpu as CpuChoice, Npu};

    const NO_NPU: fn() -> Result<(), String> = || Err("no NPU device: test".into());

    #[test]
    fn auto_keeps_a_float_compute_type_on_the_cpu_even_with_an_npu() {
        for (compute, name) in [(ComputeType::F32, "f32"), (ComputeType::Bf16, "bf16")] {
            let DevicePlan::Cpu { why: Some(why), warn } = plan_device(Auto, compute, Ok(())).unwrap() else {
                panic!("--device auto --compute-type {compute:?} with an NPU must stay on the CPU")
            };
            assert!(warn, "the user is told why the usable NPU is not used");
            assert!(why.contains("int8 only") && why.contains("--compute-type int8"), "{why}");
            assert!(why.contains(&format!("keeping --compute-type {name} on the CPU")), "{why}");
            // Without an NPU: the CPU, nothing to warn about.
            assert!(matches!(plan_device(Auto, compute, NO_NPU()).unwrap(), DevicePlan::Cpu { warn: false, .. }));
        }
    }

    #[test]
    fn npu_with_a_float_compute_type_is_an_error_naming_int8() {
        for (compute, name) in [(ComputeType::F32, "f32"), (ComputeType::Bf16, "bf16")] {
            for usable in [Ok(()), NO_NPU()] {
                let e = plan_device(Npu, compute, usable).unwrap_err();
                assert!(e.contains("int8 only") && e.contains("--compute-type int8") && e.contains(name), "{e}");
            }
        }
    }

    #[test]
    fn int8_uses_the_npu_when_usable_and_cpu_is_always_the_cpu() {
        assert_eq!(plan_device(Auto, ComputeType::Int8, Ok(())), Ok(DevicePlan::Npu));
        assert_eq!(plan_device(Npu, ComputeType::Int8, Ok(())), Ok(DevicePlan::Npu));
        assert!(matches!(plan_device(Auto, ComputeType::Int8, NO_NPU()), Ok(DevicePlan::Cpu { warn: false, why: Some(_) })));
        assert!(plan_device(Npu, ComputeType::Int8, NO_NPU()).unwrap_err().contains("no NPU device"));
        for compute in [ComputeType::F32, ComputeType::Int8, ComputeType::Bf16] {
            assert_eq!(plan_device(CpuChoice, compute, Ok(())), Ok(DevicePlan::Cpu { why: None, warn: false }));
        }
    }
}
