//! The command lines of a kernel build, as data: the kernel object (Peano clang++), the MLIR
//! of the design (python3 design.py), and the xclbin plus instruction stream (aiecc.py, flags
//! from mlir-aie's matrix-multiplication makefile-common).

use crate::catalog::Target;
use crate::device::NpuDevice;
use crate::toolchain::Toolchain;
use std::fmt;
use std::path::{Path, PathBuf};

/// One command: program, arguments, working directory and where stdout goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Redirect stdout to this file (the design scripts print MLIR).
    pub stdout: Option<PathBuf>,
}

impl fmt::Display for Cmd {
    /// Shell-like rendering for logs and `--dry-run`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(cd {} && {}", self.cwd.display(), self.program.display())?;
        for a in &self.args {
            if a.contains([' ', '"', '\'', '(', ')', ';', '$']) {
                write!(f, " '{}'", a.replace('\'', "'\\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        if let Some(out) = &self.stdout {
            write!(f, " > {}", out.display())?;
        }
        write!(f, ")")
    }
}

/// Flags passed to aiecc.py (recorded in the manifest).
pub fn aiecc_flags(tc: &Toolchain) -> Vec<String> {
    vec![
        "--alloc-scheme=basic-sequential".into(),
        "--aie-generate-xclbin".into(),
        "--no-compile-host".into(),
        "--xclbin-name=final.xclbin".into(),
        "--no-xchesscc".into(),
        "--no-xbridge".into(),
        "--peano".into(),
        tc.peano_dir.to_string_lossy().into_owned(),
        "--aie-generate-npu-insts".into(),
        "--npu-insts-name=insts.bin".into(),
    ]
}

/// Compiles the target's kernel source for the device's AIE architecture.
pub fn compile_kernel(tc: &Toolchain, device: NpuDevice, target: &Target, kernels_dir: &Path, build_dir: &Path) -> Cmd {
    let (m, k, n) = target.tile();
    let mut args = vec![
        "-O2".to_string(),
        "-std=c++20".into(),
        format!("--target={}", device.target_triple()),
        format!("-I{}", tc.aie_include.display()),
        format!("-I{}", kernels_dir.join("include").display()),
        "-DNDEBUG".into(),
        format!("-DDIM_M={m}"),
        format!("-DDIM_K={k}"),
        format!("-DDIM_N={n}"),
    ];
    if device == NpuDevice::Npu2 {
        args.push("-DAM_AIE2P".into());
    }
    args.extend(["-c".into(), kernels_dir.join(target.source()).to_string_lossy().into_owned(), "-o".into(), target.object_name()]);
    Cmd { program: tc.clangxx(), args, cwd: build_dir.to_path_buf(), stdout: None }
}

/// Runs the IRON design script to print the MLIR of the whole-array design.
pub fn generate_mlir(tc: &Toolchain, device: NpuDevice, target: &Target, kernels_dir: &Path, build_dir: &Path) -> Cmd {
    let mut args = vec![kernels_dir.join(target.design()).to_string_lossy().into_owned(), "--dev".into(), device.name().into()];
    args.extend(target.design_args());
    Cmd { program: PathBuf::from(&tc.python), args, cwd: build_dir.to_path_buf(), stdout: Some(build_dir.join("aie.mlir")) }
}

/// Compiles the MLIR into final.xclbin and insts.bin in the build directory.
pub fn aiecc(tc: &Toolchain, build_dir: &Path) -> Cmd {
    let mut args = aiecc_flags(tc);
    args.push("aie.mlir".into());
    Cmd { program: tc.aiecc.clone(), args, cwd: build_dir.to_path_buf(), stdout: None }
}

/// The three steps of one target, in order.
pub fn plan(tc: &Toolchain, device: NpuDevice, target: &Target, kernels_dir: &Path, build_dir: &Path) -> Vec<Cmd> {
    vec![
        compile_kernel(tc, device, target, kernels_dir, build_dir),
        generate_mlir(tc, device, target, kernels_dir, build_dir),
        aiecc(tc, build_dir),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{find, TargetKind};

    fn tc() -> Toolchain {
        crate::toolchain::discover(&crate::toolchain::fake::complete()).unwrap()
    }

    #[test]
    fn kernel_objects_are_compiled_for_the_right_architecture() {
        let t = find("gemm_u8i8_i32_1536x512x2048").unwrap();
        let c = compile_kernel(&tc(), NpuDevice::Npu, &t, Path::new("/w/kernels"), Path::new("/w/b"));
        assert_eq!(c.program, PathBuf::from("/opt/aie/llvm-aie/bin/clang++"));
        assert!(c.args.contains(&"--target=aie2-none-unknown-elf".to_string()));
        assert!(c.args.contains(&"-I/opt/aie/mlir_aie/include".to_string()));
        assert!(c.args.contains(&"-DDIM_K=64".to_string()));
        let bf = find("gemm_bf16_f32_1536x512x512").unwrap();
        let cb = compile_kernel(&tc(), NpuDevice::Npu, &bf, Path::new("/w/kernels"), Path::new("/w/b"));
        assert!(cb.args.contains(&"-DDIM_K=32".to_string()), "bf16 uses the 64x32x64 tile");
        assert!(!c.args.contains(&"-DAM_AIE2P".to_string()));
        assert_eq!(&c.args[c.args.len() - 4..], ["-c", "/w/kernels/gemm_i8/gemm_i8.cc", "-o", "gemm_i8.o"]);
        let c2 = compile_kernel(&tc(), NpuDevice::Npu2, &t, Path::new("/w/kernels"), Path::new("/w/b"));
        assert!(c2.args.contains(&"--target=aie2p-none-unknown-elf".to_string()) && c2.args.contains(&"-DAM_AIE2P".to_string()));
    }

    #[test]
    fn design_and_aiecc_commands() {
        let t = Target::new(TargetKind::SoftmaxLutI8 { rows: 1536, cols: 1500 });
        let g = generate_mlir(&tc(), NpuDevice::Npu2, &t, Path::new("/w/kernels"), Path::new("/w/b"));
        assert_eq!(g.program, PathBuf::from("python3"));
        assert_eq!(g.args, ["/w/kernels/softmax_lut_i8/design.py", "--dev", "npu2", "--rows", "1536", "--cols", "1500"]);
        assert_eq!(g.stdout, Some(PathBuf::from("/w/b/aie.mlir")));
        let a = aiecc(&tc(), Path::new("/w/b"));
        let s = a.to_string();
        assert!(s.starts_with("(cd /w/b && /opt/aie/bin/aiecc.py --alloc-scheme=basic-sequential"), "{s}");
        assert!(s.contains("--no-xchesscc --no-xbridge --peano /opt/aie/llvm-aie") && s.ends_with("--npu-insts-name=insts.bin aie.mlir)"), "{s}");
        assert_eq!(plan(&tc(), NpuDevice::Npu, &t, Path::new("/k"), Path::new("/b")).len(), 3);
    }

    #[test]
    fn display_quotes_arguments_with_shell_characters() {
        let c = Cmd { program: "p".into(), args: vec!["a b".into(), "it's".into()], cwd: "/d".into(), stdout: None };
        assert_eq!(c.to_string(), "(cd /d && p 'a b' 'it'\\''s')");
    }
}
