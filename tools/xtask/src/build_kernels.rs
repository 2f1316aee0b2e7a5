//! `cargo xtask build-kernels`: placeholder replaced below.
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("build-kernels: not wired yet".into())
}
