//! Can the NPU be used, and if not, exactly why: [`probe`] walks the chain XRT build → XRT
//! version → device → device generation → xclbins → manifests and stops at the first break.

use aie_build::catalog::{self, Target, TargetKind, M_PADDED, WHISPER_KN};
use aie_build::manifest::Manifest;
use aie_build::NpuDevice;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the xclbin root (default: the workspace's `xclbin/`).
pub const XCLBIN_DIR_ENV: &str = "AMANUENSIS_XCLBIN_DIR";

/// The xclbin root: `$AMANUENSIS_XCLBIN_DIR`, else `./xclbin` when it exists, else the
/// workspace's `xclbin/` this crate was built in.
pub fn default_xclbin_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(XCLBIN_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("xclbin");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xclbin")
}

/// The targets the NPU backend runs: the int8 encoder GEMMs (raw i32 output, dequantized on
/// the host exactly as kernels::linear_i8).
pub fn required_targets() -> Vec<Target> {
    WHISPER_KN.iter().map(|&(k, n)| Target::new(TargetKind::GemmU8I8I32 { m: M_PADDED, k, n })).collect()
}

/// Why the NPU cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The XRT shim was built without XRT.
    XrtNotFoundAtBuild { note: String },
    /// Built against an XRT older than 2.17 (no hw_context): cannot drive an NPU.
    XrtTooOld { version: (u32, u32, u32), note: String },
    /// XRT has no device 0 (or cannot enumerate).
    NoDevice { detail: String },
    /// A device exists but is not an NPU generation the kernels are built for.
    UnknownDevice { name: String },
    /// No xclbin (or instruction stream, or manifest) for this device.
    NoXclbin { device: NpuDevice, dir: PathBuf, missing: Vec<String> },
    /// An xclbin exists but its manifest does not match this build.
    ManifestMismatch { target: String, reason: String },
    /// Opening the xclbins, contexts or buffers failed.
    Setup { detail: String },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::XrtNotFoundAtBuild { note } => write!(
                f,
                "XRT not found at build time ({note}): install XRT >= 2.17 and the amdxdna driver, then rebuild (docs/NPU.md)"
            ),
            Reason::XrtTooOld { version: (a, b, c), note } => {
                write!(f, "XRT {a}.{b}.{c} is too old for the NPU (needs >= 2.17 with hw_context; {note}): install a newer XRT and rebuild")
            }
            Reason::NoDevice { detail } => write!(f, "no NPU device: {detail}"),
            Reason::UnknownDevice { name } => write!(f, "XRT device `{name}` is not an NPU generation the kernels are built for (npu1 = XDNA1, npu4/5/6 = XDNA2)"),
            Reason::NoXclbin { device, dir, missing } => write!(
                f,
                "no xclbin for {device} in {}: missing {}; build them with `cargo xtask build-kernels --device {device}` or set {XCLBIN_DIR_ENV}",
                dir.display(),
                missing.join(", ")
            ),
            Reason::ManifestMismatch { target, reason } => write!(f, "xclbin {target} cannot be used: {reason}"),
            Reason::Setup { detail } => write!(f, "NPU setup failed: {detail}"),
        }
    }
}

/// The outcome of [`probe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    Available { device: NpuDevice, xrt_name: String, xclbin_dir: PathBuf },
    Unavailable(Reason),
}

impl Availability {
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available { .. })
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Availability::Available { device, xrt_name, xclbin_dir } => {
                write!(f, "NPU available: {xrt_name} ({device}), xclbins in {}", xclbin_dir.join(device.name()).display())
            }
            Availability::Unavailable(r) => write!(f, "NPU not used: {r}"),
        }
    }
}

/// Checks the xclbins of `targets` for `device` under `root`: every file present and every
/// manifest matching. Used by [`probe`] once a device is known, and by tests directly.
pub fn check_xclbins(root: &Path, device: NpuDevice, targets: &[Target]) -> Result<(), Reason> {
    let dev_dir = root.join(device.name());
    let mut missing = Vec::new();
    for t in targets {
        let dir = dev_dir.join(&t.name);
        for f in [aie_build::manifest::XCLBIN_NAME, aie_build::manifest::INSTS_NAME, aie_build::manifest::FILE_NAME] {
            if !dir.join(f).is_file() {
                missing.push(format!("{}/{f}", t.name));
            }
        }
    }
    if !missing.is_empty() {
        return Err(Reason::NoXclbin { device, dir: dev_dir, missing });
    }
    for t in targets {
        let dir = dev_dir.join(&t.name);
        let m = Manifest::read(&dir).map_err(|reason| Reason::ManifestMismatch { target: t.name.clone(), reason })?;
        m.verify(&dir, t, device).map_err(|reason| Reason::ManifestMismatch { target: t.name.clone(), reason })?;
    }
    Ok(())
}

/// Whether the NPU path can be used with the xclbins under `root`, or exactly why not.
pub fn probe(root: &Path) -> Availability {
    match probe_inner(root) {
        Ok((device, xrt_name)) => Availability::Available { device, xrt_name, xclbin_dir: root.to_path_buf() },
        Err(r) => Availability::Unavailable(r),
    }
}

fn probe_inner(root: &Path) -> Result<(NpuDevice, String), Reason> {
    let info = xrt::build_info();
    match (info.backend, info.xrt_version) {
        ("stub", _) | (_, None) => return Err(Reason::XrtNotFoundAtBuild { note: info.note.to_string() }),
        ("legacy", Some(v)) => return Err(Reason::XrtTooOld { version: v, note: info.note.to_string() }),
        _ => {}
    }
    let dev = xrt::Device::open(0).map_err(|e| Reason::NoDevice { detail: e.to_string() })?;
    let name = dev.name().map_err(|e| Reason::NoDevice { detail: e.to_string() })?;
    let device = NpuDevice::from_xrt_name(&name).ok_or(Reason::UnknownDevice { name: name.clone() })?;
    check_xclbins(root, device, &required_targets())?;
    Ok((device, name))
}

/// All catalog targets with their status for `device` (for the doctor report).
pub fn xclbin_status(root: &Path, device: NpuDevice) -> Vec<(String, Result<(), String>)> {
    catalog::all()
        .into_iter()
        .map(|t| {
            let r = check_xclbins(root, device, std::slice::from_ref(&t)).map_err(|e| e.to_string());
            (t.name, r)
        })
        .collect()
}
