//! `amanuensis listen`: the default microphone through `cpal` (ALSA on Linux) as a live
//! stream. Built with the `mic` feature (it needs libasound2-dev); without it `listen` says
//! how to get it and how to do the same with `arecord`.
//!
//! The capture callback mixes the device's channels down to mono 16-bit samples at the
//! device's rate and hands them, as bytes, to a reader thread that converts them to 16 kHz
//! exactly as `--raw-s16le RATE` input is converted (the whisper crate's resampler).

use std::sync::mpsc::Receiver;

use anyhow::bail;

use crate::live_cmd::Chunk;

#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Model name in the store (tiny.en, base) or a model directory.
    #[arg(long, default_value = "base", env = "AMANUENSIS_MODEL")]
    pub model: String,
    /// Spoken language code, or `auto` to detect it on the first utterance.
    #[arg(long, default_value = "auto")]
    pub language: String,
    /// Beam width [default: 1, greedy].
    #[arg(long)]
    pub beam_size: Option<usize>,
    /// Text that conditions the first utterance (names, spelling).
    #[arg(long)]
    pub initial_prompt: Option<String>,
    #[arg(long, value_enum, default_value_t = crate::engine::ComputeType::DEFAULT)]
    pub compute_type: crate::engine::ComputeType,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// txt: text as it is confirmed; json: JSON lines.
    #[arg(long, value_enum, default_value = "txt")]
    pub output_format: crate::output::Format,
    /// Seconds of new audio after which the buffer is decoded again.
    #[arg(long, default_value_t = 1.0)]
    pub live_step: f64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub vad: crate::vad_args::VadArgs,
}

pub fn run(args: ListenArgs) -> anyhow::Result<()> {
    let json = crate::live_cmd::check_format(args.output_format)?;
    if let Some(d) = args.duration {
        if !(d > 0.0 && d <= 86_400.0) {
            bail!("--duration {d}: give seconds between 0 and 86400");
        }
    }
    let t = whisper::transcribe::TranscribeOptions {
        language: match args.language.as_str() {
            "auto" | "" => None,
            code => Some(code.to_lowercase()),
        },
        beam_size: args.beam_size.unwrap_or(1),
        initial_prompt: args.initial_prompt.clone(),
        ..Default::default()
    };
    let live = crate::live_cmd::live_options(t, args.beam_size.is_some(), &args.vad, args.live_step)?;
    // The microphone first: no point loading a model without one.
    let (rx, _capture) = capture(args.duration)?;
    if let Some(n) = args.threads {
        crate::engine::set_threads(n)?;
    }
    let model = crate::engine::load_model(&args.model, args.compute_type)?;
    let tr = whisper::transcribe::Transcriber::new(&model)?;
    eprintln!("amanuensis listen: listening (Ctrl-C to stop)");
    crate::live_cmd::run(&tr, crate::live_cmd::LiveRun { opts: live, speed: -1.0, json }, rx)
}

/// Keeps the capture running while it lives.
type Guard = Box<dyn std::any::Any>;

#[cfg(not(feature = "mic"))]
fn capture(_: Option<f64>) -> anyhow::Result<(Receiver<Chunk>, Guard)> {
    bail!("this amanuensis was built without microphone support: rebuild with `cargo build --release -p amanuensis --features mic` (needs libasound2-dev and pkg-config), or pipe the microphone in: `arecord -f S16_LE -r 16000 -c 1 | amanuensis transcribe --live -`")
}

#[cfg(feature = "mic")]
fn capture(duration: Option<f64>) -> anyhow::Result<(Receiver<Chunk>, Guard)> {
    use std::io::Read;
    use std::sync::mpsc::{sync_channel, Receiver as StdReceiver, SyncSender};

    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    use cpal::{FromSample, SampleFormat, SizedSample};

    /// Reads the bytes the capture callback sends.
    struct ChannelReader {
        rx: StdReceiver<Vec<u8>>,
        pending: Vec<u8>,
        at: usize,
    }
    impl Read for ChannelReader {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            while self.at >= self.pending.len() {
                match self.rx.recv() {
                    Ok(b) => {
                        self.pending = b;
                        self.at = 0;
                    }
                    Err(_) => return Ok(0),
                }
            }
            let n = buf.len().min(self.pending.len() - self.at);
            buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn callback<T: SizedSample>(channels: usize, tx: SyncSender<Vec<u8>>) -> impl FnMut(&[T], &cpal::InputCallbackInfo) + Send + 'static
    where
        f32: FromSample<T>,
    {
        move |data: &[T], _| {
            let mut bytes = Vec::with_capacity(data.len() / channels * 2);
            for frame in data.chunks(channels) {
                let mono = frame.iter().map(|&s| f32::from_sample_(s)).sum::<f32>() / channels as f32;
                let v = (mono * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            // A full queue means the transcriber is far behind: drop rather than block audio.
            let _ = tx.try_send(bytes);
        }
    }

    let no_mic = |why: &str| anyhow::anyhow!("the microphone cannot be opened ({why}); check that a capture device exists and is not in use (`arecord -l`), or pipe audio in: `arecord -f S16_LE -r 16000 -c 1 | amanuensis transcribe --live -`, `amanuensis transcribe --live FILE`");
    let host = cpal::default_host();
    let device = host
        .default_input_device()
        .ok_or_else(|| no_mic("this machine has no audio capture device"))?;
    let config = device.default_input_config().map_err(|e| no_mic(&e.to_string()))?;
    let (channels, rate) = (config.channels() as usize, config.sample_rate());
    let (btx, brx) = sync_channel::<Vec<u8>>(256);
    let err = |e: cpal::Error| eprintln!("amanuensis listen: microphone error: {e}");
    let sc: cpal::StreamConfig = config.clone().into();
    let stream = match config.sample_format() {
        SampleFormat::I16 => device.build_input_stream(sc, callback::<i16>(channels, btx), err, None),
        SampleFormat::I32 => device.build_input_stream(sc, callback::<i32>(channels, btx), err, None),
        SampleFormat::F32 => device.build_input_stream(sc, callback::<f32>(channels, btx), err, None),
        SampleFormat::U8 => device.build_input_stream(sc, callback::<u8>(channels, btx), err, None),
        f => bail!("the microphone's sample format {f} is not supported; pipe it through arecord instead"),
    }
    .map_err(|e| no_mic(&e.to_string()))?;
    stream.play().map_err(|e| anyhow::anyhow!("the microphone does not start ({e})"))?;

    let reader = ChannelReader { rx: brx, pending: Vec::new(), at: 0 };
    // Ends after --duration, or with the process.
    let bytes = duration.map_or(u64::MAX, |d| (d * rate as f64) as u64 * 2);
    let input = whisper::audio::AudioInput::Reader { reader: Box::new(reader.take(bytes)), label: "<microphone>".into(), limit: u64::MAX }.raw_s16le(rate);
    let rx = crate::live_cmd::spawn_decoder("mic", input)?;
    Ok((rx, Box::new(stream)))
}
