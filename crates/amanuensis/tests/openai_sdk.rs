//! The server against the official `openai` Python SDK (the version pinned in
//! tools/sdk_check/requirements.txt): tools/sdk_check/check.py sends every field of OpenAI's
//! transcription API through the SDK — words, segments and both, logprobs (also streamed),
//! chunking_strategy, usage, the language's name, model aliases, /v1/models — and checks the
//! 400s of what the server refuses (diarization fields, several languages, misspelt fields).
//!
//! The SDK lives in a venv that .ci/run creates (~/.cache/amanuensis-sdk-venv; another Python
//! with `$AMANUENSIS_SDK_PYTHON`). Without it the test SKIPS WITH A LOUD MESSAGE, or fails when
//! AMANUENSIS_REQUIRE_SDK=1 (as .ci/run sets).

mod server_support;

use std::path::PathBuf;
use std::process::Command;

use server_support::{testdata, Server};

fn skip(why: &str) {
    let msg = format!("OpenAI SDK test NOT RUN: {why}");
    if std::env::var("AMANUENSIS_REQUIRE_SDK").is_ok_and(|v| v == "1") {
        panic!("{msg} (AMANUENSIS_REQUIRE_SDK=1)");
    }
    let bar = "!".repeat(msg.len() + 8);
    eprintln!("\n{bar}\n!!! {msg} !!!\n{bar}\n");
}

/// The venv's Python, if it has the SDK.
fn python() -> Result<PathBuf, String> {
    let py = match std::env::var_os("AMANUENSIS_SDK_PYTHON").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".cache/amanuensis-sdk-venv/bin/python"),
    };
    if !py.is_file() {
        return Err(format!("{} does not exist; run .ci/run (it creates the venv) or set AMANUENSIS_SDK_PYTHON", py.display()));
    }
    let ok = Command::new(&py).args(["-c", "import openai"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        return Err(format!("{} cannot import openai; pip install -r tools/sdk_check/requirements.txt", py.display()));
    }
    Ok(py)
}

#[test]
fn the_official_openai_sdk_gets_what_it_asks_for() {
    let py = match python() {
        Ok(p) => p,
        Err(why) => return skip(&why),
    };
    let s = Server::start(&["--model-alias", "gpt-4o-transcribe", "--beam-size", "1"]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/sdk_check/check.py");
    let mut cmd = Command::new(&py);
    cmd.arg(&script).arg(&s.base).arg(testdata());
    if server_support::vad_installed() {
        cmd.arg("--vad");
    }
    let out = cmd.env("PYTHONWARNINGS", "default").output().expect("run the SDK check");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "the SDK check failed:\n{stdout}\n{stderr}");
    let pinned = std::fs::read_to_string(script.with_file_name("requirements.txt")).unwrap();
    let version = pinned.lines().find_map(|l| l.strip_prefix("openai==")).expect("openai pinned").trim().to_string();
    assert!(stdout.contains(&format!("openai {version},")), "the SDK is not the pinned {version}: {stdout}");
    assert!(stdout.contains("checks passed"));
}
