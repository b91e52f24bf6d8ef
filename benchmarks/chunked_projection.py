"""Experiment: the LSTM forward with the input projection done in time chunks.

``python benchmarks/chunked_projection.py``: times, in one process, the fused
forward with the whole ``(T, B, 4H)`` projection computed up front (what ``unroll``
does) against an outer ``lax.scan`` over chunks of ``TC`` steps that projects each
chunk just before its steps. Recorded in RESULTS.md (no gain on the 2-core CPU).
"""

import argparse

import jax
from jax import lax

import rnnjax
from rnnjax.cells.base import linear
from rnnjax.demo import median_ms
from rnnjax.kernels import fused


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    B, T, I, H = 32, 128, 128, 256
    cell = rnnjax.lstm(H)
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (T, B, I))
    carry0 = cell.initial_carry((B,))
    w, pw = cell.rec_weight(params), cell.pointwise_params(params)

    def run(carry, x, p):
        zs = linear(x, p["w_x"])
        return fused._forward(cell, 1, pw, w, carry, zs, None, None, None, p["b"])

    def chunked(p, x, size):
        carry, ys = lax.scan(
            lambda c, xc: run(c, xc, p), carry0, x.reshape(T // size, size, B, I)
        )
        return carry, ys.reshape(T, B, H)

    contenders = {"whole projection": jax.jit(lambda p, x: run(carry0, x, p))}
    for size in (8, 16, 32, 64):
        contenders[f"chunks of {size}"] = jax.jit(
            lambda p, x, size=size: chunked(p, x, size)
        )
    for name, fn in contenders.items():
        print(f"{name:18} {median_ms(fn, params, xs, repeats=args.repeats):6.1f} ms")


if __name__ == "__main__":
    main()
