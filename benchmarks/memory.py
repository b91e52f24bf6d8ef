"""Peak memory of an LSTM's forward+backward against T, for each ``remat`` choice,
and one real training step at the longest T.

Memory comes from the compiled executable's own analysis
(``compiled.memory_analysis()``): arguments + outputs + temporaries, what XLA
allocates for one call (nothing is run to measure it). Usage::

    python benchmarks/memory.py                      # T = 1k .. 64k, B=1, H=256
    python benchmarks/memory.py --plot benchmarks/memory.png

Prints a markdown table (MiB) and, with ``--train``, times one gradient step of the
longest sequence with ``remat="chunk"`` to show it runs on this machine.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import rnnjax

REMATS = (None, "step", "chunk")
MIB = 2**20


def loss_and_grad(cell, remat):
    def loss(params, xs):
        _, ys = rnnjax.unroll(cell, params, xs, remat=remat)
        return jnp.mean(ys**2)

    return jax.jit(jax.value_and_grad(loss))


def peak_bytes(cell, params, xs, remat) -> int:
    compiled = loss_and_grad(cell, remat).lower(params, xs).compile()
    m = compiled.memory_analysis()
    return (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )


def table(args):
    cell = rnnjax.lstm(args.hidden)
    params = cell.init(jax.random.key(0), args.input)
    rows = []
    for t in args.steps:
        xs = jax.ShapeDtypeStruct((args.batch, t, args.input), jnp.float32)
        rows.append((t, [peak_bytes(cell, params, xs, r) / MIB for r in REMATS]))
    return rows


def print_table(rows, args):
    print(
        f"LSTM forward+backward peak memory (MiB), B={args.batch}, I={args.input}, "
        f"H={args.hidden}, float32, jax {jax.__version__}"
    )
    print("| T | remat=None | remat='step' | remat='chunk' | inputs xs |")
    print("|---:|---:|---:|---:|---:|")
    for t, mib in rows:
        xs_mib = args.batch * t * args.input * 4 / MIB
        cells = " | ".join(f"{m:,.1f}" for m in mib)
        print(f"| {t:,} | {cells} | {xs_mib:,.1f} |")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [t for t, _ in rows]
    for i, remat in enumerate(REMATS):
        ax.plot(steps, [mib[i] for _, mib in rows], marker="o", label=f"remat={remat}")
    ax.set(xscale="log", yscale="log", xlabel="T (steps)", ylabel="peak MiB")
    ax.set_title("LSTM forward+backward memory (B=1, H=256)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def train_step(args):
    t = max(args.steps)
    cell = rnnjax.lstm(args.hidden)
    params = cell.init(jax.random.key(0), args.input)
    xs = jax.random.normal(jax.random.key(1), (args.batch, t, args.input))
    step = loss_and_grad(cell, "chunk")
    jax.block_until_ready(step(params, xs))
    start = time.perf_counter()
    loss, grads = jax.block_until_ready(step(params, xs))
    seconds = time.perf_counter() - start
    finite = all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    print(
        f"one gradient step at T={t:,} with remat='chunk': {seconds:.1f} s, "
        f"loss {float(loss):.4f}, gradients finite: {finite}"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--input", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument(
        "--steps", type=int, nargs="+", default=[2**k * 1024 for k in range(7)]
    )
    p.add_argument("--plot", default="", help="write a PNG of the table here")
    p.add_argument("--train", action="store_true", help="run one step at max T")
    args = p.parse_args()
    rows = table(args)
    print_table(rows, args)
    if args.plot:
        plot(rows, args.plot)
    if args.train:
        train_step(args)


if __name__ == "__main__":
    main()
