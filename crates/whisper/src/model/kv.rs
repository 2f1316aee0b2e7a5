//! The decoder's key/value storage: the per-window cross-attention K/V ([`CrossKv`]) and the
//! preallocated self-attention cache ([`KvCache`]), in the backend's element types.

use crate::compute::{KvType, KvView};

/// A key or value buffer in the cache's element type ([`KvType`]).
pub(super) enum KvBuf {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
}

impl KvBuf {
    pub(super) fn zeros(ty: KvType, n: usize) -> KvBuf {
        match ty {
            KvType::F32 => KvBuf::F32(vec![0.0; n]),
            // int8 is for cross-attention caches only (see `KvType::I8`).
            // Zeroed pages from the allocator (`vec![0u16; n]` is calloc; `vec![f16::ZERO; n]`
            // writes every element): the positions and beam regions a sequence never reaches
            // are never touched, so they cost no resident memory.
            KvType::F16 | KvType::I8 => KvBuf::F16(half::vec::HalfBitsVecExt::reinterpret_into(vec![0u16; n])),
        }
    }

    /// Converts an f32 buffer (taking it over when the type is f32).
    pub(super) fn from_f32(ty: KvType, x: Vec<f32>) -> KvBuf {
        match ty {
            KvType::F32 => KvBuf::F32(x),
            KvType::F16 | KvType::I8 => {
                let mut h = vec![half::f16::ZERO; x.len()];
                kernels::f32_to_f16_slice(&x, &mut h);
                KvBuf::F16(h)
            }
        }
    }

    /// Stores `src` at `at..at + src.len()`.
    pub(super) fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            KvBuf::F32(b) => b[at..at + src.len()].copy_from_slice(src),
            KvBuf::F16(b) => kernels::f32_to_f16_slice(src, &mut b[at..at + src.len()]),
        }
    }

    /// Stores `src[c]` at `at + c·stride` (a key into the transposed layout).
    pub(super) fn write_strided(&mut self, at: usize, stride: usize, src: &[f32]) {
        match self {
            KvBuf::F32(b) => src.iter().enumerate().for_each(|(c, &x)| b[at + c * stride] = x),
            KvBuf::F16(b) => src.iter().enumerate().for_each(|(c, &x)| b[at + c * stride] = half::f16::from_f32(x)),
        }
    }

    pub(super) fn bytes(&self) -> usize {
        match self {
            KvBuf::F32(b) => b.len() * 4,
            KvBuf::F16(b) => b.len() * 2,
        }
    }
}

/// Keys (transposed) and values of one cache region as a [`KvView`].
pub(super) fn kv_view<'a>(kt: &'a KvBuf, k_range: std::ops::Range<usize>, v: &'a KvBuf, v_range: std::ops::Range<usize>) -> KvView<'a> {
    match (kt, v) {
        (KvBuf::F32(k), KvBuf::F32(v)) => KvView::F32 { kt: &k[k_range], v: &v[v_range] },
        (KvBuf::F16(k), KvBuf::F16(v)) => KvView::F16 { kt: &k[k_range], v: &v[v_range] },
        _ => unreachable!("a cache's keys and values share one element type"),
    }
}

/// Cross-attention keys and values of one 30 s window, computed once and shared by every
/// decoding step and every beam, in the backend's cross-cache type
/// ([`Compute::cross_kv_type`](crate::compute::Compute::cross_kv_type)).
pub struct CrossKv {
    /// Per layer.
    pub(super) kv: Vec<CrossLayer>,
    pub(super) n_ctx: usize,
    pub(super) stride: usize,
}

/// One layer's cross-attention K/V.
pub(super) enum CrossLayer {
    /// f32 or f16: keys transposed per head `[n_heads][head_dim][stride]` and values head-major
    /// `[n_heads][stride][head_dim]` (zero padding past `n_ctx`).
    Float(KvBuf, KvBuf),
    /// int8, smoothed keys (see [`kernels::CrossKvI8`]).
    I8(kernels::CrossKvI8),
}

impl CrossKv {
    /// Bytes held (all layers).
    pub fn bytes(&self) -> usize {
        self.kv
            .iter()
            .map(|l| match l {
                CrossLayer::Float(k, v) => k.bytes() + v.bytes(),
                CrossLayer::I8(kv) => kv.bytes(),
            })
            .sum()
    }

    /// Layer `li`'s keys and values for [`Compute::attention_cached`](crate::compute::Compute::attention_cached).
    pub(super) fn view(&self, li: usize, d: usize) -> KvView<'_> {
        match &self.kv[li] {
            CrossLayer::Float(k, v) => kv_view(k, 0..d * self.stride, v, 0..d * self.stride),
            CrossLayer::I8(kv) => KvView::I8(kv),
        }
    }
}

/// Self-attention keys and values, preallocated for the whole text context and all beams, in
/// the backend's [`KvType`]. Per (layer, beam) region: keys transposed per head
/// `[n_heads][head_dim][stride]` and values head-major `[n_heads][stride][head_dim]`
/// (`stride` = text context rounded up to 16; see [`kernels::attention_kt`]). Appending a step writes in place; nothing is concatenated.
pub struct KvCache {
    pub(super) k: KvBuf,
    pub(super) v: KvBuf,
    pub(super) n_layer: usize,
    pub(super) n_beams: usize,
    pub(super) stride: usize,
    pub(super) d: usize,
    pub(super) head_dim: usize,
    /// Positions filled (the same for every beam).
    pub len: usize,
    /// Which beam regions hold which beam: `slot[b]` is the region of beam `b`. Reordering
    /// beams permutes this map and copies only regions that must be duplicated.
    pub(super) slot: Vec<usize>,
    /// Scratch of `reorder`.
    pub(super) old_slot: Vec<usize>,
    pub(super) taken: Vec<bool>,
    /// Activation buffers of the decoder, grown to the largest step seen and then reused, so
    /// that decoding allocates nothing per token.
    pub(super) work: DecoderWork,
}

/// One sequence of a [`Whisper::decode_batch`] call.
pub struct DecodeItem<'a> {
    /// `[n_beams][t]` new tokens.
    pub tokens: &'a [u32],
    pub n_beams: usize,
    pub cache: &'a mut KvCache,
    pub cross: &'a CrossKv,
}

/// Activation buffers of the decoder, grown to the largest step seen and then reused, so that
/// decoding allocates nothing per token.
#[derive(Default)]
pub struct DecoderWork {
    pub(super) x: Vec<f32>,
    pub(super) h: Vec<f32>,
    pub(super) qkv: Vec<f32>,
    pub(super) q: Vec<f32>,
    pub(super) attn: Vec<f32>,
    pub(super) ff: Vec<f32>,
}

impl DecoderWork {
    pub(super) fn fit(&mut self, rows: usize, d: usize) {
        for (buf, width) in [(&mut self.x, d), (&mut self.h, d), (&mut self.qkv, 3 * d), (&mut self.q, d), (&mut self.attn, d), (&mut self.ff, 4 * d)] {
            if buf.len() < rows * width {
                buf.resize(rows * width, 0.0);
            }
        }
    }
}

impl KvCache {
    /// Start of a (layer, region) block, the same for keys and values.
    pub(super) fn offset(&self, layer: usize, region: usize) -> usize {
        (layer * self.n_beams + region) * self.d * self.stride
    }

    pub fn capacity_beams(&self) -> usize {
        self.n_beams
    }

    /// Positions this cache can hold (at least what it was made for; the model's text
    /// context bounds them too).
    pub fn capacity_positions(&self) -> usize {
        self.stride
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Bytes held by the keys and values.
    pub fn bytes(&self) -> usize {
        self.k.bytes() + self.v.bytes()
    }

    /// Beam `b` continues from old beam `src[b]`. Beams are a map onto storage regions: a
    /// surviving beam keeps its region, a beam continued by one successor moves its region
    /// to it without copying, and only a beam with several successors is copied (the filled
    /// part only) into the regions nobody continues.
    pub fn reorder(&mut self, src: &[usize]) {
        let n = src.len();
        if src.iter().enumerate().all(|(b, &s)| b == s) {
            return;
        }
        // Scratch maps live in the cache (sized to the beam count once): no allocation here.
        let mut old = std::mem::take(&mut self.old_slot);
        old.clear();
        old.extend_from_slice(&self.slot);
        let mut taken = std::mem::take(&mut self.taken);
        taken.clear();
        taken.resize(self.n_beams, false);
        const FREE: usize = usize::MAX;
        self.slot.iter_mut().for_each(|r| *r = FREE);
        // The first successor of each old beam inherits its region.
        for (b, &s) in src.iter().enumerate() {
            if !taken[old[s]] {
                taken[old[s]] = true;
                self.slot[b] = old[s];
            }
        }
        // Other successors get a copy in a region nobody continues.
        let mut free = 0;
        for b in 0..n {
            if self.slot[b] == FREE {
                while taken[free] {
                    free += 1;
                }
                taken[free] = true;
                self.copy_region(old[src[b]], free);
                self.slot[b] = free;
            }
        }
        // Regions left over go to the beams beyond n, in order.
        for b in n..self.n_beams {
            while taken[free] {
                free += 1;
            }
            taken[free] = true;
            self.slot[b] = free;
        }
        self.old_slot = old;
        self.taken = taken;
    }

    /// Copies the filled positions of region `from` into region `to`, every layer.
    pub(super) fn copy_region(&mut self, from: usize, to: usize) {
        fn copy<T: Copy>(buf: &mut [T], from: usize, to: usize, len: usize) {
            buf.copy_within(from..from + len, to);
        }
        let (len, d, stride, hd) = (self.len, self.d, self.stride, self.head_dim);
        for layer in 0..self.n_layer {
            let (f, t) = (self.offset(layer, from), self.offset(layer, to));
            match (&mut self.k, &mut self.v) {
                (KvBuf::F32(k), KvBuf::F32(v)) => {
                    (0..d / hd).for_each(|h| copy(v, f + h * stride * hd, t + h * stride * hd, len * hd));
                    (0..d).for_each(|c| copy(k, f + c * stride, t + c * stride, len));
                }
                (KvBuf::F16(k), KvBuf::F16(v)) => {
                    (0..d / hd).for_each(|h| copy(v, f + h * stride * hd, t + h * stride * hd, len * hd));
                    (0..d).for_each(|c| copy(k, f + c * stride, t + c * stride, len));
                }
                _ => unreachable!("a cache's keys and values share one element type"),
            }
        }
    }
}
