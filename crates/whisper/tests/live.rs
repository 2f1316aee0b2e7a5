//! Live transcription (`whisper::live`) with a real model (tiny.en, int8): speech streamed in
//! chunks gives committed text close to the offline transcript, deltas add up to each
//! utterance's final text, the buffer stays under 30 s, and with turn detection (Silero VAD,
//! when installed; required under CI) each sentence between pauses is one utterance and
//! silence gives nothing.

use std::path::Path;

use whisper::compute::{Cpu, WeightType};
use whisper::eval::{normalize, word_errors};
use whisper::live::{decode_alone, join, LiveOptions, StreamEvent, StreamingTranscriber, TurnOptions};
use whisper::model::Whisper;
use whisper::transcribe::{TranscribeOptions, Transcriber};
use whisper::vad::{SileroVad, Vad};
use whisper::words::Word;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn model() -> Whisper {
    let dir = whisper::testing::model_dir("tiny.en").expect("tiny.en is always required");
    Whisper::load(&dir, Box::new(Cpu::new(WeightType::Int8))).unwrap()
}

fn clip(name: &str) -> Vec<f32> {
    whisper::audio::load_audio(&Path::new(TESTDATA).join("audio").join(name)).unwrap()
}

fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (seconds * 16000.0) as usize]
}

/// (reference text, audio) of speech clips joined with `gap` seconds of silence.
fn joined(names: &[(&str, &str)], gap: f64) -> (String, Vec<f32>) {
    let mut audio = silence(0.5);
    let mut text = Vec::new();
    for (file, reference) in names {
        audio.extend(clip(file));
        audio.extend(silence(gap));
        text.push(*reference);
    }
    (text.join(" "), audio)
}

const SENTENCES: [(&str, &str); 3] = [
    ("tts/s11.wav", "Scientists believe that the ancient forest once covered most of the valley, but farming and fires slowly pushed the trees back toward the mountains, where only a few old oaks remain today. Local volunteers now plant new seedlings every spring, hoping that their grandchildren will walk under a green roof again."),
    ("tts/s08.wav", "When the train finally arrived at the small mountain station, the passengers stepped out into the fresh air, stretched their legs, and looked around at the snow covered peaks that surrounded the quiet village on every side."),
    ("human/librivox_0870.wav", "and mister john dashwood had then leisure to consider how much there might be prudently in his power to do for them"),
];

fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = normalize(reference);
    word_errors(&r, &normalize(hypothesis)) as f64 / r.len() as f64
}

/// What a run of a stream produced.
#[derive(Default)]
struct Run {
    /// Per utterance: the committed deltas in order, and the completed words.
    deltas: Vec<Vec<Word>>,
    completed: Vec<Option<Vec<Word>>>,
    started: Vec<f64>,
    stopped: Vec<f64>,
    partials: usize,
    longest_decode: usize,
    failures: Vec<String>,
}

impl Run {
    fn take(&mut self, events: Vec<StreamEvent>) {
        for e in events {
            let slot = |v: &mut Vec<Vec<Word>>, u: u64| {
                while v.len() <= u as usize {
                    v.push(Vec::new());
                }
            };
            match e {
                StreamEvent::Committed { utterance, words } => {
                    slot(&mut self.deltas, utterance);
                    self.deltas[utterance as usize].extend(words);
                }
                StreamEvent::Completed { utterance, words, .. } => {
                    while self.completed.len() <= utterance as usize {
                        self.completed.push(None);
                    }
                    assert!(self.completed[utterance as usize].is_none(), "utterance {utterance} completed twice");
                    self.completed[utterance as usize] = Some(words);
                }
                StreamEvent::SpeechStarted { at, .. } => self.started.push(at),
                StreamEvent::SpeechStopped { at, .. } => self.stopped.push(at),
                StreamEvent::Partial { words, .. } => self.partials += !words.is_empty() as usize,
                StreamEvent::Ended { .. } => {}
                StreamEvent::Failed { message, .. } => self.failures.push(message),
            }
        }
    }

    fn text(&self) -> String {
        self.completed.iter().flatten().map(|w| join(w)).collect::<Vec<_>>().join(" ")
    }
}

/// Streams `audio` in `chunk`-second pieces, decoding whatever is due after each (the
/// stream never waits for the decoder: a simulation of a live source at the decoder's pace).
fn stream(tr: &Transcriber<'_>, opts: LiveOptions, vad: Option<Box<dyn Vad + Send>>, audio: &[f32], chunk: f64) -> Run {
    let mut st = StreamingTranscriber::new(opts, vad).unwrap();
    let mut run = Run::default();
    let n = (chunk * 16000.0) as usize;
    let drive = |st: &mut StreamingTranscriber, run: &mut Run| {
        while let Some(req) = st.next_decode() {
            run.longest_decode = run.longest_decode.max(req.samples.len());
            let r = tr.transcribe(&req.samples, &req.options, &mut |_| {});
            st.complete(r);
            run.take(st.take_events());
        }
        run.take(st.take_events());
    };
    for piece in audio.chunks(n) {
        st.push(piece).unwrap();
        drive(&mut st, &mut run);
    }
    st.finish();
    drive(&mut st, &mut run);
    assert!(st.is_idle());
    run
}

fn check_consistent(run: &Run) {
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    for (u, done) in run.completed.iter().enumerate() {
        let done = done.as_ref().unwrap_or_else(|| panic!("utterance {u} never completed"));
        let deltas = run.deltas.get(u).cloned().unwrap_or_default();
        assert_eq!(&deltas, done, "utterance {u}: the deltas do not add up to the completed words");
        for w in done.windows(2) {
            assert!(w[1].start + 0.2 >= w[0].start, "word times go back: {w:?}");
        }
    }
    assert!(run.longest_decode <= 30 * 16000, "a decoding covered {} samples (> 30 s)", run.longest_decode);
}

#[test]
fn streamed_speech_gives_the_offline_text_without_turn_detection() {
    let model = model();
    let tr = Transcriber::new(&model).unwrap();
    let (reference, audio) = joined(&SENTENCES, 1.0);
    let offline_opts = TranscribeOptions { beam_size: 1, ..TranscribeOptions::default() };
    let offline = tr.transcribe(&audio, &offline_opts, &mut |_| {}).unwrap().text();
    let run = stream(&tr, LiveOptions::default(), None, &audio, 0.25);
    check_consistent(&run);
    assert_eq!(run.completed.len(), 1, "one utterance without turn detection");
    assert!(run.partials > 5, "partial text was shown {} times", run.partials);
    let (live_wer, offline_wer) = (wer(&reference, &run.text()), wer(&reference, &offline));
    eprintln!("live WER {live_wer:.3} offline WER {offline_wer:.3}\nlive: {}\noffline: {offline}", run.text());
    assert!(live_wer <= offline_wer + 0.05, "live WER {live_wer:.3} vs offline {offline_wer:.3}: {}", run.text());
    // Text was committed before the end: at least half of it by deltas before the last decoding.
    assert!(run.deltas[0].len() >= 10);
}

#[test]
fn commit_ends_an_utterance_and_clear_drops_one() {
    let model = model();
    let tr = Transcriber::new(&model).unwrap();
    let mut st = StreamingTranscriber::new(LiveOptions::default(), None).unwrap();
    let mut run = Run::default();
    assert_eq!(st.commit(), None, "nothing to commit in an empty buffer");
    st.push(&clip("human/librivox_0880.wav")).unwrap();
    assert_eq!(st.commit(), Some(0));
    decode_alone(&tr, &mut st);
    run.take(st.take_events());
    // A second utterance, cleared before its commit: never completed.
    st.push(&clip("tts/s01.wav")).unwrap();
    st.clear();
    st.push(&clip("human/goforward.wav")).unwrap();
    assert_eq!(st.commit(), Some(2));
    decode_alone(&tr, &mut st);
    run.take(st.take_events());
    assert!(st.is_idle());
    assert_eq!(join(run.completed[0].as_ref().unwrap()), "He was not an old-sposed young man.");
    assert!(run.completed[1].is_none(), "the cleared utterance completed");
    let third = join(run.completed[2].as_ref().unwrap()).to_lowercase();
    assert!(third.contains("forward") && !third.contains("canoe"), "{third}");
}

/// Silero VAD from the model store, or None (skipped) outside CI.
fn vad() -> Option<Box<dyn Vad + Send>> {
    let (model, runtime) = whisper::testing::vad_files()?;
    Some(Box::new(SileroVad::load(&model, &runtime).unwrap()))
}

#[test]
fn turn_detection_makes_one_utterance_per_sentence_and_skips_silence() {
    let Some(vad) = vad() else { return };
    let model = model();
    let tr = Transcriber::new(&model).unwrap();
    let (_, mut audio) = joined(&SENTENCES, 2.0);
    audio.extend(silence(20.0));
    let opts = LiveOptions { turns: Some(TurnOptions { silence_duration_ms: 800, ..TurnOptions::default() }), ..LiveOptions::default() };
    let run = stream(&tr, opts, Some(vad), &audio, 0.2);
    check_consistent(&run);
    let texts: Vec<String> = run.completed.iter().map(|w| join(w.as_ref().unwrap())).collect();
    assert_eq!(texts.len(), SENTENCES.len(), "{texts:#?}");
    assert_eq!((run.started.len(), run.stopped.len()), (3, 3));
    for ((_, reference), text) in SENTENCES.iter().zip(&texts) {
        let w = wer(reference, text);
        assert!(w < 0.25, "WER {w:.2}: {text} / {reference}");
    }
    // Each start is before its stop, and the stops come at the pauses (not in the 20 s tail).
    for (s, e) in run.started.iter().zip(&run.stopped) {
        assert!(s < e);
    }
    let speech_end = audio.len() as f64 / 16000.0 - 20.0;
    assert!(run.stopped[2] < speech_end + 1.0, "{:?}", run.stopped);

    // Silence and low noise alone: no utterance at all.
    let vad = self::vad().unwrap();
    let mut quiet = silence(10.0);
    let mut x = 1u32;
    quiet.extend((0..16000 * 10).map(|_| {
        x = x.wrapping_mul(1664525).wrapping_add(1013904223);
        (x >> 8) as f32 / (1u32 << 24) as f32 * 0.002 - 0.001
    }));
    let opts = LiveOptions { turns: Some(TurnOptions::default()), ..LiveOptions::default() };
    let run = stream(&tr, opts, Some(vad), &quiet, 0.1);
    assert!(run.completed.is_empty() && run.started.is_empty(), "{:?}", run.text());
}

#[test]
fn bad_options_are_refused() {
    for o in [
        LiveOptions { step_seconds: 0.0, ..LiveOptions::default() },
        LiveOptions { max_buffer_seconds: 45.0, ..LiveOptions::default() },
        LiveOptions { trim_seconds: 29.0, ..LiveOptions::default() },
        LiveOptions { step_seconds: f64::NAN, ..LiveOptions::default() },
    ] {
        assert!(StreamingTranscriber::new(o, None).is_err());
    }
    let turns = LiveOptions { turns: Some(TurnOptions::default()), ..LiveOptions::default() };
    let err = StreamingTranscriber::new(turns, None).err().unwrap().to_string();
    assert!(err.contains("voice activity"), "{err}");
}
