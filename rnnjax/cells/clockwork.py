"""The Clockwork RNN (Koutnik, Greff, Gomez & Schmidhuber 2014).

The hidden state is split into ``g`` modules of ``m = H / g`` units, laid out module
by module, fastest first: module ``i`` is ``h[..., i*m:(i+1)*m]`` and has the clock
period ``T_i`` (default ``2**i``; periods sorted ascending). Steps are counted from
``t = 0``, so every module updates at the first step. With ``a = x_t W_x + b``:

    active_i = (t mod T_i == 0)
    h~_i     = act(a_i + h_{t-1}[j >= i] W_h[i])     modules j >= i only
    h_t,i    = h~_i if active_i else h_{t-1},i

Slow modules feed fast ones and never the reverse: module ``i`` receives from the
modules ``j >= i`` (itself and the slower ones). In the paper's column-vector
notation ``W_H h`` the recurrent matrix is block upper triangular; in rnnjax's
row-vector ``h @ W`` it is the transpose (block lower triangular). The masked blocks
are not stored: they cost no parameters and get no gradient.

Parameters: ``w_x (I, H)``, ``b (H,)`` and ``w_h``, a tuple of ``g`` blocks: block
``i`` has shape ``((g - i) * m, m)``, its rows the state of modules ``i, ..., g-1``
(``h[..., i*m:]``) and its columns module ``i``'s pre-activations. That is
``m * m * g * (g + 1) / 2`` recurrent weights instead of ``H * H``. The full
``(H, H)`` matrix of ``h @ W`` has block ``(j, i)`` equal to rows
``(j - i) * m : (j - i + 1) * m`` of ``w_h[i]`` for ``j >= i``, zero otherwise.

Carry: `ClockworkState` ``(t, h)``: the step counter ``t``, int32 of the
batch shape (``(*B,)``), and ``h (*B, H)``; output ``y_t = h_t``. Under
``rnnjax.unroll`` a padded step leaves ``t`` unchanged and a reset returns it to the
initial carry's (zero), so ``t`` counts the steps of the current episode. It
overflows after ``2**31 - 1`` steps. ``rec_mask (*B, H)`` (variational recurrent
dropout) multiplies ``h_{t-1}`` where it enters the recurrent products.

What is skipped: the input projection is hoisted over all steps by ``unroll`` and
computed for every module (one large product is cheaper than gathering the active
rows). In the forward pass, the recurrent product of module ``i`` sits in a
``lax.cond`` on "some batch element has ``t mod T_i == 0``": a module that cannot
update at this step costs no product (block ``i`` is a share
``(g - i) / (g (g + 1) / 2)`` of the recurrent work, so with the default periods the
slow modules, which read the most rows, are the ones mostly skipped). Within an
active module every batch element is computed and ``jnp.where`` keeps the state of
those whose clock does not tick (batch elements only disagree after resets or
padding). Modules of period 1 always run (no cond). Under differentiation
(``grad``, ``jvp``) nothing is skipped: the skipping step's ``custom_jvp`` is the
plain step's, because keeping the cond's residuals and running its backward pass
costs more than computing every module. Under ``vmap`` JAX turns the cond into a
select that computes both branches. ``skip_inactive=False`` never skips.

Skipping pays in the forward pass with many large modules, where the slow modules'
products dominate; with few small modules the cond's own overhead can outweigh the
saving (then pass ``skip_inactive=False``). Timings: ``docs/cells/clockwork.md`` and
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.base import (
    CellBase,
    Initializers,
    check_positive_int,
    linear,
    mask_operand,
    resolve_activation,
)


class ClockworkState(NamedTuple):
    """Clockwork RNN carry: step counter ``t`` (int32 ``(*B,)``) and ``h (*B, H)``."""

    t: jax.Array
    h: jax.Array


@dataclasses.dataclass(frozen=True)
class ClockworkRNN(CellBase):
    """Clockwork RNN cell; build it with [`rnnjax.clockwork_rnn`][rnnjax.clockwork_rnn].

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``, a multiple of
    ``num_modules``), ``dtype`` and ``inits`` (defaults Glorot uniform, orthogonal
    (each recurrent block has orthonormal columns; the recurrent initialiser is
    called once per block), zeros):

    Attributes:
      num_modules: ``g``, the number of equal modules.
      periods: the clock period of each module, ``g`` positive ints in ascending
        order (fastest module first); default ``(1, 2, 4, ..., 2**(g-1))``.
      activation: ``"tanh"`` (default), ``"relu"``, ``"sigmoid"``, a callable or
        ``None`` (identity).
      skip_inactive: skip the recurrent products of modules whose clock does not
        tick at this step (forward pass only; see the module docstring).
    """

    num_modules: int = 1
    periods: tuple[int, ...] | None = None
    activation: Any = "tanh"
    skip_inactive: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_positive_int(self.num_modules, "num_modules")
        if self.hidden_size % self.num_modules:
            raise ValueError(
                f"hidden_size: expected a multiple of num_modules={self.num_modules} "
                f"(equal modules), got {self.hidden_size}"
            )
        periods = self.periods
        if periods is None:
            periods = tuple(2**i for i in range(self.num_modules))
        object.__setattr__(self, "periods", _check_periods(periods, self.num_modules))
        resolve_activation(self.activation, "activation")

    @property
    def module_size(self) -> int:
        """``m = H / g``, the units of one module."""
        return self.hidden_size // self.num_modules

    def _init(self, key, input_size):
        kx, kh, kb = jax.random.split(key, 3)
        H, g, m = self.hidden_size, self.num_modules, self.module_size
        rec = self.inits.recurrent_or_default(1)
        return {
            "w_x": self.inits.kernel_or_default()(kx, (input_size, H), jnp.float32),
            "w_h": tuple(
                rec(k, ((g - i) * m, m), jnp.float32)
                for i, k in enumerate(jax.random.split(kh, g))
            ),
            "b": self.inits.bias_or_default()(kb, (H,), jnp.float32),
        }

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return ClockworkState(
            t=jnp.zeros(tuple(batch_shape), jnp.int32),
            h=self._zeros(batch_shape, self.hidden_size, dtype),
        )

    def recur(self, params, carry, z, rec_mask=None):
        m = self.module_size
        t, h = carry
        operand = mask_operand(h, rec_mask)
        update = self._module_update(skip=False)
        skipping = self._module_update(skip=True)
        modules = []
        for i, period in enumerate(self.periods):
            h_i = h[..., i * m : (i + 1) * m]
            args = (z[..., i * m : (i + 1) * m], operand[..., i * m :])
            args += (params["w_h"][i], h_i, (t % period == 0)[..., None])
            skip = self.skip_inactive and period > 1
            modules.append(skipping(*args) if skip else update(*args))
        h = jnp.concatenate(modules, axis=-1)
        return ClockworkState(t + 1, h), h

    def _module_update(self, skip: bool):
        """``f(z_i, slow, w_i, h_i, active) -> h_i'`` for one module; with ``skip``
        the product sits in a ``lax.cond`` that runs when some element is active.

        The skipping form's derivative (``custom_jvp``) is the plain form's: under
        differentiation every module is computed, as the cond's residuals and its
        backward pass cost more than computing every module (module docstring).
        """
        act = resolve_activation(self.activation, "activation")

        def update(z_i, slow, w, h_i, active):
            new = act(z_i + linear(slow, w, self.dtype)).astype(h_i.dtype)
            return jnp.where(active, new, h_i)

        if not skip:
            return update

        @jax.custom_jvp
        def skipping(z_i, slow, w, h_i, active):
            keep = lambda z_i, slow, w, h_i, active: h_i
            args = (z_i, slow, w, h_i, active)
            return lax.cond(jnp.any(active), update, keep, *args)

        skipping.defjvp(lambda primals, tangents: jax.jvp(update, primals, tangents))
        return skipping


def _check_periods(periods, num_modules: int) -> tuple[int, ...]:
    """``periods`` as a tuple of Python ints; ValueError unless ``num_modules``
    positive integers (NumPy integers accepted) in ascending order."""
    expected = f"periods: expected {num_modules} positive ints in ascending order"
    if isinstance(periods, str | bytes) or not hasattr(periods, "__iter__"):
        raise ValueError(f"{expected}, got {periods!r}")
    periods = tuple(periods)
    if len(periods) != num_modules:
        raise ValueError(
            f"{expected} (one per module), got {len(periods)}: {periods!r}"
        )
    if not all(_is_int(p) and p > 0 for p in periods):
        raise ValueError(f"{expected}, got {periods!r}")
    periods = tuple(int(p) for p in periods)
    if list(periods) != sorted(periods):
        raise ValueError(f"{expected} (modules fastest first), got {periods}")
    return periods


def _is_int(value) -> bool:
    """Python or NumPy integer, not a bool (NumPy's bool is not ``Integral``)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def clockwork_rnn(
    hidden_size: int,
    num_modules: int,
    periods: Sequence[int] | None = None,
    *,
    activation: Any = "tanh",
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
    skip_inactive: bool = True,
) -> ClockworkRNN:
    """A Clockwork RNN (see the module docstring for the equations and layout).
    Every option is an attribute of `ClockworkRNN`, documented there.
    ``kernel_init``, ``recurrent_init`` and ``bias_init`` (each ``f(key, shape,
    dtype)``) make its ``inits``.
    """
    return ClockworkRNN(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, recurrent_init, bias_init),
        num_modules=num_modules,
        periods=periods,
        activation=activation,
        skip_inactive=skip_inactive,
    )
