// gelu_lut_i8.cc: GELU on int8 activations through a 256-entry table: out[i] = lut[x[i]+128].
//
// The table is computed on the host (crates/aie-build `gelu_lut_i8`) from the exact-erf GELU
// of kernels::reference, for the input scale/zero point and the output scale/zero point of
// the quantized MLP; the kernel only indexes it, so the NPU result is the table's by
// construction and the host test checks the indexing and the table together.
//
// Entry point: gelu_lut_i8(x, lut, out, n). A tile is `n` contiguous values.

#include "am_kernel.h"

static void gelu_scalar(const int8_t *x, const int8_t *lut, int8_t *out, int32_t n) {
  for (int32_t i = 0; i < n; i++) out[i] = lut[(int32_t)x[i] + 128];
}

extern "C" {

// The AIE has no byte gather: this is scalar on the array too (one load per value), which is
// cheap next to the GEMMs around it.
void AM_EXPORT(gelu_lut_i8)(const int8_t *x, const int8_t *lut, int8_t *out, int32_t n) { gelu_scalar(x, lut, out, n); }

} // extern "C"
