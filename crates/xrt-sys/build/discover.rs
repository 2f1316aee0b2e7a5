//! Finding an XRT installation: `XILINX_XRT` (authoritative when set), then /opt/xilinx/xrt,
//! then Debian's layout (headers in /usr/include/xrt, libraries in the multiarch dir).

use crate::env;
use crate::version::{self, XrtVersion};
use std::path::{Path, PathBuf};

/// A usable XRT: where its headers and `libxrt_coreutil` are, and its version.
#[derive(Debug)]
pub struct Xrt {
    /// The directory that contains `xrt/xrt_device.h` (the include root).
    pub include: PathBuf,
    /// Directory holding libxrt_coreutil (None: the linker's default path finds it).
    pub lib: Option<PathBuf>,
    pub version: XrtVersion,
    /// The header that declares xrt::runlist, when the installation has one.
    pub has_runlist: bool,
}

/// The outcome of the search: an XRT, or the reason there is none (for the stub's message
/// and the build warning).
pub enum Found {
    Xrt(Xrt),
    None(String),
}

pub fn find() -> Found {
    if env::flag("AMANUENSIS_NO_XRT") {
        return Found::None("AMANUENSIS_NO_XRT is set: building the stub".into());
    }
    if let Some(root) = env::var_os("XILINX_XRT") {
        let root = PathBuf::from(root);
        // An explicit XILINX_XRT is authoritative: a wrong one must not silently pick up
        // another installation.
        // AMD's packages: <root>/include/xrt/...; a Debian-style root (XILINX_XRT=/usr-like):
        // <root>/include/xrt/xrt/....
        let lib = Some(root.join("lib"));
        return match probe(&root.join("include"), lib.clone()).or_else(|e| probe(&root.join("include/xrt"), lib).map_err(|_| e)) {
            Ok(x) => Found::Xrt(x),
            Err(why) => Found::None(format!("XILINX_XRT={}: {why}", root.display())),
        };
    }
    let mut reasons = Vec::new();
    let opt = Path::new("/opt/xilinx/xrt");
    match probe(&opt.join("include"), Some(opt.join("lib"))) {
        Ok(x) => return Found::Xrt(x),
        Err(why) => reasons.push(format!("/opt/xilinx/xrt: {why}")),
    }
    // Debian/Ubuntu `libxrt-dev`: include root /usr/include/xrt, library on the default path.
    match probe(Path::new("/usr/include/xrt"), None) {
        Ok(x) => return Found::Xrt(x),
        Err(why) => reasons.push(format!("/usr/include/xrt: {why}")),
    }
    Found::None(reasons.join("; "))
}

fn probe(include: &Path, lib: Option<PathBuf>) -> Result<Xrt, String> {
    let device_h = include.join("xrt/xrt_device.h");
    watch(&device_h);
    if !device_h.is_file() {
        return Err(format!("no {}", device_h.display()));
    }
    let version = version::read(include)?;
    if let Some(dir) = &lib {
        if !dir.join("libxrt_coreutil.so").exists() && !dir.join("libxrt_coreutil.so.2").exists() {
            return Err(format!("headers found but no libxrt_coreutil.so in {}", dir.display()));
        }
    }
    // The shim's use of xrt::uuid needs libuuid at link time.
    let uuid_dirs = [lib.clone(), Some("/usr/lib/x86_64-linux-gnu".into()), Some("/usr/lib/aarch64-linux-gnu".into()), Some("/usr/lib64".into()), Some("/usr/lib".into())];
    if !uuid_dirs.iter().flatten().any(|d| d.join("libuuid.so").exists()) {
        return Err("headers found but libuuid.so is missing (Debian/Ubuntu: apt-get install uuid-dev)".into());
    }
    let runlist_h = include.join("xrt/experimental/xrt_kernel.h");
    let has_runlist = std::fs::read_to_string(&runlist_h).map(|s| s.contains("class runlist")).unwrap_or(false);
    Ok(Xrt { include: include.to_path_buf(), lib, version, has_runlist })
}

/// Rebuild when `path` changes, if it exists: cargo takes a missing watched path as changed on
/// every build, which rebuilt this crate and everything above it each time on machines without
/// that XRT. (After installing an XRT at a new place, set `XRT_ROOT` or `cargo clean -p xrt-sys`.)
pub fn watch(path: &std::path::Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
