//! Integration tests of `amanuensis serve`: the real binary on a free port with tiny.en, every
//! endpoint and response format with real speech, concurrency and streaming. Bad input,
//! limits, overload and shutdown are in `server_faults.rs`.

mod server_support;

use std::time::Instant;

use server_support::{
    clips, concatenated, get, read_events, reference, reference_of, Form, Options, Server, GREEDY_0880,
    LIBRIVOX_0880,
};


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
