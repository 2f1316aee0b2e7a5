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
        }
    }
}

/// Result of one generation call.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Generated tokens, without the end of text.
    pub tokens: Vec<u32>,
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

/// The logit rules, applied in CTranslate2's order.
struct Rules<'a> {
    model: &'a Whisper,
    suppress: &'a [u32],
    suppress_begin: Vec<u32>,
    timestamps: bool,
    timestamp_begin: u32,
    timestamp_end: u32,
    max_initial_timestamp: u32,
}

impl Rules<'_> {
    /// Masks `logits` (one row, one hypothesis) for `step`, given the tokens generated so far.
    fn apply(&self, step: usize, generated: &[u32], logits: &mut [f32]) {
        let ninf = f32::NEG_INFINITY;
        for &t in self.suppress {
            logits[t as usize] = ninf;
        }
        if step == 0 {
            for &t in &self.suppress_begin {
                logits[t as usize] = ninf;
            }
        }
        if !self.timestamps {
            return;
        }
        let (tb, te) = (self.timestamp_begin as usize, self.timestamp_end as usize);
        let eot = self.model.tokenizer.eot as usize;
        logits[self.model.tokenizer.no_timestamps as usize] = ninf;
        let mut check_prob = false;
        if step == 0 {
            logits[..tb].fill(ninf);
            let max_init = self.max_initial_timestamp as usize;
            if max_init < te {
                logits[max_init + 1..=te].fill(ninf);
            }
        } else {
            let last = generated[step - 1] as usize;
            if last >= tb {
                let penultimate = if step >= 2 {
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
                if let Some(&ts) = generated[..step].iter().rev().find(|&&t| t as usize >= tb) {
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

/// Decodes one window. `cache` must hold at least `max(beam_size, best_of)` beams; it is reset.
pub fn generate(
    model: &Whisper,
    cross: &CrossKv,
    cache: &mut KvCache,
    prompt: &[u32],
    opts: &GenerateOptions,
) -> Result<Generation> {
    let tk = &model.tokenizer;
    let (sot_index, prompt_length) = prompt_layout(model, prompt)?;
    let vocab = model.dims.n_vocab;
    let timestamps = prompt[prompt_length - 1] != tk.no_timestamps;
    let rules = Rules {
        model,
        suppress: &opts.suppress_tokens,
        suppress_begin: if opts.suppress_blank {
            model.config.suppress_ids_begin.clone()
        } else {
            Vec::new()
        },
        timestamps,
        timestamp_begin: tk.no_timestamps + 1,
        timestamp_end: vocab as u32 - 1,
        max_initial_timestamp: tk.no_timestamps + 1 + opts.max_initial_timestamp_index,
    };
    if let Some(&bad) = opts
        .suppress_tokens
        .iter()
        .chain(&rules.suppress_begin)
        .find(|&&t| t as usize >= vocab)
    {
        return Err(crate::Error::InvalidArgument(format!(
            "suppressed token {bad} is outside the vocabulary"
        )));
    }

    // Feed the prompt up to (not including) its last SOT-sequence token; that token starts
    // the search. The no-speech probability is read at the SOT position.
    cache.clear();
    let mut no_speech_prob = None;
    let start_step = prompt_length - 1;
    let mut logits = vec![0f32; vocab * cache.capacity_beams().max(1)];
    if prompt_length > 1 {
        let hidden = model.decode(&prompt[..prompt_length - 1], 1, cache, cross)?;
        // When the SOT token itself starts the search, its logits come at step 0 instead.
        if sot_index < prompt_length - 1 {
            let d = model.dims.n_text_state;
            model.logits(&hidden[sot_index * d..(sot_index + 1) * d], 1, &mut logits[..vocab]);
            no_speech_prob = Some(softmax_at(&logits[..vocab], tk.no_speech as usize));
        }
    }
    let start_tokens = &prompt[prompt_length - 1..];
    if start_tokens.len() != 1 {
        return Err(crate::Error::InvalidArgument(
            "prompt prefixes after the SOT sequence are not supported".into(),
        ));
    }
    let start = start_tokens[0];
    let max_steps = (opts.max_length / 2).min(opts.max_length.saturating_sub(start_step));
    if max_steps == 0 {
        return Err(crate::Error::InvalidArgument(
            "the prompt leaves no room to generate".into(),
        ));
    }
    let ctx = Search {
        model,
        cross,
        rules: &rules,
        vocab,
        start,
        max_steps,
        sot_is_start: prompt_length - 1 == sot_index,
    };
    let mut out = if opts.temperature > 0.0 {
        ctx.sample(cache, opts, &mut logits)?
    } else if opts.beam_size <= 1 {
        ctx.greedy(cache, opts, &mut logits)?
    } else {
        ctx.beam(cache, opts, &mut logits)?
    };
    if let Some(p) = no_speech_prob {
        out.no_speech_prob = p;
    }
    Ok(out)
}

fn softmax_at(logits: &[f32], i: usize) -> f32 {
    (logits[i] - log_sum_exp(logits)).exp()
}

fn finalize(tokens: Vec<u32>, sum_logprob: f32, length_penalty: f32) -> Generation {
    let len = tokens.len() as f32;
    let score = if length_penalty == 0.0 {
        sum_logprob
    } else {
        sum_logprob / len.powf(length_penalty)
    };
    Generation {
        tokens,
        sum_logprob,
        score,
        no_speech_prob: 0.0,
    }
}

struct Search<'a> {
    model: &'a Whisper,
    cross: &'a CrossKv,
    rules: &'a Rules<'a>,
    vocab: usize,
    start: u32,
    max_steps: usize,
    sot_is_start: bool,
}

impl Search<'_> {
    /// Runs one decoder step for `rows` hypotheses and leaves their raw logits in `logits`.
    fn step(&self, cache: &mut KvCache, inputs: &[u32], logits: &mut [f32]) -> Result<()> {
        let hidden = self.model.decode(inputs, inputs.len(), cache, self.cross)?;
        self.model.logits(
            hidden,
            inputs.len(),
            &mut logits[..inputs.len() * self.vocab],
        );
        Ok(())
    }

    /// Greedy search (or `n` independent samples at `temperature`), CTranslate2 semantics.
    fn run_independent(
        &self,
        cache: &mut KvCache,
        n: usize,
        temperature: f32,
        seed: u64,
        logits: &mut [f32],
    ) -> Result<Vec<(Generation, f32)>> {
        let vocab = self.vocab;
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut seqs: Vec<Vec<u32>> = (0..n).map(|_| Vec::with_capacity(self.max_steps)).collect();
        let mut sums = vec![0f32; n];
        let mut done = vec![false; n];
        let mut no_speech = 0.0;
        // All hypotheses start from the same prompt state.
        cache.reorder(&vec![0; n]);
        let mut inputs = vec![self.start; n];
        for step in 0..self.max_steps {
            self.step(cache, &inputs, logits)?;
            for i in 0..n {
                let row = &mut logits[i * vocab..(i + 1) * vocab];
                if step == 0 && self.sot_is_start && i == 0 {
                    no_speech = softmax_at(row, self.model.tokenizer.no_speech as usize);
                }
                if done[i] {
                    continue;
                }
                self.rules.apply(step, &seqs[i], row);
                log_softmax(row);
                let tok = if temperature > 0.0 {
                    sample(row, temperature, &mut rng)
                } else {
                    argmax(row)
                };
                sums[i] += row[tok];
                let tok = tok as u32;
                let is_eot = tok == self.model.tokenizer.eot;
                if !is_eot {
                    seqs[i].push(tok);
                }
                if is_eot || step + 1 == self.max_steps {
                    done[i] = true;
                }
                inputs[i] = tok;
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        Ok(seqs
            .into_iter()
            .zip(sums)
            .map(|(s, sum)| {
                (
                    Generation {
                        tokens: s,
                        sum_logprob: sum,
                        score: 0.0,
                        no_speech_prob: no_speech,
                    },
                    sum,
                )
            })
            .collect())
    }

    fn greedy(
        &self,
        cache: &mut KvCache,
        opts: &GenerateOptions,
        logits: &mut [f32],
    ) -> Result<Generation> {
        let (g, sum) = self.run_independent(cache, 1, 0.0, 0, logits)?.remove(0);
        let ns = g.no_speech_prob;
        let mut out = finalize(g.tokens, sum, opts.length_penalty);
        out.no_speech_prob = ns;
        Ok(out)
    }

    fn sample(
        &self,
        cache: &mut KvCache,
        opts: &GenerateOptions,
        logits: &mut [f32],
    ) -> Result<Generation> {
        let n = opts.best_of.max(1).min(cache.capacity_beams());
        let seed = opts.seed ^ (opts.temperature.to_bits() as u64);
        let results = self.run_independent(cache, n, opts.temperature, seed, logits)?;
        let mut best: Option<Generation> = None;
        for (g, sum) in results {
            let ns = g.no_speech_prob;
            let mut f = finalize(g.tokens, sum, opts.length_penalty);
            f.no_speech_prob = ns;
            if best.as_ref().is_none_or(|b| f.score > b.score) {
                best = Some(f);
            }
        }
        Ok(best.expect("at least one sample"))
    }

    /// Beam search as CTranslate2 does it: 2·beam candidates per step, finished hypotheses
    /// replaced by the next live candidates, stop after `round(beam·patience)` finished.
    fn beam(
        &self,
        cache: &mut KvCache,
        opts: &GenerateOptions,
        logits: &mut [f32],
    ) -> Result<Generation> {
        let vocab = self.vocab;
        let beam = opts.beam_size.min(cache.capacity_beams());
        let n_cand = 2 * beam;
        let max_candidates = ((beam as f32) * opts.patience).round().max(1.0) as usize;
        let eot = self.model.tokenizer.eot;
        // Every buffer of the search is sized here, once: a step allocates nothing (the
        // hypotheses' token lists are double-buffered and copied in place).
        let hyp = || (0..beam.max(1)).map(|_| Vec::with_capacity(self.max_steps + 1)).collect::<Vec<Vec<u32>>>();
        let (mut seqs, mut next_seqs) = (hyp(), hyp());
        let mut scores = Vec::with_capacity(beam.max(1));
        scores.push(0f32);
        let mut inputs = Vec::with_capacity(beam.max(1));
        inputs.push(self.start);
        let mut finished: Vec<(Vec<u32>, f32)> = Vec::new();
        let mut no_speech = 0.0;
        let mut cand: Vec<(f32, usize, u32)> = Vec::with_capacity(n_cand + 1);
        let mut next: Vec<usize> = Vec::with_capacity(beam);
        let mut src: Vec<usize> = Vec::with_capacity(beam);
        for step in 0..self.max_steps {
            let rows = inputs.len();
            self.step(cache, &inputs, logits)?;
            cand.clear();
            for b in 0..rows {
                let row = &mut logits[b * vocab..(b + 1) * vocab];
                if step == 0 && self.sot_is_start && b == 0 {
                    no_speech = softmax_at(row, self.model.tokenizer.no_speech as usize);
                }
                self.rules.apply(step, &seqs[b], row);
                log_softmax(row);
                for (tok, &lp) in row.iter().enumerate() {
                    let s = scores[b] + lp;
                    if cand.len() < n_cand || s > cand[cand.len() - 1].0 {
                        // Keep the best n_cand, sorted descending; ties keep the earlier index.
                        let pos = cand.partition_point(|c| c.0 >= s);
                        cand.insert(pos, (s, b, tok as u32));
                        cand.truncate(n_cand);
                    }
                }
            }
            let last_step = step + 1 == self.max_steps;
            next.clear();
            let mut secondary = beam;
            for k in 0..beam.min(cand.len()) {
                let (s, src, tok) = cand[k];
                let mut pick = k;
                if tok == eot || last_step {
                    let mut toks = seqs[src].clone();
                    if tok != eot {
                        toks.push(tok);
                    }
                    finished.push((toks, s));
                    for j in secondary..cand.len() {
                        if cand[j].2 != eot {
                            pick = j;
                            secondary = j + 1;
                            break;
                        }
                    }
                }
                next.push(pick);
            }
            if last_step || finished.len() >= max_candidates {
                break;
            }
            src.clear();
            src.extend(next.iter().map(|&j| cand[j].1));
            cache.reorder(&src);
            for (b, &j) in next.iter().enumerate() {
                let dst = &mut next_seqs[b];
                dst.clear();
                dst.extend_from_slice(&seqs[cand[j].1]);
                dst.push(cand[j].2);
            }
            std::mem::swap(&mut seqs, &mut next_seqs);
            scores.clear();
            scores.extend(next.iter().map(|&j| cand[j].0));
            inputs.clear();
            inputs.extend(next.iter().map(|&j| cand[j].2));
        }
        let best = finished
            .into_iter()
            .map(|(t, s)| finalize(t, s, opts.length_penalty))
            .fold(None::<Generation>, |best, g| match best {
                Some(b) if b.score >= g.score => Some(b),
                _ => Some(g),
            })
            .expect("beam search finishes at least one hypothesis");
        Ok(Generation {
            no_speech_prob: no_speech,
            ..best
        })
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
