# softmax_lut_i8/design.py: row softmax of int8 scores over the whole array (IRON). Column j
# takes a contiguous block of rows; its memtile splits each chunk of 4 x RPC rows among the
# column's four cores; the 256-entry table is broadcast to every core once per run.
# Usage: python3 design.py --dev npu|npu2 --rows 1536 --cols 1500
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "designs"))
import common  # noqa: E402

RPC = 4  # rows per kernel call: 4 x 1500 i8 in, 4 x 1500 i16 out, double-buffered

p = argparse.ArgumentParser(description="amanuensis int8 LUT softmax")
p.add_argument("--dev", choices=["npu", "npu2"], required=True)
p.add_argument("--rows", type=int, required=True)
p.add_argument("--cols", type=int, required=True)
a = p.parse_args()

from aie.helpers.taplib import TensorAccessPattern  # noqa: E402
from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker  # noqa: E402
from aie.iron.controlflow import range_  # noqa: E402
from aie.iron.device import Tile  # noqa: E402
from aie.iron.placers import SequentialPlacer  # noqa: E402

cols_arr = common.n_columns(a.dev)
cores = common.N_ROWS * cols_arr
rows_per_col = a.rows // cols_arr
if a.rows % (cores * RPC) or a.cols % 4:
    sys.exit(f"rows must be a multiple of {cores * RPC} and cols of 4")
calls = a.rows // (cores * RPC)

X_ty = np.ndarray[(a.rows * a.cols,), np.dtype[np.int8]]
P_ty = np.ndarray[(a.rows * a.cols,), np.dtype[np.int16]]
L_ty = np.ndarray[(256,), np.dtype[np.uint32]]
x_chunk = np.ndarray[(common.N_ROWS * RPC * a.cols,), np.dtype[np.int8]]
p_chunk = np.ndarray[(common.N_ROWS * RPC * a.cols,), np.dtype[np.int16]]
x_tile = np.ndarray[(RPC * a.cols,), np.dtype[np.int8]]
p_tile = np.ndarray[(RPC * a.cols,), np.dtype[np.int16]]

softmax = Kernel("softmax_lut_i8_rows", "softmax_lut_i8.o", [x_tile, L_ty, p_tile, np.int32, np.int32])

lut = ObjectFifo(L_ty, name="LUT")
x_l2 = [ObjectFifo(x_chunk, name=f"X_L3L2_{j}") for j in range(cols_arr)]
p_l2 = [ObjectFifo(p_chunk, name=f"P_L2L3_{j}") for j in range(cols_arr)]
offs_x = [RPC * a.cols * i for i in range(common.N_ROWS)]
x_l1 = [x_l2[j].cons().split(offs_x, obj_types=[x_tile] * common.N_ROWS, names=[f"X_L2L1_{j}_{i}" for i in range(common.N_ROWS)], placement=Tile(j, 1)) for j in range(cols_arr)]
p_l1 = [p_l2[j].prod().join(offs_x, obj_types=[p_tile] * common.N_ROWS, names=[f"P_L1L2_{j}_{i}" for i in range(common.N_ROWS)], placement=Tile(j, 1)) for j in range(cols_arr)]


def core(x_in, lut_in, p_out, kernel):
    table = lut_in.acquire(1)
    for _ in range_(calls):
        x = x_in.acquire(1)
        y = p_out.acquire(1)
        kernel(x, table, y, RPC, a.cols)
        x_in.release(1)
        p_out.release(1)
    lut_in.release(1)


workers = [
    Worker(core, [x_l1[j][i].cons(), lut.cons(), p_l1[j][i].prod(), softmax], placement=Tile(j, 2 + i))
    for i in range(common.N_ROWS)
    for j in range(cols_arr)
]

rt = Runtime()
with rt.sequence(X_ty, L_ty, P_ty) as (X, L, P):
    rt.start(*workers)
    tg = rt.task_group()
    rt.fill(lut.prod(), L, task_group=tg, placement=Tile(0, 0))
    for j in range(cols_arr):
        tap = TensorAccessPattern((a.rows, a.cols), j * rows_per_col * a.cols, [1, 1, rows_per_col, a.cols], [0, 0, a.cols, 1])
        rt.fill(x_l2[j].prod(), X, tap=tap, task_group=tg, placement=Tile(j, 0))
        rt.drain(p_l2[j].cons(), P, tap=tap, wait=True, task_group=tg, placement=Tile(j, 0))
    rt.finish_task_group(tg)

print(Program(common.device_type(a.dev), rt).resolve_program(SequentialPlacer()))
