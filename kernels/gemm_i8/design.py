# gemm_i8/design.py: whole-array u8 x i8 GEMM (IRON). `--out i32` streams the raw i32
# accumulators (the host dequantizes exactly as kernels::linear_i8); `--out i8` fuses the
# per-channel requantization, its parameters packed after each weight tile of B.
# Usage: python3 design.py --dev npu|npu2 -M 1536 -K 512 -N 2048 [-m 64 -k 64 -n 64] --out i32|i8
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "designs"))
import common  # noqa: E402

args = common.gemm_args("amanuensis u8 x i8 GEMM")
if args.out == "i32":
    module = common.whole_array_gemm(args.dev, args.M, args.K, args.N, args.m, args.k, args.n, "u8", "i8", "i32", "gemm_i8.o", "gemm_i8_zero", "gemm_i8_mac")
elif args.out == "i8":
    module = common.whole_array_gemm(
        args.dev, args.M, args.K, args.N, args.m, args.k, args.n, "u8", "i8", "i8", "gemm_i8.o", "gemm_i8_zero", "gemm_i8_mac",
        requant=("gemm_i8_requant_b", "i32"),
    )
else:
    sys.exit(f"--out must be i32 or i8, not {args.out}")
print(module)
