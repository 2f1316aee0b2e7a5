//! Tests of the streaming transcriber with fake decoders (no model).

use super::*;
use crate::transcribe::Segment;
use turns::tests::Level;

/// Speech whose every sample names its stream second: 0.6 + s / 100.
fn speech(from: usize, seconds: usize) -> Vec<f32> {
    (from..from + seconds).flat_map(|s| std::iter::repeat_n(0.6 + s as f32 / 100.0, SAMPLE_RATE)).collect()
}

/// A fake decoder: one word per whole second of speech it is given, named by the stream
/// second the audio came from, and a word collapsed onto the end of the audio.
fn decode(samples: &[f32]) -> Transcript {
    let end = samples.len() as f64 / SAMPLE_RATE as f64;
    let mut words: Vec<Word> = samples
        .chunks(SAMPLE_RATE)
        .enumerate()
        .filter(|(_, c)| c.len() == SAMPLE_RATE && c[SAMPLE_RATE / 2] > 0.5)
        .map(|(k, c)| Word { word: format!(" s{}", ((c[SAMPLE_RATE / 2] - 0.6) * 100.0).round()), start: k as f64 + 0.1, end: k as f64 + 0.9, probability: 0.9 })
        .collect();
    words.push(Word { word: " ghost".into(), start: end, end, probability: 0.1 });
    let segment = Segment { id: 0, seek: 0, start: 0.0, end, text: join(&words), tokens: Vec::new(), temperature: 0.0, avg_logprob: -0.1, compression_ratio: 1.0, no_speech_prob: 0.0, words: Some(words) };
    Transcript { language: "en".into(), language_probability: 1.0, duration: end, segments: vec![segment] }
}

/// Feeds `audio` to `st` in 100 ms chunks, runs every due decoding with `decoder`, then
/// finishes the stream and decodes until nothing is due; returns every event.
fn run(st: &mut StreamingTranscriber, audio: &[f32], decoder: impl FnMut(&[f32]) -> Transcript) -> Vec<StreamEvent> {
    run_fed(st, audio, SAMPLE_RATE / 10, 1, decoder)
}

/// [`run`] in chunks of `chunk` samples, the due decodings run after every `decode_every`-th
/// chunk (a decoder that returns later).
fn run_fed(st: &mut StreamingTranscriber, audio: &[f32], chunk: usize, decode_every: usize, mut decoder: impl FnMut(&[f32]) -> Transcript) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    for (k, c) in audio.chunks(chunk).enumerate() {
        st.push(c).unwrap();
        if k % decode_every == decode_every - 1 {
            while let Some(req) = st.next_decode() {
                st.complete(Ok(decoder(&req.samples)));
            }
        }
        events.extend(st.take_events());
    }
    st.finish();
    while let Some(req) = st.next_decode() {
        st.complete(Ok(decoder(&req.samples)));
    }
    events.extend(st.take_events());
    events
}

#[test]
fn utterances_are_decoded_after_the_speech_before_them_without_the_silence_between() {
    let turns = TurnOptions { threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 };
    let opts = LiveOptions { turns: Some(turns), ..LiveOptions::default() };
    let mut st = StreamingTranscriber::new(opts, Some(Box::new(Level))).unwrap();
    let mut audio = vec![0.0; SAMPLE_RATE];
    audio.extend(speech(1, 3)); // utterance 0: stream seconds 1..4
    audio.extend(vec![0.0; 5 * SAMPLE_RATE]);
    audio.extend(speech(9, 3)); // utterance 1: stream seconds 9..12
    audio.extend(vec![0.0; 2 * SAMPLE_RATE]);
    let mut requests = Vec::new();
    let events = run(&mut st, &audio, |samples| {
        requests.push(samples.to_vec());
        decode(samples)
    });
    assert!(st.is_idle());
    // Utterance 1's first decoding holds utterance 0's speech before its own, and not the
    // 5 s of silence between them.
    let first_of_1 = requests.iter().find(|r| r.iter().any(|&x| (x - 0.69).abs() < 1e-4)).expect("utterance 1 decoded");
    assert!((first_of_1[SAMPLE_RATE / 2 * 3] - 0.61).abs() < 0.02, "utterance 0's audio comes first");
    assert!(first_of_1.len() < 7 * SAMPLE_RATE, "{} s decoded: the pause was kept", first_of_1.len() / SAMPLE_RATE);
    let completed: Vec<(u64, Vec<Word>)> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Completed { utterance, words, .. } => Some((*utterance, words.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(completed.len(), 2, "{events:#?}");
    assert_eq!(join(&completed[0].1), "s1 s2 s3");
    assert_eq!(join(&completed[1].1), "s9 s10 s11");
    // Words carry stream times: each word lies in the second it names.
    for (_, words) in &completed {
        for w in words {
            let s: f64 = w.word.trim()[1..].parse().unwrap();
            assert!(w.start >= s - 0.35 && w.end <= s + 1.35, "{w:?}");
        }
    }
    // The deltas of each utterance add up to its completed words.
    for (id, words) in &completed {
        let deltas: Vec<Word> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Committed { utterance, words } if utterance == id => Some(words.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(&deltas, words);
    }
}

/// A finer fake decoder: a word per whole half second of audio.
fn decode_halves(samples: &[f32]) -> Transcript {
    let end = samples.len() as f64 / SAMPLE_RATE as f64;
    let words: Vec<Word> = (0..(2.0 * end) as usize)
        .map(|k| Word { word: format!(" h{k}"), start: k as f64 * 0.5 + 0.05, end: k as f64 * 0.5 + 0.45, probability: 0.9 })
        .collect();
    let segment = Segment { id: 0, seek: 0, start: 0.0, end, text: join(&words), tokens: Vec::new(), temperature: 0.0, avg_logprob: -0.1, compression_ratio: 1.0, no_speech_prob: 0.0, words: Some(words) };
    Transcript { language: "en".into(), language_probability: 1.0, duration: end, segments: vec![segment] }
}

#[test]
fn a_new_utterance_is_peeked_at_for_its_first_partial_without_committing() {
    let mut st = StreamingTranscriber::new(LiveOptions::default(), None).unwrap();
    let audio = speech(0, 3);
    let (mut lengths, mut first_partial, mut first_commit) = (Vec::new(), None, None);
    let mut events = Vec::new();
    for chunk in audio.chunks(SAMPLE_RATE / 10) {
        st.push(chunk).unwrap();
        while let Some(req) = st.next_decode() {
            lengths.push((req.samples.len() * 10 / SAMPLE_RATE) as u32);
            st.complete(Ok(decode_halves(&req.samples)));
        }
        for e in st.take_events() {
            match &e {
                StreamEvent::Partial { words, .. } if !words.is_empty() && first_partial.is_none() => first_partial = Some(st.received_seconds()),
                StreamEvent::Committed { .. } if first_commit.is_none() => first_commit = Some(st.received_seconds()),
                _ => {}
            }
            events.push(e);
        }
    }
    st.finish();
    while let Some(req) = st.next_decode() {
        lengths.push((req.samples.len() * 10 / SAMPLE_RATE) as u32);
        st.complete(Ok(decode_halves(&req.samples)));
    }
    events.extend(st.take_events());
    // The peek at 0.6 s shows "h0"; the steps (1 s, 2 s, 3 s) and the end decode as before,
    // and no peek follows once text is shown.
    assert_eq!(lengths, [6, 10, 20, 30, 30]);
    assert!(first_partial.is_some_and(|t| (t - 0.6).abs() < 1e-9), "first partial at {first_partial:?} s");
    // Nothing is committed before two steps agree (LocalAgreement-2): the peek is not one.
    assert!(first_commit.is_some_and(|t| t >= 2.0 - 1e-9), "first commit at {first_commit:?} s");
    let completed = events.iter().find_map(|e| match e {
        StreamEvent::Completed { words, .. } => Some(join(words)),
        _ => None,
    });
    assert_eq!(completed.as_deref(), Some("h0 h1 h2 h3 h4 h5"));
}

#[test]
fn words_the_alignment_found_no_time_for_are_never_committed() {
    // The fake decoder's words, with three invented in one instant after the first second's
    // word (as the decoder squeezes a hallucinated clause between real words).
    let decode_squeezed = |samples: &[f32]| {
        let mut t = decode(samples);
        let words = t.segments[0].words.as_mut().unwrap();
        if !words.is_empty() {
            let at = words[0].end;
            for (k, w) in [" the", " library", " is"].into_iter().enumerate() {
                words.insert(1 + k, Word { word: w.into(), start: at, end: at + 0.001, probability: 0.1 });
            }
        }
        t
    };
    let mut st = StreamingTranscriber::new(LiveOptions::default(), None).unwrap();
    let events = run(&mut st, &speech(0, 4), decode_squeezed);
    let shown: Vec<String> = events
        .iter()
        .flat_map(|e| match e {
            StreamEvent::Committed { words, .. } | StreamEvent::Partial { words, .. } | StreamEvent::Completed { words, .. } => words.clone(),
            _ => Vec::new(),
        })
        .map(|w| w.word)
        .collect();
    assert!(!shown.iter().any(|w| w.contains("library") || w.contains("ghost")), "{shown:?}");
    let completed = events.iter().find_map(|e| match e {
        StreamEvent::Completed { words, .. } => Some(join(words)),
        _ => None,
    });
    assert_eq!(completed.as_deref(), Some("s0 s1 s2 s3"));
}

/// The committed and completed events of a turn-detected stream fed as [`run_fed`] does.
fn commits_when_fed(audio: &[f32], chunk: usize, decode_every: usize, decoder: &dyn Fn(&[f32]) -> Transcript) -> Vec<StreamEvent> {
    let turns = TurnOptions { threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 };
    let opts = LiveOptions { turns: Some(turns), ..LiveOptions::default() };
    let mut st = StreamingTranscriber::new(opts, Some(Box::new(Level))).unwrap();
    let mut events = run_fed(&mut st, audio, chunk, decode_every, decoder);
    events.retain(|e| matches!(e, StreamEvent::Committed { .. } | StreamEvent::Completed { .. }));
    events
}

#[test]
fn the_committed_text_does_not_depend_on_chunk_sizes_or_decoding_delays() {
    // A decoder whose every word time moves with the exact length it is given: any
    // difference in what the decodings covered shows in the committed words.
    let sensitive = |samples: &[f32]| {
        let mut t = decode(samples);
        let jitter = (samples.len() % 1000) as f64 * 1e-5;
        for w in t.segments[0].words.as_mut().unwrap() {
            w.start += jitter;
            w.end += jitter;
        }
        t
    };
    // Leading silences of different lengths move every boundary against the chunks.
    for lead in [8_000, 10_400, 12_800, 15_200] {
        let mut audio = vec![0.0; lead];
        audio.extend(speech(1, 7)); // a long utterance: several steps
        audio.extend(vec![0.0; 3 * SAMPLE_RATE]);
        audio.extend(speech(11, 4));
        audio.extend(vec![0.0; SAMPLE_RATE]);
        // Short utterances: in 1 s chunks one's end and a step's boundary can come together.
        audio.extend(&speech(16, 2)[..SAMPLE_RATE * 13 / 10]);
        audio.extend(vec![0.0; SAMPLE_RATE * 7 / 10]);
        audio.extend(&speech(19, 2)[..SAMPLE_RATE * 17 / 10]);
        audio.extend(vec![0.0; 2 * SAMPLE_RATE]);
        let reference = commits_when_fed(&audio, SAMPLE_RATE / 10, 1, &sensitive);
        assert!(reference.iter().filter(|e| matches!(e, StreamEvent::Completed { .. })).count() == 4, "{reference:#?}");
        // Odd chunk sizes up to a step, and decodings that return up to 0.6 s late (within a
        // step): a decoder that keeps up.
        for (chunk, every) in [(1733, 1), (37 * 16, 1), (SAMPLE_RATE / 10, 3), (SAMPLE_RATE / 5, 3), (SAMPLE_RATE, 1)] {
            let events = commits_when_fed(&audio, chunk, every, &sensitive);
            assert_eq!(events, reference, "lead {lead}: fed in chunks of {chunk} samples, decoded every {every} chunks");
        }
    }
}

#[test]
fn a_decoding_below_the_log_probability_threshold_commits_nothing() {
    // On less than 2.5 s of audio the fake decoder says the same invented words every time
    // (so two decodings agree on them), with the average log-probability of a guess.
    let guessing = |samples: &[f32]| {
        let mut t = decode(samples);
        if samples.len() < SAMPLE_RATE * 5 / 2 {
            let s = &mut t.segments[0];
            s.avg_logprob = -1.4;
            s.words = Some(vec![Word { word: " check".into(), start: 0.2, end: 0.6, probability: 0.3 }, Word { word: " in".into(), start: 0.7, end: 0.9, probability: 0.4 }]);
        }
        t
    };
    let mut st = StreamingTranscriber::new(LiveOptions::default(), None).unwrap();
    let events = run(&mut st, &speech(0, 5), guessing);
    let shown: Vec<String> = events
        .iter()
        .flat_map(|e| match e {
            StreamEvent::Committed { words, .. } | StreamEvent::Partial { words, .. } => words.clone(),
            _ => Vec::new(),
        })
        .map(|w| w.word)
        .collect();
    assert!(!shown.iter().any(|w| w.contains("check")), "{shown:?}");
    let completed = events.iter().find_map(|e| match e {
        StreamEvent::Completed { words, .. } => Some(join(words)),
        _ => None,
    });
    assert_eq!(completed.as_deref(), Some("s0 s1 s2 s3 s4"));
    // Without the threshold the guess is committed: the test sees what it guards.
    let mut opts = LiveOptions::default();
    opts.transcribe.log_prob_threshold = None;
    let mut st = StreamingTranscriber::new(opts, None).unwrap();
    let events = run(&mut st, &speech(0, 5), guessing);
    assert!(events.iter().any(|e| matches!(e, StreamEvent::Committed { words, .. } if words.iter().any(|w| w.word.contains("check")))));
}
