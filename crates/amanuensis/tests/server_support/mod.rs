//! Test support for the server tests: starts the real `amanuensis serve` binary on a free
//! port with the tiny.en model, builds multipart bodies, and reads the reference transcripts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub fn testdata() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"))
}

/// Runs the `amanuensis` binary with `args` (warnings only on stderr).
pub fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_amanuensis")).args(args).env("RUST_LOG", "warn").output().expect("binary runs")
}

/// The installed tiny.en model's folder, if any.
pub fn tiny() -> Option<String> {
    whisper::testing::model_dir("tiny.en").map(|d| d.display().to_string())
}

/// A running server; killed when dropped (its stderr is printed if the test failed).
pub struct Server {
    pub child: Option<Child>,
    pub base: String,
    stderr: Arc<Mutex<String>>,
    /// The jobs store's folder when the test gave no --data-dir (removed with the server).
    _data: Option<tempfile::TempDir>,
}

pub struct Options<'a> {
    /// Model name (tiny.en unless said otherwise).
    pub model: &'a str,
    pub args: Vec<&'a str>,
    pub env: Vec<(&'a str, &'a str)>,
    /// Wait for /health to say 200 before returning.
    pub wait_ready: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            model: "tiny.en",
            args: Vec::new(),
            env: Vec::new(),
            wait_ready: true,
        }
    }
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(Options {
            args: args.to_vec(),
            ..Options::default()
        })
    }

    /// Starts the server; `None` (said on stderr) if the model is optional and not installed.
    pub fn try_start_with(o: Options<'_>) -> Option<Server> {
        let model = whisper::testing::model_dir(o.model)?;
        Some(Server::start_in(&model, o))
    }

    pub fn start_with(o: Options<'_>) -> Server {
        let model = whisper::testing::model_dir(o.model).expect("tiny.en is always required");
        Server::start_in(&model, o)
    }

    fn start_in(model: &std::path::Path, o: Options<'_>) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_amanuensis"));
        cmd.args(["serve", "--port", "0", "--model"])
            .arg(model)
            .args(&o.args);
        // The tests compare transcripts with faster-whisper's float32 ones, so they run the
        // f32 engine unless a test picks a type (the default, int8, is checked by the CLI help test).
        if !o.args.contains(&"--compute-type") {
            cmd.args(["--compute-type", "f32"]);
        }
        // Every server gets its own jobs store (--data-dir) unless the test picks one.
        let data = (!o.args.contains(&"--data-dir")).then(|| tempfile::tempdir().expect("temp dir"));
        if let Some(d) = &data {
            cmd.arg("--data-dir").arg(d.path());
        }
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        cmd.env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start amanuensis serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut err = child.stderr.take().unwrap();
            let buf = stderr.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = err.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server printed no address within 60 s; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let server = Server {
            child: Some(child),
            base,
            stderr,
            _data: data,
        };
        if o.wait_ready {
            server.wait_ready();
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn wait_ready(&self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(120) {
            if get(&self.url("/health")).status == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the server was not ready within 120 s; stderr:\n{}",
            self.stderr()
        );
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The value of a metric line `name` (with labels, exactly as printed), or 0.
    pub fn metric(&self, name: &str) -> f64 {
        let text = get(&self.url("/metrics")).body;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.strip_prefix(' '))
                    .map(|v| v.trim().parse::<f64>().unwrap())
            })
            .unwrap_or(0.0)
    }

    /// Polls until `cond` holds (10 s at most).
    pub fn wait_for(&self, what: &str, cond: impl Fn(&Server) -> bool) {
        let t0 = Instant::now();
        while !cond(self) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- server stderr ----\n{}", self.stderr());
        }
    }
}

/// An HTTP answer, whatever its status.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `message` of an OpenAI-shaped error, checking the shape on the way.
    pub fn error_message(&self) -> String {
        let v = self.json();
        let e = &v["error"];
        assert!(e.is_object(), "no error object: {}", self.body);
        for k in ["message", "type", "param", "code"] {
            assert!(e.get(k).is_some(), "error without `{k}`: {}", self.body);
        }
        let kind = e["type"].as_str().unwrap();
        let want = if self.status < 500 {
            "invalid_request_error"
        } else {
            "server_error"
        };
        assert_eq!(kind, want, "{}", self.body);
        e["message"].as_str().unwrap().to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(300))
        .build()
}

fn into_resp(r: Result<ureq::Response, ureq::Error>) -> Resp {
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .map(|n| (n.clone(), r.header(&n).unwrap_or("").to_string()))
        .collect();
    let body = r.into_string().expect("body");
    Resp {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Resp {
    match agent().get(url).call() {
        Err(ureq::Error::Transport(t)) => Resp {
            status: 0,
            headers: vec![],
            body: t.to_string(),
        },
        r => into_resp(r),
    }
}

/// A multipart/form-data body.
pub struct Form {
    boundary: String,
    body: Vec<u8>,
}

impl Default for Form {
    fn default() -> Self {
        Form::new()
    }
}

impl Form {
    pub fn new() -> Self {
        Form {
            boundary: "amanuensis-test-boundary-7f3a9c".into(),
            body: Vec::new(),
        }
    }

    pub fn text(mut self, name: &str, value: &str) -> Self {
        let b = &self.boundary;
        self.body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
        self
    }

    pub fn file(mut self, name: &str, filename: &str, bytes: &[u8]) -> Self {
        let b = &self.boundary;
        self.body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// The audio file at `testdata/<rel>` as field `file`.
    pub fn clip(self, rel: &str) -> Self {
        let path = testdata().join(rel);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        self.file("file", &name, &bytes)
    }

    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut body = self.body.clone();
        body.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        body
    }

    pub fn post(&self, url: &str) -> Resp {
        into_resp(
            agent()
                .post(url)
                .set("Content-Type", &self.content_type())
                .send_bytes(&self.bytes()),
        )
    }

    /// Posts and returns the raw response for reading a stream.
    pub fn post_streaming(&self, url: &str) -> ureq::Response {
        match agent()
            .post(url)
            .set("Content-Type", &self.content_type())
            .send_bytes(&self.bytes())
        {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("request failed: {e}"),
        }
    }
}

/// One clip of testdata/audio/clips.tsv.
#[derive(Clone, Debug)]
pub struct Clip {
    pub id: String,
    pub file: String,
    pub seconds: f64,
}

pub fn clips() -> Vec<Clip> {
    let tsv = std::fs::read_to_string(testdata().join("audio/clips.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Clip {
                id: c[0].into(),
                file: format!("audio/{}", c[1]),
                seconds: c[4].parse().unwrap(),
            }
        })
        .collect()
}

/// faster-whisper's text for each clip id, for tiny.en float32 at beam `beam` (1 or 5).
pub fn reference(beam: usize) -> BTreeMap<String, String> {
    reference_of("tiny.en", beam)
}

/// faster-whisper's text for each clip id, for `model` float32 at beam `beam`.
pub fn reference_of(model: &str, beam: usize) -> BTreeMap<String, String> {
    let path = testdata().join(format!("transcripts/{model}_float32_b{beam}.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["clips"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, c)| (k.clone(), c["text"].as_str().unwrap().to_string()))
        .collect()
}

/// 16 kHz mono samples as a 16-bit WAV file.
pub fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let n = samples.len() as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + n * 2).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&32000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(n * 2).to_le_bytes());
    for s in samples {
        out.extend_from_slice(
            &((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes(),
        );
    }
    out
}

/// The clips `ids` one after the other with 0.5 s of silence between, as a WAV file.
pub fn concatenated(ids: &[&str]) -> Vec<u8> {
    let all = clips();
    let mut samples = Vec::new();
    for id in ids {
        let c = all.iter().find(|c| c.id == *id).unwrap();
        samples.extend(whisper::audio::load_audio(&testdata().join(&c.file)).unwrap());
        samples.resize(samples.len() + 8000, 0.0);
    }
    wav_bytes(&samples)
}

/// Whether Silero VAD is installed in the model store; on CI (which installs it with `models
/// pull silero-vad`) its absence is a failure, not a skip.
pub fn vad_installed() -> bool {
    let root = std::env::var_os("AMANUENSIS_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/amanuensis/models"));
    let ok = root.join("silero-vad/silero_vad_v6.onnx").is_file();
    assert!(ok || std::env::var_os("CI").is_none(), "CI must install the VAD (`amanuensis models pull silero-vad`)");
    ok
}

/// A human recording of the test set and tiny.en's greedy text of it.
pub const LIBRIVOX_0880: &str = "audio/human/librivox_0880.wav";
pub const GREEDY_0880: &str = "He was not an old-sposed young man.";

/// Reads server-sent events: (seconds since start, JSON) per `data:` line.
pub fn read_events(resp: ureq::Response, t0: Instant) -> Vec<(f64, serde_json::Value)> {
    let mut out = Vec::new();
    for line in BufReader::new(resp.into_reader()).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data:") {
            out.push((
                t0.elapsed().as_secs_f64(),
                serde_json::from_str(data.trim()).unwrap(),
            ));
        }
    }
    out
}
