"""The LSTM and its variants (Hochreiter & Schmidhuber 1997; Gers et al. 2000;
Greff et al. 2015; Ba et al. 2016; Sak et al. 2014).

With ``a = x_t W_x + b + [h_{t-1}, gates_{t-1}] W_h`` split into the present gates
(order ``i, f, g, o``; absent gates take no columns):

    i_t = sigmoid(a_i + p_i * c_{t-1})          (1 without an input gate)
    f_t = sigmoid(a_f + p_f * c_{t-1})          (1 - i_t if coupled; 1 without)
    g_t = input_activation(a_g)                 (identity if None)
    c_t = f_t * c_{t-1} + i_t * g_t
    o_t = sigmoid(a_o + p_o * c_t)              (1 without an output gate)
    h_t = o_t * output_activation(c_t)          (then h_t W_hr with a projection)

``p_*`` are the diagonal peephole weights (only with ``peephole=True``). With
``full_gate_recurrence=True`` (Greff's FGR) the sigmoid gates of ``t-1`` are fed back
through ``w_gg (Gs*H, Gs*H)``, ``Gs`` the number of sigmoid gates, into the sigmoid
gates' pre-activations. With ``layer_norm=True`` (Ba et al. 2016): ``a = LN(x W_x) +
LN(h W_h) + b`` (scales ``ln_x_scale``, ``ln_h_scale``; their shifts are ``b``; with FGR
the whole recurrent term ``[h, gates] W_h`` is normalised together; epsilon 1e-5) and
``h_t = o_t * tanh(LN(c_t))`` (``ln_c_scale``, ``ln_c_bias``); ``c_t`` itself is not
normalised.

Parameters: ``w_x (I, G*H)``, ``w_h (K, G*H)`` with ``K = H`` (``P`` with a
projection), ``b (G*H,)`` (PyTorch's ``b_ih + b_hh``; the forget block starts at
``forget_bias``); optional ``peephole_i|f|o (H,)``, ``w_gg``, ``w_hr (H, P)`` and the
layer-norm vectors. Carry: [`LSTMState`][rnnjax.cells.lstm.LSTMState].
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rnnjax.cells.base import (
    FusedFormCell,
    Initializers,
    expand,
    layer_norm,
    linear,
    resolve_activation,
    split_gates,
)


class LSTMState(NamedTuple):
    """LSTM carry: cell ``c (*B, H)``, output ``h (*B, P or H)``, and with FGR the
    previous sigmoid gates ``gates (*B, Gs*H)`` (``None`` otherwise)."""

    c: jax.Array
    h: jax.Array
    gates: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class LSTM(FusedFormCell):
    """LSTM cell (equations in the module docstring); build it with
    `rnnjax.lstm`.

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``, the size of the
    cell state), ``dtype`` and ``inits`` (defaults Glorot uniform, orthogonal per
    gate, zeros plus ``forget_bias``):

    Attributes:
      forget_bias: added to the forget gate's bias at initialisation (1.0, as
        Jozefowicz et al. 2015 recommend). Without a forget-gate block (``coupled``
        or ``forget_gate=False``) there is nothing to add it to and it is unused.
      peephole: diagonal peephole weights (Gers & Schmidhuber 2000): ``i`` and ``f``
        see ``c_{t-1}``, ``o`` sees ``c_t``.
      coupled: CIFG, ``f = 1 - i`` (needs both gates enabled).
      input_gate: ``False`` gives Greff et al.'s NIG (the gate is the constant 1).
      forget_gate: ``False`` gives NFG.
      output_gate: ``False`` gives NOG.
      input_activation: ``"tanh"`` (default), ``"relu"``, ``"sigmoid"``, a
        callable, or ``None`` for the identity (NIAF).
      output_activation: as ``input_activation`` (``None``: NOAF).
      gate_activation: the gates' activation, ``"sigmoid"`` (default; written
        ``sigmoid`` in the equations), another name or a callable (Flax's
        ``gate_fn``).
      full_gate_recurrence: FGR, the sigmoid gates of ``t-1`` feed every sigmoid
        gate.
      proj_size: ``P``, LSTMP (Sak et al. 2014; PyTorch's ``proj_size``):
        ``h = h W_hr``; ``None`` for none. The cell then has no fused form.
      layer_norm: layer-normalised gates and cell (Ba et al. 2016).
      chrono_init: ``T_max``, the longest dependency expected: the chrono
        initialisation of Tallec & Ollivier 2018, ``b_f = log u`` and
        ``b_i = -log u`` with ``u ~ U(1, T_max - 1)`` per unit (added to the bias
        initialiser's values, in place of ``forget_bias``), so the cells start with
        memories spanning 1 to ``T_max`` steps. Long lags such as the adding
        problem at T = 500 need it (docs/reproductions.md).
    """

    forget_bias: float = 1.0
    peephole: bool = False
    coupled: bool = False
    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    input_activation: Any = "tanh"
    output_activation: Any = "tanh"
    gate_activation: Any = "sigmoid"
    full_gate_recurrence: bool = False
    proj_size: int | None = None
    layer_norm: bool = False
    chrono_init: int | None = None

    def __post_init__(self):
        super().__post_init__()
        self._check_chrono()
        if self.coupled and not (self.forget_gate and self.input_gate):
            raise ValueError(
                "coupled=True ties the forget gate to the input gate (f = 1 - i): "
                "expected input_gate=True and forget_gate=True, got "
                f"input_gate={self.input_gate}, forget_gate={self.forget_gate}"
            )
        if self.proj_size is not None and (
            not isinstance(self.proj_size, int)
            or isinstance(self.proj_size, bool)
            or self.proj_size <= 0
        ):
            raise ValueError(
                f"proj_size: expected a positive int or None, got {self.proj_size!r}"
            )
        if self.full_gate_recurrence and not self.sigmoid_gates:
            raise ValueError(
                "full_gate_recurrence=True feeds the sigmoid gates back: expected at "
                "least one of input_gate, forget_gate, output_gate; got none"
            )
        resolve_activation(self.input_activation, "input_activation")
        resolve_activation(self.output_activation, "output_activation")
        resolve_activation(self.gate_activation, "gate_activation")

    def _check_chrono(self):
        t_max = self.chrono_init
        if t_max is None:
            return
        if isinstance(t_max, bool) or not isinstance(t_max, int) or t_max < 3:
            raise ValueError(
                f"chrono_init: expected an int >= 3 (the longest lag) or None, got "
                f"{t_max!r}"
            )
        if not (self.forget_gate and self.input_gate) or self.coupled:
            raise ValueError(
                "chrono_init sets the forget and input gates' biases: expected "
                "input_gate=True, forget_gate=True and coupled=False, got "
                f"input_gate={self.input_gate}, forget_gate={self.forget_gate}, "
                f"coupled={self.coupled}"
            )

    # ---------------------------------------------------------------- layout

    @property
    def gate_names(self) -> tuple[str, ...]:
        """Gate blocks of ``w_x``, ``w_h`` and ``b``, in column order."""
        names = ("i",) if self.input_gate else ()
        names += ("f",) if self.forget_gate and not self.coupled else ()
        return names + ("g",) + (("o",) if self.output_gate else ())

    @property
    def sigmoid_gates(self) -> tuple[str, ...]:
        return tuple(n for n in self.gate_names if n != "g")

    @property
    def fusable(self) -> bool:
        """The fused form without a projection only (``h W_hr`` is a matrix
        product inside the update, not elementwise arithmetic)."""
        return self.proj_size is None

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    # ---------------------------------------------------------------- contract

    def _chrono_log_u(self, key):
        """``log u``, ``u ~ U(1, T_max - 1)`` per unit (Tallec & Ollivier 2018)."""
        u = jax.random.uniform(
            key, (self.hidden_size,), minval=1.0, maxval=self.chrono_init - 1.0
        )
        return jnp.log(u)

    def _init(self, key, input_size):
        kd, kp, kg, kr = jax.random.split(key, 4)
        H, names = self.hidden_size, self.gate_names
        params = self._dense_init(kd, input_size, len(names), self.output_size)
        if "f" in names:
            shift = jnp.zeros((len(names), H))
            if self.chrono_init is None:
                shift = shift.at[names.index("f")].set(self.forget_bias)
            else:
                log_u = self._chrono_log_u(jax.random.fold_in(key, 1997))
                shift = shift.at[names.index("f")].set(log_u)
                shift = shift.at[names.index("i")].set(-log_u)
            params["b"] = params["b"] + shift.reshape(-1)
        if self.peephole:
            for name, k in zip(("i", "f", "o"), jax.random.split(kp, 3), strict=True):
                if name in names:
                    params[f"peephole_{name}"] = 0.1 * jax.random.uniform(
                        k, (H,), minval=-1.0, maxval=1.0
                    )
        if self.full_gate_recurrence:
            width = len(self.sigmoid_gates) * H
            params["w_gg"] = self.inits.recurrent_or_default(len(self.sigmoid_gates))(
                kg, (width, width), jnp.float32
            )
        if self.proj_size is not None:
            params["w_hr"] = self.inits.kernel_or_default()(
                kr, (H, self.proj_size), jnp.float32
            )
        if self.layer_norm:
            params["ln_x_scale"] = jnp.ones((len(names) * H,))
            params["ln_h_scale"] = jnp.ones((len(names) * H,))
            params["ln_c_scale"] = jnp.ones((H,))
            params["ln_c_bias"] = jnp.zeros((H,))
        return params

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        gates = None
        if self.full_gate_recurrence:
            gates = self._zeros(
                batch_shape, len(self.sigmoid_gates) * self.hidden_size, dtype
            )
        return LSTMState(
            c=self._zeros(batch_shape, self.hidden_size, dtype),
            h=self._zeros(batch_shape, self.output_size, dtype),
            gates=gates,
        )

    def project_split(self, params, x):
        z, bias = super().project_split(params, x)
        if self.layer_norm:
            z = layer_norm(z, params["ln_x_scale"], None)
        return z, bias

    # ---------------------------------------------------------------- fused form

    def rec_input(self, carry):
        if self.full_gate_recurrence:
            return jnp.concatenate([carry.h, carry.gates], axis=-1)
        return carry.h

    def rec_weight(self, params):
        if not self.full_gate_recurrence:
            return params["w_h"]
        # Scatter w_gg's columns into the sigmoid gates' blocks; the block input g
        # gets zero columns (FGR connects the gates only).
        H, w_gg = self.hidden_size, params["w_gg"]
        blocks = dict(split_gates(w_gg, self.sigmoid_gates))
        blocks["g"] = jnp.zeros((w_gg.shape[0], H), w_gg.dtype)
        fgr = jnp.concatenate([blocks[n] for n in self.gate_names], axis=-1)
        return jnp.concatenate([params["w_h"], fgr], axis=0)

    def pointwise_params(self, params):
        keep = (
            "peephole_i",
            "peephole_f",
            "peephole_o",
            "ln_h_scale",
            "ln_c_scale",
            "ln_c_bias",
            "w_hr",
        )
        return {k: v for k, v in params.items() if k in keep}

    def update(self, pw, carry, z, hw):
        if self.layer_norm:
            hw = layer_norm(hw, pw["ln_h_scale"], None)
        a = split_gates(z + hw, self.gate_names)
        c_prev = carry.c
        sigma = resolve_activation(self.gate_activation, "gate_activation")

        def gate(name, cell):
            pre = a[name]
            if self.peephole:
                pre = pre + expand(pw[f"peephole_{name}"], cell.ndim) * cell
            return sigma(pre)

        i = gate("i", c_prev) if self.input_gate else None
        if self.coupled:
            f = 1.0 - i
        else:
            f = gate("f", c_prev) if self.forget_gate else None
        g = resolve_activation(self.input_activation, "input_activation")(a["g"])
        c = (c_prev if f is None else f * c_prev) + (g if i is None else i * g)
        o = gate("o", c) if self.output_gate else None
        c_out = (
            layer_norm(c, pw["ln_c_scale"], pw["ln_c_bias"]) if self.layer_norm else c
        )
        h = resolve_activation(self.output_activation, "output_activation")(c_out)
        h = h if o is None else o * h
        if self.proj_size is not None:
            h = linear(h, pw["w_hr"], self.dtype)
        gates = None
        if self.full_gate_recurrence:
            values = {"i": i, "f": None if self.coupled else f, "o": o}
            gates = jnp.concatenate([values[n] for n in self.sigmoid_gates], axis=-1)
        return LSTMState(c, h, gates), h


def lstm(
    hidden_size: int,
    *,
    forget_bias: float = 1.0,
    peephole: bool = False,
    coupled: bool = False,
    input_gate: bool = True,
    forget_gate: bool = True,
    output_gate: bool = True,
    input_activation="tanh",
    output_activation="tanh",
    gate_activation="sigmoid",
    full_gate_recurrence: bool = False,
    proj_size: int | None = None,
    layer_norm: bool = False,
    chrono_init: int | None = None,
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> LSTM:
    """An LSTM cell (see the module docstring for the equations).

    Every option is an attribute of [`LSTM`][rnnjax.cells.lstm.LSTM], documented there.
    ``kernel_init``, ``recurrent_init`` and ``bias_init`` (each ``f(key, shape,
    dtype)``) make its ``inits``.
    """
    return LSTM(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, recurrent_init, bias_init),
        forget_bias=forget_bias,
        peephole=peephole,
        coupled=coupled,
        input_gate=input_gate,
        forget_gate=forget_gate,
        output_gate=output_gate,
        input_activation=input_activation,
        output_activation=output_activation,
        gate_activation=gate_activation,
        full_gate_recurrence=full_gate_recurrence,
        proj_size=proj_size,
        layer_norm=layer_norm,
        chrono_init=chrono_init,
    )
