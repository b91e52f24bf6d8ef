"""The fused kernel's forward with its input projection hoisted (all ``T`` steps in
one product, before the loop) against projected chunk by chunk inside it (what
``rnnjax.unroll`` does on the CPU for a projection of 32 MiB or more; see
``rnnjax.kernels.fused.projection_chunk``). Same process, interleaved rounds,
medians; forward+backward too (it takes the hoisted path in both, so the two columns
should agree)::

    python benchmarks/studies/projection_chunks.py lstm 64,256,512,512 32,128,128,256
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
from harness import Contender, environment, measure, unroll_fn

import rnnjax
from rnnjax.kernels import fused


@contextlib.contextmanager
def _hoisted():
    """Traces inside this block project all steps at once."""
    saved = fused._CHUNK_FROM_BYTES
    fused._CHUNK_FROM_BYTES = 1 << 62
    try:
        yield
    finally:
        fused._CHUNK_FROM_BYTES = saved


def _contender(name, cell, params, xs, hoisted: bool) -> Contender:
    f = unroll_fn(cell)
    g = jax.grad(lambda p, x: jnp.sum(f(p, x)), argnums=(0, 1))
    with _hoisted() if hoisted else contextlib.nullcontext():
        fwd = jax.jit(f).lower(params, xs).compile()
        bwd = jax.jit(g).lower(params, xs).compile()
    return Contender(name, lambda: fwd(params, xs), lambda: bwd(params, xs))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cell", choices=["lstm", "gru"])
    p.add_argument("shapes", nargs="+", help="B,T,I,H")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    print(
        "| cell B,T,I,H | chunk | hoisted fwd ms | chunked fwd ms | ratio "
        "| hoisted fwd+bwd | chunked fwd+bwd |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for shape in args.shapes:
        b, t, i, h = (int(a) for a in shape.split(","))
        cell = getattr(rnnjax, args.cell)(h)
        params = cell.init(jax.random.key(0), i)
        xs = jax.random.normal(jax.random.key(1), (b, t, i))
        chunk = fused.projection_chunk(cell, params, jnp.moveaxis(xs, 1, 0))
        contenders = [
            _contender("hoisted", cell, params, xs, hoisted=True),
            _contender("rnnjax auto", cell, params, xs, hoisted=False),
        ]
        res = measure(contenders, args.repeats, warmup=2)
        (hf, hb), (cf, cb) = res["hoisted"], res["rnnjax auto"]
        print(
            f"| {args.cell} {shape} | {chunk} | {hf:.1f} | {cf:.1f} | "
            f"{cf / hf:.2f} | {hb:.1f} | {cb:.1f} |",
            flush=True,
        )
    print()
    print(environment())


if __name__ == "__main__":
    main()
