//! `cargo xtask <command>`: project automation that needs no shell scripts.
//!
//! * `bindgen [--check]`: regenerate (or verify) crates/xrt-sys/src/bindings.rs from the
//!   shim header; needs libclang at run time (Debian: `libclang-dev`).
//! * `build-kernels [--device npu|npu2] [--kernel NAME] [--dry-run]`: compile the AIE kernels
//!   and designs into `xclbin/<device>/<kernel>/`; needs Peano and MLIR-AIE (docs/NPU.md).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{}", xtask::USAGE);
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "bindgen" => xtask::bindgen::run(rest),
        "build-kernels" => xtask::build_kernels::run(rest),
        "-h" | "--help" | "help" => {
            println!("{}", xtask::USAGE);
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{}", xtask::USAGE)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
