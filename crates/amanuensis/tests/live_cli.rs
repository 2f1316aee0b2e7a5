//! `amanuensis transcribe --live` and `listen`, end to end with tiny.en: a file and stdin (raw
//! samples, and a WAV stream with an unknown length as `arecord` writes it) treated as live
//! streams, the VAD ending utterances, JSON lines whose deltas add up to each utterance, the
//! pacing of --live-speed, and clear errors for what live mode cannot do. The microphone
//! (`listen`) is tested for its error: CI machines have no capture device.

mod server_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use server_support::{testdata, tiny, wav_bytes};

fn clip(rel: &str) -> Vec<f32> {
    whisper::audio::load_audio(&testdata().join("audio").join(rel)).unwrap()
}

const FOREST: &str = "Scientists believe that the ancient forest once covered most of the valley, but farming and fires slowly pushed the trees back toward the mountains, where only a few old oaks remain today. Local volunteers now plant new seedlings every spring, hoping that their grandchildren will walk under a green roof again.";
const DASHWOOD: &str = "and mister john dashwood had then leisure to consider how much there might be prudently in his power to do for them";

/// Two sentences with 2 s of silence between them and after.
fn two_sentences() -> Vec<f32> {
    let mut a = vec![0.0; 8000];
    a.extend(clip("tts/s11.wav"));
    a.extend(vec![0.0; 32000]);
    a.extend(clip("human/librivox_0870.wav"));
    a.extend(vec![0.0; 32000]);
    a
}

fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = whisper::eval::normalize(reference);
    whisper::eval::word_errors(&r, &whisper::eval::normalize(hypothesis)) as f64 / r.len() as f64
}

fn live(model: &str, args: &[&str], stdin: Option<Vec<u8>>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amanuensis"));
    c.args(["transcribe", "--live", "--model", model]).args(args).env("RUST_LOG", "warn");
    c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn a_file_as_a_live_stream_prints_one_line_per_utterance() {
    let Some(model) = tiny() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("two.wav");
    std::fs::write(&wav, wav_bytes(&two_sentences())).unwrap();
    let out = stdout(&live(&model, &["--live-speed", "0", wav.to_str().unwrap()], None));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "one line per utterance (the VAD ends them):\n{out}");
    assert!(wer(FOREST, lines[0]) < 0.25, "{}", lines[0]);
    assert!(wer(DASHWOOD, lines[1]) < 0.2, "{}", lines[1]);
    assert!(!out.contains('\x1b'), "no terminal codes when piped: {out:?}");
}

#[test]
fn json_lines_deltas_add_up_to_each_utterance() {
    let Some(model) = tiny() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("two.wav");
    std::fs::write(&wav, wav_bytes(&two_sentences())).unwrap();
    let out = stdout(&live(&model, &["--live-speed", "0", "--output-format", "json", wav.to_str().unwrap()], None));
    let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kind = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert_eq!((kind("speech_started"), kind("speech_stopped"), kind("completed")), (2, 2, 2), "{out}");
    assert!(kind("delta") >= 4, "text is confirmed piece by piece: {out}");
    for u in 0..2 {
        let of = |t: &'static str| events.iter().filter(move |e| e["type"] == t && e["utterance"] == u);
        let deltas: String = of("delta").map(|e| e["text"].as_str().unwrap().to_string()).collect();
        let done = of("completed").next().unwrap();
        assert_eq!(deltas.trim(), done["text"].as_str().unwrap());
        let words = done["words"].as_array().unwrap();
        assert!(!words.is_empty());
        // Word times lie in the utterance, within the audio.
        let (start, end) = (done["start"].as_f64().unwrap(), done["end"].as_f64().unwrap());
        assert!(start < end && end <= 30.0, "{done}");
    }
    // The second utterance starts after the first one's pause.
    let starts: Vec<f64> = events.iter().filter(|e| e["type"] == "speech_started").map(|e| e["at"].as_f64().unwrap()).collect();
    assert!(starts[0] < 1.0 && starts[1] > 18.0, "{starts:?}");
}

#[test]
fn stdin_raw_samples_and_wav_streams_are_live_inputs() {
    let Some(model) = tiny() else { return };
    let audio = clip("human/librivox_0870.wav");
    let raw: Vec<u8> = audio.iter().flat_map(|&s| ((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes()).collect();
    let out = stdout(&live(&model, &["--live-speed", "0", "--no-vad-filter", "--raw-s16le", "16000", "-"], Some(raw.clone())));
    assert!(wer(DASHWOOD, &out) < 0.2, "{out}");
    // A WAV header as arecord writes it to a pipe: sizes unknown (0xFFFFFFFF).
    let mut wav = wav_bytes(&audio)[..44].to_vec();
    wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    wav[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    wav.extend_from_slice(&raw);
    let out2 = stdout(&live(&model, &["--live-speed", "0", "--no-vad-filter", "-"], Some(wav)));
    assert_eq!(out2, out, "the WAV stream gives the same text as the raw samples");
    // Something that is not a WAV stream, without --raw-s16le: a clear error.
    let bad = live(&model, &["-"], Some(b"ID3\x04\0\0\0\0\0\0 not a wav".to_vec()));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("--raw-s16le"), "{err}");
}

#[test]
fn live_speed_paces_the_input() {
    let Some(model) = tiny() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("short.wav");
    let audio = clip("human/librivox_0870.wav"); // 7.1 s
    std::fs::write(&wav, wav_bytes(&audio)).unwrap();
    let t = Instant::now();
    let out = stdout(&live(&model, &["--live-speed", "2", "--no-vad-filter", wav.to_str().unwrap()], None));
    let took = t.elapsed().as_secs_f64();
    assert!(took >= 7.1 / 2.0 - 0.2, "fed at 2x real time, the 7.1 s file took only {took:.2} s");
    assert!(wer(DASHWOOD, &out) < 0.2, "{out}");
}

#[test]
fn what_live_mode_cannot_do_is_a_clear_error() {
    let Some(model) = tiny() else { return };
    let f = testdata().join("audio/human/librivox_0880.wav");
    let f = f.to_str().unwrap();
    for (args, says) in [
        (vec![f, f], "one input"),
        (vec!["--output-format", "srt", f], "JSON lines"),
        (vec!["--batch-size", "4", f], "do not apply"),
        (vec!["--live-speed", "5000", f], "--live-speed"),
        (vec!["--live-step", "0.01", f], "step"),
        (vec!["/no/such/file.wav"], "no such file"),
    ] {
        let o = live(&model, &args, None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn listen_without_a_microphone_says_what_to_do() {
    let Some(model) = tiny() else { return };
    let o = Command::new(env!("CARGO_BIN_EXE_amanuensis"))
        .args(["listen", "--model", &model, "--duration", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // Built without `mic`: how to get it; with it, on a machine without a capture device:
    // that there is none, and the way around it.
    assert!(!o.status.success(), "listen succeeded without a microphone? {err}");
    assert!(err.contains("microphone") && err.contains("transcribe --live"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
