//! Test support shared by the crates' test suites: where to find a real model.
//!
//! Not part of the public API; it is public only so integration tests of every crate can use it.

use std::path::PathBuf;

use crate::config::MODEL_FILES;

/// Models a test may require without RUN_SLOW_TESTS; others are skipped when absent.
const ALWAYS_REQUIRED: &[&str] = &["tiny.en"];

fn is_model_dir(dir: &std::path::Path) -> bool {
    MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Places a model named `name` is looked for, in order: `$AMANUENSIS_TEST_MODELS/<name>`,
/// `$AMANUENSIS_MODELS/<name>`, `~/.cache/amanuensis/models/<name>` (the default store).
pub fn model_candidates(name: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in ["AMANUENSIS_TEST_MODELS", "AMANUENSIS_MODELS"] {
        if let Some(root) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            dirs.push(PathBuf::from(root).join(name));
        }
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        dirs.push(
            PathBuf::from(home)
                .join(".cache/amanuensis/models")
                .join(name),
        );
    }
    dirs
}

/// Whether slow tests (large models, network) were asked for with `RUN_SLOW_TESTS=1`.
pub fn slow_tests_enabled() -> bool {
    std::env::var("RUN_SLOW_TESTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The directory of an installed model for a test.
///
/// Returns `None` (after saying so on stderr) when the model is absent and the test may be
/// skipped: any model but `tiny.en` while RUN_SLOW_TESTS is unset. Otherwise a missing model
/// fails the test, since silently skipping would hide that nothing was tested.
pub fn model_dir(name: &str) -> Option<PathBuf> {
    let candidates = model_candidates(name);
    if let Some(dir) = candidates.iter().find(|d| is_model_dir(d)) {
        return Some(dir.clone());
    }
    if !ALWAYS_REQUIRED.contains(&name) && !slow_tests_enabled() {
        eprintln!("skipping: model `{name}` is not installed and RUN_SLOW_TESTS is unset");
        return None;
    }
    let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    panic!(
        "model `{name}` is needed by this test but is not installed (looked in: {}); \
         run `cargo run -p amanuensis -- models pull {name}` or set AMANUENSIS_TEST_MODELS to a directory holding {name}/",
        looked.join(", ")
    );
}

/// Places Silero VAD is looked for, in order: `$AMANUENSIS_VAD_DIR`,
/// `$AMANUENSIS_MODELS/silero-vad`, `~/.cache/amanuensis/models/silero-vad`.
pub fn vad_dir_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("AMANUENSIS_VAD_DIR").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("AMANUENSIS_MODELS").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(d).join("silero-vad"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(h).join(".cache/amanuensis/models/silero-vad"));
    }
    dirs
}

/// The installed Silero VAD for a test: (model, ONNX Runtime library), or `None` (after saying
/// so on stderr) when absent and the test may be skipped. Under CI (`CI` set) a missing VAD
/// fails the test, since `.ci/run` installs it.
pub fn vad_files() -> Option<(PathBuf, PathBuf)> {
    const MODEL_FILE: &str = "silero_vad_v6.onnx";
    const RUNTIME_FILE: &str = "libonnxruntime.so";
    let dirs = vad_dir_candidates();
    if let Some(d) = dirs.iter().find(|d| d.join(MODEL_FILE).is_file() && d.join(RUNTIME_FILE).is_file()) {
        return Some((d.join(MODEL_FILE), d.join(RUNTIME_FILE)));
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let msg = format!(
        "Silero VAD is not installed (looked in {}); run `cargo run -p amanuensis -- models pull silero-vad` \
         or set AMANUENSIS_VAD_DIR to a directory holding {MODEL_FILE} and {RUNTIME_FILE}",
        looked.join(", ")
    );
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{msg} (CI is set, so this test may not be skipped)");
    }
    eprintln!("skipping: {msg}");
    None
}
