//! Live transcription on the command line: `transcribe --live FILE|-` (a file or a pipe
//! treated as a live stream) and `listen` (the default microphone, through `mic`).
//!
//! Audio is read on its own thread into a bounded channel; the main thread feeds it to a
//! `whisper::live::StreamingTranscriber` (at `--live-speed` times real time for files and
//! pipes), decodes what is due, and renders the events: on a terminal the partial text is
//! grey and rewritten in place while the committed text is printed once; piped output gets
//! the committed text only, or JSON lines with `--output-format json`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use whisper::audio::AudioInput;
use whisper::live::{LiveOptions, StreamEvent, StreamingTranscriber, TurnOptions, SAMPLE_RATE};
use whisper::transcribe::{TranscribeOptions, Transcriber};
use whisper::vad::Vad;
use whisper::words::Word;

use crate::output::Format;
use crate::vad_args::{load_vad, VadArgs};

/// Chunks of audio that may wait between the reader thread and the transcriber.
const CHANNEL_CHUNKS: usize = 64;

/// What came from the audio thread.
pub enum Chunk {
    Audio(Vec<f32>),
    End,
    Failed(String),
}

/// How live mode runs (from `transcribe --live` or `listen`).
pub struct LiveRun {
    pub opts: LiveOptions,
    /// Real-time factor of the feed (files and pipes); 0: each step is decoded as soon as
    /// the previous one is done (a reproducible simulation); negative: a live source (the
    /// microphone), taken as it comes.
    pub speed: f64,
    pub json: bool,
}

/// Live options from the transcribe flags: greedy unless --beam-size is given, the first
/// temperature only, turn detection from the VAD flags unless --no-vad-filter.
pub fn live_options(t: TranscribeOptions, beam_given: bool, vad: &VadArgs, step: f64) -> anyhow::Result<LiveOptions> {
    let mut transcribe = t;
    if !beam_given {
        transcribe.beam_size = 1;
    }
    transcribe.temperatures.truncate(1);
    let turns = if vad.no_vad_filter {
        None
    } else {
        Some(TurnOptions {
            threshold: vad.vad_threshold.unwrap_or(0.5) as f32,
            prefix_padding_ms: vad.vad_speech_pad_ms.unwrap_or(300),
            silence_duration_ms: vad.vad_min_silence_ms.unwrap_or(700),
        })
    };
    let o = LiveOptions { transcribe, step_seconds: step, turns, ..LiveOptions::default() };
    o.validate().context("live options")?;
    Ok(o)
}

/// The VAD for turn detection, or an error saying how to install it or turn it off.
fn vad_for(opts: &LiveOptions) -> anyhow::Result<Option<Box<dyn Vad + Send>>> {
    if opts.turns.is_none() {
        return Ok(None);
    }
    let v = load_vad().context("live transcription ends utterances with the VAD (add --no-vad-filter to go without)")?;
    Ok(Some(Box::new(v)))
}

/// Starts the thread that decodes `input` into 16 kHz chunks.
pub fn read_input(input: &Path, raw_rate: Option<u32>) -> anyhow::Result<Receiver<Chunk>> {
    let input: AudioInput = if input.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            bail!("`-` reads audio from stdin, but stdin is a terminal: pipe audio in (`arecord -f S16_LE -r 16000 -c 1 | amanuensis transcribe --live -`)");
        }
        match raw_rate {
            Some(rate) => AudioInput::stdin(u64::MAX).raw_s16le(rate),
            None => stdin_input()?,
        }
    } else {
        if !input.is_file() {
            bail!("{}: no such file", input.display());
        }
        let a = AudioInput::Path(PathBuf::from(input));
        match raw_rate {
            Some(rate) => a.raw_s16le(rate),
            None => a,
        }
    };
    spawn_decoder("audio-in", input)
}

/// Decodes `input` to 16 kHz on its own thread, into a bounded channel of chunks.
pub fn spawn_decoder(name: &str, input: AudioInput) -> anyhow::Result<Receiver<Chunk>> {
    let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let sender = tx.clone();
        let r = input.stream(&mut |s: &[f32]| sender.send(Chunk::Audio(s.to_vec())).map_err(|_| "the transcriber stopped".to_string()));
        let _ = tx.send(match r {
            Ok(_) => Chunk::End,
            Err(e) => Chunk::Failed(e.to_string()),
        });
    })?;
    Ok(rx)
}

/// stdin in live mode: a WAV stream (as `arecord` writes it, length unknown) is read as it
/// arrives; any other container would have to be read to its end first, which defeats live
/// mode, so it is refused with the way out.
fn stdin_input() -> anyhow::Result<AudioInput> {
    let mut stdin = std::io::stdin();
    let mut head = [0u8; 12];
    stdin.read_exact(&mut head).context("stdin: no audio (fewer than 12 bytes)")?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        bail!("stdin: in live mode stdin must be a WAV stream or raw samples: add --raw-s16le RATE for headerless 16-bit PCM (`arecord -t raw`, `ffmpeg -f s16le -ac 1`)");
    }
    // Chunks up to `data`: `fmt ` says what the samples are.
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    loop {
        let mut h = [0u8; 8];
        stdin.read_exact(&mut h).context("stdin: the WAV header ends before its data")?;
        let size = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if &h[0..4] == b"data" {
            break;
        }
        if size > 1 << 20 {
            bail!("stdin: a WAV header chunk of {size} bytes; not a WAV stream");
        }
        let mut body = vec![0u8; size + (size & 1)];
        stdin.read_exact(&mut body).context("stdin: the WAV header is cut short")?;
        if &h[0..4] == b"fmt " && size >= 16 {
            let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            fmt = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
        }
    }
    match fmt {
        Some((1 | 0xFFFE, 1, rate, 16)) if (1000..=384_000).contains(&rate) => Ok(AudioInput::Reader { reader: Box::new(stdin), label: "<stdin>".into(), limit: u64::MAX }.raw_s16le(rate)),
        Some((_, ch, rate, bits)) => bail!("stdin: a WAV stream of {ch} channel(s), {bits}-bit, {rate} Hz; live mode reads 16-bit mono PCM (`arecord -f S16_LE -c 1 -r 16000`)"),
        None => bail!("stdin: the WAV header has no `fmt ` chunk"),
    }
}

/// Runs a live stream fed by `rx` to its end, rendering as it goes. A reader of the output
/// that goes away (`| head`) ends the run quietly.
pub fn run(tr: &Transcriber<'_>, live: LiveRun, rx: Receiver<Chunk>) -> anyhow::Result<()> {
    match run_inner(tr, live, rx) {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => Ok(()),
        r => r,
    }
}

fn run_inner(tr: &Transcriber<'_>, live: LiveRun, rx: Receiver<Chunk>) -> anyhow::Result<()> {
    let vad = vad_for(&live.opts)?;
    let piece = ((live.opts.step_seconds * SAMPLE_RATE as f64) as usize / 10).max(1);
    let mut st = StreamingTranscriber::new(live.opts, vad)?;
    let mut out = Renderer::new(live.json);
    let start = Instant::now();
    let mut fed = 0u64;
    let mut ended = false;
    while !ended {
        let audio = match rx.recv().unwrap_or(Chunk::End) {
            Chunk::Audio(a) => a,
            Chunk::End => {
                ended = true;
                Vec::new()
            }
            Chunk::Failed(e) => {
                out.finish_line()?;
                bail!("reading the audio failed: {e}");
            }
        };
        if live.speed > 0.0 && !audio.is_empty() {
            // Release the audio no sooner than real time (times the speed).
            let due = start + Duration::from_secs_f64(fed as f64 / SAMPLE_RATE as f64 / live.speed);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        fed += audio.len() as u64;
        // Pieces of a tenth of a step, each followed by the decodings due: a decoder that
        // keeps up, so at speed 0 the same decodings run as at real time.
        for piece in audio.chunks(piece) {
            st.push(piece)?;
            decode_due(tr, &mut st, &mut out)?;
        }
        if ended {
            st.finish();
            decode_due(tr, &mut st, &mut out)?;
        }
        out.render(st.take_events())?;
    }
    out.finish_line()?;
    Ok(())
}

/// Runs the decodings `st` has due, one after another, rendering as they complete.
fn decode_due(tr: &Transcriber<'_>, st: &mut StreamingTranscriber, out: &mut Renderer) -> anyhow::Result<()> {
    while let Some(req) = st.next_decode() {
        let r = whisper::pool::on_pool(|| tr.transcribe(&req.samples, &req.options, &mut |_| {}));
        st.complete(r);
        out.render(st.take_events())?;
    }
    Ok(())
}

/// Writes the events: terminal (partials grey, rewritten), plain committed text, or JSON lines.
struct Renderer {
    json: bool,
    tty: bool,
    /// Characters of grey partial text on screen (to erase).
    shown: usize,
    /// Column of the cursor in the committed text (tty), to keep partials on one line.
    column: usize,
    width: usize,
    mid_line: bool,
}

impl Renderer {
    fn new(json: bool) -> Self {
        let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|&w| w >= 20).unwrap_or(80);
        Renderer { json, tty: !json && std::io::stdout().is_terminal(), shown: 0, column: 0, width, mid_line: false }
    }

    fn render(&mut self, events: Vec<StreamEvent>) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        for e in events {
            if self.json {
                if let Some(v) = json_event(&e) {
                    writeln!(out, "{v}")?;
                }
                continue;
            }
            match e {
                StreamEvent::Committed { words, .. } => {
                    self.erase(&mut out)?;
                    let mut text: String = words.iter().map(|w| w.word.as_str()).collect();
                    if !self.mid_line {
                        text = text.trim_start().to_string();
                    }
                    write!(out, "{text}")?;
                    self.column = (self.column + text.chars().count()) % self.width;
                    self.mid_line = true;
                }
                StreamEvent::Partial { words, .. } if self.tty => {
                    self.erase(&mut out)?;
                    let mut text: String = words.iter().map(|w| w.word.as_str()).collect();
                    if !self.mid_line {
                        text = text.trim_start().to_string();
                    }
                    // Only what fits on the line, so that erasing it stays simple.
                    let room = self.width.saturating_sub(self.column + 2);
                    let n = text.chars().count();
                    if n > room {
                        text = format!("…{}", text.chars().skip(n - room + 1).collect::<String>());
                    }
                    write!(out, "\x1b[90m{text}\x1b[0m")?;
                    self.shown = text.chars().count();
                }
                StreamEvent::Completed { .. } => {
                    self.erase(&mut out)?;
                    if self.mid_line {
                        writeln!(out)?;
                    }
                    self.mid_line = false;
                    self.column = 0;
                }
                StreamEvent::Failed { message, .. } => {
                    eprintln!("\namanuensis: a live decoding failed: {message}");
                }
                _ => {}
            }
        }
        out.flush()?;
        Ok(())
    }

    fn erase(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.shown > 0 {
            write!(out, "\x1b[{}D\x1b[K", self.shown)?;
            self.shown = 0;
        }
        Ok(())
    }

    fn finish_line(&mut self) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out)?;
        if self.mid_line {
            writeln!(out)?;
            self.mid_line = false;
        }
        out.flush()?;
        Ok(())
    }
}

fn words_json(words: &[Word]) -> serde_json::Value {
    json!(words.iter().map(|w| json!({"word": w.word, "start": round(w.start), "end": round(w.end), "probability": round(w.probability)})).collect::<Vec<_>>())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One JSON line per event that carries committed information (partials are left out).
fn json_event(e: &StreamEvent) -> Option<serde_json::Value> {
    Some(match e {
        StreamEvent::SpeechStarted { utterance, at } => json!({"type": "speech_started", "utterance": utterance, "at": round(*at)}),
        StreamEvent::SpeechStopped { utterance, at } => json!({"type": "speech_stopped", "utterance": utterance, "at": round(*at)}),
        StreamEvent::Committed { utterance, words } => json!({"type": "delta", "utterance": utterance, "text": words.iter().map(|w| w.word.as_str()).collect::<String>(), "words": words_json(words)}),
        StreamEvent::Completed { utterance, words, start, end } => json!({"type": "completed", "utterance": utterance, "text": whisper::live::join(words), "start": round(*start), "end": round(*end), "words": words_json(words)}),
        StreamEvent::Failed { utterance, message } => json!({"type": "error", "utterance": utterance, "message": message}),
        StreamEvent::Partial { .. } | StreamEvent::Ended { .. } => return None,
    })
}

/// The formats live mode writes.
pub fn check_format(f: Format) -> anyhow::Result<bool> {
    match f {
        Format::Txt => Ok(false),
        Format::Json => Ok(true),
        _ => bail!("live mode writes text as it is confirmed (txt) or JSON lines (json); other formats need the whole recording: transcribe without --live"),
    }
}
