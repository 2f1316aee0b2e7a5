//! The Whisper network: weights mapped from CTranslate2 names, the encoder, and the decoder
//! with its preallocated KV cache. Every product goes through [`Compute`].

use std::path::Path;

use tracing::{debug_span, info_span};

use crate::compute::{AttentionShape, Compute, KvType, LayerRole, Linear};
use kernels::KtShape;
use crate::config::{model_files, Dims, GenerationConfig};
use crate::ct2::Ct2File;
use crate::mel::Mel;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

mod align;
mod kv;
pub use align::{AlignItem, TokenAlignment};
pub use kv::{CrossKv, DecodeItem, DecoderWork, KvCache};
use kv::{kv_view, CrossLayer, KvBuf};
/// `(layer, item, queries)`: what [`Whisper::decode_batch_with`] hands out.
type CrossQueries<'a> = dyn FnMut(usize, usize, &[f32]) + 'a;

const LAYER_NORM_EPS: f32 = 1e-5;

pub struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl LayerNorm {
    /// Normalizes each row of `x` (width = gamma.len()) into `out`.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        let d = self.gamma.len();
        kernels::layer_norm(x, x.len() / d, d, &self.gamma, &self.beta, LAYER_NORM_EPS, out);
    }
}

/// Exact (erf) GELU, as Whisper and CTranslate2 use.
pub fn gelu_in_place(x: &mut [f32]) {
    kernels::gelu(x);
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

struct Loader<'a> {
    file: &'a Ct2File,
    compute: &'a dyn Compute,
}

impl Loader<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.file.require(name)?;
        if t.shape != shape {
            return Err(Error::Model {
                path: self.file.path().to_path_buf(),
                reason: format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.shape
                ),
            });
        }
        let mut v = t.to_f32();
        // The mapped pages are not needed again: keep peak memory to one copy of the weights.
        self.file.release(&t);
        // int8 variables carry a per-row scale (CTranslate2 quantized models).
        if t.dtype == crate::ct2::DType::I8 {
            let scale = self.file.require(&format!("{name}_scale"))?.to_f32();
            let rows = shape[0];
            if scale.len() != rows {
                return Err(Error::Model {
                    path: self.file.path().to_path_buf(),
                    reason: format!("`{name}_scale` has {} values for {rows} rows", scale.len()),
                });
            }
            let cols = v.len() / rows.max(1);
            for (r, row) in v.chunks_exact_mut(cols).enumerate() {
                for x in row {
                    *x /= scale[r];
                }
            }
        }
        Ok(v)
    }

    fn linear(&self, prefix: &str, n_out: usize, k: usize, bias: bool) -> Result<Linear> {
        let w = self.tensor(&format!("{prefix}/weight"), &[n_out, k])?;
        let b = if bias {
            Some(self.tensor(&format!("{prefix}/bias"), &[n_out])?)
        } else {
            None
        };
        Ok(self.compute.prepare(&w, n_out, k, b, LayerRole::Projection))
    }

    /// A conv1d with kernel 3 as a linear layer over im2col rows `[c_in * 3]`.
    fn conv(&self, prefix: &str, c_out: usize, c_in: usize) -> Result<Linear> {
        let w = self.tensor(&format!("{prefix}/weight"), &[c_out, c_in, 3])?;
        let b = self.tensor(&format!("{prefix}/bias"), &[c_out])?;
        Ok(self.compute.prepare(&w, c_out, c_in * 3, Some(b), LayerRole::Conv))
    }

    fn layer_norm(&self, prefix: &str, d: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            gamma: self.tensor(&format!("{prefix}/gamma"), &[d])?,
            beta: self.tensor(&format!("{prefix}/beta"), &[d])?,
        })
    }
}

struct EncoderLayer {
    attn_ln: LayerNorm,
    qkv: Linear,
    out: Linear,
    ffn_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

struct DecoderLayer {
    self_ln: LayerNorm,
    self_qkv: Linear,
    self_out: Linear,
    cross_ln: LayerNorm,
    cross_q: Linear,
    cross_kv: Linear,
    cross_out: Linear,
    ffn_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// A loaded Whisper model: dimensions, tokenizer, generation config and weights.
pub struct Whisper {
    pub dims: Dims,
    pub config: GenerationConfig,
    pub tokenizer: Tokenizer,
    compute: Box<dyn Compute>,
    conv1: Linear,
    conv2: Linear,
    enc_pos: Vec<f32>,
    enc_layers: Vec<EncoderLayer>,
    enc_ln: LayerNorm,
    embedding: Linear,
    embedding_rows: Vec<half::f16>,
    dec_pos: Vec<f32>,
    dec_layers: Vec<DecoderLayer>,
    dec_ln: LayerNorm,
}


impl Whisper {
    /// Loads a model directory in the faster-whisper layout (config.json, model.bin,
    /// tokenizer.json), converting weights to f32 for `compute`.
    pub fn load(dir: &Path, compute: Box<dyn Compute>) -> Result<Whisper> {
        let _span = info_span!("load", dir = %dir.display()).entered();
        let [config_path, model_path, tokenizer_path] = model_files(dir)?;
        let file = Ct2File::open(&model_path)?;
        let dims = Dims::from_weights(&file)?;
        let config = GenerationConfig::load(&config_path)?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path, dims.is_multilingual())?;
        if tokenizer.vocab_size() != dims.n_vocab {
            return Err(Error::Config {
                path: tokenizer_path,
                reason: format!(
                    "has {} tokens but model.bin has {}: tokenizer.json belongs to a different model",
                    tokenizer.vocab_size(),
                    dims.n_vocab
                ),
            });
        }
        let l = Loader { file: &file, compute: compute.as_ref() };
        let (da, dt, n_mels) = (dims.n_audio_state, dims.n_text_state, dims.n_mels);
        // Conv weights [c_out][c_in][3] flatten to a linear [c_out][c_in*3] over im2col rows.
        let conv1 = l.conv("encoder/conv1", da, n_mels)?;
        let conv2 = l.conv("encoder/conv2", da, da)?;
        let enc_pos = l.tensor("encoder/position_encodings/encodings", &[dims.n_audio_ctx, da])?;
        let mut enc_layers = Vec::with_capacity(dims.n_audio_layer);
        for i in 0..dims.n_audio_layer {
            let p = format!("encoder/layer_{i}");
            enc_layers.push(EncoderLayer {
                attn_ln: l.layer_norm(&format!("{p}/self_attention/layer_norm"), da)?,
                qkv: l.linear(&format!("{p}/self_attention/linear_0"), 3 * da, da, true)?,
                out: l.linear(&format!("{p}/self_attention/linear_1"), da, da, true)?,
                ffn_ln: l.layer_norm(&format!("{p}/ffn/layer_norm"), da)?,
                fc1: l.linear(&format!("{p}/ffn/linear_0"), 4 * da, da, true)?,
                fc2: l.linear(&format!("{p}/ffn/linear_1"), da, 4 * da, true)?,
            });
        }
        let enc_ln = l.layer_norm("encoder/layer_norm", da)?;
        // The token embedding is used twice: rows looked up (kept as f16, the stored precision)
        // and, tied, as the vocabulary projection (prepared like any other product).
        let emb = l.tensor("decoder/embeddings/weight", &[dims.n_vocab, dt])?;
        let embedding_rows = emb.iter().map(|&v| half::f16::from_f32(v)).collect();
        let embedding = compute.prepare(&emb, dims.n_vocab, dt, None, LayerRole::Logits);
        drop(emb);
        let dec_pos = l.tensor("decoder/position_encodings/encodings", &[dims.n_text_ctx, dt])?;
        let mut dec_layers = Vec::with_capacity(dims.n_text_layer);
        for i in 0..dims.n_text_layer {
            let p = format!("decoder/layer_{i}");
            dec_layers.push(DecoderLayer {
                self_ln: l.layer_norm(&format!("{p}/self_attention/layer_norm"), dt)?,
                self_qkv: l.linear(&format!("{p}/self_attention/linear_0"), 3 * dt, dt, true)?,
                self_out: l.linear(&format!("{p}/self_attention/linear_1"), dt, dt, true)?,
                cross_ln: l.layer_norm(&format!("{p}/attention/layer_norm"), dt)?,
                cross_q: l.linear(&format!("{p}/attention/linear_0"), dt, dt, true)?,
                cross_kv: l.linear(&format!("{p}/attention/linear_1"), 2 * dt, da, true)?,
                cross_out: l.linear(&format!("{p}/attention/linear_2"), dt, dt, true)?,
                ffn_ln: l.layer_norm(&format!("{p}/ffn/layer_norm"), dt)?,
                fc1: l.linear(&format!("{p}/ffn/linear_0"), 4 * dt, dt, true)?,
                fc2: l.linear(&format!("{p}/ffn/linear_1"), dt, 4 * dt, true)?,
            });
        }
        let dec_ln = l.layer_norm("decoder/layer_norm", dt)?;
        Ok(Whisper {
            dims,
            config,
            tokenizer,
            compute,
            conv1,
            conv2,
            enc_pos,
            enc_layers,
            enc_ln,
            embedding,
            embedding_rows,
            dec_pos,
            dec_layers,
            dec_ln,
        })
    }

    pub fn compute_name(&self) -> String {
        self.compute.name()
    }

    /// Bytes held by the weights in their prepared form.
    pub fn weight_bytes(&self) -> usize {
        let enc: usize = self
            .enc_layers
            .iter()
            .map(|l| l.qkv.bytes() + l.out.bytes() + l.fc1.bytes() + l.fc2.bytes())
            .sum();
        let dec: usize = self
            .dec_layers
            .iter()
            .map(|l| {
                l.self_qkv.bytes()
                    + l.self_out.bytes()
                    + l.cross_q.bytes()
                    + l.cross_kv.bytes()
                    + l.cross_out.bytes()
                    + l.fc1.bytes()
                    + l.fc2.bytes()
            })
            .sum();
        enc + dec
            + self.conv1.bytes()
            + self.conv2.bytes()
            + self.embedding.bytes()
            + self.embedding_rows.len() * 2
            + (self.enc_pos.len() + self.dec_pos.len()) * 4
    }

    /// Runs the encoder on one 30 s window of log-mel (`n_mels` x 3000 frames) and returns
    /// the audio features `[n_audio_ctx][n_audio_state]`.
    pub fn encode(&self, mel: &Mel) -> Result<Vec<f32>> {
        Ok(self.encode_batch(std::slice::from_ref(mel))?.remove(0))
    }

    /// Encodes several windows at once: their rows go through each matrix product together
    /// (one larger GEMM instead of several), attention stays per window.
    pub fn encode_batch(&self, mels: &[Mel]) -> Result<Vec<Vec<f32>>> {
        let _span = info_span!("encoder", windows = mels.len()).entered();
        let d = self.dims.n_audio_state;
        let n_ctx = self.dims.n_audio_ctx;
        let t_in = 2 * n_ctx;
        let n_win = mels.len();
        for mel in mels {
            if mel.n_mels != self.dims.n_mels || mel.n_frames != t_in {
                return Err(Error::InvalidArgument(format!(
                    "encoder expects {} mel bins x {t_in} frames, got {} x {}",
                    self.dims.n_mels, mel.n_mels, mel.n_frames
                )));
            }
        }
        if n_win == 0 {
            return Ok(Vec::new());
        }
        let c = self.compute.as_ref();
        let n_mels = self.dims.n_mels;
        // conv1 (stride 1, padding 1) as im2col [t_in][n_mels*3] · Wᵀ, time-major output.
        let mut cols = vec![0f32; n_win * t_in * n_mels * 3];
        for (w, mel) in mels.iter().enumerate() {
            for t in 0..t_in {
                let r = w * t_in + t;
                let row = &mut cols[r * n_mels * 3..(r + 1) * n_mels * 3];
                for ch in 0..n_mels {
                    for kk in 0..3 {
                        let src = t as isize + kk as isize - 1;
                        if (0..t_in as isize).contains(&src) {
                            row[ch * 3 + kk] = mel.data[ch * t_in + src as usize];
                        }
                    }
                }
            }
        }
        let mut h1 = vec![0f32; n_win * t_in * d];
        {
            let _s = debug_span!("conv1").entered();
            c.linear(&cols, n_win * t_in, &self.conv1, &mut h1);
            gelu_in_place(&mut h1);
        }
        // conv2 (stride 2, padding 1) over the time-major conv1 output.
        let mut cols = vec![0f32; n_win * n_ctx * d * 3];
        for w in 0..n_win {
            let h1w = &h1[w * t_in * d..(w + 1) * t_in * d];
            for t in 0..n_ctx {
                let r = w * n_ctx + t;
                let row = &mut cols[r * d * 3..(r + 1) * d * 3];
                for kk in 0..3 {
                    let src = 2 * t as isize + kk as isize - 1;
                    if (0..t_in as isize).contains(&src) {
                        let s = &h1w[src as usize * d..(src as usize + 1) * d];
                        for ch in 0..d {
                            row[ch * 3 + kk] = s[ch];
                        }
                    }
                }
            }
        }
        drop(h1);
        let rows = n_win * n_ctx;
        let mut x = vec![0f32; rows * d];
        {
            let _s = debug_span!("conv2").entered();
            c.linear(&cols, rows, &self.conv2, &mut x);
            gelu_in_place(&mut x);
        }
        drop(cols);
        for xw in x.chunks_exact_mut(n_ctx * d) {
            add_in_place(xw, &self.enc_pos);
        }

        let n_head = self.dims.n_audio_head;
        let mut h = vec![0f32; rows * d];
        let mut attn = vec![0f32; rows * d];
        // The fused QKV rows and the MLP's hidden rows of one window at a time (every product is
        // row-independent, so this changes no value): the two largest activations do not grow
        // with the number of windows encoded together.
        let mut qkv = vec![0f32; n_ctx * 3 * d];
        let mut ff = vec![0f32; n_ctx * 4 * d];
        for (i, layer) in self.enc_layers.iter().enumerate() {
            let _s = debug_span!("encoder_block", i).entered();
            layer.attn_ln.forward(&x, &mut h);
            let shape = AttentionShape { n_q: n_ctx, n_kv: n_ctx, n_heads: n_head, head_dim: d / n_head, causal: false };
            for w in 0..n_win {
                let span = w * n_ctx * d..(w + 1) * n_ctx * d;
                c.linear(&h[span.clone()], n_ctx, &layer.qkv, &mut qkv);
                c.attention_qkv(&qkv, shape, &mut attn[span]);
            }
            c.linear(&attn, rows, &layer.out, &mut h);
            add_in_place(&mut x, &h);
            layer.ffn_ln.forward(&x, &mut h);
            // The MLP's output goes to `attn`, free until the next block.
            for w in 0..n_win {
                let span = w * n_ctx * d..(w + 1) * n_ctx * d;
                c.linear(&h[span.clone()], n_ctx, &layer.fc1, &mut ff);
                gelu_in_place(&mut ff);
                c.linear(&ff, n_ctx, &layer.fc2, &mut attn[span]);
            }
            add_in_place(&mut x, &attn);
        }
        self.enc_ln.forward(&x, &mut h);
        Ok(h.chunks_exact(n_ctx * d).map(<[f32]>::to_vec).collect())
    }

    /// Projects encoder output to the cross-attention keys/values of every decoder layer.
    pub fn cross_kv(&self, audio: &[f32]) -> CrossKv {
        let _span = info_span!("cross_kv").entered();
        let n_ctx = audio.len() / self.dims.n_audio_state;
        let stride = KtShape::min_stride(n_ctx);
        let ty = self.compute.cross_kv_type();
        let d = self.dims.n_text_state;
        let n_head = self.dims.n_text_head;
        let hd = d / n_head;
        let mut kv = vec![0f32; n_ctx * 2 * d];
        let layers = self
            .dec_layers
            .iter()
            .map(|layer| {
                self.compute.linear(audio, n_ctx, &layer.cross_kv, &mut kv);
                if ty == KvType::I8 {
                    // Quantized straight from the fused K/V rows (no f32 copies).
                    return CrossLayer::I8(kernels::CrossKvI8::new(&kv, &kv[d.min(kv.len())..], 2 * d, n_ctx, n_head, hd));
                }
                // Keys go transposed so each decoding step streams them (kernels::attention_kt).
                let (mut kt, mut v) = (vec![0f32; d * stride], vec![0f32; d * stride]);
                for (j, row) in kv.chunks_exact(2 * d).enumerate() {
                    for (c, &x) in row[..d].iter().enumerate() {
                        kt[c * stride + j] = x;
                    }
                    for (h, vals) in row[d..].chunks_exact(hd).enumerate() {
                        v[(h * stride + j) * hd..(h * stride + j + 1) * hd].copy_from_slice(vals);
                    }
                }
                CrossLayer::Float(KvBuf::from_f32(ty, kt), KvBuf::from_f32(ty, v))
            })
            .collect();
        CrossKv { kv: layers, n_ctx, stride }
    }

    /// A KV cache for up to `n_beams` beams over the whole text context.
    pub fn new_kv_cache(&self, n_beams: usize) -> KvCache {
        self.new_kv_cache_for(n_beams, self.dims.n_text_ctx)
    }

    /// A KV cache for up to `n_beams` beams and `positions` positions (capped at the text
    /// context): a window that cannot grow past its prompt plus its longest generation needs
    /// no more (about half the memory of a whole-context cache in the batched pipeline).
    pub fn new_kv_cache_for(&self, n_beams: usize, positions: usize) -> KvCache {
        let (n_layer, d) = (self.dims.n_text_layer, self.dims.n_text_state);
        let stride = KtShape::min_stride(positions.clamp(1, self.dims.n_text_ctx));
        let ty = self.compute.kv_type();
        KvCache {
            k: KvBuf::zeros(ty, n_layer * n_beams * d * stride),
            v: KvBuf::zeros(ty, n_layer * n_beams * d * stride),
            head_dim: d / self.dims.n_text_head,
            n_layer,
            n_beams,
            stride,
            d,
            len: 0,
            slot: (0..n_beams).collect(),
            old_slot: Vec::with_capacity(n_beams),
            taken: Vec::with_capacity(n_beams),
            work: DecoderWork::default(),
        }
    }

    /// Runs the decoder on `n_beams` rows of `t` new tokens each (`tokens` is `[n_beams][t]`),
    /// at positions `cache.len .. cache.len + t`, appending their keys/values to the cache.
    /// Returns the final hidden states `[n_beams][t][d]` (after the last layer norm), which
    /// live in the cache's work buffers until the next call.
    pub fn decode<'c>(&self, tokens: &[u32], n_beams: usize, cache: &'c mut KvCache, cross: &CrossKv) -> Result<&'c [f32]> {
        let mut work = std::mem::take(&mut cache.work);
        let rows = tokens.len();
        let r = self
            .decode_batch(&mut [DecodeItem { tokens, n_beams, cache: &mut *cache, cross }], &mut work)
            .map(|_| ());
        cache.work = work;
        r?;
        Ok(&cache.work.h[..rows * self.dims.n_text_state])
    }

    /// Checks that `item` can be decoded: token ids, beam count, room in the text context.
    pub fn check_decode_item(&self, item: &DecodeItem<'_>) -> Result<()> {
        let (tokens, n_beams) = (item.tokens, item.n_beams);
        let t = tokens.len() / n_beams.max(1);
        if n_beams == 0 || t == 0 || t * n_beams != tokens.len() || n_beams > item.cache.n_beams {
            return Err(Error::InvalidArgument(format!("decode: {} tokens for {n_beams} beams", tokens.len())));
        }
        if item.cache.len + t > self.dims.n_text_ctx.min(item.cache.capacity_positions()) {
            return Err(Error::InvalidArgument(format!(
                "decode: position {} exceeds the text context {} (or the cache's {} positions)",
                item.cache.len + t,
                self.dims.n_text_ctx,
                item.cache.capacity_positions()
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&tok| tok as usize >= self.dims.n_vocab) {
            return Err(Error::InvalidArgument(format!("token {bad} is outside the vocabulary")));
        }
        Ok(())
    }

    /// Advances several independent sequences in one decoder pass: each item has its own
    /// tokens (`[n_beams][t]`), cache and cross-attention K/V, and they may be at different
    /// positions. Every matrix product runs once over all items' rows (the weights are read
    /// once per step, whatever the batch); attention stays per item. Returns the final hidden
    /// states, items in order, each `[n_beams][t][d]`, living in `work` until the next call.
    /// A row's result does not depend on the other rows (products are row-independent), so a
    /// sequence decoded in a batch gets the same values as decoded alone.
    pub fn decode_batch<'w>(&self, items: &mut [DecodeItem<'_>], work: &'w mut DecoderWork) -> Result<&'w [f32]> {
        self.decode_batch_with(items, work, None)
    }

    /// [`Whisper::decode_batch`] handing `cross_q(layer, item, queries)` each item's
    /// cross-attention queries in every layer (the alignment pass reads its heads from them).
    fn decode_batch_with<'w>(&self, items: &mut [DecodeItem<'_>], work: &'w mut DecoderWork, mut cross_q: Option<&mut CrossQueries<'_>>) -> Result<&'w [f32]> {
        for item in items.iter() {
            self.check_decode_item(item)?;
        }
        let rows: usize = items.iter().map(|i| i.tokens.len()).sum();
        let _span = debug_span!("decoder", items = items.len(), rows).entered();
        let d = self.dims.n_text_state;
        work.fit(rows, d);
        let DecoderWork { x, h, qkv, q, attn, ff } = &mut *work;
        let (x, h, qkv, q, attn, ff) =
            (&mut x[..rows * d], &mut h[..rows * d], &mut qkv[..rows * 3 * d], &mut q[..rows * d], &mut attn[..rows * d], &mut ff[..rows * 4 * d]);
        let mut r = 0;
        for item in items.iter() {
            let t = item.tokens.len() / item.n_beams;
            for (i, &tok) in item.tokens.iter().enumerate() {
                let pos = item.cache.len + i % t;
                let e = &self.embedding_rows[tok as usize * d..(tok as usize + 1) * d];
                let p = &self.dec_pos[pos * d..(pos + 1) * d];
                for ((o, a), b) in x[r * d..(r + 1) * d].iter_mut().zip(e).zip(p) {
                    *o = a.to_f32() + b;
                }
                r += 1;
            }
        }
        let c = self.compute.as_ref();
        let n_head = self.dims.n_text_head;
        let head_dim = d / n_head;
        for (li, layer) in self.dec_layers.iter().enumerate() {
            let _s = debug_span!("decoder_block", li).entered();
            // Causal self-attention over each item's cache.
            layer.self_ln.forward(x, h);
            c.linear(h, rows, &layer.self_qkv, qkv);
            let mut r0 = 0;
            for item in items.iter_mut() {
                let (n_beams, cache) = (item.n_beams, &mut *item.cache);
                let t = item.tokens.len() / n_beams;
                let pos0 = cache.len;
                let n_kv = pos0 + t;
                let stride = cache.stride;
                for b in 0..n_beams {
                    let o = cache.offset(li, cache.slot[b]);
                    for s in 0..t {
                        let r = r0 + b * t + s;
                        let row = &qkv[r * 3 * d..(r + 1) * 3 * d];
                        q[r * d..(r + 1) * d].copy_from_slice(&row[..d]);
                        cache.k.write_strided(o + pos0 + s, stride, &row[d..2 * d]);
                        for (h, vals) in row[2 * d..].chunks_exact(head_dim).enumerate() {
                            cache.v.write(o + (h * stride + pos0 + s) * head_dim, vals);
                        }
                    }
                    let shape = KtShape { n_q: t, n_kv, n_heads: n_head, head_dim, stride, causal: true };
                    let kv = kv_view(&cache.k, o..o + d * stride, &cache.v, o..o + d * stride);
                    let span = (r0 + b * t) * d..(r0 + (b + 1) * t) * d;
                    c.attention_cached(&q[span.clone()], kv, shape, &mut attn[span]);
                }
                r0 += n_beams * t;
            }
            c.linear(attn, rows, &layer.self_out, h);
            add_in_place(x, h);
            // Cross-attention over each item's audio features.
            layer.cross_ln.forward(x, h);
            c.linear(h, rows, &layer.cross_q, q);
            let mut r0 = 0;
            for (ii, item) in items.iter().enumerate() {
                let (n, cross) = (item.tokens.len(), item.cross);
                let shape = KtShape { n_q: n, n_kv: cross.n_ctx, n_heads: n_head, head_dim, stride: cross.stride, causal: false };
                let span = r0 * d..(r0 + n) * d;
                c.attention_cached(&q[span.clone()], cross.view(li, d), shape, &mut attn[span.clone()]);
                if let Some(f) = cross_q.as_mut() {
                    f(li, ii, &q[span]);
                }
                r0 += n;
            }
            c.linear(attn, rows, &layer.cross_out, h);
            add_in_place(x, h);
            // MLP.
            layer.ffn_ln.forward(x, h);
            c.linear(h, rows, &layer.fc1, ff);
            gelu_in_place(ff);
            c.linear(ff, rows, &layer.fc2, h);
            add_in_place(x, h);
        }
        for item in items.iter_mut() {
            item.cache.len += item.tokens.len() / item.n_beams;
        }
        self.dec_ln.forward(x, h);
        Ok(&work.h[..rows * d])
    }

    /// Logits over the vocabulary for `rows` hidden states (tied token embedding).
    pub fn logits(&self, hidden: &[f32], rows: usize, out: &mut [f32]) {
        let _span = debug_span!("logits", rows).entered();
        self.compute.linear(hidden, rows, &self.embedding, out);
    }
}
