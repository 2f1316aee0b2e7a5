// softmax_lut_i8.cc: row softmax of int8 scores through a 256-entry exp table, subtracting
// the row max first, with Q15 output: exactly kernels::softmax_lut_i8 (module doc of
// crates/kernels/src/softmax.rs):
//   m = max(row);  e[c] = lut[m - x[c]]  (lut[d] = round(2^15 exp(-scale d)), built on the host)
//   sum = sum(e) (u32);  r = floor((2^47 - 1) / sum);  p[c] = min(32767, (e[c] r + 2^31) >> 32)
//
// Entry point: softmax_lut_i8_rows(x, lut, out, rows, cols): `rows` rows of `cols` scores,
// contiguous. The design streams a block of rows per call; the table (256 u32) arrives once.
//
// Vector path: the row max uses aie::reduce_max on 64-lane int8 vectors; the table lookups,
// the sum and the 64-bit normalization stay scalar (AIE2 has no byte-indexed gather and no
// 64-bit vector multiply), so the arithmetic is the scalar one by construction.

#include "am_kernel.h"

#ifndef AIE_HOST_SCALAR
#define NOCPP
#include <aie_api/aie.hpp>
#endif

static int8_t row_max_scalar(const int8_t *x, int32_t cols) {
  int8_t m = -128;
  for (int32_t c = 0; c < cols; c++) m = x[c] > m ? x[c] : m;
  return m;
}

#ifndef AIE_HOST_SCALAR
static int8_t row_max_vector(const int8_t *x, int32_t cols) {
  int8_t m = -128;
  int32_t c = 0;
  // Vector loads need 32-byte alignment: take the unaligned head scalar.
  while (c < cols && (((uintptr_t)(x + c)) & 31) != 0) {
    m = x[c] > m ? x[c] : m;
    c++;
  }
  for (; c + 64 <= cols; c += 64) {
    const int8_t v = aie::reduce_max(aie::load_v<64>(x + c));
    m = v > m ? v : m;
  }
  for (; c < cols; c++) m = x[c] > m ? x[c] : m;
  return m;
}
#endif

static void softmax_row(const int8_t *x, const uint32_t *lut, int16_t *out, int32_t cols, int vector) {
#ifndef AIE_HOST_SCALAR
  const int8_t m = vector ? row_max_vector(x, cols) : row_max_scalar(x, cols);
#else
  (void)vector;
  const int8_t m = row_max_scalar(x, cols);
#endif
  uint32_t sum = 0;
  for (int32_t c = 0; c < cols; c++) sum += lut[(uint8_t)((int32_t)m - (int32_t)x[c])];
  const uint64_t r = am_softmax_reciprocal(sum);
  if (sum == 0) {
    for (int32_t c = 0; c < cols; c++) out[c] = 0;
    return;
  }
  for (int32_t c = 0; c < cols; c++) out[c] = am_softmax_q15(lut[(uint8_t)((int32_t)m - (int32_t)x[c])], r);
}

extern "C" {

void AM_EXPORT(softmax_lut_i8_rows)(const int8_t *x, const uint32_t *lut, int16_t *out, int32_t rows, int32_t cols) {
  for (int32_t i = 0; i < rows; i++) softmax_row(x + i * cols, lut, out + i * cols, cols, 1);
}

void AM_EXPORT(softmax_lut_i8_rows_scalar)(const int8_t *x, const uint32_t *lut, int16_t *out, int32_t rows, int32_t cols) {
  for (int32_t i = 0; i < rows; i++) softmax_row(x + i * cols, lut, out + i * cols, cols, 0);
}

} // extern "C"
