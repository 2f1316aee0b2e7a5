//! Decoding one 30 s window: logit rules (suppression, timestamp rules), greedy search,
//! beam search and temperature sampling, with the semantics of CTranslate2's Whisper
//! `generate` (which faster-whisper drives), so that our tokens equal the peer's.

use crate::model::{CrossKv, KvCache, Whisper};
use crate::Result;

/// Options of one generation call (faster-whisper's per-temperature `generate` arguments).
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub beam_size: usize,
    pub patience: f32,
    pub length_penalty: f32,
    /// 0 = greedy or beam search; > 0 = sampling with this temperature.
    pub temperature: f32,
    /// Independent samples drawn when sampling; the best-scoring one wins.
    pub best_of: usize,
    pub suppress_tokens: Vec<u32>,
    pub suppress_blank: bool,
    /// Index (in 0.02 s steps) of the latest allowed first timestamp.
    pub max_initial_timestamp_index: u32,
    /// Total decoder positions, prompt included (Whisper's 448).
    pub max_length: usize,
    pub seed: u64,
    /// CTranslate2's penalty on the logits of already generated tokens (1 = off).
    pub repetition_penalty: f32,
    /// Ban repeating n-grams of this size (0 = off).
    pub no_repeat_ngram_size: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            beam_size: 5,
            patience: 1.0,
            length_penalty: 1.0,
            temperature: 0.0,
            best_of: 5,
            suppress_tokens: Vec::new(),
            suppress_blank: true,
            max_initial_timestamp_index: 50,
            max_length: 448,
            seed: 0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
        }
    }
}

/// Result of one generation call.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Generated tokens, without the end of text.
    pub tokens: Vec<u32>,
    /// Log-probability of each of `tokens` under the search (the decoding rules applied, before
    /// any temperature): what `sum_logprob` adds up, less the end of text; 0 for forced tokens.
    pub token_logprobs: Vec<f32>,
    /// Sum of the log-probabilities of the generated tokens, the end of text included.
    pub sum_logprob: f32,
    /// `sum_logprob / len^length_penalty` (CTranslate2's returned score).
    pub score: f32,
    /// Probability of `<|nospeech|>` at the start-of-transcript position.
    pub no_speech_prob: f32,
}

impl Generation {
    /// faster-whisper's average log-probability: the cumulative log-prob over `len + 1`.
    pub fn avg_logprob(&self) -> f32 {
        self.sum_logprob / (self.tokens.len() + 1) as f32
    }
}

/// The logit rules, applied in CTranslate2's order: repetition penalty, n-gram ban,
/// suppression, then the timestamp rules.
#[derive(Clone, Debug)]
struct Rules {
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
    timestamps: bool,
    timestamp_begin: u32,
    timestamp_end: u32,
    max_initial_timestamp: u32,
    eot: u32,
    no_timestamps: u32,
    repetition_penalty: f32,
    no_repeat_ngram_size: usize,
    /// First step whose token is not forced (the length of the forced prefix): CTranslate2's
    /// `sample_begin`, where the begin suppression and the timestamp rules start.
    sample_begin: usize,
}

impl Rules {
    /// Masks `logits` (one row, one hypothesis) for `step`, given the tokens generated so far.
    fn apply(&self, step: usize, generated: &[u32], logits: &mut [f32]) {
        let ninf = f32::NEG_INFINITY;
        let generated = &generated[..step.min(generated.len())];
        if self.repetition_penalty != 1.0 {
            // CTranslate2 gathers the previous tokens' logits first, so a token seen twice is
            // penalized once.
            for (i, &t) in generated.iter().enumerate() {
                if generated[..i].contains(&t) {
                    continue;
                }
                let l = &mut logits[t as usize];
                *l = if *l < 0.0 { *l * self.repetition_penalty } else { *l / self.repetition_penalty };
            }
        }
        let n = self.no_repeat_ngram_size;
        if n > 0 && generated.len() >= n {
            // Ban every token that would repeat an n-gram: find the last n-1 tokens earlier
            // in the sequence and ban what followed them.
            let len = generated.len();
            let tail = &generated[len + 1 - n..];
            for p in 0..=(len - n) {
                if &generated[p..p + n - 1] == tail {
                    logits[generated[p + n - 1] as usize] = ninf;
                }
            }
        }
        for &t in &self.suppress {
            logits[t as usize] = ninf;
        }
        if step == self.sample_begin {
            for &t in &self.suppress_begin {
                logits[t as usize] = ninf;
            }
        }
        if !self.timestamps {
            return;
        }
        let (tb, te) = (self.timestamp_begin as usize, self.timestamp_end as usize);
        let eot = self.eot as usize;
        logits[self.no_timestamps as usize] = ninf;
        let mut check_prob = false;
        let begin = self.sample_begin;
        if step == 0 && begin == 0 {
            logits[..tb].fill(ninf);
            let max_init = self.max_initial_timestamp as usize;
            if max_init < te {
                logits[max_init + 1..=te].fill(ninf);
            }
        } else if step > begin {
            // Only the generated tokens count, not a forced prefix (so the first free token
            // after a prefix is unconstrained, and the prefix's timestamp bounds nothing).
            let last = generated[step - 1] as usize;
            if last >= tb {
                let penultimate = if step - 1 > begin {
                    generated[step - 2] as usize
                } else {
                    last
                };
                if penultimate >= tb {
                    // Two timestamps in a row: text must follow.
                    logits[tb..=te].fill(ninf);
                } else {
                    // A lone timestamp closes a segment: no text, no earlier timestamp.
                    logits[..eot].fill(ninf);
                    logits[tb..last].fill(ninf);
                    check_prob = true;
                }
            } else {
                check_prob = true;
                if let Some(&ts) = generated[begin..step].iter().rev().find(|&&t| t as usize >= tb) {
                    logits[tb..=ts as usize].fill(ninf);
                }
            }
        }
        if check_prob {
            // If the timestamps together are likelier than any single text token, force one.
            let lse_all = log_sum_exp(logits);
            let ts_lp = log_sum_exp(&logits[tb..=te]) - lse_all;
            let max_text = logits[..tb].iter().copied().fold(ninf, f32::max) - lse_all;
            if ts_lp > max_text {
                logits[..tb].fill(ninf);
            }
        }
    }

}

fn log_sum_exp(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + sum_exp_shifted(x, max).ln()
}

/// `exp(x)` for `x <= 0` by range reduction (x = n·ln2 + r) and a degree-6 polynomial
/// (relative error < 1e-6), written without calls so it vectorizes: the vocabulary-wide sums
/// of every beam at every step would otherwise cost more than a decoder layer.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    // Cody-Waite: ln2 in two parts keeps r exact enough in single precision.
    let r = (x - n * 0.693_145_75) - n * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

#[inline(always)]
fn sum_exp_body(x: &[f32], max: f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..16 {
            acc[i] += exp_nonpositive(c[i] - max);
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|&v| exp_nonpositive(v - max)).sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_exp_avx512(x: &[f32], max: f32) -> f32 {
    sum_exp_body(x, max)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_exp_avx2(x: &[f32], max: f32) -> f32 {
    sum_exp_body(x, max)
}

/// `Σ exp(x_i - max)` for `max >= every x_i`, on the widest vector unit available.
fn sum_exp_shifted(x: &[f32], max: f32) -> f32 {
    match kernels::Isa::detect() {
        // SAFETY: the instruction set was detected on this CPU.
        #[cfg(target_arch = "x86_64")]
        kernels::Isa::Avx512 => unsafe { sum_exp_avx512(x, max) },
        #[cfg(target_arch = "x86_64")]
        kernels::Isa::Avx2 => unsafe { sum_exp_avx2(x, max) },
        _ => sum_exp_body(x, max),
    }
}

/// In-place log-softmax.
pub fn log_softmax(x: &mut [f32]) {
    let lse = log_sum_exp(x);
    for v in x {
        *v -= lse;
    }
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Small deterministic generator for temperature sampling (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Position of the start of transcript and length of the prompt up to the end of the SOT
/// sequence (CTranslate2's `prompt_length`).
fn prompt_layout(model: &Whisper, prompt: &[u32]) -> Result<(usize, usize)> {
    let tk = &model.tokenizer;
    let sot_index = prompt.iter().position(|&t| t == tk.sot).ok_or_else(|| {
        crate::Error::InvalidArgument("prompt has no start-of-transcript token".into())
    })?;
    let mut len = sot_index;
    while len < prompt.len() && prompt[len] >= tk.sot && prompt[len] <= tk.no_timestamps {
        len += 1;
    }
    Ok((sot_index, len))
}

/// Decodes one window alone. `cache` must hold at least `max(beam_size, best_of)` beams; it is
/// reset. The same [`Generator`] runs inside the continuous batch (`crate::batch`).
pub fn generate(
    model: &Whisper,
    cross: &CrossKv,
    cache: &mut KvCache,
    prompt: &[u32],
    opts: &GenerateOptions,
) -> Result<Generation> {
    let mut g = Generator::new(model, prompt, opts, cache.capacity_beams())?;
    g.start(cache);
    let (vocab, d) = (model.dims.n_vocab, model.dims.n_text_state);
    let mut logits = vec![0f32; vocab * cache.capacity_beams().max(1)];
    while !g.is_done() {
        let hidden = model.decode(g.tokens(), g.n_beams(), cache, cross)?;
        let rows = g.logit_rows();
        if !rows.is_empty() {
            model.logits(&hidden[rows.start * d..rows.end * d], rows.len(), &mut logits[..rows.len() * vocab]);
        }
        g.accept(&mut logits[..rows.len() * vocab], cache);
    }
    Ok(g.take_result().expect("a finished generator has a result"))
}

fn softmax_at(logits: &[f32], i: usize) -> f32 {
    (logits[i] - log_sum_exp(logits)).exp()
}

fn finalize(tokens: Vec<u32>, token_logprobs: Vec<f32>, sum_logprob: f32, length_penalty: f32) -> Generation {
    let len = tokens.len() as f32;
    let score = if length_penalty == 0.0 {
        sum_logprob
    } else {
        sum_logprob / len.powf(length_penalty)
    };
    Generation {
        tokens,
        token_logprobs,
        sum_logprob,
        score,
        no_speech_prob: 0.0,
    }
}

/// Where a [`Generator`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Feeding the prompt (one row of several tokens).
    Prefill,
    Search,
    Done,
}

/// State of greedy search or of `n` independent samples.
struct Independent {
    temperature: f32,
    rng: Rng,
    seqs: Vec<Vec<u32>>,
    /// Each token's log-probability, parallel to `seqs`.
    lps: Vec<Vec<f32>>,
    sums: Vec<f32>,
    done: Vec<bool>,
}

/// State of beam search (CTranslate2's). Every buffer is sized once, so a step allocates
/// nothing but the finished hypotheses.
struct Beam {
    beam: usize,
    n_cand: usize,
    max_candidates: usize,
    seqs: Vec<Vec<u32>>,
    next_seqs: Vec<Vec<u32>>,
    /// Each token's log-probability, parallel to `seqs` / `next_seqs`.
    lps: Vec<Vec<f32>>,
    next_lps: Vec<Vec<f32>>,
    scores: Vec<f32>,
    finished: Vec<(Vec<u32>, Vec<f32>, f32)>,
    /// (score, source beam, token, the token's log-probability)
    cand: Vec<(f32, usize, u32, f32)>,
    next: Vec<usize>,
    src: Vec<usize>,
}

enum SearchState {
    Independent(Independent),
    Beam(Beam),
}

/// The decoding of one window as a state machine, so that a scheduler can advance many of
/// them in one decoder pass: ask [`tokens`](Generator::tokens) / [`n_beams`](Generator::n_beams),
/// run the decoder, hand the logits of [`logit_rows`](Generator::logit_rows) to
/// [`accept`](Generator::accept), until [`is_done`](Generator::is_done). Driven alone it is
/// [`generate`]; the semantics are CTranslate2's Whisper `generate`.
pub struct Generator {
    rules: Rules,
    length_penalty: f32,
    no_speech_token: usize,
    prefill: Vec<u32>,
    /// Tokens the first steps are forced to (the prompt after the SOT sequence).
    forced: Vec<u32>,
    /// Row of the prefill whose logits give the no-speech probability.
    sot_row: Option<usize>,
    sot_is_start: bool,
    max_steps: usize,
    step: usize,
    phase: Phase,
    no_speech_prob: f32,
    inputs: Vec<u32>,
    search: SearchState,
    result: Option<Generation>,
}

impl Generator {
    /// Prepares the decoding of `prompt` with `opts` for a cache of `cache_beams` beams.
    pub fn new(model: &Whisper, prompt: &[u32], opts: &GenerateOptions, cache_beams: usize) -> Result<Generator> {
        let tk = &model.tokenizer;
        let (sot_index, prompt_length) = prompt_layout(model, prompt)?;
        let vocab = model.dims.n_vocab;
        let timestamps = prompt[prompt_length - 1] != tk.no_timestamps;
        let rules = Rules {
            suppress: opts.suppress_tokens.clone(),
            suppress_begin: if opts.suppress_blank { model.config.suppress_ids_begin.clone() } else { Vec::new() },
            timestamps,
            timestamp_begin: tk.no_timestamps + 1,
            timestamp_end: vocab as u32 - 1,
            max_initial_timestamp: tk.no_timestamps + 1 + opts.max_initial_timestamp_index,
            eot: tk.eot,
            no_timestamps: tk.no_timestamps,
            repetition_penalty: opts.repetition_penalty,
            no_repeat_ngram_size: opts.no_repeat_ngram_size,
            sample_begin: prompt.len() - prompt_length,
        };
        if let Some(&bad) = rules.suppress.iter().chain(&rules.suppress_begin).find(|&&t| t as usize >= vocab) {
            return Err(crate::Error::InvalidArgument(format!("suppressed token {bad} is outside the vocabulary")));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(crate::Error::InvalidArgument(format!("prompt token {bad} is outside the vocabulary")));
        }
        if !(opts.repetition_penalty > 0.0 && opts.repetition_penalty.is_finite()) {
            return Err(crate::Error::InvalidArgument(format!(
                "repetition penalty {} must be a positive number",
                opts.repetition_penalty
            )));
        }
        // Tokens after the SOT sequence are a prefix that the first steps are forced to
        // (CTranslate2's hard prefix, returned as part of the result).
        let start_tokens = &prompt[prompt_length - 1..];
        let forced = start_tokens[1..].to_vec();
        if forced.contains(&tk.eot) {
            return Err(crate::Error::InvalidArgument("a forced prefix cannot contain the end-of-text token".into()));
        }
        let start_step = prompt_length - 1;
        let max_steps = (opts.max_length / 2).min(opts.max_length.saturating_sub(start_step));
        if max_steps == 0 {
            return Err(crate::Error::InvalidArgument("the prompt leaves no room to generate".into()));
        }
        let search = if opts.temperature > 0.0 || opts.beam_size <= 1 {
            let (n, temperature, seed) = if opts.temperature > 0.0 {
                (opts.best_of.max(1).min(cache_beams), opts.temperature, opts.seed ^ (opts.temperature.to_bits() as u64))
            } else {
                (1, 0.0, 0)
            };
            SearchState::Independent(Independent {
                temperature,
                rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
                seqs: (0..n).map(|_| Vec::with_capacity(max_steps)).collect(),
                lps: (0..n).map(|_| Vec::with_capacity(max_steps)).collect(),
                sums: vec![0.0; n],
                done: vec![false; n],
            })
        } else {
            let beam = opts.beam_size.min(cache_beams);
            let hyp = || (0..beam.max(1)).map(|_| Vec::with_capacity(max_steps + 1)).collect::<Vec<Vec<u32>>>();
            let lps = || (0..beam.max(1)).map(|_| Vec::with_capacity(max_steps + 1)).collect::<Vec<Vec<f32>>>();
            let mut scores = Vec::with_capacity(beam.max(1));
            scores.push(0.0);
            SearchState::Beam(Beam {
                beam,
                n_cand: 2 * beam,
                max_candidates: ((beam as f32) * opts.patience).round().max(1.0) as usize,
                seqs: hyp(),
                next_seqs: hyp(),
                lps: lps(),
                next_lps: lps(),
                scores,
                finished: Vec::new(),
                cand: Vec::with_capacity(2 * beam + 1),
                next: Vec::with_capacity(beam),
                src: Vec::with_capacity(beam),
            })
        };
        let n_rows = match &search {
            SearchState::Independent(s) => s.seqs.len(),
            SearchState::Beam(_) => 1,
        };
        let mut inputs = Vec::with_capacity(cache_beams.max(1));
        inputs.resize(n_rows, start_tokens[0]);
        Ok(Generator {
            rules,
            length_penalty: opts.length_penalty,
            no_speech_token: tk.no_speech as usize,
            prefill: prompt[..prompt_length - 1].to_vec(),
            forced,
            sot_row: (sot_index < prompt_length - 1).then_some(sot_index),
            sot_is_start: prompt_length - 1 == sot_index,
            max_steps,
            step: 0,
            phase: if prompt_length > 1 { Phase::Prefill } else { Phase::Search },
            no_speech_prob: 0.0,
            inputs,
            search,
            result: None,
        })
    }

    /// Resets `cache` for this generation (call once, before the first decoder pass).
    pub fn start(&mut self, cache: &mut KvCache) {
        cache.clear();
        if self.phase == Phase::Search {
            self.begin_search(cache);
        }
    }

    fn begin_search(&mut self, cache: &mut KvCache) {
        self.phase = Phase::Search;
        if let SearchState::Independent(s) = &self.search {
            // All hypotheses start from the same prompt state.
            let zeros = [0usize; 16];
            cache.reorder(&zeros[..s.seqs.len()]);
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Tokens to feed at this pass, `[n_beams][t]`.
    pub fn tokens(&self) -> &[u32] {
        match self.phase {
            Phase::Prefill => &self.prefill,
            _ => &self.inputs,
        }
    }

    /// Rows (hypotheses) of this pass.
    pub fn n_beams(&self) -> usize {
        match self.phase {
            Phase::Prefill => 1,
            _ => self.inputs.len(),
        }
    }

    /// Which of this pass's hidden rows need logits (in `tokens()` order).
    pub fn logit_rows(&self) -> std::ops::Range<usize> {
        match self.phase {
            Phase::Prefill => self.sot_row.map_or(0..0, |r| r..r + 1),
            // A forced step needs no logits, except the first when it gives the no-speech
            // probability.
            Phase::Search if self.step < self.forced.len() => 0..usize::from(self.step == 0 && self.sot_is_start),
            Phase::Search => 0..self.inputs.len(),
            Phase::Done => 0..0,
        }
    }

    /// Takes the raw logits of [`logit_rows`](Self::logit_rows) (`[rows][vocab]`, modified in
    /// place) and advances; reorders `cache` for the next pass when beams move.
    pub fn accept(&mut self, logits: &mut [f32], cache: &mut KvCache) {
        match self.phase {
            Phase::Prefill => {
                if self.sot_row.is_some() {
                    self.no_speech_prob = softmax_at(logits, self.no_speech_token);
                }
                self.begin_search(cache);
            }
            Phase::Search if self.step < self.forced.len() => {
                if self.step == 0 && self.sot_is_start {
                    self.no_speech_prob = softmax_at(logits, self.no_speech_token);
                }
                let finished = self.step_forced();
                self.step += 1;
                if finished {
                    self.finish();
                }
            }
            Phase::Search => {
                let vocab = logits.len() / self.inputs.len();
                if self.step == 0 && self.sot_is_start {
                    self.no_speech_prob = softmax_at(&logits[..vocab], self.no_speech_token);
                }
                let finished = match &mut self.search {
                    SearchState::Independent(s) => Self::step_independent(s, &self.rules, self.step, self.max_steps, &mut self.inputs, logits, vocab),
                    SearchState::Beam(s) => Self::step_beam(s, &self.rules, self.step, self.max_steps, &mut self.inputs, logits, vocab, cache),
                };
                self.step += 1;
                if finished {
                    self.finish();
                }
            }
            Phase::Done => {}
        }
    }

    /// A step inside the forced prefix: every hypothesis takes the prefix token, at no cost to
    /// its score (CTranslate2 sets the forced token's score to 0). Beam search stays on one
    /// row meanwhile: CTranslate2's other beams are copies of the first scored -1e10, which
    /// cannot win a candidate slot at the first free step.
    fn step_forced(&mut self) -> bool {
        let tok = self.forced[self.step];
        let last_step = self.step + 1 == self.max_steps;
        match &mut self.search {
            SearchState::Independent(s) => {
                for (i, seq) in s.seqs.iter_mut().enumerate() {
                    seq.push(tok);
                    s.lps[i].push(0.0);
                    self.inputs[i] = tok;
                    s.done[i] = last_step;
                }
            }
            SearchState::Beam(s) => {
                s.seqs[0].push(tok);
                s.lps[0].push(0.0);
                self.inputs[0] = tok;
                if last_step {
                    s.finished.push((s.seqs[0].clone(), s.lps[0].clone(), s.scores[0]));
                }
            }
        }
        last_step
    }

    fn step_independent(s: &mut Independent, rules: &Rules, step: usize, max_steps: usize, inputs: &mut [u32], logits: &mut [f32], vocab: usize) -> bool {
        for i in 0..s.seqs.len() {
            if s.done[i] {
                continue;
            }
            let row = &mut logits[i * vocab..(i + 1) * vocab];
            rules.apply(step, &s.seqs[i], row);
            log_softmax(row);
            let tok = if s.temperature > 0.0 { sample(row, s.temperature, &mut s.rng) } else { argmax(row) };
            s.sums[i] += row[tok];
            let tok = tok as u32;
            let is_eot = tok == rules.eot;
            if !is_eot {
                s.seqs[i].push(tok);
                s.lps[i].push(row[tok as usize]);
            }
            if is_eot || step + 1 == max_steps {
                s.done[i] = true;
            }
            inputs[i] = tok;
        }
        s.done.iter().all(|&d| d)
    }

    #[allow(clippy::too_many_arguments)]
    fn step_beam(s: &mut Beam, rules: &Rules, step: usize, max_steps: usize, inputs: &mut Vec<u32>, logits: &mut [f32], vocab: usize, cache: &mut KvCache) -> bool {
        let (beam, n_cand) = (s.beam, s.n_cand);
        s.cand.clear();
        for b in 0..inputs.len() {
            let row = &mut logits[b * vocab..(b + 1) * vocab];
            rules.apply(step, &s.seqs[b], row);
            log_softmax(row);
            for (tok, &lp) in row.iter().enumerate() {
                let sc = s.scores[b] + lp;
                if s.cand.len() < n_cand || sc > s.cand[s.cand.len() - 1].0 {
                    // Keep the best n_cand, sorted descending; ties keep the earlier index.
                    let pos = s.cand.partition_point(|c| c.0 >= sc);
                    s.cand.insert(pos, (sc, b, tok as u32, lp));
                    s.cand.truncate(n_cand);
                }
            }
        }
        if step == rules.sample_begin && step > 0 {
            // The first free step after a forced prefix: CTranslate2 keeps end-of-text only as
            // the best candidate and turns it into token 0 scored -1e10 elsewhere.
            for c in s.cand.iter_mut().skip(1).filter(|c| c.2 == rules.eot) {
                *c = (-1e10, 0, 0, -1e10);
            }
        }
        let last_step = step + 1 == max_steps;
        s.next.clear();
        let mut secondary = beam;
        for k in 0..beam.min(s.cand.len()) {
            let (sc, src, tok, lp) = s.cand[k];
            let mut pick = k;
            if tok == rules.eot || last_step {
                let (mut toks, mut lps) = (s.seqs[src].clone(), s.lps[src].clone());
                if tok != rules.eot {
                    toks.push(tok);
                    lps.push(lp);
                }
                s.finished.push((toks, lps, sc));
                for j in secondary..s.cand.len() {
                    if s.cand[j].2 != rules.eot {
                        pick = j;
                        secondary = j + 1;
                        break;
                    }
                }
            }
            s.next.push(pick);
        }
        if last_step || s.finished.len() >= s.max_candidates {
            return true;
        }
        s.src.clear();
        s.src.extend(s.next.iter().map(|&j| s.cand[j].1));
        cache.reorder(&s.src);
        for (b, &j) in s.next.iter().enumerate() {
            let dst = &mut s.next_seqs[b];
            dst.clear();
            dst.extend_from_slice(&s.seqs[s.cand[j].1]);
            dst.push(s.cand[j].2);
            let dst = &mut s.next_lps[b];
            dst.clear();
            dst.extend_from_slice(&s.lps[s.cand[j].1]);
            dst.push(s.cand[j].3);
        }
        std::mem::swap(&mut s.seqs, &mut s.next_seqs);
        std::mem::swap(&mut s.lps, &mut s.next_lps);
        s.scores.clear();
        s.scores.extend(s.next.iter().map(|&j| s.cand[j].0));
        inputs.clear();
        inputs.extend(s.next.iter().map(|&j| s.cand[j].2));
        false
    }

    fn finish(&mut self) {
        self.phase = Phase::Done;
        let lp = self.length_penalty;
        let best = match &mut self.search {
            SearchState::Independent(s) => {
                let mut best: Option<Generation> = None;
                for ((seq, lps), &sum) in s.seqs.iter_mut().zip(s.lps.iter_mut()).zip(&s.sums) {
                    let f = finalize(std::mem::take(seq), std::mem::take(lps), sum, lp);
                    if best.as_ref().is_none_or(|b| f.score > b.score) {
                        best = Some(f);
                    }
                }
                best
            }
            SearchState::Beam(s) => std::mem::take(&mut s.finished)
                .into_iter()
                .map(|(t, lps, sc)| finalize(t, lps, sc, lp))
                .fold(None::<Generation>, |best, g| match best {
                    Some(b) if b.score >= g.score => Some(b),
                    _ => Some(g),
                }),
        };
        self.result = best.map(|g| Generation { no_speech_prob: self.no_speech_prob, ..g });
    }

    /// The result, once [`is_done`](Self::is_done).
    pub fn take_result(&mut self) -> Option<Generation> {
        self.result.take()
    }
}

/// Draws from softmax(log_probs / temperature).
fn sample(log_probs: &[f32], temperature: f32, rng: &mut Rng) -> usize {
    let max = log_probs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = log_probs
        .iter()
        .map(|&lp| (((lp - max) / temperature) as f64).exp())
        .sum();
    let mut r = rng.next_f64() * total;
    for (i, &lp) in log_probs.iter().enumerate() {
        r -= (((lp - max) / temperature) as f64).exp();
        if r <= 0.0 {
            return i;
        }
    }
    argmax(log_probs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn vector_exp_matches_std() {
        let xs: Vec<f32> = (0..5000).map(|i| -(i as f32) * 0.02).chain([f32::NEG_INFINITY, -200.0]).collect();
        for &x in &xs {
            let (got, want) = (super::exp_nonpositive(x), x.exp());
            assert!((got - want).abs() <= 1e-6 * want + 1e-37, "exp({x}) = {got}, want {want}");
        }
        let row: Vec<f32> = (0..51865).map(|i| ((i * 7919) % 1000) as f32 * -0.03).collect();
        let want: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
        let got = super::sum_exp_shifted(&row, 0.0) as f64;
        assert!((got - want).abs() / want < 1e-5, "{got} vs {want}");
    }
}
