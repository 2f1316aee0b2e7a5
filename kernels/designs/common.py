# designs/common.py: shared pieces of the amanuensis IRON designs (MLIR-AIE's Python API):
# device selection, the whole-array GEMM design used by gemm_i8 and gemm_bf16, and argument
# parsing. The shape conventions match crates/aie-build (catalog.rs, layout.rs):
#   A  row-major [M][K] in host memory; the memtile->core DMA cuts it into r x s blocks;
#   B  packed on the host into [N/n][K/k][k*n] tiles already in s x t blocks (layout.rs);
#   C  row-major [M][N]; cores write r x t blocks, the core->memtile->host DMA un-blocks them.
# Core (row i, column j) of the 4 x C array computes output tiles (mt, nt) with
# mt = i + 4 l (l = 0 .. M/(4m) - 1) and nt = j + C u (u = 0 .. N/(C n) - 1), so for each l
# the four rows of column j produce one contiguous 4m-row block of C.
#
# Written against the IRON API of mlir-aie 1.x (aie.iron: ObjectFifo, Worker, Runtime, Kernel,
# LocalBuffer; aie.helpers.taplib.TensorAccessPattern). Not compiled in the project's CI: the
# toolchain is not available there (docs/NPU.md, "What has been verified where").
import argparse
import sys

import numpy as np

N_ROWS = 4  # compute rows used per column on both devices


def mmul_shape(dev, dtype_in):
    """The aie::mmul shape (r, s, t) of the kernels (kernels/include/am_kernel.h)."""
    if dtype_in == "u8":
        return (4, 8, 8) if dev == "npu" else (8, 8, 8)
    if dtype_in == "bf16":
        return (4, 8, 4) if dev == "npu" else (8, 8, 8)
    raise ValueError(f"no mmul shape for {dtype_in}")


def n_columns(dev):
    return 4 if dev == "npu" else 8


def device_type(dev):
    from aie.iron.device import NPU1Col4, NPU2

    return NPU1Col4() if dev == "npu" else NPU2()


def np_dtype(name):
    if name == "bf16":
        from ml_dtypes import bfloat16

        return bfloat16
    return {"u8": np.uint8, "i8": np.int8, "i16": np.int16, "i32": np.int32, "u32": np.uint32, "f32": np.float32}[name]


def gemm_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dev", choices=["npu", "npu2"], required=True)
    p.add_argument("-M", type=int, required=True)
    p.add_argument("-K", type=int, required=True)
    p.add_argument("-N", type=int, required=True)
    p.add_argument("-m", type=int, default=64)
    p.add_argument("-k", type=int, default=64)
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--out", required=True)
    return p.parse_args()


def check_gemm_shape(dev, M, K, N, m, k, n):
    cols = n_columns(dev)
    if M % (m * N_ROWS) or K % k or N % (n * cols):
        sys.exit(f"shape {M}x{K}x{N} does not tile into {m}x{k}x{n} on {N_ROWS}x{cols} cores")


def whole_array_gemm(dev, M, K, N, m, k, n, dtype_in, dtype_w, dtype_out, obj, fn_zero, fn_mac, requant=None):
    """A whole-array GEMM: one XRT run computes C = A x B for the full problem.

    requant: None (C is the accumulator dtype_out), or (fn_requant, acc_dtype) to keep an
    accumulator in a core-local buffer and emit fn_requant(acc, b_last, out) per tile, where
    every B object carries the n-tile's parameter block after the weights (aie-build
    layout::pack_gemm_weights_rq): a shim tile has two input channels, used by A and B."""
    from aie.helpers.taplib import TensorAccessPattern
    from aie.iron import Kernel, LocalBuffer, ObjectFifo, Program, Runtime, Worker
    from aie.iron.controlflow import range_
    from aie.iron.device import Tile
    from aie.iron.placers import SequentialPlacer

    check_gemm_shape(dev, M, K, N, m, k, n)
    cols = n_columns(dev)
    r, s, t = mmul_shape(dev, "u8" if dtype_in == "u8" else "bf16")
    l_blocks = M // (m * N_ROWS)  # 4m-row blocks of C
    n_per_core = N // (n * cols)  # n-tiles per core per row block
    k_tiles = K // k

    din, dw, dout = np_dtype(dtype_in), np_dtype(dtype_w), np_dtype(dtype_out)
    A_ty = np.ndarray[(M * K,), np.dtype[din]]
    C_ty = np.ndarray[(M * N,), np.dtype[dout]]
    blk = 3 * n + 16  # i32 values of a requantization parameter block
    b_slot = k * n + (4 * blk if requant is not None else 0)  # weights (+ params bytes)
    B_ty = np.ndarray[((N // n) * k_tiles * b_slot,), np.dtype[dw]]
    a_tile = np.ndarray[(m, k), np.dtype[din]]
    b_tile = np.ndarray[(b_slot,), np.dtype[dw]]
    c_tile = np.ndarray[(m, n), np.dtype[dout]]
    c_col = np.ndarray[(N_ROWS * m * n,), np.dtype[dout]]

    zero = Kernel(fn_zero, obj, [c_tile] if requant is None else [np.ndarray[(m, n), np.dtype[np_dtype(requant[1])]]])
    if requant is None:
        mac = Kernel(fn_mac, obj, [a_tile, b_tile, c_tile])
    else:
        acc_tile = np.ndarray[(m, n), np.dtype[np_dtype(requant[1])]]
        mac = Kernel(fn_mac, obj, [a_tile, b_tile, acc_tile])
        rq = Kernel(requant[0], obj, [acc_tile, b_tile, c_tile])
        if k_tiles < 2:
            sys.exit("the fused-requantization design needs K >= 2k")

    # A: one fifo per core row, shim/memtile of column i, broadcast to the row's cores; the
    # memtile->core hop cuts the row-major m x k tile into r x s blocks.
    a_dims = [(m // r, r * k), (k // s, s), (r, k), (s, 1)]
    a_l3 = [ObjectFifo(a_tile, name=f"A_L3L2_{i}") for i in range(N_ROWS)]
    a_l1 = [a_l3[i].cons().forward(name=f"A_L2L1_{i}", dims_to_stream=a_dims, placement=Tile(i, 1)) for i in range(N_ROWS)]
    # B: one fifo per column, already blocked by the host: no strides.
    b_l3 = [ObjectFifo(b_tile, name=f"B_L3L2_{j}") for j in range(cols)]
    b_l1 = [b_l3[j].cons().forward(name=f"B_L2L1_{j}", placement=Tile(j, 1)) for j in range(cols)]
    # C: the four rows of a column join in its memtile; the memtile->host hop un-blocks r x t.
    c_dims = [(m // r, r * n), (r, t), (n // t, r * t), (t, 1)]
    c_l2 = [ObjectFifo(c_col, name=f"C_L2L3_{j}", dims_to_stream=c_dims) for j in range(cols)]
    c_l1 = []
    for j in range(cols):
        parts = c_l2[j].prod().join(
            [m * n * i for i in range(N_ROWS)],
            obj_types=[c_tile] * N_ROWS,
            names=[f"C_L1L2_{j}_{i}" for i in range(N_ROWS)],
            placement=Tile(j, 1),
        )
        c_l1.append(parts)

    def core_plain(a_in, b_in, c_out, zero_k, mac_k):
        for _ in range_(l_blocks * n_per_core):
            c = c_out.acquire(1)
            zero_k(c)
            for _ in range_(k_tiles):
                a = a_in.acquire(1)
                b = b_in.acquire(1)
                mac_k(a, b, c)
                a_in.release(1)
                b_in.release(1)
            c_out.release(1)

    def core_requant(a_in, b_in, c_out, zero_k, mac_k, rq_k):
        acc = LocalBuffer(acc_tile, name="acc")
        for _ in range_(l_blocks * n_per_core):
            zero_k(acc)
            for _ in range_(k_tiles - 1):
                a = a_in.acquire(1)
                b = b_in.acquire(1)
                mac_k(a, b, acc)
                a_in.release(1)
                b_in.release(1)
            # Last K tile: its B object also carries the parameters.
            a = a_in.acquire(1)
            b = b_in.acquire(1)
            mac_k(a, b, acc)
            c = c_out.acquire(1)
            rq_k(acc, b, c)
            a_in.release(1)
            b_in.release(1)
            c_out.release(1)

    workers = []
    for i in range(N_ROWS):
        for j in range(cols):
            place = Tile(j, 2 + i)
            if requant is None:
                args = [a_l1[i].cons(), b_l1[j].cons(), c_l1[j][i].prod(), zero, mac]
                workers.append(Worker(core_plain, args, placement=place))
            else:
                args = [a_l1[i].cons(), b_l1[j].cons(), c_l1[j][i].prod(), zero, mac, rq]
                workers.append(Worker(core_requant, args, placement=place))

    rt = Runtime()
    with rt.sequence(A_ty, B_ty, C_ty) as (A, B, C):
        rt.start(*workers)
        for l in range(l_blocks):
            tg = rt.task_group()
            for i in range(N_ROWS):
                mt = i + N_ROWS * l
                # The row's A tiles for every k, repeated for each of the core's n-tiles.
                tap = TensorAccessPattern((M, K), mt * m * K, [n_per_core, k_tiles, m, k], [0, k, K, 1])
                rt.fill(a_l3[i].prod(), A, tap=tap, task_group=tg, placement=Tile(i, 0))
            for j in range(cols):
                # The column's n-tiles, each K/k contiguous slots (inner size kept under the
                # DMA's 1023-word limit by cutting a slot into 4 rows).
                col_len = k_tiles * b_slot
                tap = TensorAccessPattern((1, (N // n) * col_len), j * col_len, [n_per_core, k_tiles, 4, b_slot // 4], [cols * col_len, b_slot, b_slot // 4, 1])
                rt.fill(b_l3[j].prod(), B, tap=tap, task_group=tg, placement=Tile(j, 0))
                # Rows 4m*l .. 4m*(l+1) of C, the column's n-tiles.
                ctap = TensorAccessPattern((M, N), (N_ROWS * m * l) * N + j * n, [1, n_per_core, N_ROWS * m, n], [0, cols * n, N, 1])
                rt.drain(c_l2[j].cons(), C, tap=ctap, wait=True, task_group=tg, placement=Tile(j, 0))
            rt.finish_task_group(tg)

    return Program(device_type(dev), rt).resolve_program(SequentialPlacer())
