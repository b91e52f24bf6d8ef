"""``rnnjax.unroll(..., unroll=u)`` for u in 1, 2, 4: forward and forward+backward
ms, same process, interleaved rounds, medians::

    python benchmarks/unroll_factor.py lstm 32,128,128,256 11   # cell, B,T,I,H, rounds
"""

from __future__ import annotations

import statistics
import sys
import time

import jax
import jax.numpy as jnp

import rnnjax


def main():
    name, shape, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    b, t, i, h = (int(a) for a in shape.split(","))
    cell = getattr(rnnjax, name)(h)
    params = cell.init(jax.random.key(0), i)
    xs = jax.random.normal(jax.random.key(1), (b, t, i))
    fns = {}
    for u in (1, 2, 4):
        f = lambda p, x, u=u: rnnjax.unroll(cell, p, x, unroll=u)[1]
        loss = lambda p, x, f=f: jnp.sum(f(p, x))
        fns[u] = (jax.jit(f), jax.jit(jax.grad(loss, argnums=(0, 1))))
    for pair in fns.values():
        for fn in pair:
            jax.block_until_ready(fn(params, xs))
    times = {u: ([], []) for u in fns}
    for _ in range(rounds):
        for u, pair in fns.items():
            for k, fn in enumerate(pair):
                start = time.perf_counter()
                jax.block_until_ready(fn(params, xs))
                times[u][k].append((time.perf_counter() - start) * 1e3)
    print(f"{name} B,T,I,H = {shape}: forward / fwd+bwd ms")
    for u, (fwd, bwd) in times.items():
        fwd, bwd = statistics.median(fwd), statistics.median(bwd)
        print(f"| unroll={u} | {fwd:.1f} | {bwd:.1f} |")


if __name__ == "__main__":
    main()
