"""The cell contract, shared pieces of every cell, and the capability base classes.

A cell needs only the `Cell` Protocol. What it can do beyond that it states
by the class it derives from, which rnnjax checks with ``isinstance``:

- `CellBase`: the hooks (`output_size`,
  `event_ndim`, `project_split`,
  `rec_width`, `check_params`) and argument checks;
- `FusedFormCell`: the fused form, ``h @ W`` then elementwise (the fused
  kernels), when `FusedFormCell.fusable` says this configuration has it;
- `LinearRecurrenceCell`: a recurrence linear in the state (the associative
  scan).

The functions `output_size`, `event_ndim`, `project_split`,
`rec_width`, `check_params` and `is_fusable` ask any cell, with
the Protocol's defaults for a cell that is not a `CellBase`
(``rnnjax.kernels.has_linear_recurrence`` asks for the linear recurrence).

Shapes are written with the package's one legend, in the `rnnjax` docstring.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.structure import check_carry_structure

Array = jax.Array
PyTree = Any
Initializer = Callable[[Array, tuple[int, ...], Any], Array]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
}


@runtime_checkable
class Cell(Protocol):
    """What every rnnjax cell provides (pure functions over a parameter pytree)."""

    hidden_size: int

    def init(self, key: Array, input_size: int) -> PyTree:
        """Returns a fresh parameter pytree for inputs of size ``I``."""

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype=jnp.float32):
        """Returns the zero carry with leaves of shape ``(*B, ...)``."""

    def project(self, params: PyTree, x: Array) -> Array:
        """Input-side pre-activations: ``(..., I) -> (..., Z)``, any leading dims."""

    def recur(self, params: PyTree, carry: PyTree, z: Array, rec_mask=None):
        """One step of the recurrence on pre-activations ``z`` of shape ``(*B, Z)``.

        ``rec_mask`` (optional, ``(*B, K)``) multiplies the state where it enters a
        recurrent matrix product (variational recurrent dropout).
        Returns ``(carry, y)``.
        """

    def step(self, params: PyTree, carry: PyTree, x: Array):
        """``recur(params, carry, project(params, x))``."""


# ----------------------------------------------------------------------------- utils


def expand(v: Array, ndim: int) -> Array:
    """Reshapes a vector of shape ``(n,)`` to ``(1, ..., 1, n)`` of rank ``ndim``.

    Explicit so that rnnjax runs under ``jax_numpy_rank_promotion="raise"``.
    """
    return v.reshape((1,) * (ndim - v.ndim) + v.shape)


def linear(x: Array, w: Array, dtype=None) -> Array:
    """``x @ w`` for ``x`` of shape ``(..., n_in)`` and ``w`` ``(n_in, n_out)``.

    Flattens the leading dimensions into one 2-D product (faster on XLA:CPU than a
    batched einsum), except when ``x``'s type carries an explicit sharding (the
    default axes of ``jax.make_mesh``), which a reshape across a sharded
    dimension would refuse. Operands are cast to ``dtype`` (the compute dtype)
    when given; the result is float32 (or ``x``'s dtype when wider).
    """
    lead = x.shape[:-1]
    out_dtype = jnp.promote_types(jnp.float32, x.dtype)
    if dtype is not None:
        x, w = x.astype(dtype), w.astype(dtype)
    else:
        w = w.astype(x.dtype)
    flatten = x.ndim > 2 and not sharded_in_type(x)
    y = lax.dot_general(
        x.reshape(-1, x.shape[-1]) if flatten else x,
        w,
        (((1 if flatten else x.ndim - 1,), (0,)), ((), ())),
        preferred_element_type=out_dtype,
    )
    return y.reshape((*lead, w.shape[-1])) if flatten else y


def dense_params(key, n_in: int, n_out: int) -> dict:
    """An affine map's parameters: ``w (n_in, n_out)`` Glorot-uniform, ``b`` zero."""
    return {
        "w": glorot_uniform()(key, (n_in, n_out), jnp.float32),
        "b": jnp.zeros((n_out,), jnp.float32),
    }


def dense(p: dict, x: Array) -> Array:
    """``x @ p["w"] + p["b"]`` for ``x (..., n_in)``."""
    return linear(x, p["w"]) + expand(p["b"], x.ndim)


def sharded_in_type(x: Array) -> bool:
    """Whether ``x``'s type names mesh axes (explicit sharding, ``jax.typeof``)."""
    spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None) or ()
    return any(axis is not None for axis in spec)


def varying_axes(x: Array) -> frozenset:
    """The manual mesh axes ``x`` varies over inside ``jax.shard_map`` (empty
    outside one)."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    if manual is not None:
        return frozenset(manual.varying)
    return frozenset(getattr(aval, "vma", ()))  # the name in other JAX versions


def mask_operand(h: Array, rec_mask: Array | None) -> Array:
    """``h * rec_mask`` (variational recurrent dropout), or ``h`` without a mask."""
    return h if rec_mask is None else h * rec_mask.astype(h.dtype)


def layer_norm(x: Array, scale: Array, bias: Array | None, eps: float = 1e-5):
    """Layer normalisation over the last axis (Ba, Kiros & Hinton 2016)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    y = (x - mean) * lax.rsqrt(var + eps) * expand(scale, x.ndim)
    return y if bias is None else y + expand(bias, x.ndim)


def split_gates(a: Array, names: tuple[str, ...]) -> dict[str, Array]:
    """Splits ``(..., G*H)`` into a dict of ``(..., H)`` blocks in ``names`` order."""
    return dict(zip(names, jnp.split(a, len(names), axis=-1), strict=True))


def resolve_activation(name: str | Callable | None, argname: str):
    """Maps an activation name (or callable, or None for identity) to a function."""
    if name is None:
        return lambda x: x
    if callable(name):
        return name
    if name not in ACTIVATIONS:
        raise ValueError(
            f"{argname}: expected one of {sorted(ACTIVATIONS)}, a callable or None; "
            f"got {name!r}"
        )
    return ACTIVATIONS[name]


def check_positive_int(value, argname: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{argname}: expected a positive int, got {value!r}")


def check_key(key, where: str) -> None:
    if not (
        isinstance(key, jax.Array)
        and (
            jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
            or (key.dtype == jnp.uint32 and key.shape[-1:] == (2,))
        )
    ):
        raise TypeError(
            f"{where}: expected a PRNG key (jax.random.key or PRNGKey), got "
            f"{type(key).__name__} {getattr(key, 'dtype', '')}"
        )


# ----------------------------------------------------------------------- initialisers


def glorot_uniform() -> Initializer:
    """Input weights: Glorot & Bengio 2010 uniform, as Keras."""
    return jax.nn.initializers.glorot_uniform()


def orthogonal_blocks(num_blocks: int) -> Initializer:
    """Recurrent weights ``(K, G*H)``: an independent orthogonal matrix per gate."""
    ortho = jax.nn.initializers.orthogonal()

    def init(key, shape, dtype=jnp.float32):
        rows, cols = shape
        keys = jax.random.split(key, num_blocks)
        width = cols // num_blocks
        return jnp.concatenate([ortho(k, (rows, width), dtype) for k in keys], -1)

    return init


def zeros() -> Initializer:
    return jax.nn.initializers.zeros


@dataclasses.dataclass(frozen=True)
class Initializers:
    """Initialisers of a cell's three kinds of weight; each ``f(key, shape, dtype)``.

    Defaults: Glorot-uniform input weights, one orthogonal matrix per gate for the
    recurrent weights (Saxe et al. 2014), zero biases (the LSTM then adds its
    ``forget_bias``).
    """

    kernel: Initializer | None = None
    recurrent: Initializer | None = None
    bias: Initializer | None = None

    def kernel_or_default(self) -> Initializer:
        return self.kernel or glorot_uniform()

    def recurrent_or_default(self, num_blocks: int) -> Initializer:
        return self.recurrent or orthogonal_blocks(num_blocks)

    def bias_or_default(self) -> Initializer:
        return self.bias or zeros()


# ------------------------------------------------------------------------- cell bases


@dataclasses.dataclass(frozen=True)
class CellBase(abc.ABC):
    """Static configuration shared by every cell; subclasses add the maths.

    A subclass defines ``_init(key, input_size) -> params`` (called by
    `init` after the argument checks), `initial_carry` and
    `recur`; the hooks below have defaults for a cell with parameters
    ``w_x (I, Z)``, ``b (Z,)`` and a recurrent operand of width ``H``, and a
    subclass overrides those that differ.

    Attributes:
      hidden_size: ``H``, the size of the state.
      dtype: compute dtype of the matrix products (``None``: the inputs' dtype).
        Parameters stay float32 and the carry float32 whatever the compute dtype.
      inits: the weight initialisers (see `Initializers`).
    """

    hidden_size: int
    dtype: Any = None
    inits: Initializers = Initializers()

    def __post_init__(self):
        check_positive_int(self.hidden_size, "hidden_size")

    @abc.abstractmethod
    def _init(self, key, input_size: int):
        """Fresh parameters for inputs of size ``I`` (arguments already checked)."""

    @abc.abstractmethod
    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """The zero carry, leaves of shape ``(*B, ...)``."""

    @abc.abstractmethod
    def recur(self, params, carry, z, rec_mask=None):
        """One step on ``z (*B, Z)``; returns ``(carry, y (*B, Y))``."""

    # ---------------------------------------------------------------- hooks

    @property
    def output_size(self) -> int:
        """``Y``, the size of ``y_t`` (``H`` unless the cell projects its output)."""
        return self.hidden_size

    @property
    def event_ndim(self) -> int:
        """Axes of one step's input: 1 (``I`` features), more for a convolutional
        cell (``(*S, C)``); ``unroll`` finds the time axis before them."""
        return 1

    def init(self, key, input_size: int):
        """Returns fresh parameters for inputs of size ``I`` (see the cell's module
        docstring for the names and shapes)."""
        check_key(key, "key")
        check_positive_int(input_size, "input_size")
        return self._init(key, input_size)

    def step(self, params, carry, x):
        """``recur(params, carry, project(params, x))`` on one step's ``x (*B, I)``.

        Raises ValueError naming ``carry`` when its pytree structure is not
        `initial_carry`'s (e.g. a plain ``(c, h)`` for an LSTM, whose carry is an
        `rnnjax.LSTMState`).
        """
        check_carry_structure(self, carry, tuple(jnp.shape(x)[:-1]))
        return self.recur(params, carry, self.project(params, x))

    def project(self, params, x):
        """Input-side pre-activations ``(..., I) -> (..., Z)``, bias included."""
        z, bias = self.project_split(params, x)
        return z if bias is None else z + expand(bias, x.ndim)

    def project_split(self, params, x):
        """``project`` as ``(z without its bias, bias (Z,) or None)``.

        ``unroll`` hands the bias to the recurrence, which adds it inside the step
        where it fuses into the gate arithmetic, instead of a separate pass over the
        ``(T, *B, Z)`` projection (timings in ``benchmarks/RESULTS.md``).
        """
        return linear(x, params["w_x"], self.dtype), params["b"]

    def rec_width(self, params) -> int:
        """``K``: the width of the state entering the recurrent products (the size
        of a variational recurrent-dropout mask)."""
        return self.hidden_size

    def check_params(self, params, input_size: int | None = None) -> None:
        """Raises ValueError when ``params`` do not fit this cell or ``input_size``."""
        try:
            params_in = self._in(params)
        except (KeyError, TypeError, AttributeError, IndexError):
            params_in = None
        if params_in is not None:
            expected = jax.eval_shape(lambda: self.init(jax.random.key(0), params_in))
            if _shapes(params) == _shapes(expected):
                if input_size is not None and input_size != params_in:
                    raise ValueError(
                        f"xs: expected {params_in} input features (the size the "
                        f"params were initialised for), got {input_size}"
                    )
                return
            raise ValueError(
                f"params: expected {_shapes(expected)} for {type(self).__name__}, "
                f"got {_shapes(params)}"
            )
        raise ValueError(
            f"params: expected the pytree of {type(self).__name__}.init (a dict with "
            f"'w_x', ...), got {_shapes(params)}"
        )

    # ---------------------------------------------------------------- helpers

    def _in(self, params) -> int:
        return params["w_x"].shape[0]

    def _dense_init(self, key, input_size: int, num_gates: int, rec_rows=None):
        """``w_x (I, G*H)``, ``w_h (K, G*H)`` and ``b (G*H)`` by the initialisers."""
        check_positive_int(input_size, "input_size")
        kx, kh, kb = jax.random.split(key, 3)
        width = num_gates * self.hidden_size
        rows = self.hidden_size if rec_rows is None else rec_rows
        return {
            "w_x": self.inits.kernel_or_default()(kx, (input_size, width), jnp.float32),
            "w_h": self.inits.recurrent_or_default(num_gates)(
                kh, (rows, width), jnp.float32
            ),
            "b": self.inits.bias_or_default()(kb, (width,), jnp.float32),
        }

    def _zeros(self, batch_shape, size, dtype=jnp.float32):
        return jnp.zeros((*tuple(batch_shape), size), dtype)


def _shapes(tree):
    """``tree`` with each leaf replaced by its shape (for comparison and messages)."""
    return jax.tree.map(lambda a: tuple(jnp.shape(a)), tree)


@dataclasses.dataclass(frozen=True)
class FusedFormCell(CellBase):
    """A cell whose recurrence is ``hw = rec_input(carry) @ W`` then elementwise.

    Subclasses define:

    - ``rec_input(carry) -> (*B, K)``: the operand of the recurrent product;
    - ``rec_weight(params)``: the recurrent matrix (default ``params["w_h"]``,
      ``(K, Z)``), and `rec_product` when it is structured (sLSTM's heads);
    - ``pointwise_params(params)``: the (small) parameters the update reads
      (default none);
    - ``update(pw, carry, z, hw) -> (carry, y)``: the elementwise step.

    Such a cell gets the fused kernels (``rnnjax.kernels``) for free, when
    `fusable` is true (always, unless a subclass says that some of its
    options leave the form).
    """

    @property
    def fusable(self) -> bool:
        """Whether this configuration has the fused form (the kernels' test, with
        ``isinstance(cell, FusedFormCell)``). ``True`` here; a subclass whose
        options can leave the form (the GRU with ``reset_after=False``, the LSTM
        with a projection) says which do."""
        return True

    @abc.abstractmethod
    def rec_input(self, carry):
        """The operand of the recurrent product, ``(*B, K)``."""

    @abc.abstractmethod
    def update(self, pw, carry, z, hw):
        """The elementwise step: ``(carry, y)`` from ``z (*B, Z)`` and
        ``hw = rec_input(carry) @ rec_weight(params)`` ``(*B, Z)``."""

    def recur(self, params, carry, z, rec_mask=None):
        operand = mask_operand(self.rec_input(carry), rec_mask)
        hw = self.rec_product(operand, self.rec_weight(params))
        return self.update(self.pointwise_params(params), carry, z, hw)

    def rec_product(self, operand, w):
        """``operand (..., K)`` times the recurrent matrix ``w`` (or its tangent):
        ``(..., Z)``, any leading dims, bilinear in ``(operand, w)`` (the kernels
        use it for ``dW`` and the transposed chain). Default ``linear``."""
        return linear(operand, w, self.dtype)

    def rec_weight(self, params):
        """The recurrent matrix ``(K, Z)``."""
        return params["w_h"]

    def rec_width(self, params) -> int:
        return self.rec_weight(params).shape[0]

    def pointwise_params(self, params):
        """The parameters `update` reads (default none)."""
        return {}


@dataclasses.dataclass(frozen=True)
class LinearRecurrenceCell(CellBase):
    """A cell whose step is affine in the carry, with coefficients from the input:

        h_t = a_t * h_{t-1} + b_t,    (a_t, b_t) = linear_coefficients(params, z_t)

    Subclasses define `linear_coefficients`; the carry is ``h (*B, H)`` and
    ``y_t = h_t``. Such a cell gets the parallel associative scan
    (``rnnjax.kernels.associative_recurrence``, ``O(log T)`` depth), which
    ``impl="auto"`` picks for it. ``rec_mask (*B, H)`` multiplies ``h_{t-1}``.
    """

    @abc.abstractmethod
    def linear_coefficients(self, params, z):
        """``(a, b)``, each ``(..., H)``, for the pre-activations ``z (..., Z)``
        (bias included), any leading dims."""

    def recur(self, params, carry, z, rec_mask=None):
        a, b = self.linear_coefficients(params, z)
        h = a * mask_operand(carry, rec_mask) + b
        return h, h


# ------------------------------------------------- what rnnjax asks of any cell
#
# A cell needs only the Protocol. These functions ask a cell for the hooks of
# CellBase, with the Protocol's defaults for any other cell.


def is_fusable(cell) -> bool:
    """Whether ``cell`` has the fused form: a `FusedFormCell` whose
    configuration is [`fusable`][rnnjax.FusedFormCell.fusable]."""
    return isinstance(cell, FusedFormCell) and cell.fusable


def output_size(cell) -> int:
    """``Y``, the size of ``y_t`` (``hidden_size`` unless a `CellBase` says
    otherwise)."""
    return cell.output_size if isinstance(cell, CellBase) else cell.hidden_size


def event_ndim(cell) -> int:
    """Axes of one step's input: 1 (features), or more for a convolutional cell."""
    return cell.event_ndim if isinstance(cell, CellBase) else 1


def project_split(cell, params, x):
    """``(z, bias)`` with ``cell.project(params, x) == z + bias`` (bias may be None)."""
    if isinstance(cell, CellBase):
        return cell.project_split(params, x)
    return cell.project(params, x), None


def rec_width(cell, params) -> int:
    """``K``, the size of a variational recurrent-dropout mask."""
    return cell.rec_width(params) if isinstance(cell, CellBase) else cell.hidden_size


def check_params(cell, params, input_size: int) -> None:
    """Raises ValueError when ``params`` do not fit ``cell`` (a `CellBase`;
    nothing is checked for other cells)."""
    if isinstance(cell, CellBase):
        cell.check_params(params, input_size=input_size)
