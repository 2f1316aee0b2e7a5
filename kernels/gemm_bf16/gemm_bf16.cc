// gemm_bf16.cc: bf16 x bf16 -> f32 GEMM on one DIM_M x DIM_K x DIM_N sub-tile, accumulating
// in f32 across K sub-tiles (the design zeroes C once per output tile).
//
// Tile layouts (see kernels/README.md): A bf16 DIM_M x DIM_K in R x S blocks, B bf16
// DIM_K x DIM_N in S x T blocks (packed on the host at weight load), C f32 DIM_M x DIM_N in
// R x T blocks. bf16 values travel as their 16-bit patterns (uint16_t on the host).
//
// Numerics: bf16 x bf16 products are exact in f32; the scalar path adds them in k order with
// f32 rounding, the AIE accumulates in its own order (and flushes denormals), so results are
// compared with a tolerance that grows with K, not bit for bit.

#include "am_kernel.h"

#ifndef AIE_HOST_SCALAR
#define NOCPP
#include <aie_api/aie.hpp>
typedef bfloat16 am_bf16;
#else
typedef uint16_t am_bf16;
#endif

#define R AM_BF16_R
#define S AM_BF16_S
#define T AM_BF16_T

static_assert(DIM_M % (2 * R) == 0 && DIM_K % S == 0 && DIM_N % (2 * T) == 0, "tile not divisible by the mmul shape");

static inline float am_bf16_to_f32(am_bf16 v) {
  uint16_t bits;
  __builtin_memcpy(&bits, &v, 2);
  const uint32_t w = (uint32_t)bits << 16;
  float f;
  __builtin_memcpy(&f, &w, 4);
  return f;
}

static void gemm_bf16_mac_scalar_impl(const am_bf16 *a, const am_bf16 *b, float *c) {
  for (uint32_t i = 0; i < DIM_M; i++) {
    for (uint32_t j = 0; j < DIM_N; j++) {
      float acc = c[am_blocked_index(i, j, DIM_N, R, T)];
      for (uint32_t p = 0; p < DIM_K; p++) {
        // Separate multiply and add (no FMA contraction: the host build uses -ffp-contract=off).
        const float prod = am_bf16_to_f32(a[am_blocked_index(i, p, DIM_K, R, S)]) * am_bf16_to_f32(b[am_blocked_index(p, j, DIM_N, S, T)]);
        acc = acc + prod;
      }
      c[am_blocked_index(i, j, DIM_N, R, T)] = acc;
    }
  }
}

#ifndef AIE_HOST_SCALAR
static void gemm_bf16_mac_vector_impl(const bfloat16 *__restrict pA, const bfloat16 *__restrict pB, float *__restrict pC) {
  using MMUL = aie::mmul<R, S, T, bfloat16, bfloat16, accfloat>;
  constexpr unsigned rowA = DIM_M / R, colA = DIM_K / S, colB = DIM_N / T;
  for (unsigned z = 0; z < rowA; z += 2) chess_loop_range(2, ) {
    float *__restrict pC1 = pC + (z * colB) * MMUL::size_C;
    float *__restrict pC2 = pC + ((z + 1) * colB) * MMUL::size_C;
    for (unsigned j = 0; j < colB; j += 2) chess_prepare_for_pipelining chess_loop_range(2, ) {
      const bfloat16 *__restrict pA1 = pA + (z * colA) * MMUL::size_A;
      const bfloat16 *__restrict pA2 = pA + ((z + 1) * colA) * MMUL::size_A;
      const bfloat16 *__restrict pB1 = pB + j * MMUL::size_B;
      const bfloat16 *__restrict pB2 = pB + (j + 1) * MMUL::size_B;
      MMUL C00(aie::load_v<MMUL::size_C>(pC1));
      MMUL C01(aie::load_v<MMUL::size_C>(pC1 + MMUL::size_C));
      MMUL C10(aie::load_v<MMUL::size_C>(pC2));
      MMUL C11(aie::load_v<MMUL::size_C>(pC2 + MMUL::size_C));
      for (unsigned i = 0; i < colA; ++i) chess_prepare_for_pipelining chess_loop_range(4, ) {
        auto A0 = aie::load_v<MMUL::size_A>(pA1);
        pA1 += MMUL::size_A;
        auto A1 = aie::load_v<MMUL::size_A>(pA2);
        pA2 += MMUL::size_A;
        auto B0 = aie::load_v<MMUL::size_B>(pB1);
        pB1 += MMUL::size_B * colB;
        auto B1 = aie::load_v<MMUL::size_B>(pB2);
        pB2 += MMUL::size_B * colB;
        C00.mac(A0, B0);
        C01.mac(A0, B1);
        C10.mac(A1, B0);
        C11.mac(A1, B1);
      }
      aie::store_v(pC1, C00.template to_vector<float>());
      pC1 += MMUL::size_C;
      aie::store_v(pC1, C01.template to_vector<float>());
      pC1 += MMUL::size_C;
      aie::store_v(pC2, C10.template to_vector<float>());
      pC2 += MMUL::size_C;
      aie::store_v(pC2, C11.template to_vector<float>());
      pC2 += MMUL::size_C;
    }
  }
}
#endif

extern "C" {

void AM_EXPORT(gemm_bf16_zero)(float *c) {
  for (uint32_t i = 0; i < DIM_M * DIM_N; i++) c[i] = 0.0f;
}

void AM_EXPORT(gemm_bf16_mac)(const am_bf16 *a, const am_bf16 *b, float *c) {
#ifdef AIE_HOST_SCALAR
  gemm_bf16_mac_scalar_impl(a, b, c);
#else
  gemm_bf16_mac_vector_impl(a, b, c);
#endif
}

void AM_EXPORT(gemm_bf16_mac_scalar)(const am_bf16 *a, const am_bf16 *b, float *c) { gemm_bf16_mac_scalar_impl(a, b, c); }

} // extern "C"
