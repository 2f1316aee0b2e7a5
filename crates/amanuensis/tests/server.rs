//! Integration tests of `amanuensis serve`: the real binary on a free port with tiny.en, every
//! endpoint and response format with real speech, bad input, limits, load and shutdown.

mod server_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use server_support::{
    clips, concatenated, get, reference, reference_of, testdata, Form, Options, Server,
};

const LIBRIVOX_0880: &str = "audio/human/librivox_0880.wav";
const GREEDY_0880: &str = "He was not an old-sposed young man.";

#[test]
fn health_models_metrics_and_web_page() {
    let s = Server::start(&["--workers", "2", "--queue", "7"]);
    let h = get(&s.url("/health"));
    assert_eq!(h.status, 200, "{}", h.body);
    let h = h.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["model"], "tiny.en");
    assert_eq!(h["compute_type"], "f32");
    assert_eq!(h["workers"], 2);
    assert_eq!(h["queue_capacity"], 7);

    let m = get(&s.url("/v1/models"));
    assert_eq!(m.status, 200);
    let m = m.json();
    assert_eq!(m["object"], "list");
    let ids: Vec<&str> = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tiny.en", "whisper-1"]);
    for d in m["data"].as_array().unwrap() {
        assert_eq!(d["object"], "model");
        assert!(d["created"].as_u64().unwrap() > 1_600_000_000);
        assert!(d["owned_by"].is_string());
    }
    assert_eq!(
        get(&s.url("/v1/models/whisper-1")).json()["id"],
        "whisper-1"
    );
    let missing = get(&s.url("/v1/models/large-v3"));
    assert_eq!(missing.status, 404);
    assert!(missing.error_message().contains("tiny.en"));

    let page = get(&s.url("/"));
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    for id in [
        "id=\"file\"",
        "id=\"record\"",
        "id=\"segments\"",
        "id=\"dl-srt\"",
        "/app.js",
    ] {
        assert!(page.body.contains(id), "page lacks {id}");
    }
    let js = get(&s.url("/app.js"));
    assert_eq!(js.status, 200);
    assert!(js.body.contains("transcript.text.delta"));
    // The live microphone script and its audio worklet are served too.
    let live = get(&s.url("/live.js"));
    assert_eq!(live.status, 200);
    assert!(live.body.contains("getUserMedia") && live.body.contains("/v1/realtime"));
    assert_eq!(get(&s.url("/pcm-worklet.js")).status, 200);
    assert_eq!(get(&s.url("/player.js")).status, 200);
    assert_eq!(get(&s.url("/style.css")).status, 200);

    let nf = get(&s.url("/nope"));
    assert_eq!(nf.status, 404);
    assert!(nf.error_message().contains("/nope"));
    let wrong_method = get(&s.url("/transcribe"));
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.error_message().contains("GET"));

    let text = get(&s.url("/metrics"));
    assert_eq!(text.status, 200);
    assert!(text
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    for name in [
        "amanuensis_http_requests_total{route=\"/health\",status=\"200\"}",
        "amanuensis_audio_seconds_total",
        "amanuensis_processing_seconds_total",
        "amanuensis_queue_depth",
        "amanuensis_jobs_in_flight",
        "amanuensis_model_loaded 1",
        "amanuensis_workers 2",
    ] {
        assert!(
            text.body.contains(name),
            "metrics lack {name}:\n{}",
            text.body
        );
    }
    assert_eq!(
        s.metric("amanuensis_http_requests_total{route=\"other\",status=\"404\"}"),
        1.0
    );
}

#[test]
fn transcribe_endpoint_json_and_every_format() {
    let s = Server::start(&[]);
    let t0 = Instant::now();
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("beam_size", "1")
        .text("model", "tiny.en")
        .post(&s.url("/transcribe"));
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["text"], GREEDY_0880);
    assert_eq!(v["language"], "en");
    assert_eq!(v["model"], "tiny.en");
    assert!((v["duration"].as_f64().unwrap() - 2.99).abs() < 0.01, "{v}");
    let processing = v["processing_time"].as_f64().unwrap();
    assert!(processing > 0.0 && processing <= wall + 0.01, "{v}");
    let rtf = v["realtime_factor"].as_f64().unwrap();
    assert!(
        (rtf - processing / v["duration"].as_f64().unwrap()).abs() < 0.01,
        "{v}"
    );
    let job = v["job_id"].as_str().unwrap();
    assert!(job.starts_with("job_"));
    assert_eq!(r.header("x-job-id"), Some(job));
    let segs = v["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0]["id"], 0);
    assert_eq!(segs[0]["start"], 0.0);
    assert_eq!(segs[0]["end"], 3.0);
    assert_eq!(segs[0]["text"].as_str().unwrap().trim(), GREEDY_0880);

    let fmt = |f: &str| {
        let r = Form::new()
            .clip(LIBRIVOX_0880)
            .text("beam_size", "1")
            .text("response_format", f)
            .post(&s.url("/transcribe"));
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        assert!(r.header("x-job-id").is_some_and(|j| j.starts_with("job_")));
        r
    };
    let txt = fmt("text");
    assert_eq!(txt.body, format!("{GREEDY_0880}\n"));
    assert!(txt
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        fmt("srt").body,
        format!("1\n00:00:00,000 --> 00:00:03,000\n{GREEDY_0880}\n\n")
    );
    let vtt = fmt("vtt");
    assert_eq!(
        vtt.body,
        format!("WEBVTT\n\n00:00:00.000 --> 00:00:03.000\n{GREEDY_0880}\n\n")
    );
    assert!(vtt.header("content-type").unwrap().starts_with("text/vtt"));
    let vj = fmt("verbose_json").json();
    assert_eq!(vj["task"], "transcribe");
    assert_eq!(vj["text"], GREEDY_0880);
    assert!(vj["segments"][0]["tokens"].as_array().unwrap().len() > 5);
    assert!(vj["segments"][0]["avg_logprob"].is_number());
    // Explicit "off" switches are accepted.
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("beam_size", "1")
        .text("vad_filter", "false")
        .text("word_timestamps", "false")
        .text("language", "en")
        .text("task", "transcribe")
        .post(&s.url("/transcribe"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["text"], GREEDY_0880);
}

#[test]
fn openai_transcriptions_and_translations() {
    let s = Server::start(&[]);
    let b5 = reference(5);
    let url = s.url("/v1/audio/transcriptions");
    // Default beam (5), OpenAI's default response (json with only `text`).
    for model in ["whisper-1", "tiny.en"] {
        let r = Form::new()
            .clip("audio/human/arctic_a0007.wav")
            .text("model", model)
            .post(&url);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["text"], b5["arctic_a0007"].as_str());
        assert_eq!(v["usage"]["type"], "duration");
        assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
        assert!(r.header("x-job-id").is_some());
    }
    let post = |fields: &[(&str, &str)]| {
        let mut f = Form::new()
            .clip("audio/tts/s03.wav")
            .text("model", "whisper-1");
        for (k, v) in fields {
            f = f.text(k, v);
        }
        let r = f.post(&url);
        assert_eq!(r.status, 200, "{fields:?}: {}", r.body);
        r
    };
    let want = &b5["s03"];
    assert_eq!(
        post(&[("response_format", "text")]).body,
        format!("{want}\n")
    );
    // Subtitles: cue text joined up is the transcript.
    let cue_text = |body: &str| {
        body.split("\n\n")
            .filter_map(|cue| cue.lines().skip_while(|l| !l.contains(" --> ")).nth(1))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let srt = post(&[("response_format", "srt"), ("language", "en")]).body;
    assert!(srt.starts_with("1\n00:00:00,000 --> "), "{srt}");
    assert_eq!(&cue_text(&srt), want, "{srt}");
    let vtt = post(&[("response_format", "vtt"), ("temperature", "0")]).body;
    assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> "), "{vtt}");
    assert_eq!(&cue_text(&vtt), want, "{vtt}");
    let vj = post(&[
        ("response_format", "verbose_json"),
        ("timestamp_granularities[]", "segment"),
    ])
    .json();
    assert_eq!(vj["text"], want.as_str());
    assert_eq!(vj["language"], "english");
    assert!((vj["duration"].as_f64().unwrap() - 9.33).abs() < 0.01);
    assert_eq!(vj["segments"][0]["id"], 0);
    // A prompt conditions the decoder and is accepted; the transcript still says the words.
    let prompted = post(&[
        ("prompt", "Children, morning, hills."),
        ("response_format", "json"),
    ])
    .json();
    assert!(
        prompted["text"]
            .as_str()
            .unwrap()
            .contains("strange lights"),
        "{prompted}"
    );
    // A fixed non-zero temperature samples; the speech is clear enough to survive it.
    let sampled = post(&[("temperature", "0.2")]).json();
    assert!(
        sampled["text"].as_str().unwrap().contains("children"),
        "{sampled}"
    );

    // Translation needs a multilingual model: an English-only one says so before any work.
    for (path, extra) in [
        ("/v1/audio/translations", ("model", "whisper-1")),
        ("/transcribe", ("task", "translate")),
    ] {
        for stream in ["false", "true"] {
            let r = Form::new()
                .clip(LIBRIVOX_0880)
                .text(extra.0, extra.1)
                .text("stream", stream)
                .post(&s.url(path));
            assert_eq!(r.status, 400, "{}", r.body);
            assert!(r
                .error_message()
                .contains("English-only and cannot translate"));
        }
    }
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("language", "en")
        .post(&s.url("/v1/audio/translations"));
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("unknown form field `language`"));
}

/// With a multilingual model (base, when installed): language detection, language names,
/// and translation (of English speech, the only speech in testdata).
#[test]
fn multilingual_model_detects_languages_and_translates() {
    let Some(s) = Server::try_start_with(Options {
        model: "base",
        ..Options::default()
    }) else {
        return;
    };
    let b1 = reference_of("base", 1);
    let url = s.url("/v1/audio/transcriptions");
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("beam_size", "1")
        .text("response_format", "verbose_json")
        .post(&url);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["language"], "english", "detected language");
    assert_eq!(v["text"], b1["librivox_0880"]);
    for lang in ["en", "English", "EN"] {
        let r = Form::new()
            .clip(LIBRIVOX_0880)
            .text("beam_size", "1")
            .text("language", lang)
            .post(&url);
        assert_eq!(r.status, 200, "{lang}: {}", r.body);
        assert_eq!(r.json()["text"], b1["librivox_0880"]);
    }
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("language", "xx")
        .post(&url);
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("unknown language `xx`"));
    let r = Form::new()
        .clip(LIBRIVOX_0880)
        .text("model", "base")
        .text("beam_size", "1")
        .text("response_format", "verbose_json")
        .post(&s.url("/v1/audio/translations"));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["task"], "translate");
    assert_eq!(v["language"], "english", "the translation's language");
    assert!(v.get("usage").is_none(), "OpenAI's translations carry no usage: {v}");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("young man"),
        "{v}"
    );
    let resp = Form::new()
        .clip(LIBRIVOX_0880)
        .text("stream", "true")
        .text("beam_size", "1")
        .post_streaming(&s.url("/v1/audio/translations"));
    let ev = read_events(resp, Instant::now());
    assert_eq!(ev.last().unwrap().1["type"], "transcript.text.done");
}

#[test]
fn every_container_the_decoder_reads() {
    let s = Server::start(&[]);
    // Uploaded with their names (the extension is a hint; the content is probed).
    for (file, exact) in [
        ("librivox_0880.flac", true),
        ("librivox_0880_s24.wav", true),
        ("librivox_0880_44k_stereo.mp3", false),
        ("librivox_0880.ogg", false),
        ("librivox_0880_48k.m4a", false),
    ] {
        let r = Form::new()
            .clip(&format!("audio/formats/{file}"))
            .text("beam_size", "1")
            .post(&s.url("/transcribe"));
        assert_eq!(r.status, 200, "{file}: {}", r.body);
        let text = r.json()["text"].as_str().unwrap().to_string();
        if exact {
            assert_eq!(text, GREEDY_0880, "{file}");
        } else {
            assert!(text.contains("young man"), "{file}: {text}");
        }
    }
}

/// Sixteen clients at once, each with its own clips (every clip of testdata, at the server's
/// default beam 5): every transcript must be faster-whisper's for that very clip.
#[test]
fn sixteen_concurrent_clients_get_their_own_transcripts() {
    let s = Server::start(&["--workers", "4", "--queue", "32"]);
    let b5 = reference(5);
    let all = clips();
    let clients = 16;
    let url = s.url("/v1/audio/transcriptions");
    let barrier = std::sync::Barrier::new(clients);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(String, u16, String, String)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (url, barrier, next, all) = (&url, &barrier, &next, &all);
                sc.spawn(move || {
                    let mut out = Vec::new();
                    barrier.wait();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(c) = all.get(i) else { break };
                        let r = Form::new()
                            .clip(&c.file)
                            .text("model", "whisper-1")
                            .post(url);
                        let job = r.header("x-job-id").unwrap_or("").to_string();
                        out.push((
                            c.id.clone(),
                            r.status,
                            r.json()["text"].as_str().unwrap_or("").to_string(),
                            job,
                        ));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(results.len(), all.len());
    let mut jobs = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for (id, status, text, job) in &results {
        assert_eq!(*status, 200, "{id}: {text}");
        if text != &b5[id] {
            wrong.push(format!("{id}: `{text}`, want `{}`", b5[id]));
        }
        assert!(jobs.insert(job.clone()), "job id {job} given twice");
    }
    assert!(
        wrong.is_empty(),
        "transcripts differ from faster-whisper's:\n{}",
        wrong.join("\n")
    );
    let n = all.len() as f64;
    assert_eq!(
        s.metric(
            "amanuensis_http_requests_total{route=\"/v1/audio/transcriptions\",status=\"200\"}"
        ),
        n
    );
    assert_eq!(s.metric("amanuensis_jobs_total{outcome=\"ok\"}"), n);
    let audio: f64 = all.iter().map(|c| c.seconds).sum();
    assert!((s.metric("amanuensis_audio_seconds_total") - audio).abs() < 0.1);
    assert!(s.metric("amanuensis_processing_seconds_total") > 0.0);
    assert_eq!(s.metric("amanuensis_queue_depth"), 0.0);
    assert_eq!(s.metric("amanuensis_jobs_in_flight"), 0.0);
    // Waiting jobs' windows went through the encoder together.
    let (batches, windows) = (
        s.metric("amanuensis_encoder_batches_total"),
        s.metric("amanuensis_encoder_windows_total"),
    );
    assert_eq!(windows, n);
    assert!(
        batches < windows,
        "no encoder batching: {batches} batches for {windows} windows"
    );
    // The requests' windows were decoded together in the continuous batch.
    let (passes, sequences) = (
        s.metric("amanuensis_decoder_passes_total"),
        s.metric("amanuensis_decoder_sequences_total"),
    );
    assert!(
        sequences > 1.5 * passes,
        "decoder passes not shared: {sequences} windows over {passes} passes"
    );
    assert!(s.metric("amanuensis_decoder_rows_total") >= sequences);
}

/// Requests decoded together share decoder passes (one continuous batch), and each still gets
/// exactly the transcript it gets alone: the same segments, times and tokens.
#[test]
fn concurrent_requests_share_decoder_passes_and_keep_their_transcripts() {
    let s = Server::start(&["--workers", "4"]);
    // Two windows each (30-45 s), different speech, so the requests overlap for several windows.
    let inputs = [
        concatenated(&["s11", "s08", "s03"]),
        concatenated(&["s06", "s10", "s05", "s08"]),
        concatenated(&["s03", "s11", "s06"]),
        concatenated(&["s08", "s05", "s11"]),
    ];
    let url = s.url("/v1/audio/transcriptions");
    let post = |wav: &Vec<u8>| {
        let r = Form::new()
            .file("file", "long.wav", wav)
            .text("response_format", "verbose_json")
            .post(&url);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let segs: Vec<(String, f64, f64, serde_json::Value)> = v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["text"].as_str().unwrap().to_string(),
                    g["start"].as_f64().unwrap(),
                    g["end"].as_f64().unwrap(),
                    g["tokens"].clone(),
                )
            })
            .collect();
        (v["text"].as_str().unwrap().to_string(), segs)
    };
    let alone: Vec<_> = inputs.iter().map(post).collect();
    let (passes0, sequences0) = (
        s.metric("amanuensis_decoder_passes_total"),
        s.metric("amanuensis_decoder_sequences_total"),
    );
    // One request at a time: one window per pass.
    assert!(passes0 > 0.0);
    assert_eq!(passes0, sequences0);
    let barrier = std::sync::Barrier::new(inputs.len());
    let together: Vec<_> = std::thread::scope(|sc| {
        let handles: Vec<_> = inputs
            .iter()
            .map(|wav| {
                let (barrier, post) = (&barrier, &post);
                sc.spawn(move || {
                    barrier.wait();
                    post(wav)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert!(a.1.len() >= 2, "request {i}: {}", a.0);
        assert_eq!(a, t, "request {i}: the batched transcript differs from the one alone");
    }
    let passes = s.metric("amanuensis_decoder_passes_total") - passes0;
    let sequences = s.metric("amanuensis_decoder_sequences_total") - sequences0;
    assert!(
        sequences > 1.5 * passes,
        "4 concurrent requests did not share decoder passes: {sequences} windows over {passes} passes"
    );
    assert_eq!(s.metric("amanuensis_jobs_in_flight"), 0.0);
    assert_eq!(s.metric("amanuensis_jobs_total{outcome=\"ok\"}"), 8.0);
}

/// Reads server-sent events: (seconds since start, JSON) per `data:` line.
fn read_events(resp: ureq::Response, t0: Instant) -> Vec<(f64, serde_json::Value)> {
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

#[test]
fn streaming_sends_segments_as_they_are_decoded() {
    let s = Server::start(&[]);
    // 34 s: two 30 s windows, so the first window's segments exist before the second is decoded.
    let audio = concatenated(&["s11", "s08"]);
    let t0 = Instant::now();
    let resp = Form::new()
        .file("file", "long.wav", &audio)
        .text("stream", "true")
        .text("beam_size", "1")
        .post_streaming(&s.url("/v1/audio/transcriptions"));
    assert_eq!(resp.status(), 200);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let job = resp.header("x-job-id").unwrap().to_string();
    let events = read_events(resp, t0);
    let (last_t, done) = events.last().unwrap();
    assert_eq!(done["type"], "transcript.text.done", "{done}");
    assert_eq!(done["job_id"], job.as_str());
    let deltas: Vec<_> = events[..events.len() - 1].iter().collect();
    assert!(deltas.len() >= 2, "{events:?}");
    let mut text = String::new();
    for (i, (_, d)) in deltas.iter().enumerate() {
        assert_eq!(d["type"], "transcript.text.delta");
        assert_eq!(d["segment"]["id"], i);
        assert_eq!(d["delta"], d["segment"]["text"]);
        text += d["delta"].as_str().unwrap();
    }
    assert_eq!(text.trim(), done["text"].as_str().unwrap());
    assert_eq!(done["segments"].as_array().unwrap().len(), deltas.len());
    let full = done["text"].as_str().unwrap();
    assert!(
        full.contains("Scientists believe") && full.contains("the train finally arrived"),
        "{full}"
    );
    assert!(
        (done["duration"].as_f64().unwrap() - 34.18).abs() < 0.1,
        "{done}"
    );
    // Live: the first segment arrived well before the end.
    assert!(
        deltas[0].0 + 0.05 < *last_t,
        "first segment at {} s, done at {last_t} s",
        deltas[0].0
    );

    // The same on /transcribe.
    let resp = Form::new()
        .clip(LIBRIVOX_0880)
        .text("stream", "true")
        .text("beam_size", "1")
        .post_streaming(&s.url("/transcribe"));
    let ev = read_events(resp, t0);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1].1["text"], GREEDY_0880);
}

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
