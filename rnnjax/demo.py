"""``python -m rnnjax.demo``: unrolls every cell and prints shapes and timings.

A quick look at what rnnjax has and a smoke test of a fresh install: each cell (and
each LSTM option) is initialised, unrolled over a batch with ``rnnjax.unroll`` under
``jax.jit``, and differentiated; the table shows the output and carry shapes, the
recurrence ``impl="auto"`` picks, and median times of the forward and
forward+backward passes.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import rnnjax
from rnnjax import kernels


def demo_cells(hidden: int):
    """``(name, cell)`` for every constructor and every LSTM option."""
    h = hidden
    return [
        ("simple_rnn(tanh)", rnnjax.simple_rnn(h)),
        ("simple_rnn(relu)", rnnjax.simple_rnn(h, activation="relu")),
        ("lstm", rnnjax.lstm(h)),
        ("lstm(peephole)", rnnjax.lstm(h, peephole=True)),
        ("lstm(coupled) CIFG", rnnjax.lstm(h, coupled=True)),
        ("lstm(input_gate=False) NIG", rnnjax.lstm(h, input_gate=False)),
        ("lstm(forget_gate=False) NFG", rnnjax.lstm(h, forget_gate=False)),
        ("lstm(output_gate=False) NOG", rnnjax.lstm(h, output_gate=False)),
        ("lstm(input_activation=None) NIAF", rnnjax.lstm(h, input_activation=None)),
        ("lstm(output_activation=None) NOAF", rnnjax.lstm(h, output_activation=None)),
        ("lstm(full_gate_recurrence) FGR", rnnjax.lstm(h, full_gate_recurrence=True)),
        ("lstm(proj_size=H/2) LSTMP", rnnjax.lstm(h, proj_size=max(1, h // 2))),
        ("lstm(layer_norm)", rnnjax.lstm(h, layer_norm=True)),
        ("gru(reset_after=True)", rnnjax.gru(h)),
        ("gru(reset_after=False)", rnnjax.gru(h, reset_after=False)),
        ("mgu", rnnjax.mgu(h)),
        ("mut1(embed_input)", rnnjax.mut1(h, embed_input=True)),
        ("mut2(embed_input)", rnnjax.mut2(h, embed_input=True)),
        ("mut3", rnnjax.mut3(h)),
        ("depth_gated_lstm(2 layers)", rnnjax.depth_gated_lstm(h, 2)),
        ("clockwork_rnn(4 modules)", rnnjax.clockwork_rnn(h, 4)),
        ("grid_lstm(depth 2)", rnnjax.grid_lstm(h, 2)),
        ("min_gru", rnnjax.min_gru(h)),
        ("min_lstm", rnnjax.min_lstm(h)),
    ]


def median_ms(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def run_cell(cell, xs, repeats: int):
    """Returns ``(params, carry, ys, forward ms, forward+backward ms)``."""
    params = cell.init(jax.random.key(0), xs.shape[-1])
    forward = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x))
    loss = lambda p, x: jnp.mean(jnp.square(forward(p, x)[1]))
    backward = jax.jit(jax.grad(loss, argnums=(0, 1)))
    carry, ys = forward(params, xs)
    return (
        params,
        carry,
        ys,
        median_ms(forward, params, xs, repeats=repeats),
        median_ms(backward, params, xs, repeats=repeats),
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--time", type=int, default=64)
    parser.add_argument("--input", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    xs = jax.random.normal(jax.random.key(1), (args.batch, args.time, args.input))
    print(
        f"rnnjax {rnnjax.__version__} on {jax.default_backend()} "
        f"({jax.device_count()} device(s)); xs {tuple(xs.shape)} (B, T, I), "
        f"H={args.hidden}, median of {args.repeats}"
    )
    header = (
        f"{'cell':36} {'impl':11} {'params':>7} {'ys':>14} {'carry':32} "
        f"{'fwd ms':>7} {'f+b ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, cell in demo_cells(args.hidden):
        params, carry, ys, fwd, fwd_bwd = run_cell(cell, xs, args.repeats)
        impl = kernels.select(cell, "auto").__name__.split("_")[0]
        count = sum(p.size for p in jax.tree.leaves(params))
        carry_shapes = ",".join(str(tuple(c.shape)) for c in jax.tree.leaves(carry))
        print(
            f"{name:36} {impl:11} {count:7d} {tuple(ys.shape)!s:>14} "
            f"{carry_shapes:32} {fwd:7.2f} {fwd_bwd:7.2f}"
        )


if __name__ == "__main__":
    main()
