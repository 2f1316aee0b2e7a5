//! The jobs API (`/v1/jobs`) and `amanuensis jobs` against the real server with tiny.en:
//! submit → 202 → poll → result in every format, equal to what /v1/audio/transcriptions
//! answers; listing, cancelling, deleting; a server killed with SIGKILL after accepting jobs
//! and restarted on the same --data-dir finishes every one; webhooks with a retry; bad input.

mod server_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server_support::{concatenated, get, testdata, Form, Options, Resp, Server};

const CLIP: &str = "audio/human/librivox_0880.wav";
const FORMATS: [&str; 5] = ["json", "verbose_json", "text", "srt", "vtt"];

fn start(data: &std::path::Path, extra: &[&str]) -> Server {
    let dir = data.to_str().unwrap();
    let mut args = vec!["--data-dir", dir, "--beam-size", "1"];
    args.extend_from_slice(extra);
    Server::start_with(Options { args, ..Options::default() })
}

fn delete(url: &str) -> Resp {
    let r = ureq::delete(url).call();
    let r = match r {
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
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location").unwrap(), format!("/v1/jobs/{id}"));
    id
}

/// Polls the job until it is finished; returns its last state.
fn wait_done(s: &Server, id: &str) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let v = get(&s.url(&format!("/v1/jobs/{id}"))).json();
        let p = v["progress"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{v}");
        if ["done", "failed", "cancelled"].contains(&v["status"].as_str().unwrap()) {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(180), "job {id} not finished: {v}\n{}", s.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What /v1/audio/transcriptions answers for `rel` in `format`.
fn sync_answer(s: &Server, rel: &str, format: &str) -> String {
    let r = Form::new().text("response_format", format).clip(rel).post(&s.url("/v1/audio/transcriptions"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn same(format: &str, a: &str, b: &str) -> bool {
    if format.ends_with("json") {
        serde_json::from_str::<serde_json::Value>(a).unwrap() == serde_json::from_str::<serde_json::Value>(b).unwrap()
    } else {
        a == b
    }
}

#[test]
fn submit_poll_result_list_delete_and_bad_input() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path(), &[]);
    let id = submit(&s, Form::new().text("language", "en").clip(CLIP));
    // Durable before the 202: the audio is in the spool (or already transcribed).
    let v = wait_done(&s, &id);
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(v["progress"], 1.0);
    assert_eq!(v["filename"], "librivox_0880.wav");
    assert!((v["duration"].as_f64().unwrap() - 2.99).abs() < 0.05, "{v}");
    let (c, st, f) = (v["created_at"].as_f64().unwrap(), v["started_at"].as_f64().unwrap(), v["finished_at"].as_f64().unwrap());
    assert!(c <= st && st <= f, "{v}");
    assert!(v["error"].is_null());

    for format in FORMATS {
        let want = sync_answer(&s, CLIP, format);
        let r = get(&s.url(&format!("/v1/jobs/{id}/result?format={format}")));
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(same(format, &r.body, &want), "{format}: job {} vs sync {}", r.body, want);
        if format == "text" {
            assert!(r.body.contains("young man"), "{}", r.body);
        }
    }
    // Without ?format: the job's response_format (json here, by default).
    assert_eq!(get(&s.url(&format!("/v1/jobs/{id}/result"))).json()["text"].as_str().unwrap(), sync_answer(&s, CLIP, "text").trim());
    // A job submitted with response_format=srt answers srt by default.
    let srt_id = submit(&s, Form::new().text("response_format", "srt").clip(CLIP));
    assert_eq!(wait_done(&s, &srt_id)["status"], "done");
    assert_eq!(get(&s.url(&format!("/v1/jobs/{srt_id}/result"))).body, sync_answer(&s, CLIP, "srt"));

    // Listing, newest first, by status, limited.
    let all = get(&s.url("/v1/jobs")).json();
    let ids: Vec<&str> = all["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [srt_id.as_str(), id.as_str()]);
    assert_eq!(get(&s.url("/v1/jobs?status=done&limit=1")).json()["data"].as_array().unwrap().len(), 1);
    assert!(get(&s.url("/v1/jobs?status=queued")).json()["data"].as_array().unwrap().is_empty());

    // Bad input.
    for (path, status) in [
        ("/v1/jobs/job_nope", 404),
        ("/v1/jobs/job_nope/result", 404),
        (&format!("/v1/jobs/{id}/result?format=docx") as &str, 400),
        ("/v1/jobs?status=finished", 400),
        ("/v1/jobs?limit=0", 400),
        ("/v1/jobs?colour=red", 400),
    ] {
        let r = get(&s.url(path));
        assert_eq!(r.status, status, "{path}: {}", r.body);
        r.error_message();
    }
    assert_eq!(delete(&s.url("/v1/jobs/job_nope")).status, 404);
    for (form, param) in [
        (Form::new().text("webhook_url", "ftp://example.com/x").clip(CLIP), "webhook_url"),
        (Form::new().text("webhook_url", "https://example.com/x").clip(CLIP), "webhook_url"),
        (Form::new().text("webhook_url", "http:///x").clip(CLIP), "webhook_url"),
        (Form::new().text("response_format", "docx").clip(CLIP), "response_format"),
        (Form::new().text("stream", "true").clip(CLIP), "stream"),
        (Form::new().text("colour", "red").clip(CLIP), "colour"),
        (Form::new().text("language", "en"), "file"),
    ] {
        let r = form.post(&s.url("/v1/jobs"));
        assert_eq!(r.status, 400, "{param}: {}", r.body);
        assert_eq!(r.json()["error"]["param"], param, "{}", r.body);
    }
    // None of those was stored.
    assert_eq!(get(&s.url("/v1/jobs")).json()["data"].as_array().unwrap().len(), 2);
    // Audio that does not decode: accepted (it is stored first), then failed with the reason.
    let bad = submit(&s, Form::new().file("file", "noise.wav", b"this is not audio at all"));
    let v = wait_done(&s, &bad);
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "invalid_audio", "{v}");
    assert_eq!(get(&s.url(&format!("/v1/jobs/{bad}/result"))).status, 409);

    // Deleting a finished job removes it.
    let d = delete(&s.url(&format!("/v1/jobs/{id}")));
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(d.json()["deleted"], true);
    assert_eq!(get(&s.url(&format!("/v1/jobs/{id}"))).status, 404);
    // The database is in WAL mode, next to the spool.
    assert!(data.path().join("jobs.sqlite3").is_file() && data.path().join("spool").is_dir());
}

#[test]
fn cancel_queued_and_running_jobs() {
    let data = tempfile::tempdir().unwrap();
    // One job at a time: the second and third wait in the queue.
    let s = start(data.path(), &["--workers", "1"]);
    let long = concatenated(&["librivox_0870", "arctic_a0007"].repeat(6));
    let ids: Vec<String> = (0..3).map(|_| submit(&s, Form::new().file("file", "long.wav", &long))).collect();
    // The last one is still queued: cancelled before it starts.
    let r = delete(&s.url(&format!("/v1/jobs/{}", ids[2])));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "cancelled", "{}", r.body);
    // The first, once running, is cancelled in flight.
    let t0 = Instant::now();
    loop {
        let st = get(&s.url(&format!("/v1/jobs/{}", ids[0]))).json()["status"].clone();
        if st == "running" {
            break;
        }
        assert!(st == "queued" && t0.elapsed() < Duration::from_secs(60), "{st}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = delete(&s.url(&format!("/v1/jobs/{}", ids[0]))).json();
    assert_eq!(r["status"], "cancelled", "{r}");
    assert_eq!(r["error"]["code"], "cancelled");
    // The second runs to the end, its progress rising on the way; the cancelled ones stay
    // cancelled, without results.
    let mut seen = Vec::new();
    let t0 = Instant::now();
    loop {
        let v = get(&s.url(&format!("/v1/jobs/{}", ids[1]))).json();
        if v["status"] == "done" {
            assert_eq!(v["progress"], 1.0);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(180), "{v}");
        seen.push(v["progress"].as_f64().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.iter().any(|&p| p > 0.0 && p < 1.0), "no progress between 0 and 1 seen: {seen:?}");
    for id in [&ids[0], &ids[2]] {
        assert_eq!(get(&s.url(&format!("/v1/jobs/{id}"))).json()["status"], "cancelled");
        let r = get(&s.url(&format!("/v1/jobs/{id}/result")));
        assert_eq!(r.status, 409, "{}", r.body);
    }
    assert_eq!(get(&s.url("/v1/jobs?status=cancelled")).json()["data"].as_array().unwrap().len(), 2);
    // Their audio left the spool.
    let spool: Vec<_> = std::fs::read_dir(data.path().join("spool")).unwrap().collect();
    assert!(spool.is_empty(), "{spool:?}");
}

#[test]
fn killed_server_resumes_every_accepted_job() {
    let data = tempfile::tempdir().unwrap();
    let clips = ["audio/human/librivox_0870.wav", "audio/human/librivox_0880.wav", "audio/human/arctic_a0007.wav", "audio/human/goforward.wav"];
    let mut s = start(data.path(), &["--workers", "1"]);
    let ids: Vec<String> = clips.iter().map(|c| submit(&s, Form::new().clip(c))).collect();
    // SIGKILL right after the 202s: no chance to finish anything or flush anything.
    let mut child = s.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let s = start(data.path(), &["--workers", "2"]);
    for (id, clip) in ids.iter().zip(clips) {
        let v = wait_done(&s, id);
        assert_eq!(v["status"], "done", "{v}");
        let got = get(&s.url(&format!("/v1/jobs/{id}/result?format=text"))).body;
        assert_eq!(got, sync_answer(&s, clip, "text"), "{clip}");
    }
}

/// A tiny HTTP listener: answers the webhook's attempts with `statuses` in turn, keeps bodies.
fn webhook_listener(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for (i, conn) in l.incoming().enumerate() {
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
            let code = statuses.get(i).copied().unwrap_or(200);
            let _ = write!(conn, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

#[test]
fn webhook_is_retried_until_accepted() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path(), &[]);
    let (url, bodies) = webhook_listener(vec![500, 200, 200]);
    let id = submit(&s, Form::new().text("webhook_url", &url).clip(CLIP));
    let v = wait_done(&s, &id);
    assert_eq!(v["webhook_url"], url.as_str());
    let t0 = Instant::now();
    while bodies.lock().unwrap().len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(30), "webhook not retried: {:?}\n{}", bodies.lock().unwrap(), s.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The 200 ends it: no third attempt.
    std::thread::sleep(Duration::from_secs(2));
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let want = sync_answer(&s, CLIP, "text");
    for b in &bodies {
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        assert_eq!(v["type"], "job.done");
        assert_eq!(v["job"]["id"], id.as_str());
        assert_eq!(v["job"]["status"], "done");
        assert_eq!(v["text"].as_str().unwrap(), want.trim());
    }
    // A job that fails is reported too, with its error.
    let (url, bodies) = webhook_listener(vec![200]);
    let id = submit(&s, Form::new().text("webhook_url", &url).file("file", "bad.wav", b"not audio"));
    assert_eq!(wait_done(&s, &id)["status"], "failed");
    let t0 = Instant::now();
    while bodies.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no webhook for the failed job");
        std::thread::sleep(Duration::from_millis(50));
    }
    let v: serde_json::Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(v["type"], "job.failed");
    assert_eq!(v["job"]["error"]["code"], "invalid_audio");
    assert!(v.get("text").is_none());
}

#[test]
fn cli_submit_wait_status_result_list() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path(), &[]);
    let clip = testdata().join(CLIP);
    let clip = clip.to_str().unwrap();
    let out = server_support::run(&["jobs", "--server", &s.base, "submit", clip, "--wait"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), sync_answer(&s, CLIP, "text"));
    let id = stderr.split_whitespace().find(|w| w.starts_with("job_")).expect("the job id on stderr").to_string();
    assert!(stderr.contains("1 job(s) finished"), "{stderr}");

    let out = server_support::run(&["jobs", "--server", &s.base, "result", &id, "--output-format", "srt"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), sync_answer(&s, CLIP, "srt"));

    let out = server_support::run(&["jobs", "--server", &s.base, "status", &id]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "done");

    // Without --wait: the id and file, at once.
    let out = server_support::run(&["jobs", "--server", &s.base, "submit", clip]);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let id2 = line.split('\t').next().unwrap().to_string();
    assert!(id2.starts_with("job_") && line.trim_end().ends_with("librivox_0880.wav"), "{line}");
    wait_done(&s, &id2);
    let out = server_support::run(&["jobs", "--server", &s.base, "list", "--status", "done"]);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.lines().all(|l| l.contains("\tdone\t100%\tlibrivox_0880.wav")), "{list}");

    // Errors say what the server said.
    let out = server_support::run(&["jobs", "--server", &s.base, "result", "job_nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"), "{}", String::from_utf8_lossy(&out.stderr));
}
