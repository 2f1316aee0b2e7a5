//! Finding the AIE toolchain: Peano (llvm-aie: the `clang++` that targets AIE2/AIE2P) and
//! MLIR-AIE (the `aie` Python package with IRON, `aiecc.py`, and the `aie_api` headers).
//!
//! Every lookup goes through [`Probe`], so tests can describe a machine instead of needing
//! one. When something is missing, [`Missing`] lists every missing piece with how to get it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What discovery may ask of the machine.
pub trait Probe {
    fn env(&self, name: &str) -> Option<String>;
    fn is_file(&self, path: &Path) -> bool;
    /// Runs `program args` and returns its stdout when it exits successfully.
    fn output(&self, program: &str, args: &[&str]) -> Option<String>;
    /// Finds `name` on PATH.
    fn which(&self, name: &str) -> Option<PathBuf>;
}

/// The real machine.
pub struct SystemProbe;

impl Probe for SystemProbe {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
    fn output(&self, program: &str, args: &[&str]) -> Option<String> {
        let out = Command::new(program).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
    fn which(&self, name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
    }
}

/// A complete toolchain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    /// `$PEANO_INSTALL_DIR` (has bin/clang++).
    pub peano_dir: PathBuf,
    /// First line of `clang++ --version`.
    pub peano_version: String,
    /// The Python that imports MLIR-AIE.
    pub python: String,
    /// `mlir_aie` package version.
    pub mlir_aie_version: String,
    /// `aiecc.py` driver.
    pub aiecc: PathBuf,
    /// Directory containing `aie_api/aie.hpp`.
    pub aie_include: PathBuf,
}

impl Toolchain {
    pub fn clangxx(&self) -> PathBuf {
        self.peano_dir.join("bin/clang++")
    }
}

/// One missing piece and how to install it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingItem {
    pub what: &'static str,
    pub detail: String,
    pub how: &'static str,
}

/// Everything that is missing (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing(pub Vec<MissingItem>);

const HOW_PEANO: &str = "install the llvm-aie (Peano) wheel from the Xilinx/llvm-aie GitHub releases \
    (`pip install llvm-aie -f <release page>`) and set PEANO_INSTALL_DIR to its llvm-aie directory \
    (`$(pip show llvm-aie | sed -n 's/^Location: //p')/llvm-aie`)";
const HOW_MLIR_AIE: &str = "install the mlir_aie wheel from the Xilinx/mlir-aie GitHub releases \
    (`pip install mlir_aie -f <release page>`, plus `pip install ml_dtypes numpy`) in the Python on PATH; \
    note that PyPI's unrelated `aie` package does not provide aie.iron";
const HOW_AIECC: &str = "aiecc.py comes with the mlir_aie wheel: put the wheel's bin directory on PATH \
    (or set AIECC to its path)";
const HOW_INCLUDE: &str = "set MLIR_AIE_INCLUDE_DIR to the mlir_aie install's include directory (the one \
    holding aie_api/aie.hpp)";

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the AIE kernel toolchain is incomplete ({} missing):", self.0.len())?;
        for m in &self.0 {
            writeln!(f, "  - {}: {}\n    how: {}", m.what, m.detail, m.how)?;
        }
        write!(f, "see docs/NPU.md (\"Building the kernels\")")
    }
}

impl std::error::Error for Missing {}

/// Looks for Peano and MLIR-AIE. Environment: `PEANO_INSTALL_DIR`, `AIE_PYTHON` (default
/// `python3`), `AIECC`, `MLIR_AIE_INCLUDE_DIR`.
pub fn discover(probe: &dyn Probe) -> Result<Toolchain, Missing> {
    let mut missing = Vec::new();
    let python = probe.env("AIE_PYTHON").unwrap_or_else(|| "python3".to_string());

    // Peano.
    let peano_dir = probe.env("PEANO_INSTALL_DIR").map(PathBuf::from).or_else(|| {
        let show = probe.output(&python, &["-m", "pip", "show", "llvm-aie"])?;
        let loc = show.lines().find_map(|l| l.strip_prefix("Location: "))?;
        Some(Path::new(loc.trim()).join("llvm-aie"))
    });
    let mut peano = None;
    match peano_dir {
        None => missing.push(MissingItem { what: "Peano (llvm-aie)", detail: "PEANO_INSTALL_DIR is not set and pip has no llvm-aie".into(), how: HOW_PEANO }),
        Some(dir) => {
            let clang = dir.join("bin/clang++");
            if !probe.is_file(&clang) {
                missing.push(MissingItem { what: "Peano (llvm-aie)", detail: format!("no {}", clang.display()), how: HOW_PEANO });
            } else {
                let version = probe
                    .output(&clang.to_string_lossy(), &["--version"])
                    .and_then(|v| v.lines().next().map(str::to_string))
                    .unwrap_or_else(|| "unknown".into());
                peano = Some((dir, version));
            }
        }
    }

    // MLIR-AIE Python package (IRON) and its version.
    let iron = probe.output(&python, &["-c", "import aie.iron, aie.compiler.aiecc; print('ok')"]);
    let mut mlir_aie_version = None;
    let mut aie_include = probe.env("MLIR_AIE_INCLUDE_DIR").map(PathBuf::from);
    if iron.as_deref() != Some("ok") {
        missing.push(MissingItem {
            what: "MLIR-AIE Python package",
            detail: format!("`{python} -c \"import aie.iron\"` failed"),
            how: HOW_MLIR_AIE,
        });
    } else {
        mlir_aie_version = Some(
            probe
                .output(&python, &["-c", "import importlib.metadata as m; print(m.version('mlir_aie'))"])
                .unwrap_or_else(|| "unknown".into()),
        );
        if aie_include.is_none() {
            // The wheel keeps include/ a few levels above the python package.
            if let Some(pkg) = probe.output(&python, &["-c", "import aie, os; print(os.path.dirname(aie.__file__))"]) {
                let mut dir = PathBuf::from(pkg);
                for _ in 0..4 {
                    if !dir.pop() {
                        break;
                    }
                    if probe.is_file(&dir.join("include/aie_api/aie.hpp")) {
                        aie_include = Some(dir.join("include"));
                        break;
                    }
                }
            }
        }
    }
    match &aie_include {
        Some(inc) if probe.is_file(&inc.join("aie_api/aie.hpp")) => {}
        Some(inc) => missing.push(MissingItem { what: "aie_api headers", detail: format!("no {}", inc.join("aie_api/aie.hpp").display()), how: HOW_INCLUDE }),
        None if iron.as_deref() == Some("ok") => {
            missing.push(MissingItem { what: "aie_api headers", detail: "not found next to the aie package".into(), how: HOW_INCLUDE })
        }
        None => {}
    }

    let aiecc = probe.env("AIECC").map(PathBuf::from).or_else(|| probe.which("aiecc.py"));
    match &aiecc {
        Some(p) if probe.is_file(p) => {}
        Some(p) => missing.push(MissingItem { what: "aiecc.py", detail: format!("AIECC={} is not a file", p.display()), how: HOW_AIECC }),
        None => missing.push(MissingItem { what: "aiecc.py", detail: "not on PATH".into(), how: HOW_AIECC }),
    }

    if !missing.is_empty() {
        return Err(Missing(missing));
    }
    let (peano_dir, peano_version) = peano.expect("checked above");
    Ok(Toolchain {
        peano_dir,
        peano_version,
        python,
        mlir_aie_version: mlir_aie_version.expect("checked above"),
        aiecc: aiecc.expect("checked above"),
        aie_include: aie_include.expect("checked above"),
    })
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// A described machine.
    #[derive(Default)]
    pub struct FakeProbe {
        pub env: HashMap<String, String>,
        pub files: HashSet<PathBuf>,
        pub outputs: HashMap<String, String>,
        pub path: HashMap<String, PathBuf>,
    }

    impl Probe for FakeProbe {
        fn env(&self, name: &str) -> Option<String> {
            self.env.get(name).cloned()
        }
        fn is_file(&self, path: &Path) -> bool {
            self.files.contains(path)
        }
        fn output(&self, program: &str, args: &[&str]) -> Option<String> {
            self.outputs.get(&format!("{program} {}", args.join(" "))).cloned()
        }
        fn which(&self, name: &str) -> Option<PathBuf> {
            self.path.get(name).cloned()
        }
    }

    /// A machine with everything installed under /opt/aie.
    pub fn complete() -> FakeProbe {
        let mut p = FakeProbe::default();
        p.env.insert("PEANO_INSTALL_DIR".into(), "/opt/aie/llvm-aie".into());
        p.files.insert("/opt/aie/llvm-aie/bin/clang++".into());
        p.outputs.insert("/opt/aie/llvm-aie/bin/clang++ --version".into(), "clang version 19.0.0 (llvm-aie)\nTarget: x".into());
        p.outputs.insert("python3 -c import aie.iron, aie.compiler.aiecc; print('ok')".into(), "ok".into());
        p.outputs.insert("python3 -c import importlib.metadata as m; print(m.version('mlir_aie'))".into(), "1.0.0".into());
        p.outputs.insert("python3 -c import aie, os; print(os.path.dirname(aie.__file__))".into(), "/opt/aie/mlir_aie/python/aie".into());
        p.files.insert("/opt/aie/mlir_aie/include/aie_api/aie.hpp".into());
        p.path.insert("aiecc.py".into(), "/opt/aie/bin/aiecc.py".into());
        p.files.insert("/opt/aie/bin/aiecc.py".into());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    #[test]
    fn a_complete_machine_yields_a_toolchain() {
        let tc = discover(&complete()).unwrap();
        assert_eq!(tc.clangxx(), PathBuf::from("/opt/aie/llvm-aie/bin/clang++"));
        assert_eq!(tc.aie_include, PathBuf::from("/opt/aie/mlir_aie/include"));
        assert_eq!(tc.mlir_aie_version, "1.0.0");
        assert_eq!(tc.peano_version, "clang version 19.0.0 (llvm-aie)");
    }

    #[test]
    fn an_empty_machine_names_every_missing_piece_and_how_to_get_it() {
        let err = discover(&FakeProbe::default()).unwrap_err();
        let whats: Vec<_> = err.0.iter().map(|m| m.what).collect();
        assert_eq!(whats, ["Peano (llvm-aie)", "MLIR-AIE Python package", "aiecc.py"]);
        let text = err.to_string();
        assert!(text.contains("PEANO_INSTALL_DIR") && text.contains("mlir_aie") && text.contains("docs/NPU.md"), "{text}");
    }

    #[test]
    fn peano_is_found_through_pip_and_a_bad_dir_is_reported() {
        let mut p = complete();
        p.env.remove("PEANO_INSTALL_DIR");
        p.outputs.insert("python3 -m pip show llvm-aie".into(), "Name: llvm-aie\nLocation: /site".into());
        p.files.insert("/site/llvm-aie/bin/clang++".into());
        p.outputs.insert("/site/llvm-aie/bin/clang++ --version".into(), "clang 19".into());
        assert_eq!(discover(&p).unwrap().peano_dir, PathBuf::from("/site/llvm-aie"));
        p.env.insert("PEANO_INSTALL_DIR".into(), "/wrong".into());
        let err = discover(&p).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert!(err.0[0].detail.contains("/wrong/bin/clang++"));
    }

    #[test]
    fn the_unrelated_pypi_aie_package_is_not_mistaken_for_mlir_aie() {
        let mut p = complete();
        // `import aie` works but `import aie.iron` does not.
        p.outputs.remove("python3 -c import aie.iron, aie.compiler.aiecc; print('ok')");
        let err = discover(&p).unwrap_err();
        assert_eq!(err.0[0].what, "MLIR-AIE Python package");
        assert!(err.to_string().contains("unrelated `aie`"));
    }
}
