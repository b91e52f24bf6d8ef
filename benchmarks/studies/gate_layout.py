"""Gate layout of the recurrent weights: contiguous gate blocks against gates
interleaved per block of units, in a pipelined LSTM scan (the structure of
rnnjax's fused forward: the step reads ``zs[t + 1]`` into its carry), same
process, interleaved rounds, medians::

    python benchmarks/studies/gate_layout.py            # B,T,I,H = 32,128,128,256
    python benchmarks/studies/gate_layout.py 64,256,512,512
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def contiguous(b, h):
    """Gates as four column blocks ``[i | f | g | o]`` of ``(B, 4H)``."""
    return lambda g: jnp.split(g, 4, axis=-1)


def interleaved(b, h, block):
    """Gates interleaved per ``block`` units: ``[i0 f0 g0 o0 | i1 f1 g1 o1 | ...]``."""

    def gates(g):
        g = g.reshape(b, h // block, 4, block)
        return [g[:, :, j, :].reshape(b, h) for j in range(4)]

    return gates


def column_order(h, block):
    """The permutation of ``W``'s columns that the interleaved layout reads."""
    return np.arange(4 * h).reshape(4, h // block, block).transpose(1, 0, 2).ravel()


def lstm_forward(gates, order, shape):
    b, t, i, h = shape

    def run(w_h, w_x, xs):
        w_h, w_x = w_h[:, order], w_x[:, order]
        zs = (xs.reshape(t * b, i) @ w_x).reshape(t, b, 4 * h)

        def step(carry, s):
            hid, cell, z = carry
            i_, f, g, o = gates(hid @ w_h + z)
            cell = jax.nn.sigmoid(f) * cell + jax.nn.sigmoid(i_) * jnp.tanh(g)
            hid = jax.nn.sigmoid(o) * jnp.tanh(cell)
            z = lax.dynamic_index_in_dim(zs, jnp.minimum(s + 1, t - 1), keepdims=False)
            return (hid, cell, z), hid

        zero = jnp.zeros((b, h))
        return lax.scan(step, (zero, zero, zs[0]), jnp.arange(t))[1]

    return jax.jit(run)


def main():
    shape = tuple(int(a) for a in (sys.argv[1:] or ["32,128,128,256"])[0].split(","))
    b, t, i, h = shape
    keys = jax.random.split(jax.random.key(0), 3)
    w_h = jax.random.normal(keys[0], (h, 4 * h)) * 0.05
    w_x = jax.random.normal(keys[1], (i, 4 * h)) * 0.05
    xs = jax.random.normal(keys[2], (t, b, i))
    fns = {"contiguous": lstm_forward(contiguous(b, h), np.arange(4 * h), shape)}
    for block in (16, 64):
        layout = interleaved(b, h, block)
        fns[f"interleaved {block}"] = lstm_forward(
            layout, column_order(h, block), shape
        )
    want = fns["contiguous"](w_h, w_x, xs)
    for name, fn in fns.items():
        diff = float(jnp.max(jnp.abs(fn(w_h, w_x, xs) - want)))
        print(f"{name}: max difference to contiguous {diff:.1e}")
    runs = {name: (lambda fn=fn: fn(w_h, w_x, xs),) for name, fn in fns.items()}
    medians = harness.interleaved(runs, repeats=15)
    print(f"B,T,I,H = {shape}, forward ms:")
    for name, (ms,) in medians.items():
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
