//! One window's decoding with temperature fallback, as a state machine: the rules of
//! faster-whisper's `generate_with_fallback`, usable alone ([`decode_window`]) or by the
//! continuous batch ([`crate::batch`]), which advances many windows in one decoder pass.

use std::sync::Arc;

use tracing::debug;

use crate::decode::{GenerateOptions, Generation, Generator};
use crate::model::{CrossKv, KvCache, Whisper};
use crate::transcribe::compression_ratio;
use crate::Result;

/// How one window is decoded: the generation options of the first temperature (beam size,
/// suppression, penalties...) and the fallback rules.
#[derive(Clone, Debug)]
pub struct WindowOptions {
    pub generate: GenerateOptions,
    pub temperatures: Vec<f32>,
    pub compression_ratio_threshold: Option<f32>,
    pub log_prob_threshold: Option<f32>,
    pub no_speech_threshold: Option<f32>,
}

impl WindowOptions {
    /// Positions a KV cache must hold to decode after `prompt_len` prompt tokens: the prompt
    /// and the longest generation (half of `max_length`, as the generator caps it).
    pub fn cache_positions(&self, prompt_len: usize) -> usize {
        prompt_len + self.generate.max_length / 2 + 1
    }

    /// Beams a KV cache must hold for every temperature of these options.
    pub fn cache_beams(&self) -> usize {
        self.temperatures.iter().map(|&t| Self::beams_at(&self.at_temperature(t))).max().unwrap_or(1)
    }

    /// Beams the first temperature needs: a batch allocates only these, and grows a window's
    /// cache when it falls back to sampling several candidates.
    pub fn first_cache_beams(&self) -> usize {
        self.temperatures.first().map_or(1, |&t| Self::beams_at(&self.at_temperature(t)))
    }

    fn beams_at(g: &GenerateOptions) -> usize {
        if g.temperature > 0.0 { g.best_of.max(1) } else { g.beam_size.max(1) }
    }

    fn at_temperature(&self, t: f32) -> GenerateOptions {
        GenerateOptions {
            beam_size: if t > 0.0 { 1 } else { self.generate.beam_size },
            temperature: t,
            ..self.generate.clone()
        }
    }
}

/// The kept result of a window: the generation and the figures the fallback judged it by.
#[derive(Clone, Debug)]
pub struct WindowResult {
    pub generation: Generation,
    pub avg_logprob: f32,
    /// The last temperature tried (it decides the prompt reset).
    pub temperature: f32,
    pub compression_ratio: f32,
}

/// Temperature fallback over [`Generator`]s: start one per temperature until a result
/// passes the thresholds, else keep the best.
pub struct Fallback {
    opts: Arc<WindowOptions>,
    prompt: Vec<u32>,
    index: usize,
    tried: Vec<WindowResult>,
    below_cr: Vec<usize>,
    generator: Generator,
}

impl Fallback {
    /// Starts the first temperature; resets `cache`.
    pub fn new(model: &Whisper, prompt: Vec<u32>, opts: Arc<WindowOptions>, cache: &mut KvCache) -> Result<Fallback> {
        let first = *opts.temperatures.first().ok_or_else(|| crate::Error::InvalidArgument("no temperatures to decode with".into()))?;
        let mut generator = Generator::new(model, &prompt, &opts.at_temperature(first), cache.capacity_beams())?;
        generator.start(cache);
        Ok(Fallback { opts, prompt, index: 0, tried: Vec::new(), below_cr: Vec::new(), generator })
    }

    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Hands the logits of this pass to the current generator; when it finishes, judges its
    /// result and either returns the window's result or starts the next temperature.
    pub fn accept(&mut self, model: &Whisper, logits: &mut [f32], cache: &mut KvCache) -> Result<Option<WindowResult>> {
        self.generator.accept(logits, cache);
        if !self.generator.is_done() {
            return Ok(None);
        }
        let g = self.generator.take_result().expect("a finished generator has a result");
        let t = self.opts.temperatures[self.index];
        let avg_logprob = g.avg_logprob();
        let cr = compression_ratio(model.tokenizer.decode(&g.tokens).trim());
        let o = &self.opts;
        let mut needs_fallback = false;
        if let Some(th) = o.compression_ratio_threshold {
            if cr > th {
                needs_fallback = true;
            } else {
                self.below_cr.push(self.tried.len());
            }
        }
        if o.log_prob_threshold.is_some_and(|lp| avg_logprob < lp) {
            needs_fallback = true;
        }
        if let (Some(ns), Some(lp)) = (o.no_speech_threshold, o.log_prob_threshold) {
            if g.no_speech_prob > ns && avg_logprob < lp {
                needs_fallback = false;
            }
        }
        let no_speech = g.no_speech_prob;
        self.tried.push(WindowResult { generation: g, avg_logprob, temperature: t, compression_ratio: cr });
        if !needs_fallback {
            return Ok(self.tried.pop());
        }
        debug!(temperature = t, avg_logprob, compression_ratio = cr, no_speech, "falling back to a higher temperature");
        if self.index + 1 < self.opts.temperatures.len() {
            self.index += 1;
            let next = self.opts.at_temperature(self.opts.temperatures[self.index]);
            let beams = WindowOptions::beams_at(&next);
            if cache.capacity_beams() < beams {
                *cache = model.new_kv_cache_for(beams, cache.capacity_positions());
            }
            self.generator = Generator::new(model, &self.prompt, &next, cache.capacity_beams())?;
            self.generator.start(cache);
            return Ok(None);
        }
        // Every temperature failed: keep the best average log-prob, preferring results that
        // were not too repetitive, and report the last temperature (for the prompt reset).
        let pool: Vec<usize> = if self.below_cr.is_empty() { (0..self.tried.len()).collect() } else { std::mem::take(&mut self.below_cr) };
        let best = pool
            .into_iter()
            .fold(None::<usize>, |b, i| match b {
                Some(j) if self.tried[j].avg_logprob >= self.tried[i].avg_logprob => Some(j),
                _ => Some(i),
            })
            .expect("at least one temperature");
        let mut r = self.tried.swap_remove(best);
        r.temperature = t;
        Ok(Some(r))
    }
}

/// Decodes one window alone (prompt and fallback), the sequential path.
pub fn decode_window(model: &Whisper, cross: &CrossKv, cache: &mut KvCache, prompt: Vec<u32>, opts: Arc<WindowOptions>) -> Result<WindowResult> {
    if cache.capacity_beams() < opts.cache_beams() {
        *cache = model.new_kv_cache(opts.cache_beams());
    }
    let mut f = Fallback::new(model, prompt, opts, cache)?;
    let (vocab, d) = (model.dims.n_vocab, model.dims.n_text_state);
    let mut logits = vec![0f32; vocab * cache.capacity_beams()];
    loop {
        let g = f.generator();
        let hidden = model.decode(g.tokens(), g.n_beams(), cache, cross)?;
        let rows = g.logit_rows();
        let out = &mut logits[..rows.len() * vocab];
        if !rows.is_empty() {
            model.logits(&hidden[rows.start * d..rows.end * d], rows.len(), out);
        }
        if let Some(r) = f.accept(model, out, cache)? {
            return Ok(r);
        }
    }
}
