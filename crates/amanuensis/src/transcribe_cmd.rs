//! `amanuensis transcribe`: files in, transcripts out (stdout or one file per format).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use whisper::audio::{AudioInput, Gather, SampleSource, SpooledSource};
use whisper::pipeline::{speech_chunks, speech_windows};
use whisper::transcribe::Transcript;
use whisper::vad::{SileroVad, SpeechTimeline, VadOptions};

use crate::vad_args::{load_vad, VadArgs};
use whisper::tokenizer::Task;
use whisper::transcribe::{TranscribeOptions, Transcriber};

use crate::engine::{load_model, ComputeType};
use crate::output::subtitles::{MAX_LINE_COUNT, MAX_LINE_WIDTH, MAX_WORDS_PER_LINE};
use crate::output::{render_with, Format, RenderOptions, SubtitleOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    Transcribe,
    Translate,
}

#[derive(Debug, clap::Args)]
pub struct TranscribeArgs {
    /// Audio files (WAV, FLAC, MP3, Ogg Vorbis, M4A/AAC); `-` reads one from stdin.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Treat the input (one file, or `-`: raw samples with --raw-s16le, or a WAV stream as
    /// `arecord` writes it) as a live stream: text is printed as it is confirmed (on a
    /// terminal the unconfirmed rest shows grey and is rewritten in place). Greedy, first
    /// temperature only; utterances are ended by the VAD unless --no-vad-filter
    /// (--vad-threshold, --vad-min-silence-ms [700] and --vad-speech-pad-ms [300] apply).
    #[arg(long)]
    pub live: bool,
    /// With --live: how fast the input is fed, times real time; 0 feeds each step as soon as
    /// the previous one is decoded (reproducible, as fast as the machine goes).
    #[arg(long, default_value_t = 1.0, requires = "live")]
    pub live_speed: f64,
    /// With --live: seconds of new audio after which the buffer is decoded again.
    #[arg(long, default_value_t = 1.0, requires = "live")]
    pub live_step: f64,
    /// The inputs are headerless little-endian signed 16-bit mono PCM at RATE Hz (e.g. from
    /// `arecord -t raw` or `ffmpeg -f s16le`).
    #[arg(long, value_name = "RATE", value_parser = clap::value_parser!(u32).range(1000..=384_000))]
    pub raw_s16le: Option<u32>,
    /// Model name in the store (tiny.en, base) or a directory with config.json, model.bin, tokenizer.json.
    #[arg(long, default_value = "base", env = "AMANUENSIS_MODEL")]
    pub model: String,
    /// Spoken language code (en, fr, ...) or `auto` to detect it.
    #[arg(long, default_value = "auto")]
    pub language: String,
    #[arg(long, value_enum, default_value = "transcribe")]
    pub task: TaskArg,
    /// Beam width; 1 is greedy decoding [default: 5; 1 with --live].
    #[arg(long)]
    pub beam_size: Option<usize>,
    /// Samples drawn at each non-zero temperature.
    #[arg(long, default_value_t = 5)]
    pub best_of: usize,
    #[arg(long, default_value_t = 1.0)]
    pub patience: f32,
    /// Temperatures tried in turn when a window's decoding looks wrong (fallback).
    #[arg(long, num_args = 1.., default_values_t = vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0])]
    pub temperature: Vec<f32>,
    /// Decode each window once, at the first temperature.
    #[arg(long)]
    pub no_fallback: bool,
    /// Text that conditions the first window (names, spelling, style).
    #[arg(long)]
    pub initial_prompt: Option<String>,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub condition_on_previous_text: bool,
    /// Suppress timestamps: one segment per 30 s window.
    #[arg(long)]
    pub without_timestamps: bool,
    /// Windows decoded together (faster-whisper's name). 1 (default): the sequential seek
    /// loop, faster-whisper's exact text. N > 1: the batched long-form pipeline — windows of at
    /// most 30 s (merged VAD speech chunks with --vad-filter, else plain 30 s windows) decoded
    /// independently, N at a time through one continuous batch; segment timestamps kept.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub batch_size: u16,
    /// Penalty on the scores of tokens already generated in a window (1 = off; > 1 discourages repetition).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Forbid repeating any n-gram of this size within a window (0 = off).
    #[arg(long, default_value_t = 0)]
    pub no_repeat_ngram_size: usize,
    /// Retry at a higher temperature when the text's gzip compression ratio exceeds this (repetition).
    #[arg(long, default_value_t = 2.4)]
    pub compression_ratio_threshold: f32,
    /// Retry at a higher temperature when the average log-probability is below this.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    pub log_prob_threshold: f32,
    /// Skip a window as silence when its no-speech probability exceeds this and its average
    /// log-probability is below --log-prob-threshold.
    #[arg(long, default_value_t = 0.6)]
    pub no_speech_threshold: f32,
    /// Token ids to suppress, comma-separated; -1 stands for the model's non-speech symbols
    /// (the default); an empty string suppresses nothing.
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    pub suppress_tokens: String,
    /// Words or phrases to favour (names, jargon): given to every window as a prompt (but
    /// not to the window that gets --prefix).
    #[arg(long)]
    pub hotwords: Option<String>,
    /// Transcribe only these stretches: `START,END,START,END,...` in seconds (an odd count:
    /// the last runs to the end), in order, not overlapping. Windows never run past a clip's
    /// end. Replaces the VAD (with --batch-size > 1 each clip is decoded on its own, in
    /// windows of at most 30 s).
    #[arg(long, value_name = "START,END,...", allow_hyphen_values = true)]
    pub clip_timestamps: Option<String>,
    /// Text the transcript is forced to begin with: decoding of the first window continues
    /// after it, and it is part of that window's text (only when the first window starts at
    /// 0 s; --hotwords are not given to that window).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Word-level timestamps (faster-whisper's word_timestamps): `verbose_json` segments carry
    /// `words: [{word, start, end, probability}]`, `json` a top-level `words` list, segment
    /// times are refined from the words, and srt/vtt cues are made of the words.
    #[arg(long)]
    pub word_timestamps: bool,
    /// With --word-timestamps (sequential loop): skip silences longer than SECONDS before a
    /// segment that looks like a hallucination (faster-whisper's hallucination_silence_threshold).
    #[arg(long, value_name = "SECONDS", requires = "word_timestamps")]
    pub hallucination_silence_threshold: Option<f32>,
    /// With --word-timestamps, srt/vtt: break lines after at most N characters
    /// (openai-whisper's max_line_width; each segment stays a cue unless --max-line-count).
    #[arg(long, value_name = "N", requires = "word_timestamps", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(1..=MAX_LINE_WIDTH as i64))]
    pub max_line_width: Option<i64>,
    /// With --max-line-width: at most N lines per cue; words then flow from cue to cue
    /// regardless of segments, and a pause of more than 3 s starts a new cue.
    #[arg(long, value_name = "N", requires = "word_timestamps", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(1..=MAX_LINE_COUNT as i64))]
    pub max_line_count: Option<i64>,
    /// With --word-timestamps, srt/vtt: a new cue every N words of a segment (lines still
    /// wrapped at --max-line-width if given; not with --max-line-count, where it has no effect).
    #[arg(long, value_name = "N", requires = "word_timestamps", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(1..=MAX_WORDS_PER_LINE as i64))]
    pub max_words_per_line: Option<i64>,
    /// With --word-timestamps, srt/vtt: one cue per word as it is spoken, the word underlined
    /// (`<u>word</u>`) in its line.
    #[arg(long, requires = "word_timestamps")]
    pub highlight_words: bool,
    #[command(flatten)]
    pub vad: VadArgs,
    /// Numeric type of the matrix products. Default int8: the fastest type (about 2x
    /// faster-whisper int8 on two cores), and its WER pooled over the shared test sets stays
    /// within 0.5 points of f32 — in fact below it (base, beam 5: 9.63 % vs 9.94 %; tiny.en
    /// 12.91 % vs 13.17 %). Per set and method: docs/BENCHMARKS.md, benches/accuracy.sh.
    /// The NPU (`--device`) runs int8 only: f32 and bf16 always run on the CPU.
    #[arg(long, value_enum, default_value_t = ComputeType::DEFAULT)]
    pub compute_type: ComputeType,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// What to write (json and verbose_json name the language and its probability).
    #[arg(long, value_enum, default_value = "txt")]
    pub output_format: Format,
    /// Refuse an input that decodes to more than SECONDS of audio (checked while decoding, so a
    /// small file that decodes to hours stops early). Unbounded by default.
    #[arg(long, value_name = "SECONDS")]
    pub max_audio_secs: Option<f64>,
    /// Write DIR/NAME.<format> per input instead of printing to stdout.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
}

impl TranscribeArgs {
    pub fn options(&self) -> anyhow::Result<TranscribeOptions> {
        let mut o = TranscribeOptions {
            language: match self.language.as_str() {
                "auto" | "" => None,
                code => Some(code.to_lowercase()),
            },
            task: match self.task {
                TaskArg::Transcribe => Task::Transcribe,
                TaskArg::Translate => Task::Translate,
            },
            beam_size: self.beam_size.unwrap_or(5),
            best_of: self.best_of,
            patience: self.patience,
            temperatures: self.temperature.clone(),
            initial_prompt: self.initial_prompt.clone(),
            condition_on_previous_text: self.condition_on_previous_text,
            without_timestamps: self.without_timestamps,
            repetition_penalty: self.repetition_penalty,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            compression_ratio_threshold: Some(self.compression_ratio_threshold),
            log_prob_threshold: Some(self.log_prob_threshold),
            no_speech_threshold: Some(self.no_speech_threshold),
            suppress_tokens: parse_suppress_tokens(&self.suppress_tokens)?,
            hotwords: self.hotwords.clone().filter(|h| !h.trim().is_empty()),
            clip_timestamps: match &self.clip_timestamps {
                Some(c) => whisper::clip::parse(c).map_err(|e| match e {
                    whisper::Error::InvalidArgument(m) => anyhow::anyhow!("--{}", m.replacen("clip timestamps", "clip-timestamps", 1)),
                    e => e.into(),
                })?,
                None => Vec::new(),
            },
            prefix: self.prefix.clone().filter(|p| !p.is_empty()),
            word_timestamps: self.word_timestamps,
            hallucination_silence_threshold: self.hallucination_silence_threshold,
            ..TranscribeOptions::default()
        };
        if self.no_fallback {
            o.temperatures.truncate(1);
        }
        o.validate()?;
        Ok(o)
    }
}

impl TranscribeArgs {
    /// How srt/vtt cues are cut, checked: values in range, combinations that have an effect,
    /// and an output format that has cues.
    pub fn subtitle_options(&self) -> anyhow::Result<SubtitleOptions> {
        let size = |v: Option<i64>| v.map(|v| usize::try_from(v).unwrap_or(0));
        let o = SubtitleOptions {
            max_line_width: size(self.max_line_width),
            max_line_count: size(self.max_line_count),
            max_words_per_line: size(self.max_words_per_line),
            highlight_words: self.highlight_words,
        };
        o.check().map_err(anyhow::Error::msg)?;
        if o.is_set() && !self.output_format.is_subtitles() {
            use clap::ValueEnum;
            let name = self.output_format.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
            bail!("--max-line-width, --max-line-count, --max-words-per-line and --highlight-words shape srt and vtt cues; --output-format {name} has none: ask for srt, vtt or all");
        }
        Ok(o)
    }

    fn render_options(&self) -> anyhow::Result<RenderOptions> {
        Ok(RenderOptions { subtitles: self.subtitle_options()?, json_language: true })
    }
}

/// `-1,220,50257` into token ids; `-1` stands for the non-speech symbols.
pub fn parse_suppress_tokens(s: &str) -> anyhow::Result<Vec<i64>> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.parse::<i64>() {
            Ok(v) if v >= -1 => Ok(v),
            _ => bail!("--suppress-tokens: `{t}` is not a token id (a number >= 0, or -1 for the non-speech symbols)"),
        })
        .collect()
}

fn task_name(t: TaskArg) -> &'static str {
    match t {
        TaskArg::Transcribe => "transcribe",
        TaskArg::Translate => "translate",
    }
}

pub fn run(args: TranscribeArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    if args.live {
        return run_live(args, opts);
    }
    let render_opts = args.render_options()?;
    if args.output_format == Format::All && args.output_dir.is_none() {
        bail!("--output-format all writes one file per format: add --output-dir DIR");
    }
    if let Some(m) = args.max_audio_secs {
        if !(m.is_finite() && m > 0.0) {
            bail!("--max-audio-secs {m}: use a number of seconds above 0");
        }
    }
    let stdin_inputs = args.files.iter().filter(|f| f.as_os_str() == "-").count();
    if stdin_inputs > 1 {
        bail!("`-` (stdin) can be given once");
    }
    if stdin_inputs == 1 && std::io::stdin().is_terminal() {
        bail!("`-` reads audio from stdin, but stdin is a terminal: pipe a file in (`amanuensis transcribe - < talk.wav`)");
    }
    for f in &args.files {
        if f.as_os_str() != "-" && !f.is_file() {
            bail!("{}: no such file", f.display());
        }
    }
    if let Some(n) = args.threads {
        crate::engine::set_threads(n)?;
    }
    if let Some(dir) = &args.output_dir {
        check_distinct_outputs(dir, &args.files)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating output directory {}", dir.display()))?;
    }
    // Clips choose what to transcribe in place of the VAD (faster-whisper ignores vad_filter
    // when clip_timestamps is given; asking for both is refused rather than ignored).
    let vad_opts = if opts.clip_timestamps.is_empty() {
        args.vad.options(args.batch_size > 1)?
    } else if args.vad.vad_filter || args.vad.is_tuned() {
        bail!("--clip-timestamps replaces the VAD: drop --vad-filter and the --vad-* options, or the clips");
    } else {
        None
    };
    let mut vad = match &vad_opts {
        Some(_) => Some(load_vad()?),
        None => None,
    };
    let t_load = Instant::now();
    let model = load_model(&args.model, args.compute_type)?;
    tracing::info!(seconds = t_load.elapsed().as_secs_f64(), "model loaded");
    let transcriber = Transcriber::new(&model)?;
    let (mut audio_total, mut wall_total) = (0.0, 0.0);
    let mut failures = 0;
    for file in &args.files {
        let t0 = Instant::now();
        let vad = vad.as_mut().zip(vad_opts.as_ref());
        let result = whisper::pool::on_pool(|| transcribe_file(&transcriber, file, (args.raw_s16le, args.max_audio_secs), &opts, args.batch_size as usize, vad));
        let wall = t0.elapsed().as_secs_f64();
        match result {
            Ok(t) => {
                if opts.language.is_none() {
                    tracing::info!(file = %file.display(), language = %t.language, probability = t.language_probability, "detected language");
                }
                audio_total += t.duration;
                wall_total += wall;
                let task = task_name(args.task);
                match &args.output_dir {
                    Some(dir) => {
                        let formats: Vec<Format> = if args.output_format == Format::All { Format::CONCRETE.to_vec() } else { vec![args.output_format] };
                        for fmt in formats {
                            let path = output_path(dir, file, fmt);
                            std::fs::write(&path, render_with(&t, fmt, task, &render_opts)).with_context(|| format!("writing {}", path.display()))?;
                        }
                    }
                    None => print!("{}", render_with(&t, args.output_format, task, &render_opts)),
                }
                eprintln!("{}: audio {:.2} s, wall {:.2} s, realtime {:.1}x", file.display(), t.duration, wall, t.duration / wall.max(1e-9));
            }
            Err(e) => {
                failures += 1;
                eprintln!("error: {}", error_line(file, &e));
            }
        }
    }
    if args.files.len() > 1 {
        eprintln!("total: audio {audio_total:.2} s, wall {wall_total:.2} s, realtime {:.1}x", audio_total / wall_total.max(1e-9));
    }
    if failures > 0 {
        bail!("{failures} of {} file(s) failed", args.files.len());
    }
    Ok(())
}

/// What a failed input prints: the error, prefixed with the file's name unless the error
/// already starts with it (audio errors name their file).
fn error_line(file: &Path, e: &anyhow::Error) -> String {
    let msg = format!("{e:#}");
    let name = if file.as_os_str() == "-" { "<stdin>".to_string() } else { file.display().to_string() };
    if msg.starts_with(&format!("{name}: ")) {
        msg
    } else {
        format!("{}: {msg}", file.display())
    }
}

/// Refuses inputs that would write the same files in the output directory (`a.wav` and
/// `a.flac`, or `x/a.wav` and `y/a.wav`): the second would silently overwrite the first's
/// transcripts. Refused rather than renamed, so that every output name stays predictable
/// from its input's name (scripts look for DIR/NAME.txt).
fn check_distinct_outputs(dir: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    let mut seen: Vec<(PathBuf, &PathBuf)> = Vec::new();
    for f in files {
        let out = output_path(dir, f, Format::Txt);
        if let Some((_, first)) = seen.iter().find(|(o, _)| *o == out) {
            let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            bail!(
                "{} and {} would both write {}/{stem}.* in --output-dir (the second would overwrite the first's transcripts): rename one, or transcribe them into different --output-dir folders",
                first.display(),
                f.display(),
                dir.display()
            );
        }
        seen.push((out, f));
    }
    Ok(())
}

/// `DIR/NAME.<ext>` for input `path/NAME.ext`.
pub fn output_path(dir: &Path, input: &Path, fmt: Format) -> PathBuf {
    let stem = match input.file_stem().map(|s| s.to_string_lossy().into_owned()) {
        Some(s) if s != "-" => s,
        _ if input.as_os_str() == "-" => "stdin".into(),
        _ => "audio".into(),
    };
    dir.join(format!("{stem}.{}", fmt.extension()))
}

fn transcribe_file(
    tr: &Transcriber,
    file: &Path,
    (raw_rate, max_secs): (Option<u32>, Option<f64>),
    opts: &TranscribeOptions,
    batch_size: usize,
    vad: Option<(&mut SileroVad, &VadOptions)>,
) -> anyhow::Result<whisper::transcribe::Transcript> {
    // The audio is decoded as a stream into an unlinked temp file and read back window by
    // window: memory stays flat however long the recording (stdin included).
    let mut input = AudioInput::from_arg(&file.to_string_lossy());
    if let Some(rate) = raw_rate {
        input = input.raw_s16le(rate);
    }
    let source = SpooledSource::from_input_limited(input, max_secs)?;
    let duration = source.len() as f64 / whisper::audio::SAMPLE_RATE as f64;
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new((duration * 100.0) as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} cs ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(file.display().to_string());
        Some(b)
    } else {
        None
    };
    let mut progress = |seg: &whisper::transcribe::Segment| {
        if let Some(b) = &bar {
            b.set_position((seg.end * 100.0) as u64);
        }
    };
    // With the VAD: only speech is transcribed, and times map back to the original timeline.
    let chunks = match vad {
        Some((vad, vo)) => Some(speech_chunks(&source, vad, vo)?),
        None => None,
    };
    let timeline = chunks.as_deref().map(SpeechTimeline::new);
    let t = if chunks.as_ref().is_some_and(|c| c.is_empty()) {
        // No speech at all: nothing to transcribe (and nothing to hallucinate).
        let language = opts.language.clone().unwrap_or_else(|| "en".into());
        Transcript { language, language_probability: 1.0, duration, segments: Vec::new() }
    } else if batch_size > 1 {
        let windows = match &chunks {
            Some(c) => speech_windows(c),
            // The clips, or plain 30 s windows when there are none.
            None => whisper::pipeline::clip_windows(&opts.clip_timestamps, source.len()),
        };
        let mut read = |r: std::ops::Range<usize>| source.read(r);
        let input = whisper::pipeline::BatchInput { read: &mut read, timeline: timeline.as_ref(), duration };
        tr.transcribe_batched(&windows, input, opts, batch_size, &mut progress)?
    } else if let Some(c) = &chunks {
        let speech = Gather::new(source, c.iter().map(|c| c.start..c.end).collect())?;
        let mut t = tr.transcribe_source(Box::new(speech), opts, &mut progress)?;
        if let Some(timeline) = &timeline {
            t.segments.iter_mut().for_each(|s| whisper::words::restore_speech_timestamps(s, timeline));
        }
        t.duration = duration;
        t
    } else {
        tr.transcribe_source(Box::new(source), opts, &mut progress)?
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(t)
}

/// `transcribe --live`: one input as a live stream.
fn run_live(args: TranscribeArgs, opts: TranscribeOptions) -> anyhow::Result<()> {
    let json = crate::live_cmd::check_format(args.output_format)?;
    if args.files.len() != 1 {
        bail!("--live takes one input (a file, or `-` for stdin)");
    }
    if args.output_dir.is_some() || args.batch_size > 1 || args.word_timestamps || !opts.clip_timestamps.is_empty() || args.max_audio_secs.is_some() || args.vad.vad_filter && args.vad.no_vad_filter {
        bail!("--live prints text as it is confirmed: --output-dir, --batch-size, --word-timestamps (live mode always times words; see --output-format json) --clip-timestamps and --max-audio-secs do not apply");
    }
    if !(args.live_speed >= 0.0 && args.live_speed <= 1000.0) {
        bail!("--live-speed {} is out of range: 0 (as fast as decoding) up to 1000 times real time", args.live_speed);
    }
    let live = crate::live_cmd::live_options(opts, args.beam_size.is_some(), &args.vad, args.live_step)?;
    if let Some(n) = args.threads {
        crate::engine::set_threads(n)?;
    }
    let rx = crate::live_cmd::read_input(&args.files[0], args.raw_s16le)?;
    let model = load_model(&args.model, args.compute_type)?;
    let tr = Transcriber::new(&model)?;
    crate::live_cmd::run(&tr, crate::live_cmd::LiveRun { opts: live, speed: args.live_speed, json }, rx)
}
