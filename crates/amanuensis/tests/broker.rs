//! Jobs on NATS JetStream: `serve --broker` + `amanuensis worker --broker` against a real
//! `nats-server -js` (each test starts its own on a free port, with its own store folder).
//! Submit → a worker transcribes → the result equals /v1/audio/transcriptions' answer; two
//! workers share a batch (each job done exactly once); a worker killed with SIGKILL mid-job →
//! the other finishes it after the ack wait; a job past --max-attempts fails; cancelling;
//! the broker going down → 503; a bad broker URL → a clear error.
//!
//! Without `nats-server` (on PATH or in /usr/sbin) the tests say so and pass, unless `CI` is
//! set: then they fail.

mod server_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use server_support::{concatenated, get, Form, Options, Resp, Server};

const CLIP: &str = "audio/human/librivox_0880.wav";

/// A `nats-server -js` on a free port; killed (and its store removed) when dropped.
struct Nats {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// `None` (said on stderr) when nats-server is not installed and `CI` is unset.
    fn start() -> Option<Nats> {
        // Debian installs it in /usr/sbin, which a user's PATH may lack.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = std::env::split_paths(&path).map(|d| d.join("nats-server")).chain([std::path::PathBuf::from("/usr/sbin/nats-server")]).find(|p| p.is_file());
        let Some(bin) = found else {
            assert!(std::env::var_os("CI").is_none(), "CI is set but nats-server is neither on PATH nor in /usr/sbin: install it (apt-get install nats-server; .ci/run does)");
            eprintln!("SKIPPED: nats-server is neither on PATH nor in /usr/sbin (apt-get install nats-server); the broker tests did not run");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Some(Nats::start_on(&bin, port, tempfile::tempdir().unwrap()))
    }

    fn start_on(bin: &std::path::Path, port: u16, dir: tempfile::TempDir) -> Nats {
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "nats-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child, port, _dir: dir }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `amanuensis worker`; killed when dropped.
struct Worker {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Worker {
    fn start(nats: &Nats, extra: &[&str]) -> Worker {
        let model = whisper::testing::model_dir("tiny.en").expect("tiny.en is always required");
        let mut child = Command::new(env!("CARGO_BIN_EXE_amanuensis"))
            .args(["worker", "--broker", &nats.url(), "--compute-type", "f32", "--beam-size", "1", "--threads", "1", "--model"])
            .arg(&model)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start amanuensis worker");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        {
            let err = child.stderr.take().unwrap();
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if line.contains("ready:") {
                        let _ = tx.send(());
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let w = Worker { child: Some(child), log };
        assert!(rx.recv_timeout(Duration::from_secs(60)).is_ok(), "the worker did not get ready; its log:\n{}", w.log());
        w
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The job ids this worker says it finished.
    fn done(&self) -> Vec<String> {
        self.log().lines().filter_map(|l| l.strip_prefix("amanuensis worker: job ")).filter(|l| l.contains(" done in ")).map(|l| l.split_whitespace().next().unwrap().to_string()).collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- worker log ---\n{}", self.log());
        }
    }
}

fn serve(nats: &Nats) -> Server {
    let url = nats.url();
    Server::start_with(Options { args: vec!["--broker", &url, "--beam-size", "1"], ..Options::default() })
}

fn delete(url: &str) -> Resp {
    let r = match ureq::delete(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    Resp { status: r.status(), headers: Vec::new(), body: r.into_string().unwrap() }
}

fn submit(s: &Server, form: Form) -> String {
    let r = form.post(&s.url("/v1/jobs"));
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "queued");
    v["id"].as_str().unwrap().to_string()
}

fn status(s: &Server, id: &str) -> serde_json::Value {
    let r = get(&s.url(&format!("/v1/jobs/{id}")));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn wait_status(s: &Server, id: &str, want: &[&str], secs: u64) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let v = status(s, id);
        if want.contains(&v["status"].as_str().unwrap()) {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(secs), "job {id} is not {want:?} after {secs} s: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_done(s: &Server, id: &str) -> serde_json::Value {
    let v = wait_status(s, id, &["done", "failed", "cancelled"], 120);
    assert_eq!(v["status"], "done", "{v}");
    v
}

fn sync_answer(s: &Server, form: Form) -> String {
    let r = form.post(&s.url("/v1/audio/transcriptions"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// One HTTP listener that keeps the bodies POSTed to it (answers 200).
fn webhook_listener() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let mut conn = conn.unwrap();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            keep.lock().unwrap().push(String::from_utf8(body).unwrap());
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

#[test]
fn worker_transcribes_a_submitted_job_and_sends_its_webhook() {
    let Some(nats) = Nats::start() else { return };
    let s = serve(&nats);
    // Accepted with no worker running: the job waits on the broker.
    let (hook, bodies) = webhook_listener();
    let id = submit(&s, Form::new().text("language", "en").text("webhook_url", &hook).clip(CLIP));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&s, &id)["status"], "queued", "the server ran a job itself");
    assert_eq!(get(&s.url(&format!("/v1/jobs/{id}/result"))).status, 409);
    let w = Worker::start(&nats, &["--jobs", "1"]);
    let v = wait_done(&s, &id);
    assert_eq!(v["progress"], 1.0);
    assert_eq!(v["filename"], "librivox_0880.wav");
    assert!((v["duration"].as_f64().unwrap() - 2.99).abs() < 0.05, "{v}");
    let (c, st, f) = (v["created_at"].as_f64().unwrap(), v["started_at"].as_f64().unwrap(), v["finished_at"].as_f64().unwrap());
    assert!(c <= st && st <= f, "{v}");
    for format in ["json", "verbose_json", "text", "srt", "vtt"] {
        let want = sync_answer(&s, Form::new().text("response_format", format).clip(CLIP));
        let r = get(&s.url(&format!("/v1/jobs/{id}/result?format={format}")));
        assert_eq!(r.status, 200, "{}", r.body);
        if format.ends_with("json") {
            assert_eq!(serde_json::from_str::<serde_json::Value>(&r.body).unwrap(), serde_json::from_str::<serde_json::Value>(&want).unwrap(), "{format}");
        } else {
            assert_eq!(r.body, want, "{format}");
        }
    }
    assert!(get(&s.url(&format!("/v1/jobs/{id}/result?format=text"))).body.contains("young man"));
    assert_eq!(w.done(), [id.clone()]);
    // The worker posts the webhook, once.
    let t0 = Instant::now();
    while bodies.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no webhook");
        std::thread::sleep(Duration::from_millis(50));
    }
    let hook: serde_json::Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    assert_eq!((hook["type"].as_str(), hook["job"]["id"].as_str()), (Some("job.done"), Some(id.as_str())));
    assert!(hook["text"].as_str().unwrap().contains("young man"), "{hook}");
    // Listing, bad audio (failed with the reason), deleting.
    let bad = submit(&s, Form::new().file("file", "noise.wav", b"this is not audio at all"));
    let v = wait_status(&s, &bad, &["failed"], 60);
    assert_eq!(v["error"]["code"], "invalid_audio", "{v}");
    let ids: Vec<String> = get(&s.url("/v1/jobs")).json()["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, [bad.clone(), id.clone()]);
    assert_eq!(get(&s.url("/v1/jobs?status=done")).json()["data"].as_array().unwrap().len(), 1);
    assert_eq!(get(&s.url("/v1/jobs/job_nope")).status, 404);
    let d = delete(&s.url(&format!("/v1/jobs/{id}")));
    assert_eq!((d.status, d.json()["deleted"].as_bool()), (200, Some(true)), "{}", d.body);
    assert_eq!(get(&s.url(&format!("/v1/jobs/{id}"))).status, 404);
    // One webhook: the done job's, sent once (the bad job had no webhook_url).
    assert_eq!(bodies.lock().unwrap().len(), 1, "{:?}", bodies.lock().unwrap());
}

#[test]
fn two_workers_share_a_batch_each_job_done_once() {
    let Some(nats) = Nats::start() else { return };
    let s = serve(&nats);
    let (a, b) = (Worker::start(&nats, &["--jobs", "1"]), Worker::start(&nats, &["--jobs", "1"]));
    // Both workers are ready before the batch arrives, so each takes one at once.
    let clips = ["librivox_0870", "librivox_0880", "arctic_a0007", "goforward"];
    let ids: Vec<String> = clips.iter().map(|c| submit(&s, Form::new().clip(&format!("audio/human/{c}.wav")))).collect();
    for (id, c) in ids.iter().zip(clips) {
        wait_done(&s, id);
        let got = get(&s.url(&format!("/v1/jobs/{id}/result?format=text"))).body;
        assert_eq!(got, sync_answer(&s, Form::new().text("response_format", "text").clip(&format!("audio/human/{c}.wav"))), "{c}");
    }
    let (da, db) = (a.done(), b.done());
    assert!(!da.is_empty() && !db.is_empty(), "one worker did everything: {da:?} {db:?}");
    let mut all: Vec<String> = da.iter().chain(&db).cloned().collect();
    all.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(all, want, "each job done exactly once");
}

#[test]
fn killed_worker_job_goes_to_the_other_after_the_ack_wait() {
    let Some(nats) = Nats::start() else { return };
    let s = serve(&nats);
    let long = concatenated(&["librivox_0870", "arctic_a0007"].repeat(2));
    let mut a = Worker::start(&nats, &["--jobs", "1", "--ack-wait-secs", "2"]);
    let id = submit(&s, Form::new().file("file", "long.wav", &long));
    wait_status(&s, &id, &["running"], 30);
    let t_kill = Instant::now();
    a.kill();
    assert!(a.done().is_empty(), "the job finished before the kill: {}", a.log());
    let b = Worker::start(&nats, &["--jobs", "1", "--ack-wait-secs", "2"]);
    let v = wait_done(&s, &id);
    assert!(b.log().contains(&format!("job {id} started (attempt 2)")), "{}", b.log());
    assert_eq!(b.done(), [id.clone()]);
    eprintln!("redelivered and finished {:.1} s after the kill", t_kill.elapsed().as_secs_f64());
    assert!(v["started_at"].as_f64() > v["created_at"].as_f64());
    let got = get(&s.url(&format!("/v1/jobs/{id}/result?format=text"))).body;
    assert_eq!(got, sync_answer(&s, Form::new().text("response_format", "text").file("file", "long.wav", &long)));
    // A job whose workers keep dying fails after --max-attempts deliveries.
    drop(b);
    let mut c = Worker::start(&nats, &["--jobs", "1", "--ack-wait-secs", "2", "--max-attempts", "1"]);
    let id = submit(&s, Form::new().file("file", "long.wav", &long));
    wait_status(&s, &id, &["running"], 30);
    c.kill();
    let d = Worker::start(&nats, &["--jobs", "1", "--ack-wait-secs", "2", "--max-attempts", "1"]);
    let v = wait_status(&s, &id, &["failed", "done"], 60);
    assert_eq!(v["error"]["code"], "too_many_attempts", "{v}\n{}", d.log());
    assert!(v["error"]["message"].as_str().unwrap().contains("--max-attempts 1"), "{v}");
}

#[test]
fn cancel_queued_and_running_jobs() {
    let Some(nats) = Nats::start() else { return };
    let s = serve(&nats);
    let long = concatenated(&["librivox_0870", "arctic_a0007"].repeat(6));
    // Queued (no worker yet): cancelled at once.
    let queued = submit(&s, Form::new().clip(CLIP));
    let r = delete(&s.url(&format!("/v1/jobs/{queued}")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "cancelled");
    assert_eq!(r.json()["error"]["code"], "cancelled");
    let w = Worker::start(&nats, &["--jobs", "1"]);
    // Running: the worker sees it within a second and drops it; the next job runs.
    let running = submit(&s, Form::new().file("file", "long.wav", &long));
    wait_status(&s, &running, &["running"], 30);
    let r = delete(&s.url(&format!("/v1/jobs/{running}")));
    assert_eq!(r.json()["status"], "cancelled", "{}", r.body);
    let t0 = Instant::now();
    while !w.log().contains(&format!("job {running} cancelled")) {
        assert!(t0.elapsed() < Duration::from_secs(10), "the worker kept running a cancelled job:\n{}", w.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let next = submit(&s, Form::new().clip(CLIP));
    wait_done(&s, &next);
    for id in [&queued, &running] {
        assert_eq!(status(&s, id)["status"], "cancelled");
        assert_eq!(get(&s.url(&format!("/v1/jobs/{id}/result"))).status, 409);
    }
    assert!(w.log().contains(&format!("job {queued} is already cancelled")), "{}", w.log());
    assert_eq!(w.done(), [next]);
}

#[test]
fn broker_down_answers_503_and_a_bad_url_is_a_clear_error() {
    let Some(nats) = Nats::start() else { return };
    let s = serve(&nats);
    let id = submit(&s, Form::new().clip(CLIP));
    let port = nats.port;
    drop(nats);
    let t0 = Instant::now();
    for r in [get(&s.url(&format!("/v1/jobs/{id}"))), get(&s.url("/v1/jobs")), Form::new().clip(CLIP).post(&s.url("/v1/jobs"))] {
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], "broker_unavailable", "{}", r.body);
        assert!(r.error_message().contains(&format!("127.0.0.1:{port}")), "{}", r.body);
    }
    assert!(t0.elapsed() < Duration::from_secs(40), "503s took {:?}", t0.elapsed());
    // The rest of the server is fine.
    assert_eq!(get(&s.url("/health")).status, 200);

    // Nothing listens there now: serve and worker stop at once, naming the URL.
    let url = format!("nats://127.0.0.1:{port}");
    for args in [vec!["serve", "--port", "0", "--broker", &url], vec!["worker", "--broker", &url]] {
        let t0 = Instant::now();
        let out = server_support::run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(&url) && err.contains("nats-server -js"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(15), "{args:?} took {:?}", t0.elapsed());
    }
}
