//! Building one target end to end: run the three commands in `xclbin/<device>/<target>/build`,
//! copy `final.xclbin` and `insts.bin` up one level, and write the manifest. The command
//! runner is a parameter so that the orchestration is tested without the toolchain.

use crate::catalog::Target;
use crate::commands::{self, Cmd};
use crate::device::NpuDevice;
use crate::manifest::{sha256_file, Manifest, Tools, INSTS_NAME, XCLBIN_NAME};
use crate::toolchain::Toolchain;
use std::path::{Path, PathBuf};

/// Output directory of a target: `<root>/xclbin/<device>/<target>`.
pub fn output_dir(root: &Path, device: NpuDevice, target: &Target) -> PathBuf {
    root.join(crate::XCLBIN_DIR).join(device.name()).join(&target.name)
}

/// Runs a command for real.
pub fn run_command(cmd: &Cmd) -> Result<(), String> {
    let mut c = std::process::Command::new(&cmd.program);
    c.args(&cmd.args).current_dir(&cmd.cwd);
    if let Some(out) = &cmd.stdout {
        let f = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
        c.stdout(f);
    }
    let status = c.status().map_err(|e| format!("cannot start {}: {e}", cmd.program.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("command failed ({status}): {cmd}"))
    }
}

/// Builds `target` for `device`; returns the written manifest.
pub fn build_target(
    tc: &Toolchain,
    device: NpuDevice,
    target: &Target,
    root: &Path,
    run: &mut dyn FnMut(&Cmd) -> Result<(), String>,
) -> Result<Manifest, String> {
    target.validate(device)?;
    let kernels_dir = root.join(crate::KERNELS_DIR);
    let out = output_dir(root, device, target);
    let build = out.join("build");
    std::fs::create_dir_all(&build).map_err(|e| format!("{}: {e}", build.display()))?;
    for cmd in commands::plan(tc, device, target, &kernels_dir, &build) {
        run(&cmd)?;
    }
    for name in [XCLBIN_NAME, INSTS_NAME] {
        let from = build.join(name);
        std::fs::copy(&from, out.join(name)).map_err(|e| format!("aiecc.py did not produce {}: {e}", from.display()))?;
    }
    let tools = Tools {
        peano: tc.peano_version.clone(),
        mlir_aie: tc.mlir_aie_version.clone(),
        python: tc.python.clone(),
        aiecc_flags: commands::aiecc_flags(tc),
    };
    let mut manifest = Manifest::new(target, device, tools);
    for rel in [target.source(), target.design(), "include/am_kernel.h".to_string(), "designs/common.py".to_string()] {
        let path = kernels_dir.join(&rel);
        manifest.sources.insert(format!("{}/{rel}", crate::KERNELS_DIR), sha256_file(&path)?);
    }
    manifest.hash_outputs(&out)?;
    manifest.write(&out)?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find;

    #[test]
    fn orchestration_runs_three_steps_and_writes_a_verifiable_manifest() {
        let tc = crate::toolchain::discover(&crate::toolchain::fake::complete()).unwrap();
        let root = std::env::temp_dir().join(format!("aie-build-orch-{}", std::process::id()));
        // A workspace with the real kernel sources.
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels");
        let t = find("gemm_u8i8_i32_1536x2048x512").unwrap();
        for rel in [t.source(), t.design(), "include/am_kernel.h".into(), "designs/common.py".into()] {
            let dst = root.join("kernels").join(&rel);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(real.join(&rel), &dst).unwrap();
        }
        let mut seen = Vec::new();
        let mut fake_run = |c: &Cmd| {
            seen.push(c.program.file_name().unwrap().to_string_lossy().into_owned());
            if c.program.ends_with("aiecc.py") {
                std::fs::write(c.cwd.join(XCLBIN_NAME), b"fake xclbin").unwrap();
                std::fs::write(c.cwd.join(INSTS_NAME), [0u8; 8]).unwrap();
            }
            Ok(())
        };
        let m = build_target(&tc, NpuDevice::Npu2, &t, &root, &mut fake_run).unwrap();
        assert_eq!(seen, ["clang++", "python3", "aiecc.py"]);
        let out = output_dir(&root, NpuDevice::Npu2, &t);
        assert!(out.ends_with("xclbin/npu2/gemm_u8i8_i32_1536x2048x512"));
        assert_eq!(m.mmul, [8, 8, 8]);
        assert_eq!(m.sources.len(), 4);
        Manifest::read(&out).unwrap().verify(&out, &t, NpuDevice::Npu2).unwrap();

        // A failing step stops the build with its command line.
        let mut failing = |c: &Cmd| if c.program.ends_with("python3") { Err(format!("command failed: {c}")) } else { Ok(()) };
        let err = build_target(&tc, NpuDevice::Npu, &t, &root, &mut failing).unwrap_err();
        assert!(err.contains("design.py --dev npu"), "{err}");
        std::fs::remove_dir_all(&root).ok();
    }
}
