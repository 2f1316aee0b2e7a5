//! Numeric kernels of the Whisper engine: f32 / int8 / bf16 GEMM, requantization, softmax in
//! four formats, fused attention, layer norm, GELU and conv1d, each with AVX-512, AVX2 and
//! scalar paths chosen at run time, and a plain-loop [`reference`] for tests.
//!
//! Path selection: [`Isa::detect`] picks the best path once (override with
//! `KERNELS_FORCE=scalar|avx2|avx512`); every kernel also has a `*_with(isa, ..)` variant.
//! Kernels do no I/O and allocate only scratch space.

mod attention;
mod attention_bf16;
mod attention_i8;
mod bf16;
mod conv;
mod dec_attention;
mod dec_attention_i8;
mod gemm_f32;
mod int8;
mod isa;
mod norm;
pub mod reference;
mod requant;
mod softmax;
mod util;
mod vmath;

pub use attention::{attention_f32, attention_f32_with};
pub use attention_bf16::{attention_bf16, attention_bf16_with};
pub use attention_i8::{attention_i8qk, attention_i8qk_with, StridedAttention};
pub use bf16::{linear_bf16, linear_bf16_with, PackedBf16};
pub use dec_attention::{attention_kt, attention_kt_with, f32_to_f16_slice, KtShape, KvElem};
pub use dec_attention_i8::{attention_kv_i8, attention_kv_i8_with, CrossKvI8};
pub use conv::{conv1d, conv1d_out_len, conv1d_with, ConvInput};
pub use gemm_f32::{linear_f32, linear_f32_with, sgemm, sgemm_with, PackedF32};
pub use int8::{
    gemm_u8i8_i32, gemm_u8i8_i32_with, linear_i8, linear_i8_with, quantize_rows_u8, quantize_weights_i8, PackedI8,
    QuantizedI8,
};
pub use isa::Isa;
pub use norm::{gelu, gelu_with, layer_norm, layer_norm_with};
pub use requant::{
    quantize_multiplier, requantize, requantize_one, requantize_per_channel, requantize_per_channel_with,
    requantize_with,
};
pub use softmax::{
    attention_accuracy, bf16_to_f32, correlation, f32_to_bf16, softmax_bf16, softmax_bf16_with, softmax_f32,
    softmax_f32_with, softmax_i16, softmax_i16_with, softmax_lut_i8, softmax_lut_i8_with, AttentionAccuracy,
    SoftmaxI16Params, SoftmaxLut, MAX_INT_COLS,
};
/// The bf16 type used in the API (re-exported from `half`).
pub use half::bf16 as Bf16;
