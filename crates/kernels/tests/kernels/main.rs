//! Integration tests of the kernels crate: every kernel on every available path against the
//! plain-loop reference (one test binary, one module per area).

mod common;

mod attention;
mod cross_i8;
mod dispatch;
mod gemm_bf16;
mod gemm_f32;
mod gemm_i8;
mod norm_conv;
mod requant;
mod softmax;
