//! The web page in real headless Chromium: upload a speech file (file input and drag and drop),
//! watch the upload progress and the segments arrive, download txt/srt/vtt/json, click a word
//! or a segment to seek the player, record from a (fake) microphone, see a refused upload's
//! message, fit a phone's width; and, separately, the live microphone transcript over the
//! realtime WebSocket. Drives the page with Playwright (tools/browser-test/page_test.mjs)
//! against the real server binary.
//!
//! Needs Debian's `chromium` and Node with npm: installs them when it can (apt-get as root,
//! `npm ci`), and otherwise SKIPS WITH A LOUD MESSAGE — or fails, if AMANUENSIS_REQUIRE_BROWSER=1.

mod server_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use server_support::{concatenated, testdata, wav_bytes, Form, Server};

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

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// What the page script saw of one suite, with the server it ran against; `None` if the
/// browser test cannot run here (said loudly).
struct PageRun {
    report: serde_json::Value,
    pretty: String,
    server: Server,
}

/// Starts the server and runs `suite` of page_test.mjs; the fake microphone plays
/// librivox_0870 (7.1 s) then 4 s of silence, looped.
fn run_page(suite: &str, mic_seconds: f64, server_args: &[&str]) -> Option<PageRun> {
    let chromium = match chromium() {
        Ok(p) => p,
        Err(e) => {
            skip(&e);
            return None;
        }
    };
    if let Err(e) = playwright() {
        skip(&e);
        return None;
    }
    let server = Server::start(server_args);
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
        "suite": suite, "chromium": p(&chromium), "base": server.base, "long_wav": p(&long),
        "short_wav": p(&short), "mic_wav": p(&mic_wav), "mic_seconds": mic_seconds,
        "download_dir": p(&downloads),
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
    Some(PageRun {
        report,
        pretty,
        server,
    })
}

/// The json download is the final event as received: its segments are the page's segments.
fn check_json_download(run: &serde_json::Value, pretty: &str) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(s(&run["json"]))
        .unwrap_or_else(|e| panic!("json download is not JSON ({e}):\n{pretty}"));
    assert_eq!(json["segments"], run["done"]["segments"], "{pretty}");
    assert_eq!(json["text"], run["done"]["text"], "{pretty}");
    json
}

#[test]
fn web_page_transcribes_uploads_and_recordings_in_chromium() {
    let Some(PageRun {
        report,
        pretty,
        server,
    }) = run_page("upload", 8.5, &[])
    else {
        return;
    };

    // The short clip without word timing: the exact greedy transcript, shown and
    // downloadable in four formats.
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
    assert_eq!(s(&short["srt_name"]), "librivox_0880.srt", "{pretty}");
    let json = check_json_download(short, &pretty);
    assert!(json["segments"][0].get("words").is_none(), "{pretty}");
    // The upload's progress was reported, up to the whole body.
    let up = short["upload"].as_array().unwrap();
    assert!(!up.is_empty(), "no upload progress events:\n{pretty}");
    assert_eq!(up[up.len() - 1]["loaded"], up[up.len() - 1]["total"], "{pretty}");
    // The player holds the uploaded file.
    assert!(short["player"]["has_src"].as_bool().unwrap(), "{pretty}");
    assert!((f(&short["player"]["duration"]) - 2.99).abs() < 0.05, "{pretty}");

    // With word timing: the downloads equal the server's own writers for the same request,
    // the json carries every word, and clicking the word "young" seeks there and highlights it.
    let words = &report["runs"]["words"];
    assert_eq!(s(&words["status_state"]), "done", "{pretty}");
    assert_eq!(s(&words["transcript"]), want, "{pretty}");
    for (fmt, key) in [("srt", "srt"), ("vtt", "vtt"), ("text", "txt")] {
        let answer = Form::new()
            .clip("audio/human/librivox_0880.wav")
            .text("word_timestamps", "true")
            .text("beam_size", "1")
            .text("response_format", fmt)
            .post(&server.url("/transcribe"));
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(s(&words[key]), answer.body, "{fmt} differs from the server's:\n{pretty}");
    }
    let json = check_json_download(words, &pretty);
    let ws = json["segments"][0]["words"].as_array().expect("words in the json download");
    assert_eq!(ws.len(), 8, "{pretty}");
    assert_eq!(words["word_count"], 8, "{pretty}");
    let seek = &words["seek"];
    assert_eq!(s(&ws[6]["word"]), " young");
    assert_eq!(f(&seek["target"]), f(&ws[6]["start"]), "{pretty}");
    let t = f(&seek["time"]);
    assert!(t >= f(&seek["target"]) - 0.01 && t < f(&seek["target"]) + 1.0, "the click did not seek:\n{pretty}");
    assert_eq!(s(&seek["current"]), "young", "{pretty}");

    // Two windows: progress shown, several segments, the first shown well before the end.
    assert_eq!(report["runs"]["long_progress_visible"], true, "{pretty}");
    let long = &report["runs"]["long"];
    assert_eq!(s(&long["status_state"]), "done", "{pretty}");
    assert_eq!(long["progress_hidden_after"], true, "{pretty}");
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
    // Clicking the second segment's time moves the player from 0 to that segment.
    let seek = &long["seek"];
    let start = f(&long["done"]["segments"][1]["start"]);
    assert!(start > 1.0, "{pretty}");
    assert_eq!(f(&seek["target"]), start, "{pretty}");
    let t = f(&seek["time"]);
    assert!(t >= start - 0.01 && t < start + 1.0, "the click did not seek:\n{pretty}");

    // The microphone, "record, then transcribe": the recording was uploaded and understood,
    // and the player holds it.
    let mic = &report["runs"]["mic"];
    assert_eq!(s(&mic["status_state"]), "done", "{pretty}");
    let heard = s(&mic["transcript"]).to_lowercase();
    assert!(
        heard.contains("dashwood") && heard.contains("leisure"),
        "the recording was not understood:\n{pretty}"
    );
    assert!(f(&mic["player"]["duration"]) > 5.0, "{pretty}");

    // A refused upload shows the server's message.
    let bad = &report["runs"]["bad"];
    assert_eq!(s(&bad["status_state"]), "error", "{pretty}");
    assert!(
        s(&bad["status"]).contains("could not be decoded"),
        "{pretty}"
    );

    // A file dropped on the page: the overlay while dragging, then the transcript.
    let overlay = &report["runs"]["drop_overlay"];
    assert_eq!(overlay["shown_while_dragging"], true, "{pretty}");
    assert_eq!(overlay["hidden_after_drop"], true, "{pretty}");
    let drop = &report["runs"]["drop"];
    assert_eq!(s(&drop["status_state"]), "done", "{pretty}");
    assert_eq!(s(&drop["transcript"]), want, "{pretty}");
    assert_eq!(s(&drop["txt_name"]), "dropped.txt", "{pretty}");

    // The page's side of the live protocol, against a scripted WebSocket server: the session
    // it asks for, PCM16 at 16 kHz, unconfirmed text grey after black committed text, one
    // paragraph per utterance, the last words flushed by a commit at Stop.
    let lp = &report["runs"]["live_protocol"];
    let sent = &lp["sent"];
    assert!(s(&sent["url"]).ends_with("/v1/realtime?intent=transcription"), "{pretty}");
    let session = &sent["first"]["session"];
    assert_eq!(s(&sent["first"]["type"]), "session.update", "{pretty}");
    assert_eq!(s(&session["type"]), "transcription", "{pretty}");
    assert_eq!(session["audio"]["input"]["format"], serde_json::json!({ "type": "audio/pcm", "rate": 16000 }), "{pretty}");
    assert_eq!(s(&session["audio"]["input"]["turn_detection"]["type"]), "server_vad", "{pretty}");
    assert_eq!(session["include"], serde_json::json!(["item.input_audio_transcription.partial"]), "{pretty}");
    assert_eq!(sent["types"], serde_json::json!(["session.update", "input_audio_buffer.append", "input_audio_buffer.commit"]), "{pretty}");
    // Every sample recorded was sent, and the player holds exactly that recording.
    let samples = f(&sent["samples"]);
    assert!(samples > 16000.0 * 0.5, "{pretty}");
    assert!((f(&lp["player"]["duration"]) - samples / 16000.0).abs() < 0.01, "{pretty}");
    let partial = &lp["seen"]["partial"][0];
    assert_eq!(s(&partial["committed"]), "And Mr. John", "{pretty}");
    assert_eq!(s(&partial["partial"]), " Dashwood had", "{pretty}");
    assert_eq!(s(&partial["committed_color"]), "rgb(17, 17, 17)", "{pretty}");
    assert_eq!(s(&partial["partial_color"]), "rgb(153, 153, 153)", "{pretty}");
    let second = &lp["seen"]["second"];
    assert_eq!(s(&second[0]["committed"]), "And Mr. John Dashwood had then leisure.", "{pretty}");
    assert_eq!(s(&second[0]["partial"]), "", "{pretty}");
    assert_eq!(s(&second[1]["partial"]), "to consider", "{pretty}");
    assert_eq!(s(&lp["status_state"]), "done", "{pretty}");
    assert_eq!(lp["live_items"], serde_json::json!(["And Mr. John Dashwood had then leisure.", "To consider how much."]), "{pretty}");
    let final_text = "And Mr. John Dashwood had then leisure. To consider how much.";
    assert_eq!(s(&lp["transcript"]), final_text, "{pretty}");
    assert_eq!(s(&lp["txt"]), format!("{final_text}\n"), "{pretty}");
    assert!(s(&lp["srt"]).starts_with("1\n00:00:00,300 --> 00:00:01,800\nAnd Mr. John Dashwood had then leisure.\n\n2\n00:00:02,100 --> "), "{pretty}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(s(&lp["json"])).unwrap()["segments"][1]["item_id"], "i2", "{pretty}");
    // Clicking the first paragraph plays the recording from its utterance's start.
    assert_eq!(f(&lp["seek"]["target"]), 0.3, "{pretty}");
    assert!(f(&lp["seek"]["time"]) >= 0.29, "{pretty}");
    assert_eq!(s(&lp["seek"]["current"]), "And Mr. John Dashwood had then leisure.", "{pretty}");

    // A phone, 375 px wide: no horizontal scrolling, empty, with the options open, and with
    // a transcript.
    let phone = &report["runs"]["phone"];
    assert_eq!(s(&phone["status_state"]), "done", "{pretty}");
    for (k, w) in phone["widths"].as_object().unwrap() {
        assert!(f(w) <= 375.0, "the page is {w} px wide on a 375 px phone ({k}):\n{pretty}");
    }
}

/// The live path: the fake microphone streams over the realtime WebSocket and the words
/// appear while it plays. Needs the server's `/v1/realtime` endpoint.
#[test]
fn web_page_live_microphone_in_chromium() {
    // The microphone stays on until the sentence shows up live (at most 40 s: the fake device
    // loops the sentence and 4 s of silence). The engine the page talks to is the default
    // int8 one, as a user would run it.
    let Some(PageRun { report, pretty, .. }) = run_page("live", 40.0, &["--compute-type", "int8"]) else {
        return;
    };
    let live = &report["runs"]["live"];
    assert_eq!(live["live"]["opened"], true, "the WebSocket did not open:\n{pretty}");
    assert!(live["live"]["fallback"].is_null(), "{pretty}");
    // Committing an empty buffer at Stop may be refused (OpenAI does); nothing else may fail.
    let errors = live["live"]["errors"].as_array().unwrap();
    assert!(
        errors.iter().all(|e| {
            let what = format!("{} {}", s(&e["code"]), s(&e["message"])).to_lowercase();
            what.contains("empty") || what.contains("too small")
        }),
        "{pretty}"
    );
    let types: Vec<&str> = live["live"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["type"]))
        .collect();
    for t in [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
    ] {
        assert!(types.contains(&t), "no {t} event:\n{pretty}");
    }
    // Words appeared while the microphone was still on.
    let seen = report["runs"]["live_seen"].as_array().unwrap();
    let while_on: String = seen
        .iter()
        .map(|v| format!("{} {}", s(&v["committed"]), s(&v["partial"])))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    assert!(
        while_on.contains("dashwood"),
        "no live transcript before Stop:\n{pretty}"
    );
    // Unconfirmed text is grey.
    for v in seen {
        if !s(&v["partial"]).trim().is_empty() {
            assert_eq!(s(&v["partial_color"]), "rgb(153, 153, 153)", "{pretty}");
        }
    }
    // After Stop: the final paragraphs, the downloads, and the recording in the player.
    assert_eq!(s(&live["status_state"]), "done", "{pretty}");
    let heard = s(&live["transcript"]).to_lowercase();
    assert!(
        heard.contains("dashwood") && heard.contains("leisure"),
        "the live transcript was not understood:\n{pretty}"
    );
    let items = live["live_items"].as_array().unwrap();
    assert!(!items.is_empty(), "{pretty}");
    assert_eq!(s(&live["txt"]), format!("{}\n", s(&live["done_text"])), "{pretty}");
    assert!(s(&live["srt"]).starts_with("1\n00:00:0"), "{pretty}");
    let json: serde_json::Value = serde_json::from_str(s(&live["json"])).unwrap();
    assert_eq!(json["segments"].as_array().unwrap().len(), items.len(), "{pretty}");
    assert!(f(&live["player"]["duration"]) > 3.0, "{pretty}");
    let seek = &live["seek"];
    assert!(f(&seek["time"]) >= f(&seek["target"]) - 0.01, "{pretty}");
    assert!(seek["current"].is_string(), "the clicked paragraph is not highlighted:\n{pretty}");
}
