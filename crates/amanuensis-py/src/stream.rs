//! A transcription running on its own thread, its segments streamed to Python over a
//! channel: the lazy `segments` generator pulls them with the GIL released, checking for
//! Ctrl-C while it waits (a signal sets the cancel flag, which the engine sees at the next
//! window). Dropping the stream (the generator abandoned) cancels it too.
//!
//! The thread strings the engine's pieces together as `amanuensis transcribe` does
//! (crates/amanuensis/src/transcribe_cmd.rs): the VAD's speech chunks, then the sequential
//! `Session` or the batched pipeline; no decision of its own.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;

use whisper::audio::{Gather, SampleSource, SAMPLE_RATE};
use whisper::model::Whisper;
use whisper::pipeline::{clip_windows, speech_chunks, speech_windows, BatchInput};
use whisper::transcribe::{Segment, TranscribeOptions, Transcriber};
use whisper::vad::{SileroVad, SpeechTimeline, VadOptions};
use whisper::words::restore_speech_timestamps;

use crate::{to_py, Audio, Model};

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Engine threads alive.
pub fn active() -> usize {
    ACTIVE.load(Ordering::SeqCst)
}

/// What the engine thread sends.
enum Msg {
    /// (language, probability, duration, duration_after_vad): before any segment.
    Info(String, f32, f64, f64),
    Segment(Box<Segment>),
    Error(whisper::Error),
    Done,
}

/// `info()` as a tuple: (language, language_probability, duration, duration_after_vad).
type Info = (String, f32, f64, f64);

/// The segments of one transcription, in order, as the engine finishes them.
#[pyclass(module = "amanuensis._native")]
pub struct Stream {
    rx: Mutex<Option<Receiver<Msg>>>,
    cancel: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    info: Info,
}

/// Waits for the next message with the GIL released, checking Python's signal handlers
/// every 50 ms; a raised signal (KeyboardInterrupt) cancels the transcription.
fn recv(py: Python<'_>, rx: &Mutex<Option<Receiver<Msg>>>, cancel: &AtomicBool) -> PyResult<Msg> {
    loop {
        let got = py.allow_threads(|| match rx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(rx) => rx.recv_timeout(Duration::from_millis(50)),
            None => Err(RecvTimeoutError::Disconnected),
        });
        match got {
            Ok(m) => return Ok(m),
            Err(RecvTimeoutError::Disconnected) => return Ok(Msg::Done),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    cancel.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
    }
}

pub fn start(py: Python<'_>, model: &Model, audio: Audio, opts: TranscribeOptions, vad: Option<VadOptions>, batch_size: usize) -> PyResult<Stream> {
    let (tx, rx) = channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let job = Job { model: model.model.clone(), vad_model: model.vad.clone(), audio, opts, vad, batch_size, cancel: cancel.clone() };
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let thread = std::thread::Builder::new()
        .name("amanuensis-transcribe".into())
        .spawn(move || {
            let err_tx = tx.clone();
            // On a worker of the pool (see `whisper::pool`); the segments go out through an
            // unbounded channel, so the task never waits on its reader.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| whisper::pool::on_pool(|| job.run(&tx))));
            let _ = match r {
                Ok(Ok(())) => err_tx.send(Msg::Done),
                Ok(Err(e)) => err_tx.send(Msg::Error(e)),
                Err(p) => {
                    let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
                    err_tx.send(Msg::Error(whisper::Error::Weights(format!("internal error (panic): {what}"))))
                }
            };
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        })
        .map_err(|e| {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
            PyRuntimeError::new_err(format!("cannot start a transcription thread: {e}"))
        })?;
    let mut stream = Stream { rx: Mutex::new(Some(rx)), cancel, thread: Mutex::new(Some(thread)), info: Default::default() };
    // The info (language) comes before any segment; errors before it (audio, options) are
    // raised by `transcribe` itself, as faster-whisper raises them.
    let first = recv(py, &stream.rx, &stream.cancel);
    match first {
        Ok(Msg::Info(l, p, d, dv)) => stream.info = (l, p, d, dv),
        Ok(Msg::Error(e)) => {
            stream.finish(py);
            return Err(to_py(e));
        }
        Ok(_) => {
            stream.finish(py);
            return Err(PyRuntimeError::new_err("the transcription ended before its language was known"));
        }
        Err(e) => {
            stream.finish(py);
            return Err(e);
        }
    }
    Ok(stream)
}

impl Stream {
    /// Joins the thread (it has sent its last message, or was cancelled) and drops the channel.
    fn finish(&self, py: Python<'_>) {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            py.allow_threads(|| {
                let _ = t.join();
            });
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // An abandoned generator: the engine stops at its next window (not joined here, so
        // a dropped generator never blocks the interpreter).
        self.cancel.store(true, Ordering::SeqCst);
    }
}

#[pymethods]
impl Stream {
    fn info(&self) -> Info {
        self.info.clone()
    }

    /// Asks the engine to stop at its next window.
    fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next segment as a tuple of faster-whisper's `Segment` fields: (id, seek, start,
    /// end, text, tokens, avg_logprob, compression_ratio, no_speech_prob, words, temperature),
    /// words as (start, end, word, probability) tuples or None.
    fn __next__(&self, py: Python<'_>) -> PyResult<SegmentTuple> {
        let msg = recv(py, &self.rx, &self.cancel);
        match msg {
            Ok(Msg::Segment(s)) => Ok(segment_tuple(*s)),
            Ok(Msg::Done) | Ok(Msg::Info(..)) => {
                self.finish(py);
                Err(PyStopIteration::new_err(()))
            }
            Ok(Msg::Error(e)) => {
                self.finish(py);
                Err(to_py(e))
            }
            Err(e) => Err(e),
        }
    }
}

type WordTuple = (f64, f64, String, f64);
type SegmentTuple = (usize, usize, f64, f64, String, Vec<u32>, f32, f32, f32, Option<Vec<WordTuple>>, f32);

fn segment_tuple(s: Segment) -> SegmentTuple {
    let words = s.words.map(|ws| ws.into_iter().map(|w| (w.start, w.end, w.word, w.probability)).collect());
    (s.id, s.seek, s.start, s.end, s.text, s.tokens, s.avg_logprob, s.compression_ratio, s.no_speech_prob, words, s.temperature)
}

/// One transcription's inputs, moved to its thread.
struct Job {
    model: Arc<Whisper>,
    vad_model: Arc<Mutex<Option<SileroVad>>>,
    audio: Audio,
    opts: TranscribeOptions,
    vad: Option<VadOptions>,
    /// 0: the sequential loop (`WhisperModel.transcribe`); N: the batched pipeline.
    batch_size: usize,
    cancel: Arc<AtomicBool>,
}

impl Job {
    fn cancelled(&self) -> whisper::Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            Err(whisper::Error::Cancelled)
        } else {
            Ok(())
        }
    }

    fn run(mut self, tx: &Sender<Msg>) -> whisper::Result<()> {
        let tr = Transcriber::new(&self.model)?;
        let source = std::mem::replace(&mut self.audio, Audio::Samples(Vec::new())).source()?;
        self.cancelled()?;
        let duration = source.len() as f64 / SAMPLE_RATE as f64;
        let chunks = match &self.vad {
            Some(vo) => {
                let mut guard = self.vad_model.lock().unwrap_or_else(|p| p.into_inner());
                if guard.is_none() {
                    let (model, runtime) = store::resolve_vad().map_err(|e| whisper::Error::Vad { path: "silero-vad".into(), reason: format!("{e:#}") })?;
                    *guard = Some(SileroVad::load(&model, &runtime)?);
                }
                Some(speech_chunks(&*source, guard.as_mut().expect("loaded"), vo)?)
            }
            None => None,
        };
        let after_vad = chunks.as_ref().map_or(duration, |c| c.iter().map(|c| c.len()).sum::<usize>() as f64 / SAMPLE_RATE as f64);
        let timeline = chunks.as_deref().map(SpeechTimeline::new);
        let send_segment = |s: Segment| {
            let _ = tx.send(Msg::Segment(Box::new(s)));
        };
        if chunks.as_ref().is_some_and(|c| c.is_empty()) {
            // No speech: nothing to transcribe (the CLI's rule).
            let language = self.opts.language.clone().unwrap_or_else(|| "en".into());
            let _ = tx.send(Msg::Info(language, 1.0, duration, after_vad));
            return Ok(());
        }
        if self.batch_size > 0 {
            let windows = match &chunks {
                Some(c) => speech_windows(c),
                None => clip_windows(&self.opts.clip_timestamps, source.len()),
            };
            let cancel = &self.cancel;
            let mut read = |r: std::ops::Range<usize>| {
                if cancel.load(Ordering::SeqCst) {
                    return Err(whisper::Error::Cancelled);
                }
                source.read(r)
            };
            let input = BatchInput { read: &mut read, timeline: timeline.as_ref(), duration };
            let mut on_language = |l: &str, p: f32| {
                let _ = tx.send(Msg::Info(l.to_string(), p, duration, after_vad));
            };
            tr.transcribe_batched_with(&windows, input, &self.opts, self.batch_size, &mut on_language, &mut |s| send_segment(s.clone()))?;
            return Ok(());
        }
        let source: Box<dyn SampleSource> = match &chunks {
            Some(c) => Box::new(Gather::new(source, c.iter().map(|c| c.start..c.end).collect())?),
            None => source,
        };
        let mut session = tr.start_source(source, &self.opts)?;
        let _ = tx.send(Msg::Info(session.language().to_string(), session.language_probability(), duration, after_vad));
        let mut cache = session.new_cache();
        let mut on_segment = |s: &Segment| {
            let mut s = s.clone();
            if let Some(t) = &timeline {
                restore_speech_timestamps(&mut s, t);
            }
            send_segment(s);
        };
        while !session.is_done() {
            self.cancelled()?;
            let encoded = match session.window_mel()? {
                Some(mel) => Some(self.model.encode(&mel)?),
                None => None,
            };
            session.step(encoded, &mut cache, &mut on_segment)?;
        }
        Ok(())
    }
}
