// am_kernel.h: definitions shared by every amanuensis AIE kernel: the tile sizes, the per-arch
// mmul shapes, the symbol naming of the host scalar build, and the integer arithmetic that
// the vector and scalar paths must both compute (the contract with kernels::reference).
//
// Build modes (set by crates/aie-build):
//   AIE_HOST_SCALAR        compiled on the host with cc for the bit-exactness tests; only the
//                          scalar paths exist, symbols get the AM_HOST_SUFFIX suffix;
//   AM_AIE2P               target AIE2P (XDNA2, device `npu2`) instead of AIE2 (`npu`).
#ifndef AM_KERNEL_H
#define AM_KERNEL_H

#include <stdint.h>

#ifndef DIM_M
#define DIM_M 64
#endif
#ifndef DIM_K
#define DIM_K 64
#endif
#ifndef DIM_N
#define DIM_N 64
#endif

// aie::mmul shapes. AIE2: u8 x i8 4x8x8, bf16 4x8x4. AIE2P: u8 x i8 8x8x8, bf16 8x8x8.
#ifdef AM_AIE2P
#define AM_I8_R 8
#define AM_I8_S 8
#define AM_I8_T 8
#define AM_BF16_R 8
#define AM_BF16_S 8
#define AM_BF16_T 8
#else
#define AM_I8_R 4
#define AM_I8_S 8
#define AM_I8_T 8
#define AM_BF16_R 4
#define AM_BF16_S 8
#define AM_BF16_T 4
#endif

// Host builds compile each kernel once per arch; the suffix keeps the symbols apart.
#ifndef AM_HOST_SUFFIX
#define AM_HOST_SUFFIX
#endif
#define AM_CAT_(a, b) a##b
#define AM_CAT(a, b) AM_CAT_(a, b)
#define AM_EXPORT(name) AM_CAT(name, AM_HOST_SUFFIX)

#ifdef __cplusplus
#define AM_INLINE static inline
#else
#define AM_INLINE static inline
#endif

// Requantization, the definition of kernels::requantize_one:
//   out = saturate_i8(zero_point + round_half_away(acc * mult / 2^(31 - shift)))
// with shift in [-31, 30] (total right shift in [1, 62]), exact in 64-bit integers, one
// rounding. `>>` of a negative int64 is an arithmetic shift on every compiler we use (and
// defined as such from C++20).
AM_INLINE int8_t am_requantize_one(int32_t acc, int32_t mult, int32_t shift, int32_t zero_point) {
  const int32_t total = 31 - shift;
  const int64_t x = (int64_t)acc * (int64_t)mult;
  const int64_t half = (int64_t)1 << (total - 1);
  int64_t r = (x + half - (x < 0 ? 1 : 0)) >> total;
  r += zero_point;
  if (r < -128) r = -128;
  if (r > 127) r = 127;
  return (int8_t)r;
}

// Q15 normalization of the integer softmax (kernels::softmax module doc):
//   r = floor((2^47 - 1) / sum);  p = min(32767, (e * r + 2^31) >> 32)
AM_INLINE uint64_t am_softmax_reciprocal(uint32_t sum) {
  return sum == 0 ? 0 : (((uint64_t)1 << 47) - 1) / (uint64_t)sum;
}
AM_INLINE int16_t am_softmax_q15(uint32_t e, uint64_t r) {
  const uint64_t p = ((uint64_t)e * r + ((uint64_t)1 << 31)) >> 32;
  return (int16_t)(p > 32767 ? 32767 : p);
}

// Offsets of the blocked tile layouts that the designs' DMA produces (see kernels/README.md):
// a rows x cols tile cut into br x bc blocks, blocks in row-major order, each block row-major.
AM_INLINE uint32_t am_blocked_index(uint32_t row, uint32_t col, uint32_t cols, uint32_t br, uint32_t bc) {
  return ((row / br) * (cols / bc) + col / bc) * (br * bc) + (row % br) * bc + col % bc;
}

#endif // AM_KERNEL_H
