"""Same-process comparison of ``rnnjax/kernels/fused.py`` at several commits.

Each commit's ``fused.py`` is loaded from git as its own module (it imports the rest
of ``rnnjax`` from the working tree) and run through ``rnnjax.unroll``; all are timed
in interleaved rounds with the scan reference, forward and forward+backward::

    python benchmarks/studies/ablation.py lstm e0eed2b cfbc6ea HEAD --repeats 20
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness
import jax
import jax.numpy as jnp
import numpy as np

import rnnjax
import rnnjax.kernels as kernels

MIB = 2**20


def load_fused(commit: str):
    src = subprocess.run(
        ["git", "show", f"{commit}:rnnjax/kernels/fused.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = os.path.join(tempfile.mkdtemp(), f"fused_{commit}.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location(f"fused_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fused_recurrence


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cell", choices=["lstm", "gru"])
    p.add_argument("commits", nargs="+")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--time", type=int, default=128)
    p.add_argument("--input", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()

    make = rnnjax.lstm if args.cell == "lstm" else rnnjax.gru
    cell = make(args.hidden)
    params = cell.init(jax.random.key(0), args.input)
    shape = (args.batch, args.time, args.input)
    xs = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
    select = kernels.select

    def through(recurrence):
        def f(p, x):
            kernels.select = lambda c, impl: recurrence
            try:
                return harness.unroll_fn(cell)(p, x)
            finally:
                kernels.select = select

        return f

    impls = {f"fused @ {c}": through(load_fused(c)) for c in args.commits}
    impls["scan reference"] = harness.unroll_fn(cell, impl="scan")
    compiled, temps = {}, {}
    for name, f in impls.items():
        fwd = jax.jit(f).lower(params, xs).compile()
        loss = lambda p, x, f=f: jnp.sum(f(p, x))
        bwd = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile()
        temps[name] = [
            c.memory_analysis().temp_size_in_bytes / 2**20 for c in (fwd, bwd)
        ]
        compiled[name] = (lambda g=fwd: g(params, xs), lambda g=bwd: g(params, xs))
    medians = harness.interleaved(compiled, args.repeats, warmup=3)
    print(
        f"| {args.cell.upper()} | fwd ms | fwd+bwd ms | fwd temp MiB | bwd temp MiB |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, (tf, tb) in medians.items():
        print(
            f"| {name} | {tf:.1f} | {tb:.1f} "
            f"| {temps[name][0]:.0f} | {temps[name][1]:.0f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
