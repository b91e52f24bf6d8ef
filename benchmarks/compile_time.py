"""Compile time of a 4-layer bidirectional LSTM's forward+backward against T.

The time loop is a ``lax.scan`` whatever ``T``, so compile time should not grow
with ``T``. Each measurement lowers and compiles a fresh ``jax.jit`` (no cache);
the median of ``--repeats`` is printed per T, for each ``impl`` and remat::

    python benchmarks/compile_time.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

import rnnjax


def compile_seconds(model, params, xs_spec, impl, remat) -> float:
    def loss(params, xs):
        _, ys = model.apply(params, xs, impl=impl, remat=remat)
        return jnp.mean(ys**2)

    start = time.perf_counter()
    jax.jit(jax.value_and_grad(loss)).lower(params, xs_spec).compile()
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--input", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--steps", type=int, nargs="+", default=[16, 128, 1024, 8192])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    model = rnnjax.stack(rnnjax.lstm(args.hidden), args.layers, bidirectional=True)
    params = model.init(jax.random.key(0), args.input)
    variants = [("auto", None), ("scan", None), ("auto", "chunk")]
    print(
        f"compile seconds, {args.layers}-layer bidirectional LSTM forward+backward, "
        f"B={args.batch}, I={args.input}, H={args.hidden}, median of {args.repeats}"
    )
    print("| T | " + " | ".join(f"impl={i}, remat={r}" for i, r in variants) + " |")
    print("|---:|" + "---:|" * len(variants))
    for t in args.steps:
        spec = jax.ShapeDtypeStruct((args.batch, t, args.input), jnp.float32)
        cells = []
        for impl, remat in variants:
            runs = [
                compile_seconds(model, params, spec, impl, remat)
                for _ in range(args.repeats)
            ]
            cells.append(f"{statistics.median(runs):.2f}")
        print(f"| {t:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
