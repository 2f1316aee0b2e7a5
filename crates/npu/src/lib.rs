//! The NPU backend of the Whisper engine (AMD Ryzen AI: XDNA1 `npu`, XDNA2 `npu2`).
//!
//! * [`probe`] / [`Availability`]: whether the NPU can be used and, if not, exactly why (XRT
//!   not found at build time, XRT too old, no device, no xclbin for this device, manifest
//!   mismatch);
//! * [`NpuCompute`]: `whisper::compute::Compute` with the encoder's int8 GEMMs on the NPU
//!   (one XRT run per GEMM and 1536-row window, the runs of a call chained in one
//!   `xrt::runlist` where XRT has it, everything opened once and cached) and everything else,
//!   and any failure, on a CPU fallback;
//! * [`plan`]: which runs of a call are submitted together and which buffers they use, as
//!   pure functions tested without hardware;
//! * [`doctor_report`]: the text of `amanuensis doctor`.
//!
//! Dependency direction: `app → npu → {whisper (Compute), kernels, aie-build (catalog,
//! manifests, layouts), xrt → xrt-sys}`; `whisper` never names an XRT type.

mod backend;
mod doctor;
pub mod exec;
pub mod plan;
pub mod probe;

pub use backend::{weight_key, NpuCompute, NpuStats, MIN_NPU_ROWS};
pub use doctor::{doctor_report, doctor_report_at};
pub use probe::{default_xclbin_root, probe, required_targets, Availability, Reason};

/// `--device` choice of the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The NPU when a device and matching xclbins exist, else the CPU (logging why).
    Auto,
    Cpu,
    /// The NPU or an error saying why not.
    Npu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "npu" => Ok(DeviceChoice::Npu),
            other => Err(format!("unknown device `{other}`: expected auto, cpu or npu")),
        }
    }
}

/// Decides the backend for a `--device` choice: Ok(true) means the NPU, Ok(false) the CPU;
/// `--device npu` without a usable NPU is an error carrying the reason.
pub fn resolve_device(choice: DeviceChoice, availability: &Availability) -> Result<bool, String> {
    match (choice, availability) {
        (DeviceChoice::Cpu, _) => Ok(false),
        (DeviceChoice::Auto, a @ Availability::Available { .. }) => {
            tracing::info!("--device auto: {a}");
            Ok(true)
        }
        (DeviceChoice::Npu, Availability::Available { .. }) => Ok(true),
        (DeviceChoice::Auto, Availability::Unavailable(r)) => {
            tracing::info!("--device auto: using the CPU: {r}");
            Ok(false)
        }
        (DeviceChoice::Npu, Availability::Unavailable(r)) => Err(format!("--device npu: {r}")),
    }
}
