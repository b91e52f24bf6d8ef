"""LSTM on the CPU: rnnjax against its peers.

Peers: Flax linen and NNX, Equinox, Haiku, Keras 3 (JAX backend), a hand-written
scan, PyTorch.

Forward (outputs of every step) and forward+backward (gradient of the sum of the
outputs w.r.t. the parameters and the inputs), float32, every JAX function jitted::

    python benchmarks/lstm_cpu.py --batch 32 --time 128 --input 128 --hidden 256
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flax.linen as nn
import harness
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import rnnjax


def reference_scan(params, xs):
    """The textbook LSTM under ``lax.scan``: projection hoisted, gates i, f, g, o."""
    B, _, n_in = xs.shape
    H = params["w_h"].shape[0]
    zs = (xs.reshape(-1, n_in) @ params["w_x"] + params["b"]).reshape(B, -1, 4 * H)

    def step(carry, z):
        c, h = carry
        i, f, g, o = jnp.split(z + h @ params["w_h"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h

    zeros = jnp.zeros((B, H), xs.dtype)
    _, ys = lax.scan(step, (zeros, zeros), jnp.swapaxes(zs, 0, 1))
    return jnp.swapaxes(ys, 0, 1)


def equinox_fn(static):
    def f(dynamic, xs):
        import equinox as eqx  # optional: the bench extras

        cell = eqx.combine(dynamic, static)
        zeros = jnp.zeros((cell.hidden_size,), xs.dtype)

        def one(seq):  # (T, I) -> (T, H), the scan equinox's docs show
            def step(carry, x):
                carry = cell(x, carry)
                return carry, carry[0]

            return lax.scan(step, (zeros, zeros), seq)[1]

        return jax.vmap(one)(xs)

    return f


def contenders(args):
    B, T, n_in, H = args.batch, args.time, args.input, args.hidden
    key = jax.random.key(0)
    xs_np = np.random.default_rng(0).standard_normal((B, T, n_in)).astype(np.float32)
    xs = jnp.asarray(xs_np)
    out = []
    add = harness.adder(args, out)

    cell = rnnjax.lstm(H)
    params = cell.init(key, n_in)
    harness.rnnjax_rows(
        args, add, lambda dtype=None: rnnjax.lstm(H, dtype=dtype), params, xs
    )

    for label, flax_cell in (
        ("flax OptimizedLSTMCell", nn.OptimizedLSTMCell),
        ("flax LSTMCell", nn.LSTMCell),
    ):
        model = nn.RNN(flax_cell(H))
        add(
            label,
            lambda m=model, label=label: harness.jax_contender(
                label, m.apply, m.init(key, xs), xs
            ),
        )

    flax_lstm = nn.RNN(nn.LSTMCell(H))
    harness.add_device_rows(
        args,
        add,
        xs,
        [
            ("rnnjax auto", harness.unroll_fn(cell), params),
            ("flax LSTMCell", flax_lstm.apply, flax_lstm.init(key, xs)),
        ],
    )
    for name, make in harness.library_peers("lstm", n_in, H, xs):
        add(name, make)

    def make_eqx():
        import equinox as eqx

        cell_eqx = eqx.nn.LSTMCell(n_in, H, key=key)
        dynamic, static = eqx.partition(cell_eqx, eqx.is_array)
        return harness.jax_contender(
            "equinox LSTMCell", equinox_fn(static), dynamic, xs
        )

    add("equinox LSTMCell", make_eqx)
    ref_params = {"w_x": params["w_x"], "w_h": params["w_h"], "b": params["b"]}
    add(
        "hand-written lax.scan",
        lambda: harness.jax_contender(
            "hand-written lax.scan", reference_scan, ref_params, xs
        ),
    )

    for name, make in harness.torch_peers("LSTM", n_in, H, xs_np, args.bf16):
        add(name, make)
    return out


def main():
    args = harness.parse_args(__doc__.splitlines()[0])
    results = harness.measure(contenders(args), args.repeats, args.warmup)
    title = (
        f"LSTM, B={args.batch} T={args.time} I={args.input} H={args.hidden}, "
        f"float32{' (and bf16 rows)' if args.bf16 else ''}, median ms"
    )
    harness.report(args, results, title, "benchmarks/lstm_cpu.py")


if __name__ == "__main__":
    main()
