//! Integration tests of `amanuensis serve` under bad input and faults: malformed requests,
//! upload limits, slow clients, a full queue, deadlines, a panicking job, start-up and
//! shutdown. The real binary on a free port with tiny.en (see `server.rs` for the endpoints).

mod server_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use server_support::{
    concatenated, get, read_events, testdata, Form, Options, Server, GREEDY_0880, LIBRIVOX_0880,
};

/// Checks a refused request: status, OpenAI error shape, a message naming what to fix.
fn refused(s: &Server, path: &str, form: Form, status: u16, words: &[&str]) {
    let r = form.post(&s.url(path));
    assert_eq!(r.status, status, "{path}: {}", r.body);
    let msg = r.error_message();
    for w in words {
        assert!(msg.contains(w), "`{msg}` does not mention `{w}`");
    }
}

#[test]
fn bad_input_gets_clear_errors_and_the_server_keeps_serving() {
    let s = Server::start(&[]);
    let wav = std::fs::read(testdata().join(LIBRIVOX_0880)).unwrap();
    let clip = || Form::new().clip(LIBRIVOX_0880);
    let t = "/transcribe";
    let v1 = "/v1/audio/transcriptions";
    refused(
        &s,
        t,
        Form::new().file("file", "notes.txt", b"this is not audio at all, just text"),
        400,
        &["could not be decoded"],
    );
    refused(
        &s,
        v1,
        Form::new().file("file", "x.wav", &[0u8; 3000]),
        400,
        &["decoded"],
    );
    refused(
        &s,
        t,
        Form::new().file("file", "empty.wav", b""),
        400,
        &["empty"],
    );
    refused(
        &s,
        t,
        Form::new().file("file", "cut.wav", &wav[..30]),
        400,
        &["decoded"],
    );
    refused(
        &s,
        t,
        Form::new().file("audio", "a.wav", &wav),
        400,
        &["unknown form field `audio`", "file"],
    );
    refused(
        &s,
        t,
        Form::new().text("language", "en"),
        400,
        &["field named `file`"],
    );
    refused(&s, t, clip().clip(LIBRIVOX_0880), 400, &["more than one"]);
    refused(
        &s,
        t,
        clip().text("model", "large-v3"),
        400,
        &["large-v3", "tiny.en"],
    );
    refused(&s, t, clip().text("model", "whisper-1"), 400, &["tiny.en"]);
    refused(
        &s,
        v1,
        clip().text("model", "gpt-4o-transcribe"),
        400,
        &["tiny.en", "whisper-1"],
    );
    refused(
        &s,
        t,
        clip().text("beam_size", "0"),
        400,
        &["beam_size", "1 to 16"],
    );
    refused(&s, t, clip().text("beam_size", "1000"), 400, &["beam_size"]);
    refused(&s, t, clip().text("beam_size", "five"), 400, &["beam_size"]);
    refused(
        &s,
        v1,
        clip().text("temperature", "-1"),
        400,
        &["temperature", "0 to 1"],
    );
    refused(
        &s,
        v1,
        clip().text("temperature", "NaN"),
        400,
        &["temperature"],
    );
    refused(
        &s,
        v1,
        clip().text("temperature", "hot"),
        400,
        &["temperature"],
    );
    refused(
        &s,
        v1,
        clip().text("language", "xx"),
        400,
        &["language `xx`"],
    );
    refused(&s, t, clip().text("language", "fr"), 400, &["English-only"]);
    refused(
        &s,
        v1,
        clip().text("response_format", "docx"),
        400,
        &["docx", "json, text, srt, verbose_json, vtt"],
    );
    refused(
        &s,
        t,
        clip().text("task", "summarize"),
        400,
        &["transcribe", "translate"],
    );
    refused(
        &s,
        t,
        clip().text("vad_filter", "sometimes"),
        400,
        &["true or false"],
    );
    refused(
        &s,
        t,
        clip().text("word_timestamps", "perhaps"),
        400,
        &["true or false"],
    );
    refused(
        &s,
        v1,
        clip().text("timestamp_granularities[]", "word"),
        400,
        &["response_format=verbose_json"],
    );
    refused(
        &s,
        v1,
        clip().text("timestamp_granularities[]", "syllable"),
        400,
        &["word", "segment"],
    );
    refused(&s, v1, clip().text("include[]", "logprobs").text("response_format", "verbose_json"), 400, &["response_format=json"]);
    refused(&s, v1, clip().text("include[]", "tokens"), 400, &["logprobs"]);
    refused(&s, v1, clip().text("known_speaker_names[]", "agent"), 400, &["known_speaker_names[]", "diarization"]);
    refused(&s, v1, clip().text("known_speaker_references[]", "data:audio/wav;base64,AAAA"), 400, &["diarization"]);
    refused(&s, v1, clip().text("response_format", "diarized_json"), 400, &["diarization"]);
    refused(&s, v1, clip().text("languages[]", "en").text("languages[]", "de"), 400, &["languages[]"]);
    refused(&s, v1, clip().text("chunking_strategy[typo]", "server_vad"), 400, &["unknown form field `chunking_strategy[typo]`"]);
    refused(&s, v1, clip().text("chunking_strategy[type]", "server_vad").text("chunking_strategy[threshold]", "high"), 400, &["chunking_strategy[threshold]", "number"]);
    refused(&s, v1, clip().text("timestamp_granularity[]", "word"), 400, &["unknown form field `timestamp_granularity[]`"]);
    refused(&s, t, clip().text("hallucination_silence_threshold", "-1").text("word_timestamps", "true"), 400, &["hallucination_silence_threshold"]);
    refused(&s, v1, clip().text("stream", "sometimes"), 400, &["stream"]);
    refused(
        &s,
        v1,
        clip().text("language", "en").text("language", "en"),
        400,
        &["more than once"],
    );

    let r = Form::new().text("x", "y").post(&s.url(t));
    assert_eq!(r.status, 400);
    // Not multipart at all.
    let agent = ureq::AgentBuilder::new().build();
    for (ctype, body) in [
        ("application/json", "{\"file\": \"a.wav\"}"),
        ("multipart/form-data", "no boundary"),
    ] {
        let r = match agent
            .post(&s.url(v1))
            .set("Content-Type", ctype)
            .send_string(body)
        {
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            other => panic!("{other:?}"),
        };
        assert!(r.0 == 400 || r.0 == 415, "{r:?}");
        assert!(r.1.contains("multipart/form-data"), "{r:?}");
    }
    // A multipart body cut short.
    let full = clip().bytes();
    let r = match agent
        .post(&s.url(t))
        .set("Content-Type", &Form::new().content_type())
        .send_bytes(&full[..full.len() / 2])
    {
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        other => panic!("{other:?}"),
    };
    assert_eq!(r.0, 400, "{r:?}");

    // Still serving, correctly.
    let r = clip().text("beam_size", "1").post(&s.url(t));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["text"], GREEDY_0880);
    assert!(
        s.metric("amanuensis_http_requests_total{route=\"/transcribe\",status=\"400\"}") >= 15.0
    );
    assert_eq!(s.metric("amanuensis_jobs_total{outcome=\"failed\"}"), 0.0);
}

/// Sends raw bytes and returns what the server answers (until it closes or 10 s pass).
fn raw_exchange(addr: &str, head: &str, body: &[u8]) -> (String, Duration) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    let _ = c.write_all(head.as_bytes());
    let _ = c.write_all(body);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), t0.elapsed())
}

#[test]
fn uploads_over_the_limit_get_413_without_being_read() {
    let s = Server::start(&["--max-upload-mb", "1"]);
    let boundary = "b0undary";
    // Declared 500 MB, 100 bytes sent: the answer comes at once, from the header alone.
    let head = format!(
        "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 500000000\r\n\r\n"
    );
    let (resp, took) = raw_exchange(&s.addr(), &head, &[b'a'; 100]);
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(
        resp.contains("1 MB") && resp.contains("\"file_too_large\""),
        "{resp}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");

    // No Content-Length (chunked): reading stops at the limit.
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n\r\n").into_bytes();
    body.resize(body.len() + 1536 * 1024, 7u8);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut chunked = Vec::new();
    for piece in body.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (resp, _) = raw_exchange(&s.addr(), &head, &chunked);
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    // Just under the limit is fine.
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("beam_size", "1")
        .post(&s.url("/transcribe"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.metric(
            "amanuensis_http_requests_total{route=\"/v1/audio/transcriptions\",status=\"413\"}"
        ),
        1.0
    );
}

#[test]
fn slow_clients_time_out() {
    let s = Server::start(&["--read-timeout-secs", "1.5"]);
    // Headers complete, body trickles and stops: 408 after the read timeout.
    let head = "POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: 100000\r\n\r\n";
    let (resp, took) = raw_exchange(
        &s.addr(),
        head,
        b"--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF",
    );
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("not received within 1.5 s"), "{resp}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(8),
        "{took:?}"
    );
    // Headers never finished: the connection is closed.
    let (resp, took) = raw_exchange(
        &s.addr(),
        "POST /transcribe HTTP/1.1\r\nHost: x\r\nX-Slow:",
        b"",
    );
    assert!(!resp.contains("200 OK"), "{resp}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("beam_size", "1")
        .post(&s.url("/transcribe"));
    assert_eq!(r.status, 200);
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let s = Server::start(&["--workers", "1", "--queue", "1"]);
    let long = concatenated(&["s11", "s08", "s03", "s06"]);
    let url = s.url("/transcribe");
    std::thread::scope(|sc| {
        let post = || {
            Form::new()
                .file("file", "long.wav", &long)
                .text("beam_size", "1")
                .post(&url)
        };
        let first = sc.spawn(post);
        s.wait_for("the first job to run", |s| {
            s.metric("amanuensis_jobs_in_flight") == 1.0
        });
        let second = sc.spawn(post);
        s.wait_for("the second job to wait", |s| {
            s.metric("amanuensis_queue_depth") == 1.0
        });
        let third = Form::new().clip(LIBRIVOX_0880).post(&url);
        assert_eq!(third.status, 503, "{}", third.body);
        let retry: u64 = third
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry));
        assert!(third.error_message().contains("busy"));
        let h = get(&s.url("/health")).json();
        assert_eq!(
            (h["in_flight"].as_i64(), h["queue_depth"].as_i64()),
            (Some(1), Some(1))
        );
        for r in [first.join().unwrap(), second.join().unwrap()] {
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(r.json()["text"]
                .as_str()
                .unwrap()
                .contains("Scientists believe"));
        }
    });
    assert_eq!(
        Form::new()
            .clip(LIBRIVOX_0880)
            .text("beam_size", "1")
            .post(&url)
            .status,
        200
    );
}

#[test]
fn a_job_past_its_deadline_gets_504() {
    let s = Server::start(&["--job-timeout-secs", "0.05", "--workers", "1"]);
    // About 90 s of speech: three windows, far more than 0.05 s of work (each window alone is more).
    let long = concatenated(&["s11", "s08", "s03", "s06", "s10", "s05", "s11", "s08"]);
    let r = Form::new()
        .file("file", "long.wav", &long)
        .text("beam_size", "1")
        .post(&s.url("/transcribe"));
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(r.error_message().contains("time limit"));
    assert_eq!(s.metric("amanuensis_jobs_total{outcome=\"timeout\"}"), 1.0);
    // A streaming job that times out ends with an error event.
    let resp = Form::new()
        .file("file", "long.wav", &long)
        .text("stream", "true")
        .post_streaming(&s.url("/v1/audio/transcriptions"));
    let ev = read_events(resp, Instant::now());
    let last = &ev.last().unwrap().1;
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["status"], 504);
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("time limit"));
}

#[test]
fn a_panicking_job_fails_alone() {
    let s = Server::start_with(Options {
        args: vec!["--workers", "1"],
        env: vec![("AMANUENSIS_FAULT_PANIC_PROMPT", "explode")],
        ..Options::default()
    });
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("prompt", "explode")
        .post(&s.url("/v1/audio/transcriptions"));
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.error_message().contains("still running"));
    // The one worker survived and serves the next job correctly.
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("beam_size", "1")
        .post(&s.url("/transcribe"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["text"], GREEDY_0880);
    assert_eq!(s.metric("amanuensis_jobs_total{outcome=\"failed\"}"), 1.0);
}

#[test]
fn health_is_503_until_the_model_is_loaded() {
    let s = Server::start_with(Options {
        env: vec![("AMANUENSIS_FAULT_LOAD_DELAY_MS", "1500")],
        wait_ready: false,
        ..Options::default()
    });
    let h = get(&s.url("/health"));
    assert_eq!(h.status, 503, "{}", h.body);
    assert_eq!(h.json()["status"], "loading");
    assert!(h.header("retry-after").is_some());
    let r = Form::new().clip(LIBRIVOX_0880).post(&s.url("/transcribe"));
    assert_eq!(r.status, 503);
    assert!(r.error_message().contains("loading"));
    assert_eq!(s.metric("amanuensis_model_loaded"), 0.0);
    s.wait_ready();
    assert_eq!(s.metric("amanuensis_model_loaded"), 1.0);
    assert_eq!(
        Form::new()
            .clip(LIBRIVOX_0880)
            .text("beam_size", "1")
            .post(&s.url("/transcribe"))
            .json()["text"],
        GREEDY_0880
    );
}

#[test]
fn a_missing_model_stops_the_server_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amanuensis"))
        .args(["serve", "--port", "0", "--model", "/nonexistent/model-dir"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model-dir"), "{err}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_amanuensis"))
        .args(["serve", "--workers", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--workers"));
}

#[cfg(unix)]
#[test]
fn sigterm_finishes_in_flight_jobs_then_exits_0() {
    let mut s = Server::start(&["--workers", "1"]);
    let long = concatenated(&["s11", "s08", "s03"]);
    let url = s.url("/transcribe");
    let addr = s.addr();
    std::thread::scope(|sc| {
        let job = sc.spawn(|| {
            Form::new()
                .file("file", "long.wav", &long)
                .text("beam_size", "1")
                .post(&url)
        });
        s.wait_for("the job to start", |s| {
            s.metric("amanuensis_jobs_in_flight") == 1.0
        });
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &s.pid().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        // New connections are refused soon after the signal...
        let t0 = Instant::now();
        while TcpStream::connect(&addr).is_ok() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "still accepting connections after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // ...while the job in flight completes.
        let r = job.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let text = r.json()["text"].as_str().unwrap().to_string();
        assert!(
            text.contains("Scientists believe") && text.contains("strange lights"),
            "{text}"
        );
    });
    let mut child = s.child.take().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "stderr:\n{}", s.stderr());
}
