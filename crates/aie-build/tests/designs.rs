//! The IRON design scripts cannot run here (no MLIR-AIE), but they must at least be valid
//! Python, and every catalog target must name a design and a kernel source that exist.

use std::path::Path;
use std::process::Command;

fn kernels_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels")
}

#[test]
fn every_target_has_its_sources() {
    for t in aie_build::catalog::all() {
        for rel in [t.source(), t.design()] {
            assert!(kernels_dir().join(&rel).is_file(), "{}: missing kernels/{rel}", t.name);
        }
    }
    assert!(kernels_dir().join("designs/common.py").is_file());
    assert!(kernels_dir().join("include/am_kernel.h").is_file());
}

#[test]
fn design_scripts_are_valid_python() {
    let Ok(out) = Command::new("python3").arg("--version").output() else {
        eprintln!("\n!!!!!!!! python3 not found: the design scripts were NOT syntax-checked !!!!!!!!\n");
        return;
    };
    assert!(out.status.success());
    let mut scripts = vec![kernels_dir().join("designs/common.py")];
    scripts.extend(aie_build::catalog::all().iter().map(|t| kernels_dir().join(t.design())));
    scripts.sort();
    scripts.dedup();
    for s in scripts {
        // Compile without writing __pycache__ into the source tree.
        let code = format!("import ast,sys; ast.parse(open({:?}).read(), {:?})", s.display().to_string(), s.display().to_string());
        let out = Command::new("python3").args(["-c", &code]).output().unwrap();
        assert!(out.status.success(), "{}: {}", s.display(), String::from_utf8_lossy(&out.stderr));
    }
}
