"""``python -m rnnjax.demo``: a tour of every cell and model, with shapes and times.

A quick look at what rnnjax has and a smoke test of a fresh install. Each cell
(and each LSTM option), the ConvLSTM on image sequences, the Grid LSTM, and the
models (the soft-attention decoder, VRNN, STORN, DRAW) is initialised, run under
``jax.jit`` and differentiated; the table shows the output and carry shapes, the
recurrence ``impl="auto"`` picks for a cell, and median times of the forward and
forward+backward passes on this machine.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import rnnjax
from rnnjax import kernels, models

__all__ = ["demo_cells", "demo_models", "main", "median_ms"]


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
        ("slstm(1 head)", rnnjax.slstm(h, num_heads=1)),
        ("mlstm(1 head)", rnnjax.mlstm(h, num_heads=1)),
    ]


def median_ms(fn, *args, repeats: int) -> float:
    """Median wall time of ``fn(*args)`` in milliseconds, after one warm-up call."""
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _timed(forward, params, inputs, repeats: int):
    """``(outputs, forward ms, forward+backward ms)`` of ``forward(params,
    inputs)``, differentiated through the sum of squares of its outputs."""
    forward = jax.jit(forward)

    def loss(p, x):
        leaves = jax.tree.leaves(forward(p, x))
        return sum(jnp.mean(jnp.square(leaf.astype(jnp.float32))) for leaf in leaves)

    backward = jax.jit(jax.grad(loss))
    outputs = forward(params, inputs)
    fwd = median_ms(forward, params, inputs, repeats=repeats)
    return outputs, fwd, median_ms(backward, params, inputs, repeats=repeats)


def _shapes(tree) -> str:
    return ",".join(str(tuple(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _impl(cell) -> str:
    return kernels.select(cell, "auto").__name__.split("_")[0]


def cell_rows(args):
    """One row per cell of `demo_cells`, and the ConvLSTM."""
    key = jax.random.key(1)
    xs = jax.random.normal(key, (args.batch, args.time, args.input))
    cells = [(name, cell, xs) for name, cell in demo_cells(args.hidden)]
    frames = jax.random.normal(key, (args.batch, 8, 8, 8, 3))  # (B, T, 8, 8, C)
    cells.append(
        (
            "conv_lstm(8 channels, 3x3)",
            rnnjax.conv_lstm(8, 3, spatial_shape=(8, 8)),
            frames,
        )
    )
    for name, cell, inputs in cells:
        params = cell.init(jax.random.key(0), inputs.shape[-1])
        (carry, ys), fwd, both = _timed(
            lambda p, x, cell=cell: rnnjax.unroll(cell, p, x),
            params,
            inputs,
            args.repeats,
        )
        count = sum(p.size for p in jax.tree.leaves(params))
        yield (name, _impl(cell), count, _shapes(ys), _shapes(carry), fwd, both)


def demo_models(args):
    """``(name, params, run, inputs)`` of each model: ``run(params, inputs)``."""
    b, t = args.batch, min(args.time, 16)
    key = jax.random.key(2)
    decoder = models.attention_decoder(args.hidden, 16, args.input)
    annotations = jax.random.normal(key, (b, 10, 16))  # (B, M, U)
    prev = jax.random.normal(key, (b, t, args.input))
    vrnn = models.vrnn(args.input, 8, args.hidden)
    storn = models.storn(args.input, 8, args.hidden)
    draw = models.draw((8, 8), steps=4, hidden_size=args.hidden, latent_size=8)
    images = jax.random.uniform(key, (b, 8, 8))
    eps_key = jax.random.key(3)
    return [
        (
            "attention_decoder (ys, alphas)",
            decoder.init(jax.random.key(0)),
            lambda p, x: decoder.decode(p, annotations, x),
            prev,
        ),
        (
            "vrnn (ELBO)",
            vrnn.init(jax.random.key(0)),
            lambda p, x: vrnn.elbo(p, x, eps_key)[0],
            prev,
        ),
        (
            "storn (ELBO)",
            storn.init(jax.random.key(0)),
            lambda p, x: storn.elbo(p, x, eps_key)[0],
            prev,
        ),
        (
            "draw (8x8, 4 steps)",
            draw.init(jax.random.key(0)),
            lambda p, x: draw.elbo(p, x, eps_key)[0],
            images,
        ),
    ]


def _grid_1d(args):
    """The 1-D Grid LSTM: a feed-forward network over depth, one vector in."""
    grid = rnnjax.grid_lstm_1d(args.hidden, 2)
    x = jax.random.normal(jax.random.key(4), (args.batch, args.input))
    return (
        "grid_lstm_1d(depth 2)",
        grid.init(jax.random.key(0), args.input),
        grid.apply,
        x,
    )


def model_rows(args):
    for name, params, run, inputs in [_grid_1d(args), *demo_models(args)]:
        outputs, fwd, both = _timed(run, params, inputs, args.repeats)
        count = sum(p.size for p in jax.tree.leaves(params))
        yield (name, "-", count, _shapes(outputs), "", fwd, both)


HEADER = ("cell or model", "impl", "params", "outputs", "carry", "fwd ms", "f+b ms")


def print_table(rows) -> None:
    """Prints ``rows`` under `HEADER`, each column as wide as its widest
    entry (numbers right-aligned)."""
    text = [HEADER] + [
        (n, i, f"{c:d}", o, s, f"{f:.2f}", f"{b:.2f}") for n, i, c, o, s, f, b in rows
    ]
    widths = [max(len(row[k]) for row in text) for k in range(len(HEADER))]
    right = {2, 5, 6}
    for j, row in enumerate(text):
        cells = [
            v.rjust(w) if k in right else v.ljust(w)
            for k, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if j == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--time", type=int, default=64)
    parser.add_argument("--input", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(
        f"rnnjax {rnnjax.__version__} on {jax.default_backend()} "
        f"({jax.device_count()} device(s)); xs ({args.batch}, {args.time}, "
        f"{args.input}) (B, T, I), H={args.hidden}, median of {args.repeats}"
    )
    print_table([*cell_rows(args), *model_rows(args)])


if __name__ == "__main__":
    main()
