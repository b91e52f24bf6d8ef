"""``rnnjax.unroll(..., options=UnrollOptions(unroll=u))`` for u in 1, 2, 4:
forward and forward+backward ms, same process, interleaved rounds, medians::

    # cell, B,T,I,H, rounds
    python benchmarks/studies/unroll_factor.py lstm 32,128,128,256 11
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness
import jax
import jax.numpy as jnp

import rnnjax


def main():
    name, shape, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    b, t, i, h = (int(a) for a in shape.split(","))
    cell = getattr(rnnjax, name)(h)
    params = cell.init(jax.random.key(0), i)
    xs = jax.random.normal(jax.random.key(1), (b, t, i))
    runs = {}
    for u in (1, 2, 4):
        f = harness.unroll_fn(cell, unroll=u)
        loss = lambda p, x, f=f: jnp.sum(f(p, x))
        fwd, bwd = jax.jit(f), jax.jit(jax.grad(loss, argnums=(0, 1)))
        runs[u] = (lambda g=fwd: g(params, xs), lambda g=bwd: g(params, xs))
    medians = harness.interleaved(runs, rounds)
    print(f"{name} B,T,I,H = {shape}: forward / fwd+bwd ms")
    for u, (fwd, bwd) in medians.items():
        print(f"| unroll={u} | {fwd:.1f} | {bwd:.1f} |")


if __name__ == "__main__":
    main()
