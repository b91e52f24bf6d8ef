"""GRU on the CPU: rnnjax against its peers.

Peers: Flax linen and NNX, Equinox, Haiku, Keras 3 (JAX backend), a hand-written
scan, PyTorch.

Forward (outputs of every step) and forward+backward (gradient of the sum of the
outputs w.r.t. the parameters and the inputs), float32, every JAX function jitted.
The GRU is PyTorch's (reset gate after the recurrent product, ``b_hn``), which is
also what Flax's and Equinox's cells compute::

    python benchmarks/gru_cpu.py --batch 32 --time 128 --input 128 --hidden 256
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
    """The textbook GRU under ``lax.scan``: projection hoisted, gates r, z, n."""
    B, _, n_in = xs.shape
    H = params["w_h"].shape[0]
    zs = (xs.reshape(-1, n_in) @ params["w_x"] + params["b"]).reshape(B, -1, 3 * H)

    def step(h, z):
        a_r, a_z, a_n = jnp.split(z, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(h @ params["w_h"], 3, axis=-1)
        r = jax.nn.sigmoid(a_r + h_r)
        u = jax.nn.sigmoid(a_z + h_z)
        n = jnp.tanh(a_n + r * (h_n + params["b_hn"]))
        h = (1.0 - u) * n + u * h
        return h, h

    _, ys = lax.scan(step, jnp.zeros((B, H), xs.dtype), jnp.swapaxes(zs, 0, 1))
    return jnp.swapaxes(ys, 0, 1)


def equinox_fn(static):
    def f(dynamic, xs):
        import equinox as eqx  # optional: the bench extras

        cell = eqx.combine(dynamic, static)

        def one(seq):  # (T, I) -> (T, H), the scan equinox's docs show
            def step(h, x):
                h = cell(x, h)
                return h, h

            return lax.scan(step, jnp.zeros((cell.hidden_size,), xs.dtype), seq)[1]

        return jax.vmap(one)(xs)

    return f


def contenders(args):
    B, T, n_in, H = args.batch, args.time, args.input, args.hidden
    key = jax.random.key(0)
    xs_np = np.random.default_rng(0).standard_normal((B, T, n_in)).astype(np.float32)
    xs = jnp.asarray(xs_np)
    out = []
    add = harness.adder(args, out)

    cell = rnnjax.gru(H)
    params = cell.init(key, n_in)
    harness.rnnjax_rows(
        args, add, lambda dtype=None: rnnjax.gru(H, dtype=dtype), params, xs
    )

    model = nn.RNN(nn.GRUCell(H))
    add(
        "flax GRUCell",
        lambda: harness.jax_contender(
            "flax GRUCell", model.apply, model.init(key, xs), xs
        ),
    )

    harness.add_device_rows(
        args,
        add,
        xs,
        [
            ("rnnjax auto", harness.unroll_fn(cell), params),
            ("flax GRUCell", model.apply, model.init(key, xs)),
        ],
    )
    for name, make in harness.library_peers("gru", n_in, H, xs):
        add(name, make)

    def make_eqx():
        import equinox as eqx

        cell_eqx = eqx.nn.GRUCell(n_in, H, key=key)
        dynamic, static = eqx.partition(cell_eqx, eqx.is_array)
        return harness.jax_contender("equinox GRUCell", equinox_fn(static), dynamic, xs)

    add("equinox GRUCell", make_eqx)
    add(
        "hand-written lax.scan",
        lambda: harness.jax_contender(
            "hand-written lax.scan", reference_scan, params, xs
        ),
    )

    for name, make in harness.torch_peers("GRU", n_in, H, xs_np, args.bf16):
        add(name, make)
    return out


def main():
    args = harness.parse_args(__doc__.splitlines()[0])
    results = harness.measure(contenders(args), args.repeats, args.warmup)
    title = (
        f"GRU, B={args.batch} T={args.time} I={args.input} H={args.hidden}, "
        f"float32{' (and bf16 rows)' if args.bf16 else ''}, median ms"
    )
    harness.report(args, results, title, "benchmarks/gru_cpu.py")


if __name__ == "__main__":
    main()
