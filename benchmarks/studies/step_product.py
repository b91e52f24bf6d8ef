"""The per-step recurrent product on CPU: XLA against PyTorch (oneDNN).

An LSTM step's matrix product ``h (B, H) @ W_h (H, 4H)`` is the one piece of the
forward pass that cannot be hoisted out of the time loop. This times ``T``
dependent steps ``h = tanh(g[:, :H]) + g[:, 3H:]`` with ``g = h @ W_h``: in JAX as
one jitted ``lax.scan`` in several formulations of the product (plain, ``W_h``
transposed, batched over column halves, split over batch rows, concatenated
column blocks), in interleaved rounds; in PyTorch as an eager loop (its product
alone is also timed, one call). Medians. XLA options apply through
``XLA_FLAGS``, e.g.::

    python benchmarks/studies/step_product.py
    XLA_FLAGS=--xla_cpu_use_onednn=true python benchmarks/studies/step_product.py
    taskset -c 0 python benchmarks/studies/step_product.py   # one core: XLA's threads

(The bf16 row casts ``W_h`` inside the step; XLA hoists the cast out of the loop.)
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def _formulations(b, h):
    """name -> ``product(h (B, H), w (H, 4H)) -> (B, 4H)``."""

    def batched_columns(x, w):  # two (B, H) @ (H, 2H) products as one batched dot
        wb = w.reshape(h, 2, 2 * h).transpose(1, 0, 2)
        out = lax.dot_general(
            jnp.broadcast_to(x, (2, b, h)), wb, (((2,), (1,)), ((0,), (0,)))
        )
        return out.transpose(1, 0, 2).reshape(b, 4 * h)

    return {
        "plain h @ W": lambda x, w: x @ w,
        "W transposed (NT)": lambda x, w: lax.dot_general(
            x, w.T, (((1,), (1,)), ((), ()))
        ),
        "batched column halves": batched_columns,
        "batch rows split in 2": lambda x, w: (x.reshape(2, b // 2, h) @ w).reshape(
            b, 4 * h
        ),
        "2 column blocks + concat": lambda x, w: jnp.concatenate(
            [x @ part for part in jnp.split(w, 2, axis=1)], axis=1
        ),
        # what rnnjax.lstm(dtype=jnp.bfloat16) runs (W_h is cast once per call)
        "bf16 operands, f32 result": lambda x, w: lax.dot_general(
            x.astype(jnp.bfloat16),
            w.astype(jnp.bfloat16),
            (((1,), (0,)), ((), ())),
            preferred_element_type=jnp.float32,
        ),
    }


def _loop(product, b, h, steps):
    def run(w):
        def step(x, _):
            g = product(x, w)
            return jnp.tanh(g[:, :h]) + g[:, 3 * h :], None

        return lax.scan(step, jnp.ones((b, h)), None, length=steps)[0]

    return jax.jit(run)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--time", type=int, default=128)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    b, h, steps = args.batch, args.hidden, args.time
    x = jax.random.normal(jax.random.key(0), (b, h))
    w = jax.random.normal(jax.random.key(1), (h, 4 * h)) * 0.05
    flops = 2 * b * h * 4 * h

    loops = {n: _loop(f, b, h, steps) for n, f in _formulations(b, h).items()}
    runs = {n: (lambda f=f: f(w),) for n, f in loops.items()}
    medians = harness.interleaved(runs, args.repeats)

    print(f"B={b} H={h} T={steps}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    for n, (ms,) in medians.items():
        print(
            f"| JAX scan of {steps}: {n} | {ms:.1f} ms "
            f"| {ms / steps * 1e3:.0f} us/step |"
        )
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(min(2, len(os.sched_getaffinity(0))))
    tx = torch.from_numpy(np.array(x))
    tw = torch.from_numpy(np.array(w))

    def torch_loop():
        state = torch.ones(b, h)
        for _ in range(steps):
            g = state @ tw
            state = torch.tanh(g[:, :h]) + g[:, 3 * h :]
        return state

    same = lambda out: out
    ms = harness.median_ms(torch_loop, repeats=args.repeats, block=same)
    print(
        f"| PyTorch eager loop of {steps} | {ms:.1f} ms "
        f"| {ms / steps * 1e3:.0f} us/step |"
    )
    ms = harness.median_ms(lambda: tx @ tw, repeats=5 * args.repeats, block=same)
    print(f"| PyTorch one product | {ms:.3f} ms | {flops / ms / 1e6:.0f} GFLOP/s |")


if __name__ == "__main__":
    main()
