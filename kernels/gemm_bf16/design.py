# gemm_bf16/design.py: whole-array bf16 x bf16 -> f32 GEMM (IRON).
# Usage: python3 design.py --dev npu|npu2 -M 1536 -K 512 -N 2048 [-m 64 -k 64 -n 64] --out f32
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "designs"))
import common  # noqa: E402

args = common.gemm_args("amanuensis bf16 GEMM")
if args.out != "f32":
    sys.exit("--out must be f32")
print(common.whole_array_gemm(args.dev, args.M, args.K, args.N, args.m, args.k, args.n, "bf16", "bf16", "f32", "gemm_bf16.o", "gemm_bf16_zero", "gemm_bf16_mac"))
