# gelu_lut_i8/design.py: int8 -> int8 GELU through a 256-entry table over the whole array
# (IRON). Column j takes a contiguous 1/C of the values in chunks of 4 x 4096 split among its
# four cores; the table is broadcast to every core once per run.
# Usage: python3 design.py --dev npu|npu2 -n 3145728
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "designs"))
import common  # noqa: E402

CHUNK = 4096  # values per kernel call

p = argparse.ArgumentParser(description="amanuensis int8 LUT GELU")
p.add_argument("--dev", choices=["npu", "npu2"], required=True)
p.add_argument("-n", type=int, required=True)
a = p.parse_args()

from aie.helpers.taplib import TensorAccessPattern  # noqa: E402
from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker  # noqa: E402
from aie.iron.controlflow import range_  # noqa: E402
from aie.iron.device import Tile  # noqa: E402
from aie.iron.placers import SequentialPlacer  # noqa: E402

cols_arr = common.n_columns(a.dev)
cores = common.N_ROWS * cols_arr
if a.n % (cores * CHUNK):
    sys.exit(f"n must be a multiple of {cores * CHUNK}")
per_col = a.n // cols_arr
calls = a.n // (cores * CHUNK)

V_ty = np.ndarray[(a.n,), np.dtype[np.int8]]
L_ty = np.ndarray[(256,), np.dtype[np.int8]]
chunk = np.ndarray[(common.N_ROWS * CHUNK,), np.dtype[np.int8]]
tile = np.ndarray[(CHUNK,), np.dtype[np.int8]]

gelu = Kernel("gelu_lut_i8", "gelu_lut_i8.o", [tile, L_ty, tile, np.int32])

lut = ObjectFifo(L_ty, name="LUT")
x_l2 = [ObjectFifo(chunk, name=f"X_L3L2_{j}") for j in range(cols_arr)]
y_l2 = [ObjectFifo(chunk, name=f"Y_L2L3_{j}") for j in range(cols_arr)]
offs = [CHUNK * i for i in range(common.N_ROWS)]
x_l1 = [x_l2[j].cons().split(offs, obj_types=[tile] * common.N_ROWS, names=[f"X_L2L1_{j}_{i}" for i in range(common.N_ROWS)], placement=Tile(j, 1)) for j in range(cols_arr)]
y_l1 = [y_l2[j].prod().join(offs, obj_types=[tile] * common.N_ROWS, names=[f"Y_L1L2_{j}_{i}" for i in range(common.N_ROWS)], placement=Tile(j, 1)) for j in range(cols_arr)]


def core(x_in, lut_in, y_out, kernel):
    table = lut_in.acquire(1)
    for _ in range_(calls):
        x = x_in.acquire(1)
        y = y_out.acquire(1)
        kernel(x, table, y, CHUNK)
        x_in.release(1)
        y_out.release(1)
    lut_in.release(1)


workers = [
    Worker(core, [x_l1[j][i].cons(), lut.cons(), y_l1[j][i].prod(), gelu], placement=Tile(j, 2 + i))
    for i in range(common.N_ROWS)
    for j in range(cols_arr)
]

rt = Runtime()
with rt.sequence(V_ty, L_ty, V_ty) as (X, L, Y):
    rt.start(*workers)
    tg = rt.task_group()
    rt.fill(lut.prod(), L, task_group=tg, placement=Tile(0, 0))
    for j in range(cols_arr):
        tap = TensorAccessPattern((1, a.n), j * per_col, [1, per_col // 4096, 4, 1024], [0, 4096, 1024, 1])
        rt.fill(x_l2[j].prod(), X, tap=tap, task_group=tg, placement=Tile(j, 0))
        rt.drain(y_l2[j].cons(), Y, tap=tap, wait=True, task_group=tg, placement=Tile(j, 0))
    rt.finish_task_group(tg)

print(Program(common.device_type(a.dev), rt).resolve_program(SequentialPlacer()))
