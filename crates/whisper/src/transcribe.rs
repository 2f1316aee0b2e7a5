//! Long-form transcription: seek through the audio window by window, with temperature
//! fallback, no-speech skipping and conditioning on previous text — the loop of
//! openai-whisper's transcribe.py as faster-whisper 1.2.1 runs it.

use std::io::Write;

use tracing::{debug, info_span};

use std::sync::Arc;

use crate::audio::SampleSource;
use crate::clip::{self, SeekClips};
use crate::decode::GenerateOptions;
use crate::features::StreamingFeatures;
use crate::window::{decode_window, WindowOptions, WindowResult};
use crate::mel::{Mel, MelExtractor, HOP_LENGTH, N_FRAMES};
use crate::model::{CrossKv, KvCache, Whisper};
use crate::words::{self, Word};
pub use crate::split::split_by_timestamps;
use crate::tokenizer::Task;
use crate::{audio::SAMPLE_RATE, Error, Result};

/// Seconds per timestamp token.
pub const TIME_PRECISION: f64 = 0.02;
const SECONDS_PER_FRAME: f64 = HOP_LENGTH as f64 / SAMPLE_RATE as f64;

/// Everything that steers a transcription. Defaults are faster-whisper's.
#[derive(Clone, Debug)]
pub struct TranscribeOptions {
    /// Language code; `None` detects it (multilingual models) or uses English.
    pub language: Option<String>,
    pub task: Task,
    pub beam_size: usize,
    pub best_of: usize,
    pub patience: f32,
    pub length_penalty: f32,
    pub temperatures: Vec<f32>,
    pub compression_ratio_threshold: Option<f32>,
    pub log_prob_threshold: Option<f32>,
    pub no_speech_threshold: Option<f32>,
    pub condition_on_previous_text: bool,
    pub prompt_reset_on_temperature: f32,
    pub initial_prompt: Option<String>,
    pub without_timestamps: bool,
    pub max_initial_timestamp: f32,
    pub suppress_blank: bool,
    /// Token ids to suppress; `-1` stands for the model's non-speech symbols.
    pub suppress_tokens: Vec<i64>,
    pub seed: u64,
    /// Penalty on already generated tokens' logits (1 = off; CTranslate2's semantics).
    pub repetition_penalty: f32,
    /// Ban repeated n-grams of this size (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Words given to every window as a prompt (faster-whisper's `hotwords`; not to the
    /// window that gets the `prefix`).
    pub hotwords: Option<String>,
    /// Stretches to transcribe, `[start, end, start, end, ...]` in seconds (an odd count: the
    /// last runs to the end); empty = the whole recording (faster-whisper's `clip_timestamps`).
    pub clip_timestamps: Vec<f64>,
    /// Text the window at seek 0 is forced to begin with (faster-whisper's `prefix`); it is
    /// part of that window's text.
    pub prefix: Option<String>,
    /// Detect the language on the first window exactly as it is transcribed, and reuse that
    /// encoding (one encoder pass fewer for inputs under 30 s). Off: faster-whisper's rule,
    /// whose detection window keeps one more mel frame, so short inputs are encoded twice.
    pub detect_on_first_window: bool,
    /// Word-level timestamps (faster-whisper's `word_timestamps`): every segment gets its
    /// words, and its start and end are refined from them.
    pub word_timestamps: bool,
    /// With word timestamps: marks merged into the following word.
    pub prepend_punctuations: String,
    /// With word timestamps: marks merged into the preceding word.
    pub append_punctuations: String,
    /// With word timestamps (sequential loop): skip silences longer than this many seconds
    /// before a segment that looks like a hallucination (faster-whisper's semantics).
    pub hallucination_silence_threshold: Option<f32>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: None,
            task: Task::Transcribe,
            beam_size: 5,
            best_of: 5,
            patience: 1.0,
            length_penalty: 1.0,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            log_prob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            initial_prompt: None,
            without_timestamps: false,
            max_initial_timestamp: 1.0,
            suppress_blank: true,
            suppress_tokens: vec![-1],
            seed: 0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            hotwords: None,
            clip_timestamps: Vec::new(),
            prefix: None,
            detect_on_first_window: false,
            word_timestamps: false,
            prepend_punctuations: crate::words::PREPEND_PUNCTUATIONS.into(),
            append_punctuations: crate::words::APPEND_PUNCTUATIONS.into(),
            hallucination_silence_threshold: None,
        }
    }
}

impl TranscribeOptions {
    /// Rejects values no decoder can honour, with a message saying what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(1..=16).contains(&self.beam_size) {
            return bad(format!(
                "beam size {} must be between 1 and 16",
                self.beam_size
            ));
        }
        if !(1..=16).contains(&self.best_of) {
            return bad(format!("best_of {} must be between 1 and 16", self.best_of));
        }
        if !(self.patience > 0.0 && self.patience <= 16.0) {
            return bad(format!("patience {} must be in (0, 16]", self.patience));
        }
        if !self.length_penalty.is_finite()
            || self.length_penalty < 0.0
            || self.length_penalty > 10.0
        {
            return bad(format!(
                "length penalty {} must be in [0, 10]",
                self.length_penalty
            ));
        }
        if self.temperatures.is_empty()
            || self.temperatures.iter().any(|t| !(0.0..=2.0).contains(t))
        {
            return bad("temperatures must be a non-empty list of values in [0, 2]".into());
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0 && self.repetition_penalty <= 10.0) {
            return bad(format!("repetition penalty {} must be in (0, 10]", self.repetition_penalty));
        }
        if self.no_repeat_ngram_size > 64 {
            return bad(format!("no-repeat n-gram size {} must be between 0 (off) and 64", self.no_repeat_ngram_size));
        }
        if !(0.0..=30.0).contains(&self.max_initial_timestamp) {
            return bad("max initial timestamp must be in [0, 30] seconds".into());
        }
        if self.hallucination_silence_threshold.is_some_and(|t| !(t.is_finite() && t >= 0.0)) {
            return bad("hallucination silence threshold must be a number of seconds >= 0".into());
        }
        clip::validate(&self.clip_timestamps)
    }

    /// The prefix, when there is one (faster-whisper: any non-empty string).
    fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref().filter(|p| !p.is_empty())
    }
}

/// One transcribed segment (OpenAI's verbose_json fields).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Segment {
    pub id: usize,
    pub seek: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// The words, when word timestamps were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<Word>>,
}

/// The result of transcribing one input.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Transcript {
    pub language: String,
    pub language_probability: f32,
    /// Seconds of audio.
    pub duration: f64,
    pub segments: Vec<Segment>,
}

impl Transcript {
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
            .trim()
            .to_string()
    }
}

/// Ratio of the UTF-8 length of `text` to its zlib-compressed length (Whisper's repetition
/// detector; zlib level 6 like Python's `zlib.compress`).
pub fn compression_ratio(text: &str) -> f32 {
    let bytes = text.as_bytes();
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(bytes).expect("in-memory write");
    let compressed = enc.finish().expect("in-memory write");
    bytes.len() as f32 / compressed.len() as f32
}

/// Holds what stays the same across inputs: the mel extractor and scratch state.
pub struct Transcriber<'a> {
    pub model: &'a Whisper,
    mel: MelExtractor,
}

impl<'a> Transcriber<'a> {
    pub fn new(model: &'a Whisper) -> Result<Self> {
        Ok(Transcriber {
            model,
            mel: MelExtractor::new(model.dims.n_mels)?,
        })
    }

    pub fn mel(&self, samples: &[f32]) -> Mel {
        self.mel.compute(samples)
    }

    /// Detects the spoken language from the first 30 s window: (code, probability).
    pub fn detect_language(&self, window_audio: &[f32]) -> Result<(String, f32)> {
        let tk = &self.model.tokenizer;
        if !tk.multilingual {
            return Ok(("en".into(), 1.0));
        }
        let cross = self.model.cross_kv(window_audio);
        let mut cache = self.model.new_kv_cache(1);
        let hidden = self.model.decode(&[tk.sot], 1, &mut cache, &cross)?;
        let mut logits = vec![0f32; self.model.dims.n_vocab];
        self.model.logits(hidden, 1, &mut logits);
        let langs = tk.languages();
        let lang_logits: Vec<f32> = langs.iter().map(|(_, id)| logits[*id as usize]).collect();
        let max = lang_logits
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = lang_logits.iter().map(|l| (l - max).exp()).sum();
        let (best, &best_logit) =
            lang_logits
                .iter()
                .enumerate()
                .fold((0, &f32::NEG_INFINITY), |acc, (i, l)| {
                    if *l > *acc.1 {
                        (i, l)
                    } else {
                        acc
                    }
                });
        Ok((langs[best].0.clone(), (best_logit - max).exp() / sum))
    }

    /// Every language's probability on the first 30 s of 16 kHz `samples` (faster-whisper's
    /// `detect_language` on audio: the first 3000 log-mel frames), most probable first.
    /// English-only models answer `[("en", 1.0)]`.
    pub fn language_probabilities(&self, samples: &[f32]) -> Result<Vec<(String, f32)>> {
        let tk = &self.model.tokenizer;
        if !tk.multilingual {
            return Ok(vec![("en".into(), 1.0)]);
        }
        // The log-mel of the whole input (its clamp follows the global maximum), first window.
        let mel = self.mel.compute(samples).window(0, N_FRAMES).pad_or_trim(N_FRAMES);
        let audio = self.model.encode(&mel)?;
        let cross = self.model.cross_kv(&audio);
        let mut cache = self.model.new_kv_cache(1);
        let hidden = self.model.decode(&[tk.sot], 1, &mut cache, &cross)?;
        let mut logits = vec![0f32; self.model.dims.n_vocab];
        self.model.logits(hidden, 1, &mut logits);
        let langs = tk.languages();
        let max = langs.iter().map(|(_, id)| logits[*id as usize]).fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = langs.iter().map(|(_, id)| (logits[*id as usize] - max).exp()).sum();
        let mut probs: Vec<(String, f32)> = langs.iter().map(|(code, id)| (code.clone(), (logits[*id as usize] - max).exp() / sum)).collect();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(probs)
    }

    /// How each window is decoded under `opts` (generation options, fallback rules).
    pub fn window_options(&self, opts: &TranscribeOptions) -> WindowOptions {
        WindowOptions {
            generate: GenerateOptions {
                beam_size: opts.beam_size,
                patience: opts.patience,
                length_penalty: opts.length_penalty,
                temperature: 0.0,
                best_of: opts.best_of,
                suppress_tokens: self.suppress_tokens(opts),
                suppress_blank: opts.suppress_blank,
                max_initial_timestamp_index: (opts.max_initial_timestamp as f64 / TIME_PRECISION).round() as u32,
                max_length: self.model.dims.n_text_ctx,
                seed: opts.seed,
                repetition_penalty: opts.repetition_penalty,
                no_repeat_ngram_size: opts.no_repeat_ngram_size,
            },
            temperatures: opts.temperatures.clone(),
            compression_ratio_threshold: opts.compression_ratio_threshold,
            log_prob_threshold: opts.log_prob_threshold,
            no_speech_threshold: opts.no_speech_threshold,
        }
    }

    /// The hotwords' tokens (faster-whisper: ` ` + trimmed text, at most half the context).
    pub fn hotword_tokens(&self, opts: &TranscribeOptions) -> Result<Vec<u32>> {
        let Some(h) = opts.hotwords.as_deref().map(str::trim).filter(|h| !h.is_empty()) else { return Ok(Vec::new()) };
        let mut t = self.model.tokenizer.encode(&format!(" {h}"))?;
        t.truncate(self.model.dims.n_text_ctx / 2 - 1);
        Ok(t)
    }

    /// The prefix's tokens (faster-whisper: ` ` + trimmed text, at most half the context).
    pub fn prefix_tokens(&self, opts: &TranscribeOptions) -> Result<Vec<u32>> {
        let Some(p) = opts.prefix() else { return Ok(Vec::new()) };
        let tk = &self.model.tokenizer;
        let mut t = tk.encode(&format!(" {}", p.trim()))?;
        if t.contains(&tk.eot) {
            return Err(Error::InvalidArgument("the prefix cannot contain the end-of-text token <|endoftext|>".into()));
        }
        t.truncate(self.model.dims.n_text_ctx / 2 - 1);
        Ok(t)
    }

    fn suppress_tokens(&self, opts: &TranscribeOptions) -> Vec<u32> {
        let tk = &self.model.tokenizer;
        let mut out: Vec<u32> = opts
            .suppress_tokens
            .iter()
            .filter(|&&t| t >= 0)
            .map(|&t| t as u32)
            .collect();
        if opts.suppress_tokens.contains(&-1) {
            out.extend(tk.non_speech_tokens());
        }
        if !opts.suppress_tokens.is_empty() {
            out.extend([
                tk.transcribe,
                tk.translate,
                tk.sot,
                tk.sot_prev,
                tk.sot_lm,
                tk.no_speech,
            ]);
        }
        out.retain(|&t| (t as usize) < self.model.dims.n_vocab);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Transcribes 16 kHz mono `samples`, calling `on_segment` as each segment is final.
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        on_segment: &mut dyn FnMut(&Segment),
    ) -> Result<Transcript> {
        let _span = info_span!(
            "transcribe",
            seconds = samples.len() as f64 / SAMPLE_RATE as f64
        )
        .entered();
        let session = self.start(samples, opts)?;
        self.run(session, on_segment)
    }

    /// Drives a session to its end, encoding each window as it comes.
    fn run(&self, mut session: Session<'a>, on_segment: &mut dyn FnMut(&Segment)) -> Result<Transcript> {
        let mut cache = session.new_cache();
        while !session.is_done() {
            let encoded = match session.window_mel()? {
                Some(mel) => Some(self.model.encode(&mel)?),
                None => None,
            };
            session.step(encoded, &mut cache, on_segment)?;
        }
        Ok(session.finish())
    }

    /// Starts a transcription that the caller drives window by window (so that a scheduler
    /// can batch the windows of several sessions through the encoder).
    pub fn start(&self, samples: &[f32], opts: &TranscribeOptions) -> Result<Session<'a>> {
        opts.validate()?;
        let duration = samples.len() as f64 / SAMPLE_RATE as f64;
        self.start_features(Features::Whole(self.mel.compute(samples)), duration, opts)
    }

    /// Starts a transcription that reads its audio from `source` window by window: the
    /// log-mel is never held whole, so memory stays flat however long the recording.
    pub fn start_source(&self, source: Box<dyn SampleSource>, opts: &TranscribeOptions) -> Result<Session<'a>> {
        opts.validate()?;
        let duration = source.len() as f64 / SAMPLE_RATE as f64;
        let features = StreamingFeatures::new(source, self.model.dims.n_mels)?;
        self.start_features(Features::Streaming(features), duration, opts)
    }

    /// [`Transcriber::transcribe`] over a [`SampleSource`] (flat memory).
    pub fn transcribe_source(&self, source: Box<dyn SampleSource>, opts: &TranscribeOptions, on_segment: &mut dyn FnMut(&Segment)) -> Result<Transcript> {
        let _span = info_span!("transcribe", seconds = source.len() as f64 / SAMPLE_RATE as f64).entered();
        let session = self.start_source(source, opts)?;
        self.run(session, on_segment)
    }

    fn start_features(&self, features: Features, duration: f64, opts: &TranscribeOptions) -> Result<Session<'a>> {
        let model = self.model;
        let tk = &model.tokenizer;
        let content_frames = features.n_frames().saturating_sub(1);
        let clips = SeekClips::new(&opts.clip_timestamps, content_frames);
        let mut pre_encoded = None;
        let (language, language_probability) = match &opts.language {
            Some(code) if !tk.multilingual => {
                // English-only models refuse other languages (faster-whisper would silently
                // transcribe as English; an explicit error is clearer).
                tk.sot_sequence(Some(code), opts.task)?;
                ("en".to_string(), 1.0)
            }
            Some(code) => {
                tk.language_token(code).ok_or_else(|| {
                    Error::InvalidArgument(format!("unknown language code `{code}`"))
                })?;
                (code.clone(), 1.0)
            }
            None if !tk.multilingual => ("en".to_string(), 1.0),
            None => {
                // faster-whisper detects on 3000 frames of the features (the last, dropped
                // frame included) from the first clip's start, so the encoding is reusable only
                // when that is exactly the first window (a full one at the same seek);
                // `detect_on_first_window` detects on the first window as transcribed instead,
                // which saves short inputs a whole encoder pass.
                let first = (!clips.is_done()).then(|| (clips.seek(), clips.segment_size(N_FRAMES)));
                let (start, frames) = match first {
                    Some(window) if opts.detect_on_first_window => window,
                    _ => (clip::detection_frame(&opts.clip_timestamps, content_frames), N_FRAMES),
                };
                let audio = model.encode(&features.window(start, frames)?.pad_or_trim(N_FRAMES))?;
                let r = self.detect_language(&audio)?;
                if first == Some((start, frames)) {
                    pre_encoded = Some(audio);
                }
                r
            }
        };
        let sot_sequence = tk.sot_sequence(Some(&language), opts.task)?;
        let mut all_tokens = Vec::new();
        if let Some(p) = &opts.initial_prompt {
            all_tokens.extend(tk.encode(&format!(" {}", p.trim()))?);
        }
        Ok(Session {
            model,
            window_opts: Arc::new(self.window_options(opts)),
            opts: opts.clone(),
            features,
            clips,
            pre_encoded,
            sot_sequence,
            hotword_tokens: self.hotword_tokens(opts)?,
            prefix_tokens: self.prefix_tokens(opts)?,
            all_tokens,
            prompt_reset_since: 0,
            segments: Vec::new(),
            token_logprobs: Vec::new(),
            language,
            language_probability,
            duration,
            last_speech_timestamp: 0.0,
        })
    }
}

/// Log-mel of a session's input: computed whole (audio already in memory) or window by
/// window from a sample source (flat memory for long recordings); the same values either way.
enum Features {
    Whole(Mel),
    Streaming(StreamingFeatures<Box<dyn SampleSource>>),
}

impl Features {
    fn n_frames(&self) -> usize {
        match self {
            Features::Whole(m) => m.n_frames,
            Features::Streaming(f) => f.n_frames(),
        }
    }

    fn window(&self, start: usize, n: usize) -> Result<Mel> {
        match self {
            Features::Whole(m) => Ok(m.window(start, n)),
            Features::Streaming(f) => f.window(start, n),
        }
    }
}

/// One transcription in progress: the seek loop of openai-whisper's transcribe.py, one
/// window per [`Session::step`].
pub struct Session<'a> {
    model: &'a Whisper,
    opts: TranscribeOptions,
    window_opts: Arc<WindowOptions>,
    features: Features,
    /// The seek, within the clips being transcribed (the whole recording by default).
    clips: SeekClips,
    /// Encoder output of the first window, left over from language detection.
    pre_encoded: Option<Vec<f32>>,
    sot_sequence: Vec<u32>,
    hotword_tokens: Vec<u32>,
    /// Forced at the start of the window at seek 0.
    prefix_tokens: Vec<u32>,
    all_tokens: Vec<u32>,
    prompt_reset_since: usize,
    segments: Vec<Segment>,
    /// The log-probability of each token of each segment, parallel to `segments`.
    token_logprobs: Vec<Vec<f32>>,
    language: String,
    language_probability: f32,
    duration: f64,
    /// End of the last words (word timestamps): how long the pause before a window's first
    /// word was.
    last_speech_timestamp: f64,
}

impl Session<'_> {
    pub fn is_done(&self) -> bool {
        self.clips.is_done()
    }

    /// Seconds of audio already transcribed (the seek: with clips, where the current one is).
    pub fn progress_seconds(&self) -> f64 {
        let content = self.features.n_frames().saturating_sub(1);
        let at = if self.is_done() { content } else { self.clips.seek().min(content) };
        at as f64 * SECONDS_PER_FRAME
    }

    pub fn duration(&self) -> f64 {
        self.duration
    }

    pub fn language(&self) -> &str {
        &self.language
    }

    /// The probability of [`Session::language`] (1 when it was given or the model is English-only).
    pub fn language_probability(&self) -> f32 {
        self.language_probability
    }

    /// A KV cache big enough for this session's beams (reusable across sessions).
    pub fn new_cache(&self) -> KvCache {
        self.model
            .new_kv_cache(self.opts.beam_size.max(self.opts.best_of))
    }

    fn segment_size(&self) -> usize {
        self.clips.segment_size(N_FRAMES)
    }

    /// The log-mel of the current window when it still needs encoding; `None` when the
    /// session is done or the window is already encoded.
    pub fn window_mel(&self) -> Result<Option<Mel>> {
        if self.is_done() || self.pre_encoded.is_some() {
            return Ok(None);
        }
        Ok(Some(self.features.window(self.clips.seek(), self.segment_size())?.pad_or_trim(N_FRAMES)))
    }

    /// Decodes the current window from its encoder output (`None` if [`window_mel`] said it
    /// needs none) and advances. Finished segments are passed to `on_segment`.
    pub fn step(
        &mut self,
        encoded: Option<Vec<f32>>,
        cache: &mut KvCache,
        on_segment: &mut dyn FnMut(&Segment),
    ) -> Result<()> {
        if self.is_done() {
            return Ok(());
        }
        let audio = self.window_audio(encoded)?;
        let cross = self.model.cross_kv(&audio);
        drop(audio);
        let result = decode_window(self.model, &cross, cache, self.window_prompt(), self.window_opts.clone())?;
        self.complete_window_with_words(result, &cross, on_segment)
    }

    /// The encoder output of the current window: `encoded`, or the one kept from language
    /// detection.
    pub fn window_audio(&mut self, encoded: Option<Vec<f32>>) -> Result<Vec<f32>> {
        let audio = encoded.or_else(|| self.pre_encoded.take());
        self.pre_encoded = None;
        audio.ok_or_else(|| Error::InvalidArgument("step needs the encoder output of the current window".into()))
    }

    /// How every window of this session is decoded.
    pub fn window_options(&self) -> Arc<WindowOptions> {
        self.window_opts.clone()
    }

    /// The prompt of the current window: hotwords and previous text (when conditioning), the
    /// SOT sequence, and at seek 0 the forced prefix (faster-whisper's `get_prompt`).
    pub fn window_prompt(&self) -> Vec<u32> {
        let prefix: &[u32] = if self.clips.seek() == 0 { &self.prefix_tokens } else { &[] };
        let previous = &self.all_tokens[self.prompt_reset_since..];
        build_prompt(self.model, previous, &self.hotword_tokens, &self.sot_sequence, self.opts.without_timestamps, prefix)
    }

    /// Applies the decoded current window: no-speech skipping, segments, seek, prompt reset.
    /// Without the window's cross-attention K/V no word timestamps are computed: use
    /// [`Session::complete_window_with_words`] when the options ask for them.
    pub fn complete_window(&mut self, result: WindowResult, on_segment: &mut dyn FnMut(&Segment)) {
        // Without an alignment pass nothing can fail.
        let _ = self.apply_window(result, None, on_segment);
    }

    /// [`Session::complete_window`] with word timestamps (when the options ask for them) from
    /// `cross`, the cross-attention K/V the window was decoded with.
    pub fn complete_window_with_words(&mut self, result: WindowResult, cross: &CrossKv, on_segment: &mut dyn FnMut(&Segment)) -> Result<()> {
        self.apply_window(result, Some(cross), on_segment)
    }

    fn apply_window(&mut self, result: WindowResult, cross: Option<&CrossKv>, on_segment: &mut dyn FnMut(&Segment)) -> Result<()> {
        if self.is_done() {
            return Ok(());
        }
        let tk = &self.model.tokenizer;
        let opts = &self.opts;
        let seek = self.clips.seek();
        let time_offset = seek as f64 * SECONDS_PER_FRAME;
        let segment_size = self.segment_size();
        let segment_duration = segment_size as f64 * SECONDS_PER_FRAME;
        let WindowResult { generation: result, avg_logprob, temperature, compression_ratio: cr } = result;
        if let Some(th) = opts.no_speech_threshold {
            let mut skip = result.no_speech_prob > th;
            if opts.log_prob_threshold.is_some_and(|lp| avg_logprob > lp) {
                skip = false;
            }
            if skip {
                debug!(
                    no_speech_prob = result.no_speech_prob,
                    "skipping a window without speech"
                );
                self.clips.move_to(seek + segment_size);
                return Ok(());
            }
        }
        let (pieces, mut new_seek) = split_by_timestamps(
            tk.no_timestamps + 1,
            &result.tokens,
            time_offset,
            seek,
            segment_size,
            segment_duration,
        );
        // The pieces tile the window's tokens in order: each one's log-probabilities follow.
        let mut at = 0;
        let mut logprobs: Vec<Vec<f32>> = pieces
            .iter()
            .map(|(_, _, tokens)| {
                let lp = result.token_logprobs.get(at..at + tokens.len()).map_or_else(|| vec![0.0; tokens.len()], <[f32]>::to_vec);
                at += tokens.len();
                lp
            })
            .collect();
        let mut segments: Vec<Segment> = pieces
            .into_iter()
            .map(|(start, end, tokens)| Segment {
                id: 0,
                seek,
                start,
                end,
                text: tk.decode(&tokens),
                tokens,
                temperature,
                avg_logprob,
                compression_ratio: cr,
                no_speech_prob: result.no_speech_prob,
                words: None,
            })
            .collect();
        if let (true, Some(cross)) = (opts.word_timestamps, cross) {
            let window = words::WindowText { cross, segments: &segments, num_frames: segment_size };
            let ww = words::align_windows(self.model, &self.sot_sequence, &self.language, &[window], opts)?.remove(0);
            words::assign_words(&ww, &mut segments, seek as f64 / 100.0, self.last_speech_timestamp, tk.eot);
            let n = result.tokens.len();
            let single_timestamp_ending = n >= 2 && !tk.is_timestamp(result.tokens[n - 2]) && tk.is_timestamp(result.tokens[n - 1]);
            if !single_timestamp_ending {
                if let Some(end) = words::last_end(&segments).filter(|&e| e > time_offset) {
                    new_seek = (end * 100.0).round_ties_even() as usize;
                }
            }
            if let Some(threshold) = opts.hallucination_silence_threshold {
                let window = words::WindowSpan {
                    seek,
                    time_offset,
                    duration: segment_duration,
                    end_time: (seek + N_FRAMES) as f64 * SECONDS_PER_FRAME,
                    content_frames: self.clips.content_frames(),
                };
                match words::skip_hallucinations(&segments, threshold as f64, &window, self.last_speech_timestamp) {
                    words::HallucinationSkip::Window { seek } => {
                        // faster-whisper moves on without the window's segments or prompt reset.
                        self.clips.move_to(seek.max(self.clips.seek() + 1));
                        return Ok(());
                    }
                    words::HallucinationSkip::From { segment, seek } => {
                        segments.truncate(segment);
                        logprobs.truncate(segment);
                        new_seek = seek;
                    }
                    words::HallucinationSkip::None => {}
                }
            }
            if let Some(end) = words::last_end(&segments) {
                self.last_speech_timestamp = end;
            }
        }
        // A window always moves the seek forward, so a degenerate decoding cannot loop.
        self.clips.move_to(new_seek.max(seek + 1));
        for (mut seg, lp) in segments.into_iter().zip(logprobs) {
            if seg.start == seg.end || seg.text.trim().is_empty() {
                continue;
            }
            self.all_tokens.extend_from_slice(&seg.tokens);
            seg.id = self.segments.len() + 1;
            on_segment(&seg);
            self.segments.push(seg);
            self.token_logprobs.push(lp);
        }
        if !opts.condition_on_previous_text || temperature > opts.prompt_reset_on_temperature {
            self.prompt_reset_since = self.all_tokens.len();
        }
        Ok(())
    }

    /// The segments transcribed so far.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The log-probability of every token of every segment so far (parallel to
    /// [`Session::segments`] and to each segment's `tokens`; 0 for forced prefix tokens).
    pub fn token_logprobs(&self) -> &[Vec<f32>] {
        &self.token_logprobs
    }

    pub fn finish(self) -> Transcript {
        Transcript {
            language: self.language,
            language_probability: self.language_probability,
            duration: self.duration,
            segments: self.segments,
        }
    }
}

/// A window's prompt (faster-whisper's `get_prompt`): `<|startofprev|>`, the hotwords (unless
/// the window has a prefix) and the last previous tokens; the SOT sequence;
/// `<|notimestamps|>`; the prefix, after `<|0.00|>` when timestamps are on.
pub fn build_prompt(model: &Whisper, previous: &[u32], hotwords: &[u32], sot_sequence: &[u32], without_timestamps: bool, prefix: &[u32]) -> Vec<u32> {
    let tk = &model.tokenizer;
    let hotwords = if prefix.is_empty() { hotwords } else { &[] };
    let mut prompt = Vec::with_capacity(previous.len().min(model.dims.n_text_ctx / 2) + hotwords.len() + prefix.len() + 6);
    if !previous.is_empty() || !hotwords.is_empty() {
        prompt.push(tk.sot_prev);
        prompt.extend_from_slice(hotwords);
        let keep = model.dims.n_text_ctx / 2 - 1;
        prompt.extend_from_slice(&previous[previous.len().saturating_sub(keep)..]);
    }
    prompt.extend_from_slice(sot_sequence);
    if without_timestamps {
        prompt.push(tk.no_timestamps);
    }
    if !prefix.is_empty() {
        if !without_timestamps {
            prompt.push(tk.timestamp_begin);
        }
        prompt.extend_from_slice(prefix);
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_ratio_flags_repetition() {
        let plain = "The birch canoe slid on the smooth planks.";
        let repeated = "the the the the the the the the the the the the the the the the the the";
        assert!(compression_ratio(plain) < 2.4);
        assert!(compression_ratio(repeated) > 2.4);
    }
}
