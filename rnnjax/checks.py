"""Opt-in runtime checks (``jax.experimental.checkify``)."""

from __future__ import annotations

import jax.numpy as jnp
from jax.experimental import checkify


def check_lengths(seq_lengths, num_steps: int) -> None:
    """Turns lengths outside ``[0, num_steps]`` into an error.

    ``unroll`` clips such lengths silently; call this inside a function transformed
    by ``checkify.checkify`` to make them an error instead:

        def f(params, xs, lengths):
            rnnjax.check_lengths(lengths, xs.shape[1])
            return rnnjax.unroll(cell, params, xs, seq_lengths=lengths)

        err, out = checkify.checkify(jax.jit(f))(params, xs, lengths)
        err.throw()
    """
    lengths = jnp.asarray(seq_lengths)
    checkify.check(
        jnp.all((lengths >= 0) & (lengths <= num_steps)),
        f"seq_lengths: expected every length in [0, {num_steps}], got min {{lo}} "
        "and max {hi}",
        lo=jnp.min(lengths),
        hi=jnp.max(lengths),
    )
