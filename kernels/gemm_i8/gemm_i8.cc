// gemm_i8.cc: u8 x i8 -> i32 GEMM on one DIM_M x DIM_K x DIM_N sub-tile (64x64x64 by default)
// with i32 accumulation across K sub-tiles, and the fused per-channel requantization
// i32 -> i8 (kernels::requantize_one; mlir-aie's own int8 GEMM has none).
//
// Tile layouts (produced by the design's DMA, see kernels/README.md):
//   A  u8  DIM_M x DIM_K, blocks of R x S   (R, S, T: the aie::mmul shape of the arch)
//   B  i8  DIM_K x DIM_N, blocks of S x T   (packed on the host once, at weight load)
//   C  i32 DIM_M x DIM_N, blocks of R x T   (the accumulator; un-blocked by the DMA)
//   params i32 [3 * DIM_N + 16]: offset[DIM_N], mult[DIM_N], shift[DIM_N], zero_point, pad.
//   In the fused design the params block follows each B tile in the same object (a shim has
//   only two input channels, A and B): gemm_i8_requant_b takes that B object.
//
// Entry points (extern "C"): gemm_i8_zero, gemm_i8_mac, gemm_i8_requant, gemm_i8_requant_b,
// and *_scalar versions of mac and requant. With AIE_HOST_SCALAR only the scalar code is compiled and the
// plain names call it: that build is what the host tests compare bit for bit with
// kernels::reference.

#include "am_kernel.h"

#ifndef AIE_HOST_SCALAR
#define NOCPP
#include <aie_api/aie.hpp>
#endif

#define R AM_I8_R
#define S AM_I8_S
#define T AM_I8_T

static_assert(DIM_M % (2 * R) == 0 && DIM_K % S == 0 && DIM_N % (2 * T) == 0, "tile not divisible by the mmul shape");

// ------------------------------------------------------------------------------ scalar path

// C += A * B over the tile, element by element, in the blocked layouts. Integer sums are
// exact, so the order of accumulation cannot change the result.
static void gemm_i8_mac_scalar_impl(const uint8_t *a, const int8_t *b, int32_t *c) {
  for (uint32_t i = 0; i < DIM_M; i++) {
    for (uint32_t j = 0; j < DIM_N; j++) {
      int32_t acc = 0;
      for (uint32_t p = 0; p < DIM_K; p++) {
        acc += (int32_t)a[am_blocked_index(i, p, DIM_K, R, S)] * (int32_t)b[am_blocked_index(p, j, DIM_N, S, T)];
      }
      c[am_blocked_index(i, j, DIM_N, R, T)] += acc;
    }
  }
}

static void gemm_i8_requant_scalar_impl(const int32_t *c, const int32_t *params, int8_t *out) {
  const int32_t *offset = params;
  const int32_t *mult = params + DIM_N;
  const int32_t *shift = params + 2 * DIM_N;
  const int32_t zero_point = params[3 * DIM_N];
  for (uint32_t i = 0; i < DIM_M; i++) {
    for (uint32_t j = 0; j < DIM_N; j++) {
      const uint32_t idx = am_blocked_index(i, j, DIM_N, R, T);
      out[idx] = am_requantize_one(c[idx] + offset[j], mult[j], shift[j], zero_point);
    }
  }
}

// ------------------------------------------------------------------------------ vector path
#ifndef AIE_HOST_SCALAR

// 2x2 output blocks per iteration, as in the AIE API documentation's blocked example: each
// A block is used twice and each B block twice per load.
static void gemm_i8_mac_vector_impl(const uint8_t *__restrict pA, const int8_t *__restrict pB, int32_t *__restrict pC) {
  using MMUL = aie::mmul<R, S, T, uint8, int8, acc32>;
  constexpr unsigned rowA = DIM_M / R, colA = DIM_K / S, colB = DIM_N / T;
  for (unsigned z = 0; z < rowA; z += 2) chess_loop_range(2, ) {
    int32_t *__restrict pC1 = pC + (z * colB) * MMUL::size_C;
    int32_t *__restrict pC2 = pC + ((z + 1) * colB) * MMUL::size_C;
    for (unsigned j = 0; j < colB; j += 2) chess_prepare_for_pipelining chess_loop_range(2, ) {
      const uint8_t *__restrict pA1 = pA + (z * colA) * MMUL::size_A;
      const uint8_t *__restrict pA2 = pA + ((z + 1) * colA) * MMUL::size_A;
      const int8_t *__restrict pB1 = pB + j * MMUL::size_B;
      const int8_t *__restrict pB2 = pB + (j + 1) * MMUL::size_B;
      MMUL C00(aie::load_v<MMUL::size_C>(pC1));
      MMUL C01(aie::load_v<MMUL::size_C>(pC1 + MMUL::size_C));
      MMUL C10(aie::load_v<MMUL::size_C>(pC2));
      MMUL C11(aie::load_v<MMUL::size_C>(pC2 + MMUL::size_C));
      for (unsigned i = 0; i < colA; ++i) chess_prepare_for_pipelining chess_loop_range(4, ) {
        aie::vector<uint8, MMUL::size_A> A0 = aie::load_v<MMUL::size_A>(pA1);
        pA1 += MMUL::size_A;
        aie::vector<uint8, MMUL::size_A> A1 = aie::load_v<MMUL::size_A>(pA2);
        pA2 += MMUL::size_A;
        aie::vector<int8, MMUL::size_B> B0 = aie::load_v<MMUL::size_B>(pB1);
        pB1 += MMUL::size_B * colB;
        aie::vector<int8, MMUL::size_B> B1 = aie::load_v<MMUL::size_B>(pB2);
        pB2 += MMUL::size_B * colB;
        C00.mac(A0, B0);
        C01.mac(A0, B1);
        C10.mac(A1, B0);
        C11.mac(A1, B1);
      }
      // acc32 -> int32 without shift: exact.
      aie::store_v(pC1, C00.template to_vector<int32>());
      pC1 += MMUL::size_C;
      aie::store_v(pC1, C01.template to_vector<int32>());
      pC1 += MMUL::size_C;
      aie::store_v(pC2, C10.template to_vector<int32>());
      pC2 += MMUL::size_C;
      aie::store_v(pC2, C11.template to_vector<int32>());
      pC2 += MMUL::size_C;
    }
  }
}

// Requantization, 16 values per step. One SRS shift serves a whole vector, so this path needs
// a single shift for the tile's channels; per-channel shifts that differ take the scalar
// path (same arithmetic, slower). Rounding: symmetric_inf = half away from zero, as the
// definition. The i32 result is clamped to +-2^15 before adding the zero point so that the
// add cannot wrap (anything that far out saturates to -128/127 either way).
static void gemm_i8_requant_vector_impl(const int32_t *__restrict c, const int32_t *__restrict params, int8_t *__restrict out) {
  const int32_t *offset = params;
  const int32_t *mult = params + DIM_N;
  const int32_t *shift = params + 2 * DIM_N;
  const int32_t zero_point = params[3 * DIM_N];
  for (unsigned j = 1; j < DIM_N; j++) {
    if (shift[j] != shift[0]) {
      gemm_i8_requant_scalar_impl(c, params, out);
      return;
    }
  }
  static_assert(T == 8, "the vector requantization assumes 8-column blocks");
  aie::set_rounding(aie::rounding_mode::symmetric_inf);
  aie::set_saturation(aie::saturation_mode::saturate);
  const int total = 31 - shift[0];
  const aie::vector<int32, 16> lo = aie::broadcast<int32, 16>(-(1 << 15));
  const aie::vector<int32, 16> hi = aie::broadcast<int32, 16>(1 << 15);
  const aie::vector<int32, 16> zp = aie::broadcast<int32, 16>(zero_point);
  constexpr unsigned colB = DIM_N / T;
  // In the R x T blocked layout, 16 consecutive values are two rows of one 8-column block.
  for (unsigned blk = 0; blk < (DIM_M / R) * colB; blk++) {
    const unsigned col0 = (blk % colB) * T;
    const aie::vector<int32, 8> m8 = aie::load_v<8>(mult + col0);
    const aie::vector<int32, 8> o8 = aie::load_v<8>(offset + col0);
    const aie::vector<int32, 16> m16 = aie::concat(m8, m8);
    const aie::vector<int32, 16> o16 = aie::concat(o8, o8);
    for (unsigned rr = 0; rr < R; rr += 2) {
      const unsigned base = blk * R * T + rr * T;
      aie::vector<int32, 16> acc = aie::add(aie::load_v<16>(c + base), o16);
      aie::accum<acc64, 16> x = aie::mul(acc, m16);
      aie::vector<int32, 16> q = x.template to_vector<int32>(total);
      q = aie::add(aie::min(aie::max(q, lo), hi), zp);
      aie::accum<acc32, 16> qa;
      qa.from_vector(q, 0);
      aie::store_v(out + base, qa.template to_vector<int8>(0));
    }
  }
}
#endif

// ---------------------------------------------------------------------------- entry points
extern "C" {

void AM_EXPORT(gemm_i8_zero)(int32_t *c) {
  for (uint32_t i = 0; i < DIM_M * DIM_N; i++) c[i] = 0;
}

void AM_EXPORT(gemm_i8_mac)(const uint8_t *a, const int8_t *b, int32_t *c) {
#ifdef AIE_HOST_SCALAR
  gemm_i8_mac_scalar_impl(a, b, c);
#else
  gemm_i8_mac_vector_impl(a, b, c);
#endif
}

void AM_EXPORT(gemm_i8_requant)(const int32_t *c, const int32_t *params, int8_t *out) {
#ifdef AIE_HOST_SCALAR
  gemm_i8_requant_scalar_impl(c, params, out);
#else
  gemm_i8_requant_vector_impl(c, params, out);
#endif
}

// The fused design's requantization: `b` is the last K tile's B object, weights then params.
void AM_EXPORT(gemm_i8_requant_b)(const int32_t *c, const int8_t *b, int8_t *out) {
  AM_EXPORT(gemm_i8_requant)(c, (const int32_t *)(b + DIM_K * DIM_N), out);
}

void AM_EXPORT(gemm_i8_mac_scalar)(const uint8_t *a, const int8_t *b, int32_t *c) { gemm_i8_mac_scalar_impl(a, b, c); }

void AM_EXPORT(gemm_i8_requant_scalar)(const int32_t *c, const int32_t *params, int8_t *out) {
  gemm_i8_requant_scalar_impl(c, params, out);
}

} // extern "C"
