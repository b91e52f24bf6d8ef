"""Compact linearisation: ``jax.linearize`` rewritten as a small static program over
as few coefficient arrays as possible.

The fused kernels store, for every time step, the coefficients of the step's linear
map, and read them back in the tangent (and transposed, reverse) scan. JAX's own
linearisation keeps every factor of a product chain apart: for the LSTM it keeps 11
arrays per step (``f``, ``c_{t-1}``, ``sigmoid'(a_f)``, ...). Here chains of
elementwise products and sums are folded on the primal side, so that each output is
``sum_k atom_k * coef_k`` over the inputs (and over the outputs of the few
non-elementwise operations, kept as they are): 6 arrays for the LSTM, 5 for the GRU.
Less memory to write, keep and read, and fewer operations in the loops.

`linearize` returns ``(primal_out, program)``; ``program(*tangents)`` equals
``jax.linearize(f, *primals)[1](*tangents)``. A program is a pytree whose children
are its coefficient arrays, so ``lax.scan`` can stack programs over time and slice
them per step. (Packing the arrays into one per step measured slower: XLA hoists
the per-array slices of the stacked pack out of the reverse loop as copies.)
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

_INLINE = ("pjit", "jit", "closed_call", "core_call")
_ADDS = ("add", "add_any")


def linearize(f, *primals):
    """``jax.linearize`` with the linear map compacted (see the module docstring)."""
    out, lin = jax.linearize(f, *primals)
    closed = jax.make_jaxpr(lin)(*primals)
    builder = _Builder([v.aval for v in closed.jaxpr.invars])
    outs = builder.run(closed.jaxpr, closed.consts)
    out_refs = [
        builder.output_ref(v, a) for v, a in zip(outs, closed.out_avals, strict=True)
    ]
    static = _Static(
        builder.code,
        builder.num_atoms,
        jax.tree.structure(primals),
        jax.tree.structure(out),
        out_refs,
    )
    return out, Program(static, builder.arrays)


# ------------------------------------------------------------------------ program


class _Static:
    """The static part of a program (compared and hashed by identity)."""

    def __init__(self, code, num_atoms, in_tree, out_tree, out_refs):
        self.code = code
        self.num_atoms = num_atoms
        self.in_tree = in_tree
        self.out_tree = out_tree
        self.out_refs = out_refs


@jax.tree_util.register_pytree_node_class
class Program:
    """A linear map: static code over coefficient arrays (the pytree children)."""

    def __init__(self, static: _Static, children):
        self.static = static
        self.children = tuple(children)

    def tree_flatten(self):
        return self.children, self.static

    @classmethod
    def tree_unflatten(cls, static, children):
        return cls(static, children)

    def __call__(self, *tangents):
        s = self.static
        leaves, tree = jax.tree.flatten(tangents)
        if tree != s.in_tree:
            raise TypeError(f"expected tangents of structure {s.in_tree}, got {tree}")
        arrays = self.children
        vals = list(leaves) + [None] * (s.num_atoms - len(leaves))

        def ref(r):
            return arrays[r[1]] if r[0] == "arr" else r[1]

        for instr in s.code:
            if instr[0] == "sum":
                _, out, terms = instr
                total = None
                for atom, coef in terms:
                    term = vals[atom] if coef is None else _mul(vals[atom], ref(coef))
                    total = term if total is None else total + term
                vals[out] = total
            else:
                _, outs, prim, params, args = instr
                res = prim.bind(
                    *[vals[a[1]] if a[0] == "atom" else ref(a) for a in args], **params
                )
                for atom, value in zip(
                    outs, res if prim.multiple_results else [res], strict=True
                ):
                    vals[atom] = value
        outs = []
        for r, aval in s.out_refs:
            if r[0] == "atom":
                outs.append(vals[r[1]])
            else:
                outs.append(
                    jnp.broadcast_to(jnp.asarray(ref(r), aval.dtype), aval.shape)
                )
        return jax.tree.unflatten(s.out_tree, outs)


def _mul(x, c):
    """``x * c`` for a coefficient ``c`` of ``x``'s shape or a scalar."""
    if _is_num(_num(c)):
        return x * jnp.asarray(_num(c), x.dtype)
    if jnp.ndim(c) == 0:
        c = jnp.broadcast_to(c, jnp.shape(x))
    return x * c.astype(x.dtype)


# ------------------------------------------------------------------------ builder


class _Builder:
    """Walks a linear jaxpr. Known values are computed now (on the primal side);
    a linear value is a *form* ``((atom, coef), ...)``: ``sum atom * coef``, with
    ``coef`` ``None`` (one), a Python number or a known array of the value's shape.
    """

    def __init__(self, in_avals):
        self.num_atoms = len(in_avals)
        self.sizes = [_size(a.shape) for a in in_avals]  # elements of each atom
        self.code = []
        self.arrays = []
        self._ids = {}

    # values: ("known", x) or ("lin", form)
    def run(self, jaxpr, consts, args=None):
        env = {}
        uses = collections.Counter(
            id(v) for e in jaxpr.eqns for v in e.invars if not _is_literal(v)
        )
        uses.update(id(v) for v in jaxpr.outvars if not _is_literal(v))
        for v, c in zip(jaxpr.constvars, consts, strict=True):
            env[id(v)] = ("known", c)
        if args is None:
            args = [("lin", ((i, None),)) for i in range(len(jaxpr.invars))]
        for v, a in zip(jaxpr.invars, args, strict=True):
            env[id(v)] = a

        def read(v):
            return ("known", v.val) if _is_literal(v) else env[id(v)]

        for eqn in jaxpr.eqns:
            outs = self._eqn(eqn, [read(v) for v in eqn.invars])
            for v, val in zip(eqn.outvars, outs, strict=True):
                if val[0] == "lin" and len(val[1]) > 1 and uses[id(v)] > 1:
                    val = ("lin", ((self.materialize(val[1]), None),))
                env[id(v)] = val
        return [read(v) for v in jaxpr.outvars]

    def _eqn(self, eqn, ins):
        prim, name = eqn.primitive, eqn.primitive.name
        lin = [i for i, x in enumerate(ins) if x[0] == "lin"]
        if not lin:  # a known computation: do it now
            res = prim.bind(*[x[1] for x in ins], **eqn.params)
            return [("known", r) for r in (res if prim.multiple_results else [res])]
        if name == "mul" and len(ins) == 2 and len(lin) == 1:
            k = _num(ins[1 - lin[0]][1])
            return [("lin", _scale(self._narrow(ins[lin[0]][1], k), k))]
        if name == "div" and lin == [0]:
            k = _reciprocal(_num(ins[1][1]))
            return [("lin", _scale(self._narrow(ins[0][1], k), k))]
        if name == "neg":
            return [("lin", _scale(ins[0][1], -1.0))]
        if name in _ADDS and len(lin) == 2:
            return [("lin", _merge(ins[0][1], ins[1][1]))]
        if name == "sub" and len(lin) == 2:
            return [("lin", _merge(ins[0][1], _scale(ins[1][1], -1.0)))]
        if name in _INLINE and "jaxpr" in eqn.params:
            closed = eqn.params["jaxpr"]
            inner = closed.jaxpr if hasattr(closed, "jaxpr") else closed
            consts = closed.consts if hasattr(closed, "consts") else ()
            return self.run(inner, consts, ins)
        # Anything else runs as it is in the tangent program.
        args = []
        for x in ins:
            if x[0] == "lin":
                args.append(("atom", self.materialize(x[1])))
            else:
                args.append(self.ref(x[1]))
        outs = [self._new_atom(_size(v.aval.shape)) for v in eqn.outvars]
        self.code.append(("prim", outs, prim, dict(eqn.params), args))
        return [("lin", ((a, None),)) for a in outs]

    def _new_atom(self, size):
        self.sizes.append(size)
        self.num_atoms += 1
        return self.num_atoms - 1

    def _narrow(self, form, k):
        """``form``, materialised first when scaling it by ``k`` would widen a
        coefficient (a broadcast atom times a full-size ``k``): one stored ``k``
        instead of one new full-size product per term."""
        size = _csize(k)
        widens = any(
            self.sizes[a] < size and c is not None and _csize(c) < size for a, c in form
        ) or (len(form) > 1 and any(self.sizes[a] < size for a, _ in form))
        return ((self.materialize(form), None),) if widens else form

    def ref(self, value):
        """A reference to a known value: a literal, or an index into ``arrays``."""
        if isinstance(value, (int, float, bool, np.generic)) or (
            isinstance(value, np.ndarray) and value.ndim == 0
        ):
            return ("lit", value)
        key = id(value)
        if key not in self._ids:
            self._ids[key] = len(self.arrays)
            self.arrays.append(value)
        return ("arr", self._ids[key])

    def materialize(self, form):
        if len(form) == 1 and form[0][1] is None:
            return form[0][0]
        size = max(max(self.sizes[a], _csize(c)) for a, c in form)
        out = self._new_atom(size)
        terms = [(a, None if c is None else self.ref(c)) for a, c in form]
        self.code.append(("sum", out, terms))
        return out

    def output_ref(self, val, aval):
        if val[0] == "lin":
            return ("atom", self.materialize(val[1])), aval
        return self.ref(val[1]), aval


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _csize(c):
    """Elements of a coefficient (one for ``None`` and numbers)."""
    return 1 if c is None or _is_num(c) else _size(jnp.shape(c))


def _is_literal(v):
    return isinstance(v, jex_core.Literal)


def _num(x):
    """A NumPy scalar as a Python number (other values unchanged)."""
    if isinstance(x, np.generic) or (isinstance(x, np.ndarray) and x.ndim == 0):
        return x.item()
    return x


def _is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _scale(form, k):
    if _is_num(k) and k == 1:
        return form
    return tuple((a, k if c is None else _times(c, k)) for a, c in form)


def _times(c, k):
    if _is_num(c) and _is_num(k):
        return c * k
    return _as_array(c, k) * _as_array(k, c)


def _plus(c1, c2):
    c1 = 1.0 if c1 is None else c1
    c2 = 1.0 if c2 is None else c2
    if _is_num(c1) and _is_num(c2):
        return c1 + c2
    return _as_array(c1, c2) + _as_array(c2, c1)


def _as_array(x, like):
    """``x`` as an array (a Python number takes ``like``'s dtype)."""
    if _is_num(x):
        return jnp.asarray(x, jnp.result_type(like))
    if jnp.ndim(x) == 0 and jnp.ndim(like) > 0:
        return jnp.broadcast_to(x, jnp.shape(like))
    return x


def _reciprocal(k):
    if _is_num(k):
        return 1.0 / k
    return 1.0 / jnp.asarray(k)


def _merge(f1, f2):
    coefs = dict(f1)
    for a, c in f2:
        coefs[a] = _plus(coefs[a], c) if a in coefs else c
    return tuple(coefs.items())
