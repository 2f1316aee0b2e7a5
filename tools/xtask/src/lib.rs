//! The library behind `cargo xtask`, split out so that its commands can be tested.

pub mod bindgen;
pub mod build_kernels;

use std::path::PathBuf;

pub const USAGE: &str = "usage: cargo xtask <command>

commands:
  bindgen [--check]         regenerate crates/xrt-sys/src/bindings.rs (needs libclang);
                            --check fails if the committed file is stale
  build-kernels [--device npu|npu2] [--kernel NAME] [--dry-run]
                            build AIE kernels and designs into xclbin/<device>/<kernel>/
                            (needs Peano and MLIR-AIE: see docs/NPU.md); --dry-run prints
                            the commands without running them";

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("xtask: workspace root")
}
