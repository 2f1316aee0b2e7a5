//! Every kernel build target: which source and IRON design, which problem shape, and the
//! buffers of one run (in kernel-argument order). The NPU backend reads the same catalog to
//! know which xclbin serves which GEMM, and the manifest records it.
//!
//! Whisper's encoder GEMMs at d_model 512 (base): M = 1500 frames padded to 1536 (a multiple
//! of 4 rows x 64), (K, N) in {(512, 512) q/k/v/out, (512, 2048) fc1, (2048, 512) fc2}; one
//! GEMM is one XRT run.

use crate::device::NpuDevice;
use serde::{Deserialize, Serialize};

/// Sub-tile computed by one core per kernel call (m, k, n) for the int8 kernels.
pub const TILE: (usize, usize, usize) = (64, 64, 64);
/// The bf16 GEMM's sub-tile: k halved so that double-buffered A, B (bf16) and C (f32) fit a
/// compute tile's 64 KB data memory (64x64x64 would need exactly 64 KB, leaving no stack).
pub const TILE_BF16: (usize, usize, usize) = (64, 32, 64);
/// Encoder rows (1500 frames) padded to a multiple of 4 rows x 64.
pub const M_PADDED: usize = 1536;
/// (K, N) of the encoder GEMMs the catalog builds.
pub const WHISPER_KN: [(usize, usize); 3] = [(512, 512), (512, 2048), (2048, 512)];
/// Attention rows per softmax run (one head's 1500 x 1500 scores, rows padded).
pub const SOFTMAX_COLS: usize = 1500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TargetKind {
    /// u8 x i8 -> raw i32 accumulators (the host applies the zero-point correction and the
    /// dequantization of kernels::linear_i8, so results equal the CPU int8 path bit for bit).
    GemmU8I8I32 { m: usize, k: usize, n: usize },
    /// u8 x i8 -> i32 -> fused per-channel requantization -> i8.
    GemmU8I8RqI8 { m: usize, k: usize, n: usize },
    /// bf16 x bf16 -> f32.
    GemmBf16F32 { m: usize, k: usize, n: usize },
    /// int8 LUT softmax (row max subtracted), Q15 i16 output.
    SoftmaxLutI8 { rows: usize, cols: usize },
    /// int8 -> int8 GELU through a 256-entry table.
    GeluLutI8 { n: usize },
}

/// Element type of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    U8,
    I8,
    I16,
    I32,
    U32,
    Bf16,
    F32,
}

impl Dtype {
    pub fn bytes(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::I16 | Dtype::Bf16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
        }
    }
}

/// One data buffer of a run: kernel argument `3 + index` in the MLIR-AIE calling convention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferSpec {
    pub name: String,
    pub dtype: Dtype,
    pub elements: usize,
    /// "in" or "out".
    pub direction: String,
}

/// A build target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
}

impl Target {
    pub fn new(kind: TargetKind) -> Target {
        let name = match kind {
            TargetKind::GemmU8I8I32 { m, k, n } => format!("gemm_u8i8_i32_{m}x{k}x{n}"),
            TargetKind::GemmU8I8RqI8 { m, k, n } => format!("gemm_u8i8_rq_i8_{m}x{k}x{n}"),
            TargetKind::GemmBf16F32 { m, k, n } => format!("gemm_bf16_f32_{m}x{k}x{n}"),
            TargetKind::SoftmaxLutI8 { rows, cols } => format!("softmax_lut_i8_{rows}x{cols}"),
            TargetKind::GeluLutI8 { n } => format!("gelu_lut_i8_{n}"),
        };
        Target { name, kind }
    }

    /// Kernel source directory under kernels/ (holds the .cc and design.py).
    pub fn source_dir(&self) -> &'static str {
        match self.kind {
            TargetKind::GemmU8I8I32 { .. } | TargetKind::GemmU8I8RqI8 { .. } => "gemm_i8",
            TargetKind::GemmBf16F32 { .. } => "gemm_bf16",
            TargetKind::SoftmaxLutI8 { .. } => "softmax_lut_i8",
            TargetKind::GeluLutI8 { .. } => "gelu_lut_i8",
        }
    }

    /// The kernel source file, relative to kernels/.
    pub fn source(&self) -> String {
        format!("{0}/{0}.cc", self.source_dir())
    }

    /// The IRON design script, relative to kernels/.
    pub fn design(&self) -> String {
        format!("{}/design.py", self.source_dir())
    }

    /// Object file name the design links (the designs name it in their `Kernel(...)`).
    pub fn object_name(&self) -> String {
        format!("{}.o", self.source_dir())
    }

    /// The per-core sub-tile (m, k, n) of this target's kernel.
    pub fn tile(&self) -> (usize, usize, usize) {
        match self.kind {
            TargetKind::GemmBf16F32 { .. } => TILE_BF16,
            _ => TILE,
        }
    }

    /// Arguments of the design script after `--dev <device>`.
    pub fn design_args(&self) -> Vec<String> {
        let (tm, tk, tn) = self.tile();
        let gemm = |m: usize, k: usize, n: usize, out: &str| {
            ["-M", &m.to_string(), "-K", &k.to_string(), "-N", &n.to_string()]
                .into_iter()
                .chain(["-m", &tm.to_string(), "-k", &tk.to_string(), "-n", &tn.to_string(), "--out", out])
                .map(String::from)
                .collect::<Vec<_>>()
        };
        match self.kind {
            TargetKind::GemmU8I8I32 { m, k, n } => gemm(m, k, n, "i32"),
            TargetKind::GemmU8I8RqI8 { m, k, n } => gemm(m, k, n, "i8"),
            TargetKind::GemmBf16F32 { m, k, n } => gemm(m, k, n, "f32"),
            TargetKind::SoftmaxLutI8 { rows, cols } => vec!["--rows".into(), rows.to_string(), "--cols".into(), cols.to_string()],
            TargetKind::GeluLutI8 { n } => vec!["-n".into(), n.to_string()],
        }
    }

    /// Data buffers of one run, in argument order (inputs, then outputs).
    pub fn buffers(&self) -> Vec<BufferSpec> {
        let b = |name: &str, dtype, elements, direction: &str| BufferSpec {
            name: name.into(),
            dtype,
            elements,
            direction: direction.into(),
        };
        match self.kind {
            TargetKind::GemmU8I8I32 { m, k, n } => {
                vec![b("a", Dtype::U8, m * k, "in"), b("b", Dtype::I8, k * n, "in"), b("c", Dtype::I32, m * n, "out")]
            }
            // B carries each n-tile's requantization parameters after every weight tile
            // (layout::pack_gemm_weights_rq).
            TargetKind::GemmU8I8RqI8 { m, k, n } => vec![
                b("a", Dtype::U8, m * k, "in"),
                b("b", Dtype::I8, (n / TILE.2) * (k / TILE.1) * crate::layout::rq_slot_len(TILE.1, TILE.2), "in"),
                b("c", Dtype::I8, m * n, "out"),
            ],
            TargetKind::GemmBf16F32 { m, k, n } => {
                vec![b("a", Dtype::Bf16, m * k, "in"), b("b", Dtype::Bf16, k * n, "in"), b("c", Dtype::F32, m * n, "out")]
            }
            TargetKind::SoftmaxLutI8 { rows, cols } => {
                vec![b("x", Dtype::I8, rows * cols, "in"), b("lut", Dtype::U32, 256, "in"), b("p", Dtype::I16, rows * cols, "out")]
            }
            TargetKind::GeluLutI8 { n } => vec![b("x", Dtype::I8, n, "in"), b("lut", Dtype::I8, 256, "in"), b("y", Dtype::I8, n, "out")],
        }
    }

    /// Checks that the shape fits the whole-array design on `device`.
    pub fn validate(&self, device: NpuDevice) -> Result<(), String> {
        let (tm, tk, tn) = self.tile();
        let check_gemm = |m: usize, k: usize, n: usize| {
            let rows = device.rows();
            let cols = device.columns();
            if m % (tm * rows) != 0 {
                return Err(format!("{}: M={m} is not a multiple of {} (m x {rows} rows)", self.name, tm * rows));
            }
            if k % tk != 0 {
                return Err(format!("{}: K={k} is not a multiple of k={tk}", self.name));
            }
            if n % (tn * cols) != 0 {
                return Err(format!("{}: N={n} is not a multiple of {} (n x {cols} columns on {device})", self.name, tn * cols));
            }
            Ok(())
        };
        match self.kind {
            TargetKind::GemmU8I8I32 { m, k, n } | TargetKind::GemmU8I8RqI8 { m, k, n } | TargetKind::GemmBf16F32 { m, k, n } => {
                check_gemm(m, k, n)
            }
            TargetKind::SoftmaxLutI8 { rows, cols } => {
                let cores = device.rows() * device.columns();
                if rows % cores != 0 || cols % 4 != 0 {
                    return Err(format!("{}: rows must divide among {cores} cores and cols be a multiple of 4", self.name));
                }
                Ok(())
            }
            TargetKind::GeluLutI8 { n } => {
                let chunk = 4096 * device.rows() * device.columns();
                if n % chunk != 0 {
                    return Err(format!("{}: n={n} is not a multiple of {chunk}", self.name));
                }
                Ok(())
            }
        }
    }
}

/// Every target of the catalog (the same list for both devices).
pub fn all() -> Vec<Target> {
    let mut v = Vec::new();
    for (k, n) in WHISPER_KN {
        v.push(Target::new(TargetKind::GemmU8I8I32 { m: M_PADDED, k, n }));
        v.push(Target::new(TargetKind::GemmU8I8RqI8 { m: M_PADDED, k, n }));
        v.push(Target::new(TargetKind::GemmBf16F32 { m: M_PADDED, k, n }));
    }
    v.push(Target::new(TargetKind::SoftmaxLutI8 { rows: M_PADDED, cols: SOFTMAX_COLS }));
    v.push(Target::new(TargetKind::GeluLutI8 { n: M_PADDED * 2048 }));
    v
}

/// Looks a target up by name, or lists the names.
pub fn find(name: &str) -> Result<Target, String> {
    let all = all();
    all.iter().find(|t| t.name == name).cloned().ok_or_else(|| {
        let names: Vec<_> = all.iter().map(|t| t.name.as_str()).collect();
        format!("unknown kernel `{name}`; known: {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_fits_both_devices_and_names_are_unique() {
        let all = all();
        for t in &all {
            for d in NpuDevice::ALL {
                t.validate(d).unwrap();
            }
        }
        let mut names: Vec<_> = all.iter().map(|t| &t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(find("gemm_u8i8_i32_1536x512x2048").is_ok());
        assert!(find("nope").unwrap_err().contains("gemm_bf16_f32_1536x2048x512"));
    }

    #[test]
    fn bad_shapes_are_rejected_with_the_reason() {
        let t = Target::new(TargetKind::GemmU8I8I32 { m: 1500, k: 512, n: 512 });
        assert!(t.validate(NpuDevice::Npu).unwrap_err().contains("M=1500"));
        let t = Target::new(TargetKind::GemmBf16F32 { m: 1536, k: 512, n: 768 });
        assert!(t.validate(NpuDevice::Npu2).unwrap_err().contains("N=768"));
        assert!(t.validate(NpuDevice::Npu).is_ok(), "768 = 3 x 256 fits 4 columns");
    }

    #[test]
    fn buffers_follow_the_calling_convention() {
        let t = Target::new(TargetKind::GemmU8I8RqI8 { m: 1536, k: 512, n: 2048 });
        let b = t.buffers();
        assert_eq!(b.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(b[0].elements, 1536 * 512);
        // 32 x 8 slots of a 64x64 tile plus a (3 * 64 + 16)-value parameter block.
        assert_eq!(b[1].elements, 32 * 8 * (4096 + 4 * 208));
        assert_eq!(b[2].dtype, Dtype::I8);
        assert_eq!(b.iter().filter(|b| b.direction == "out").count(), 1);
        assert_eq!(t.design_args()[..6], ["-M", "1536", "-K", "512", "-N", "2048"]);
        let bf = Target::new(TargetKind::GemmBf16F32 { m: 1536, k: 512, n: 512 });
        assert_eq!(bf.tile(), TILE_BF16);
        assert_eq!(bf.design_args()[6..10], ["-m", "64", "-k", "32"]);
    }
}
