//! The forced alignment pass of word timestamps, as CTranslate2's `Whisper::align`: the decoder
//! runs once over `[sot sequence, <|notimestamps|>, text tokens, <|endoftext|>]` of every
//! sequence (all of them in one batched pass), the cross-attention scores of the alignment heads
//! are kept, and each text token's probability is read from the logits. The scores then go
//! through [`crate::timing`] (softmax over the window's audio positions, normalisation over the
//! tokens, median filter, mean over the heads) into dynamic time warping.

use tracing::{debug_span, warn};

use super::{CrossKv, DecodeItem, DecoderWork, KvCache, Whisper};
use crate::timing;
use crate::Result;
use kernels::KtShape;

/// Width of the median filter along time (faster-whisper's `median_filter_width`).
const MEDIAN_FILTER_WIDTH: usize = 7;
/// Rows of logits computed at once (bounds the buffer: a row is the whole vocabulary).
const LOGIT_ROWS: usize = 32;

/// One sequence to align: the cross-attention K/V of its window, the text tokens of the
/// window's segments (in order, without timestamps or other special tokens) and how many mel
/// frames of the window hold audio.
pub struct AlignItem<'a> {
    pub cross: &'a CrossKv,
    pub text_tokens: &'a [u32],
    pub num_frames: usize,
}

/// Token timing of one aligned sequence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenAlignment {
    /// For each text token, then `<|endoftext|>`: the encoder position (20 ms steps) where the
    /// DTW path enters it. Empty when nothing could be aligned (no text, no audio, too long).
    pub starts: Vec<usize>,
    /// Each text token's probability after the tokens before it (softmax over the text
    /// vocabulary, the special tokens left out).
    pub probs: Vec<f32>,
}

impl Whisper {
    /// The cross-attention heads whose weights follow the timing of the words: `(layer, head)`
    /// from config.json's `alignment_heads`, else every head of the second half of the decoder
    /// layers (openai-whisper's default). Grouped by layer, as CTranslate2 concatenates them.
    pub fn alignment_heads(&self) -> Vec<(usize, usize)> {
        let (layers, heads) = (self.dims.n_text_layer, self.dims.n_text_head);
        let listed = &self.config.alignment_heads;
        let mut out: Vec<(usize, usize)> = (0..layers)
            .flat_map(|l| listed.iter().filter(move |&&(ll, h)| ll == l && h < heads).copied())
            .collect();
        if out.is_empty() {
            out = (layers / 2..layers).flat_map(|l| (0..heads).map(move |h| (l, h))).collect();
        }
        out
    }

    /// Aligns the text of each item with its audio in one decoder pass over all of them.
    /// `sot_sequence` is `[<|startoftranscript|>, language, task]` (just the first for
    /// English-only models). Items without text or audio, or too long for the text context,
    /// get an empty [`TokenAlignment`].
    pub fn align(&self, sot_sequence: &[u32], items: &[AlignItem<'_>]) -> Result<Vec<TokenAlignment>> {
        let tk = &self.tokenizer;
        let heads = self.alignment_heads();
        let mut out = vec![TokenAlignment::default(); items.len()];
        // The sequences of the pass: (item, audio positions), decoder input, and the scores of
        // every alignment head (`[tokens][positions]` each).
        let (mut meta, mut tokens, mut scores) = (Vec::new(), Vec::new(), Vec::new());
        for (i, it) in items.iter().enumerate() {
            let positions = (it.num_frames / 2).min(it.cross.n_ctx);
            if it.text_tokens.is_empty() || positions == 0 {
                continue;
            }
            let mut t = sot_sequence.to_vec();
            t.push(tk.no_timestamps);
            t.extend_from_slice(it.text_tokens);
            t.push(tk.eot);
            if t.len() > self.dims.n_text_ctx || it.text_tokens.iter().any(|&x| x >= tk.eot) {
                warn!(tokens = t.len(), "cannot align a window's text (not text tokens, or longer than the text context): no word timestamps for it");
                continue;
            }
            scores.push(vec![vec![0f32; t.len() * positions]; heads.len()]);
            meta.push((i, positions));
            tokens.push(t);
        }
        if tokens.is_empty() {
            return Ok(out);
        }
        let rows: usize = tokens.iter().map(Vec::len).sum();
        let _span = debug_span!("align", sequences = tokens.len(), rows).entered();
        let mut caches: Vec<KvCache> = tokens.iter().map(|t| self.new_kv_cache_for(1, t.len())).collect();
        let mut work = DecoderWork::default();
        let (d, n_head) = (self.dims.n_text_state, self.dims.n_text_head);
        let compute = self.compute.as_ref();
        let mut keep = |layer: usize, s: usize, q: &[f32]| {
            let (cross, positions) = (items[meta[s].0].cross, meta[s].1);
            for (k, &(_, h)) in heads.iter().enumerate().filter(|(_, &(l, _))| l == layer) {
                let kv = cross.view(layer, d);
                let shape = KtShape { n_q: tokens[s].len(), n_kv: positions, n_heads: n_head, head_dim: d / n_head, stride: cross.stride, causal: false };
                compute.attention_scores(q, kv, shape, h, &mut scores[s][k]);
            }
        };
        let mut decode: Vec<DecodeItem<'_>> = tokens
            .iter()
            .zip(caches.iter_mut())
            .zip(&meta)
            .map(|((t, cache), &(i, _))| DecodeItem { tokens: t, n_beams: 1, cache, cross: items[i].cross })
            .collect();
        let hidden = {
            let _s = debug_span!("align_decoder").entered();
            self.decode_batch_with(&mut decode, &mut work, Some(&mut keep))?
        };
        drop(decode);
        let probs = {
            let _s = debug_span!("align_probs").entered();
            self.token_probs(hidden, &tokens, sot_sequence.len())
        };
        let _s = debug_span!("align_dtw").entered();
        let sot_len = sot_sequence.len();
        for (s, (&(i, positions), t)) in meta.iter().zip(&tokens).enumerate() {
            let n_text = t.len() - sot_len - 2;
            let matrix = head_mean(&mut scores[s], t.len(), positions, sot_len..sot_len + n_text + 1);
            let starts = timing::row_starts(&timing::negative_dtw(&matrix, n_text + 1, positions));
            if starts.len() == n_text + 1 {
                out[i] = TokenAlignment { starts, probs: probs[s].clone() };
            }
        }
        Ok(out)
    }

    /// Each sequence's text token probabilities: the row before each text token (from the
    /// `<|notimestamps|>` row on) through the vocabulary projection, a softmax over the text
    /// vocabulary (ids below `<|endoftext|>`), and the probability of the token that follows.
    fn token_probs(&self, hidden: &[f32], tokens: &[Vec<u32>], sot_len: usize) -> Vec<Vec<f32>> {
        let (d, vocab, eot) = (self.dims.n_text_state, self.dims.n_vocab, self.tokenizer.eot as usize);
        let mut logits = vec![0f32; LOGIT_ROWS * vocab];
        let mut r0 = 0;
        let mut out = Vec::with_capacity(tokens.len());
        for t in tokens {
            let n_text = t.len() - sot_len - 2;
            let mut probs = Vec::with_capacity(n_text);
            for chunk in (0..n_text).step_by(LOGIT_ROWS) {
                let n = LOGIT_ROWS.min(n_text - chunk);
                let first = r0 + sot_len + chunk;
                self.logits(&hidden[first * d..(first + n) * d], n, &mut logits[..n * vocab]);
                for (j, row) in logits.chunks_exact_mut(vocab).take(n).enumerate() {
                    let text = &mut row[..eot.min(vocab)];
                    timing::softmax_rows(text, text.len());
                    probs.push(text[t[sot_len + 1 + chunk + j] as usize]);
                }
            }
            out.push(probs);
            r0 += t.len();
        }
        out
    }
}

/// The alignment matrix of one sequence from its heads' scores (`[tokens][positions]` each):
/// softmax over the positions, normalisation over all tokens, median filter along time, then
/// the mean over the heads of the rows in `keep` (the `<|notimestamps|>` row and the text rows).
fn head_mean(scores: &mut [Vec<f32>], n_tokens: usize, positions: usize, keep: std::ops::Range<usize>) -> Vec<f32> {
    let mut sum = vec![0f32; keep.len() * positions];
    for head in scores.iter_mut() {
        timing::softmax_rows(head, positions);
        timing::normalize_columns(head, n_tokens, positions);
        let rows = &head[keep.start * positions..keep.end * positions];
        let filtered = timing::median_filter_rows(rows, positions, MEDIAN_FILTER_WIDTH);
        sum.iter_mut().zip(&filtered).for_each(|(s, x)| *s += x);
    }
    let n = scores.len() as f32;
    sum.iter_mut().for_each(|s| *s /= n);
    sum
}
