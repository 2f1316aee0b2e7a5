//! The MLIR-AIE2 kernel build tool library behind `cargo xtask build-kernels`, and the shared
//! facts the NPU backend needs about what it builds:
//!
//! * [`device`]: the two NPU generations (`npu` = XDNA1/AIE2, `npu2` = XDNA2/AIE2P);
//! * [`catalog`]: every build target (kernel source, IRON design, shapes, dtypes, buffers);
//! * [`toolchain`]: finding Peano and MLIR-AIE, or saying exactly what is missing;
//! * [`commands`]: the compiler, design and `aiecc.py` command lines, as data;
//! * [`manifest`]: `manifest.json` written next to each xclbin and checked before use;
//! * [`layout`]: the blocked tile layouts of the kernels and the host-side packing;
//! * [`quant`]: tables and parameter blocks the kernels take (GELU table, requantization).
//!
//! Nothing here needs the AIE toolchain to compile or test: the toolchain is only run by
//! [`build`] when present.

// `%` rather than `is_multiple_of`: a style choice, kept (the toolchain has both).
#![allow(clippy::manual_is_multiple_of)]

pub mod build;
pub mod catalog;
pub mod commands;
pub mod device;
pub mod layout;
pub mod manifest;
pub mod quant;
pub mod toolchain;

pub use catalog::{Target, TargetKind};
pub use device::NpuDevice;
pub use manifest::Manifest;
pub use toolchain::{Missing, Toolchain};

/// Where the kernel sources live, relative to the workspace root.
pub const KERNELS_DIR: &str = "kernels";
/// Where built artifacts go, relative to the workspace root: `xclbin/<device>/<target>/`.
pub const XCLBIN_DIR: &str = "xclbin";
