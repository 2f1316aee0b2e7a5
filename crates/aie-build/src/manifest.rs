//! `manifest.json`, written next to each built xclbin: what was built (target, device,
//! shapes, dtypes, buffers in argument order), with which tools, from which sources, and the
//! sha256 of the outputs. The NPU backend refuses an xclbin whose manifest does not match the
//! target it wants or whose files do not hash to the recorded values.

use crate::catalog::{BufferSpec, Target, TargetKind};
use crate::device::NpuDevice;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Bumped when the layout of buffers or the kernel contract changes.
pub const FORMAT: u32 = 1;
pub const FILE_NAME: &str = "manifest.json";
pub const XCLBIN_NAME: &str = "final.xclbin";
pub const INSTS_NAME: &str = "insts.bin";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tools {
    pub peano: String,
    pub mlir_aie: String,
    pub python: String,
    pub aiecc_flags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub target: String,
    pub device: NpuDevice,
    pub kind: TargetKind,
    /// Core sub-tile (m, k, n).
    pub tile: [usize; 3],
    /// `aie::mmul` shape of the GEMM kernels on this device (r, s, t).
    pub mmul: [usize; 3],
    /// XRT kernel name in the xclbin.
    pub xrt_kernel: String,
    pub buffers: Vec<BufferSpec>,
    pub tools: Tools,
    /// sha256 of every source that went into the build (path relative to the workspace).
    pub sources: BTreeMap<String, String>,
    /// sha256 of final.xclbin and insts.bin.
    pub outputs: BTreeMap<String, String>,
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

impl Manifest {
    /// The manifest of `target` built for `device`, before hashes are filled in.
    pub fn new(target: &Target, device: NpuDevice, tools: Tools) -> Manifest {
        let mmul = match target.kind {
            TargetKind::GemmBf16F32 { .. } => device.mmul_bf16(),
            _ => device.mmul_i8(),
        };
        let tile = target.tile();
        Manifest {
            format: FORMAT,
            target: target.name.clone(),
            device,
            kind: target.kind,
            tile: [tile.0, tile.1, tile.2],
            mmul: [mmul.0, mmul.1, mmul.2],
            xrt_kernel: "MLIR_AIE".into(),
            buffers: target.buffers(),
            tools,
            sources: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let p = dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: not a valid manifest: {e}", p.display()))
    }

    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let p = dir.join(FILE_NAME);
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))
    }

    /// Records the hashes of the outputs in `dir`.
    pub fn hash_outputs(&mut self, dir: &Path) -> Result<(), String> {
        for name in [XCLBIN_NAME, INSTS_NAME] {
            self.outputs.insert(name.into(), sha256_file(&dir.join(name))?);
        }
        Ok(())
    }

    /// Checks that this manifest describes `target` on `device` in the current format and that
    /// the files in `dir` are the ones it recorded. The error says what differs.
    pub fn verify(&self, dir: &Path, target: &Target, device: NpuDevice) -> Result<(), String> {
        let here = dir.join(FILE_NAME);
        let here = here.display();
        if self.format != FORMAT {
            return Err(format!("{here}: format {} but this build reads format {FORMAT}: rebuild with `cargo xtask build-kernels`", self.format));
        }
        if self.device != device {
            return Err(format!("{here}: built for {} but the NPU is {device}", self.device));
        }
        if self.target != target.name || self.kind != target.kind {
            return Err(format!("{here}: describes {} but {} was expected", self.target, target.name));
        }
        if self.buffers != target.buffers() {
            return Err(format!("{here}: buffers differ from this build's catalog: rebuild the kernels"));
        }
        for name in [XCLBIN_NAME, INSTS_NAME] {
            let want = self.outputs.get(name).ok_or_else(|| format!("{here}: no sha256 for {name}"))?;
            let got = sha256_file(&dir.join(name))?;
            if &got != want {
                return Err(format!("{here}: {name} has sha256 {got} but the manifest records {want}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find;

    fn tools() -> Tools {
        Tools { peano: "clang 19".into(), mlir_aie: "1.0".into(), python: "python3".into(), aiecc_flags: vec!["--x".into()] }
    }

    #[test]
    fn manifest_round_trips_and_verifies_outputs() {
        let dir = std::env::temp_dir().join(format!("aie-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(XCLBIN_NAME), b"xclbin bytes").unwrap();
        std::fs::write(dir.join(INSTS_NAME), [1u8, 0, 0, 0]).unwrap();
        let t = find("gemm_bf16_f32_1536x512x512").unwrap();
        let mut m = Manifest::new(&t, NpuDevice::Npu, tools());
        assert_eq!(m.mmul, [4, 8, 4]);
        assert_eq!(m.tile, [64, 32, 64]);
        m.hash_outputs(&dir).unwrap();
        assert_eq!(m.outputs[XCLBIN_NAME], sha256_file(&dir.join(XCLBIN_NAME)).unwrap());
        m.write(&dir).unwrap();
        let back = Manifest::read(&dir).unwrap();
        assert_eq!(back, m);
        back.verify(&dir, &t, NpuDevice::Npu).unwrap();

        // JSON field names are part of the contract with the NPU backend.
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(FILE_NAME)).unwrap()).unwrap();
        assert_eq!(json["device"], "npu");
        assert_eq!(json["kind"]["op"], "gemm_bf16_f32");
        assert_eq!(json["kind"]["k"], 512);
        assert_eq!(json["buffers"][2]["dtype"], "f32");

        // Every mismatch is reported with its cause.
        assert!(back.verify(&dir, &t, NpuDevice::Npu2).unwrap_err().contains("built for npu but the NPU is npu2"));
        let other = find("gemm_bf16_f32_1536x512x2048").unwrap();
        assert!(back.verify(&dir, &other, NpuDevice::Npu).unwrap_err().contains("was expected"));
        std::fs::write(dir.join(INSTS_NAME), [2u8, 0, 0, 0]).unwrap();
        assert!(back.verify(&dir, &t, NpuDevice::Npu).unwrap_err().contains("insts.bin has sha256"));
        let mut old = back.clone();
        old.format = 0;
        assert!(old.verify(&dir, &t, NpuDevice::Npu).unwrap_err().contains("rebuild"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_corrupt_manifest_is_an_error() {
        let dir = std::env::temp_dir().join(format!("aie-manifest-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE_NAME), "{\"format\": 1}").unwrap();
        assert!(Manifest::read(&dir).unwrap_err().contains("not a valid manifest"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
