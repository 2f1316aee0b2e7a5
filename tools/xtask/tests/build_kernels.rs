//! `cargo xtask build-kernels` without the AIE toolchain must fail and name what is missing.

use std::process::Command;

#[test]
fn without_the_toolchain_build_kernels_names_what_is_missing() {
    if std::env::var_os("PEANO_INSTALL_DIR").is_some() {
        eprintln!("PEANO_INSTALL_DIR is set: this machine may have the toolchain; not checking the failure path");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["build-kernels", "--device", "npu", "--kernel", "gemm_u8i8_i32_1536x512x512"])
        .env_remove("PEANO_INSTALL_DIR")
        .env("AIE_PYTHON", "/nonexistent/python3")
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail without the toolchain:\n{err}");
    for needle in ["Peano (llvm-aie)", "PEANO_INSTALL_DIR", "MLIR-AIE Python package", "mlir_aie", "aiecc.py", "docs/NPU.md"] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
}

#[test]
fn unknown_commands_are_reported() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("frobnicate").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command `frobnicate`"));
}
