//! The web page in real headless Chromium: upload a speech file, watch segments arrive, download
//! txt/srt/vtt, record from a (fake) microphone, see a refused upload's message. Drives the page
//! with Playwright (tools/browser-test/page_test.mjs) against the real server binary.
//!
//! Needs Debian's `chromium` and Node with npm: installs them when it can (apt-get as root,
//! `npm ci`), and otherwise SKIPS WITH A LOUD MESSAGE — or fails, if AMANUENSIS_REQUIRE_BROWSER=1.

mod server_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use server_support::{concatenated, testdata, wav_bytes, Server};

fn tool_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/browser-test"
    ))
}

/// Says loudly that the test did not run, or fails when a browser run is required.
fn skip(why: &str) {
    let msg = format!("browser test NOT RUN: {why}");
    if std::env::var("AMANUENSIS_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("{msg} (AMANUENSIS_REQUIRE_BROWSER=1)");
    }
    let bar = "!".repeat(msg.len() + 8);
    eprintln!("\n{bar}\n!!! {msg} !!!\n{bar}\n");
}

fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn find_chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The system's chromium, installed with apt-get if missing and we are root.
fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = find_chromium() {
        return Ok(p);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root {
        return Err("chromium is not installed and we are not root to apt-get install it".into());
    }
    eprintln!("browser test: installing chromium with apt-get (once)");
    let ok = runs("apt-get", &["update", "-qq"])
        && Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    match find_chromium() {
        Some(p) if ok => Ok(p),
        _ => Err("apt-get install chromium failed".into()),
    }
}

/// playwright-core in tools/browser-test/node_modules, installed with `npm ci` if missing.
fn playwright() -> Result<(), String> {
    if !runs("node", &["--version"]) {
        return Err("node is not installed".into());
    }
    let dir = tool_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Ok(());
    }
    eprintln!("browser test: npm ci in {}", dir.display());
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok
        && dir
            .join("node_modules/playwright-core/package.json")
            .is_file()
    {
        Ok(())
    } else {
        Err("`npm ci` of playwright-core failed (no npm, or no registry)".into())
    }
}

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("")
}

#[test]
fn web_page_transcribes_uploads_and_recordings_in_chromium() {
    let chromium = match chromium() {
        Ok(p) => p,
        Err(e) => return skip(&e),
    };
    if let Err(e) = playwright() {
        return skip(&e);
    }
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let long = tmp.path().join("two_windows.wav");
    std::fs::write(&long, concatenated(&["s11", "s08"])).unwrap();
    // The fake microphone plays a sentence, then silence (Chromium loops the file).
    let mut mic =
        whisper::audio::load_audio(&testdata().join("audio/human/librivox_0870.wav")).unwrap();
    mic.resize(mic.len() + 16000 * 4, 0.0);
    let mic_wav = tmp.path().join("mic.wav");
    std::fs::write(&mic_wav, wav_bytes(&mic)).unwrap();
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let short = testdata().join("audio/human/librivox_0880.wav");
    let p = |p: &Path| p.to_string_lossy().into_owned();
    let cfg = serde_json::json!({
        "chromium": p(&chromium), "base": server.base, "long_wav": p(&long), "short_wav": p(&short),
        "mic_wav": p(&mic_wav), "mic_seconds": 8.5, "download_dir": p(&downloads),
    });
    let out = Command::new("node")
        .arg(tool_dir().join("page_test.mjs"))
        .arg(cfg.to_string())
        .current_dir(tool_dir())
        .stderr(Stdio::inherit())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| {
            panic!(
                "no report from page_test.mjs ({e}); status {:?}, stdout:\n{stdout}",
                out.status
            )
        });
    let pretty = serde_json::to_string_pretty(&report).unwrap();
    assert!(
        report.get("failure").is_none(),
        "the page script failed:\n{pretty}"
    );
    assert!(s(&report["header"]).contains("tiny.en"), "{pretty}");

    // The short clip: the exact greedy transcript, shown and downloadable in three formats.
    let short = &report["runs"]["short"];
    let want = "He was not an old-sposed young man.";
    assert_eq!(s(&short["status_state"]), "done", "{pretty}");
    assert_eq!(s(&short["transcript"]), want, "{pretty}");
    assert_eq!(short["segments"].as_array().unwrap().len(), 1, "{pretty}");
    assert!(s(&short["segments"][0]).contains(want));
    assert_eq!(s(&short["txt"]), format!("{want}\n"));
    assert_eq!(
        s(&short["srt"]),
        format!("1\n00:00:00,000 --> 00:00:03,000\n{want}\n\n")
    );
    assert_eq!(
        s(&short["vtt"]),
        format!("WEBVTT\n\n00:00:00.000 --> 00:00:03.000\n{want}\n\n")
    );

    // Two windows: several segments, the first shown well before the end.
    let long = &report["runs"]["long"];
    assert_eq!(s(&long["status_state"]), "done", "{pretty}");
    let text = s(&long["transcript"]);
    assert!(
        text.contains("Scientists believe") && text.contains("the train finally arrived"),
        "{pretty}"
    );
    assert_eq!(text, s(&long["done_text"]));
    let events = long["events"].as_array().unwrap();
    assert!(events.len() >= 3, "{pretty}");
    assert_eq!(s(&events[0]["type"]), "transcript.text.delta");
    assert_eq!(s(&events[events.len() - 1]["type"]), "transcript.text.done");
    let (first, last) = (
        events[0]["at"].as_f64().unwrap(),
        events[events.len() - 1]["at"].as_f64().unwrap(),
    );
    assert!(
        first + 50.0 < last,
        "segments did not arrive live: first at {first} ms, done at {last} ms"
    );
    assert_eq!(long["segments"].as_array().unwrap().len(), events.len() - 1);

    // The microphone recording (MediaRecorder -> WAV in the page) was transcribed.
    let mic = &report["runs"]["mic"];
    assert_eq!(s(&mic["status_state"]), "done", "{pretty}");
    let heard = s(&mic["transcript"]).to_lowercase();
    assert!(
        heard.contains("dashwood") && heard.contains("leisure"),
        "the recording was not understood:\n{pretty}"
    );

    // A refused upload shows the server's message.
    let bad = &report["runs"]["bad"];
    assert_eq!(s(&bad["status_state"]), "error", "{pretty}");
    assert!(
        s(&bad["status"]).contains("could not be decoded"),
        "{pretty}"
    );
}
