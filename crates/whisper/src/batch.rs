//! Continuous batching: many windows (of one long recording, or of different requests)
//! decoded together, one decoder pass advancing every sequence by a token. Decoding is bound
//! by memory bandwidth (each pass reads all decoder weights and the cross-attention K/V), so
//! a batch of B sequences costs little more per pass than one.
//!
//! Each sequence keeps its own KV cache, cross-attention K/V, prompt, options, decoding rules
//! and temperature fallback; a window's beams are rows of the batch. Sequences that finish
//! leave at once and waiting windows join at the next pass, so no pass is spent on padding.

use std::sync::Arc;

use tracing::debug_span;

use crate::model::{CrossKv, DecodeItem, DecoderWork, KvCache, Whisper};
use crate::window::{Fallback, WindowOptions, WindowResult};
use crate::Result;

struct Active<T> {
    tag: T,
    cross: CrossKv,
    cache: KvCache,
    fallback: Fallback,
}

/// A set of windows being decoded together. `T` tags each window for the caller.
pub struct ContinuousBatch<'m, T> {
    model: &'m Whisper,
    max_sequences: usize,
    active: Vec<Active<T>>,
    work: DecoderWork,
    selected: Vec<f32>,
    logits: Vec<f32>,
    /// Caches of sequences that left, reused by the next ones: at most `max_sequences`
    /// (see [`ContinuousBatch::recycle`]).
    spare: Vec<KvCache>,
}

impl<'m, T> ContinuousBatch<'m, T> {
    /// A batch of at most `max_sequences` windows at once.
    pub fn new(model: &'m Whisper, max_sequences: usize) -> Self {
        ContinuousBatch {
            model,
            max_sequences: max_sequences.max(1),
            active: Vec::new(),
            work: DecoderWork::default(),
            selected: Vec::new(),
            logits: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Keeps a cache for reuse, at most `max_sequences` of them: beyond that the smallest is
    /// dropped. (Without the bound, a server decoding a long recording, whose prompt grows from
    /// window to window, kept every outgrown cache: ~28 MB per base window, for good.)
    fn recycle(&mut self, cache: KvCache) {
        self.spare.push(cache);
        if self.spare.len() > self.max_sequences {
            if let Some(i) = (0..self.spare.len()).min_by_key(|&i| self.spare[i].bytes()) {
                self.spare.swap_remove(i);
            }
        }
    }

    /// Caches kept for reuse (for tests).
    #[doc(hidden)]
    pub fn spare_caches(&self) -> usize {
        self.spare.len()
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Room for another window.
    pub fn has_room(&self) -> bool {
        self.active.len() < self.max_sequences
    }

    /// Hypothesis rows of the next pass (beams of every sequence).
    pub fn rows(&self) -> usize {
        self.active.iter().map(|a| a.fallback.generator().n_beams()).sum()
    }

    /// Adds a window: its encoder output `audio` (`[n_audio_ctx][d]`), its prompt and options.
    /// On error (bad prompt or options) the window is handed back with the error and the
    /// batch is unchanged.
    pub fn join(&mut self, tag: T, audio: &[f32], prompt: Vec<u32>, opts: Arc<WindowOptions>) -> std::result::Result<(), (T, crate::Error)> {
        let (beams, positions) = (opts.first_cache_beams(), opts.cache_positions(prompt.len()));
        // The smallest spare cache that fits, so a cache grown for sampling (several beams)
        // is not spent on a greedy window while a smaller one waits.
        let fits = |c: &KvCache| c.capacity_beams() >= beams && c.capacity_positions() >= positions;
        let pick = (0..self.spare.len()).filter(|&i| fits(&self.spare[i])).min_by_key(|&i| self.spare[i].bytes());
        let mut cache = match pick {
            Some(i) => self.spare.swap_remove(i),
            None => {
                // None fits: the smallest spare is too small for windows like this one (prompts
                // grow along a recording); it goes, so spares never pile up.
                if let Some(i) = (0..self.spare.len()).min_by_key(|&i| self.spare[i].bytes()) {
                    self.spare.swap_remove(i);
                }
                self.model.new_kv_cache_for(beams, positions)
            }
        };
        match Fallback::new(self.model, prompt, opts, &mut cache) {
            Ok(fallback) => {
                let cross = self.model.cross_kv(audio);
                self.active.push(Active { tag, cross, cache, fallback });
                Ok(())
            }
            Err(e) => {
                self.recycle(cache);
                Err((tag, e))
            }
        }
    }

    /// Drops every window for which `abandon` says so (a cancelled request), returning them.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.active.len() {
            if keep(&self.active[i].tag) {
                i += 1;
            } else {
                let a = self.active.swap_remove(i);
                self.recycle(a.cache);
                out.push(a.tag);
            }
        }
        out
    }

    /// One decoder pass over every window. Returns the windows that finished (or failed):
    /// a failing window leaves the batch without disturbing the others.
    pub fn step(&mut self) -> Vec<(T, Result<WindowResult>)> {
        self.step_with_cross().into_iter().map(|(tag, r, _)| (tag, r)).collect()
    }

    /// [`ContinuousBatch::step`] that also hands back the cross-attention K/V of each window
    /// that finished (for its word alignment pass); `None` for a window that failed.
    pub fn step_with_cross(&mut self) -> Vec<(T, Result<WindowResult>, Option<CrossKv>)> {
        let mut done = Vec::new();
        if self.active.is_empty() {
            return done;
        }
        let model = self.model;
        // A window whose next pass cannot run (context full, bad token) leaves with its error.
        let mut i = 0;
        while i < self.active.len() {
            let a = &mut self.active[i];
            let g = a.fallback.generator();
            let item = DecodeItem { tokens: g.tokens(), n_beams: g.n_beams(), cache: &mut a.cache, cross: &a.cross };
            if let Err(e) = model.check_decode_item(&item) {
                let a = self.active.swap_remove(i);
                self.recycle(a.cache);
                done.push((a.tag, Err(e), None));
            } else {
                i += 1;
            }
        }
        if self.active.is_empty() {
            return done;
        }
        let _span = debug_span!("batch_step", sequences = self.active.len()).entered();
        let (d, vocab) = (model.dims.n_text_state, model.dims.n_vocab);
        // Rows of each window in the decoder output, and which of them need logits.
        let mut spans = Vec::with_capacity(self.active.len());
        let mut items: Vec<DecodeItem<'_>> = Vec::with_capacity(self.active.len());
        let mut row = 0;
        for a in self.active.iter_mut() {
            let g = a.fallback.generator();
            let lr = g.logit_rows();
            spans.push((row + lr.start, lr.len()));
            row += g.tokens().len();
            items.push(DecodeItem { tokens: g.tokens(), n_beams: g.n_beams(), cache: &mut a.cache, cross: &a.cross });
        }
        let hidden = match model.decode_batch(&mut items, &mut self.work) {
            Ok(h) => h,
            Err(e) => {
                // Checked above, so this is a bug; fail every window rather than panic.
                drop(items);
                let msg = e.to_string();
                for a in std::mem::take(&mut self.active) {
                    self.recycle(a.cache);
                    done.push((a.tag, Err(crate::Error::InvalidArgument(msg.clone())), None));
                }
                return done;
            }
        };
        drop(items);
        let n_sel: usize = spans.iter().map(|s| s.1).sum();
        self.selected.clear();
        for &(start, n) in &spans {
            self.selected.extend_from_slice(&hidden[start * d..(start + n) * d]);
        }
        if self.logits.len() < n_sel * vocab {
            self.logits.resize(n_sel * vocab, 0.0);
        }
        if n_sel > 0 {
            model.logits(&self.selected, n_sel, &mut self.logits[..n_sel * vocab]);
        }
        // Hand each window its logits; finished windows leave (in reverse, so indices hold).
        let mut off = 0;
        let mut finished = Vec::new();
        for (i, (a, &(_, n))) in self.active.iter_mut().zip(&spans).enumerate() {
            let lg = &mut self.logits[off * vocab..(off + n) * vocab];
            off += n;
            match a.fallback.accept(model, lg, &mut a.cache) {
                Ok(None) => {}
                Ok(Some(r)) => finished.push((i, Ok(r))),
                Err(e) => finished.push((i, Err(e))),
            }
        }
        for (i, r) in finished.into_iter().rev() {
            let a = self.active.remove(i);
            self.recycle(a.cache);
            let cross = r.is_ok().then_some(a.cross);
            done.push((a.tag, r, cross));
        }
        done
    }
}
