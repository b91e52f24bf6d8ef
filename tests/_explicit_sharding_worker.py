"""Run by tests/test_explicit_sharding.py with 4 forced CPU devices: unroll,
stacks and the linen module on inputs whose batch is explicitly sharded
(``jax.make_mesh``'s default axis type) against the same calls unsharded.
Prints one line per case; exits non-zero on the first mismatch."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import rnnjax
from rnnjax.flax import linen as rlinen
from rnnjax.kernels import fused as fused_kernel

B, T, I, H = 8, 6, 3, 5
MESH = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Explicit,))


def sharded(x):
    """``x`` with its first (batch) dimension split over the mesh."""
    return jax.device_put(x, NamedSharding(MESH, P("data")))


def check(name, f, args, sharded_args):
    """``f(*args)`` -> pytree; values and gradients of a scalar of it, sharded
    against plain; the sharded outputs keep the batch sharded."""

    def loss(*a):
        return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(f(*a)))

    # One program for the values and the gradients (half the compilations).
    both = jax.jit(lambda *a: (f(*a), jax.grad(loss)(*a)))
    want = both(*args)
    with jax.set_mesh(MESH):
        got = both(*sharded_args)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-5, atol=2e-6)
    specs = {str(jax.typeof(leaf).sharding.spec) for leaf in jax.tree.leaves(got[0])}
    assert any("data" in s for s in specs), (name, specs)
    print("ok", name, sorted(specs))


def main():
    k = jax.random.split(jax.random.key(0), 4)
    xs = jax.random.normal(k[0], (B, T, I))
    lengths = jnp.array([6, 1, 3, 6, 2, 5, 4, 6])
    resets = jax.random.bernoulli(k[1], 0.2, (B, T))
    fused = ("scan", "fused")  # "auto" is one of them: checked once, for the LSTM
    cells = {  # name: (cell, the impls it has)
        "lstm": (rnnjax.lstm(H), ("auto", *fused)),
        "lstm-peephole-ln": (rnnjax.lstm(H, peephole=True, layer_norm=True), fused),
        "gru": (rnnjax.gru(H), fused),
        "simple_rnn": (rnnjax.simple_rnn(H), fused),
        "slstm": (rnnjax.slstm(6, num_heads=2), ("fused",)),  # head-wise products
        "mut1": (rnnjax.mut1(H, embed_input=True), ("scan",)),
        "min_gru": (rnnjax.min_gru(H), ("scan", "associative")),
        "clockwork": (rnnjax.clockwork_rnn(6, 3, (1, 2, 4)), ("scan",)),
    }
    for name, (cell, impls) in cells.items():
        params = cell.init(k[2], I)
        for impl in impls:
            f = lambda p, x, c=cell, i=impl: rnnjax.unroll(
                c, p, x, options=rnnjax.UnrollOptions(impl=i)
            )
            check(f"{name} {impl}", f, (params, xs), (params, sharded(xs)))

    cell = rnnjax.lstm(H)
    params = cell.init(k[2], I)
    options = {
        "seq_lengths": lambda p, x, n, r: rnnjax.unroll(cell, p, x, seq_lengths=n),
        "reverse+lengths": lambda p, x, n, r: rnnjax.unroll(
            cell, p, x, seq_lengths=n, reverse=True
        ),
        "resets": lambda p, x, n, r: rnnjax.unroll(cell, p, x, resets=r),
        "remat step": lambda p, x, n, r: rnnjax.unroll(
            cell, p, x, options=rnnjax.UnrollOptions(remat="step")
        ),
        "remat chunk": lambda p, x, n, r: rnnjax.unroll(
            cell,
            p,
            x,
            seq_lengths=n,
            options=rnnjax.UnrollOptions(remat="chunk", chunk_size=4),
        ),
        "time_major": lambda p, x, n, r: rnnjax.unroll(
            cell, p, jnp.swapaxes(x, 0, 1), time_major=True
        ),
    }
    args = (params, xs, lengths, resets)
    sharded_args = (params, sharded(xs), sharded(lengths), sharded(resets))
    for name, f in options.items():
        check(name, f, args, sharded_args)
    # Outside a mesh context, as JAX's own operations on these arrays run (their
    # gradients need the context: JAX's transposed products ask for it).
    got = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x)[1])(params, sharded(xs))
    want = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x)[1])(params, xs)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-5, atol=2e-6)
    assert "data" in str(jax.typeof(got).sharding.spec)
    print("ok forward outside a mesh context")
    # The fused kernel projecting in chunks (what a forward-only call with a large
    # projection does on the CPU), forced at this size: 4 steps, one padded chunk.
    rule, fused_kernel.projection_chunk = fused_kernel.projection_chunk, lambda *_: 4
    f = lambda p, x, n, r: rnnjax.unroll(cell, p, x, seq_lengths=n, resets=r)
    check("projection in chunks", f, args, sharded_args)
    fused_kernel.projection_chunk = rule

    bi = rnnjax.stack(rnnjax.lstm(H), 2, bidirectional=True)
    params = bi.init(k[3], I)
    f = lambda p, x, n: bi.apply(p, x, seq_lengths=n)
    check(
        "stack 2x bidirectional",
        f,
        (params, xs, lengths),
        (params, sharded(xs), sharded(lengths)),
    )

    # Data parallelism by hand: shard_map over four devices (Auto axes), each
    # device running its quarter of the batch. The gradient w.r.t. the replicated
    # parameters comes out summed over the mesh (JAX transposes their implicit
    # broadcast to the devices into a psum), so no psum is written.
    auto_mesh = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Auto,))
    for name, cell in (("lstm", rnnjax.lstm(H)), ("gru", rnnjax.gru(H))):
        params = cell.init(k[2], I)
        f = lambda p, x, n, c=cell: rnnjax.unroll(c, p, x, seq_lengths=n)[1]
        loss = lambda p, x, n, f=f: jnp.sum(jnp.sin(f(p, x, n)))
        specs = (P(), P("data"), P("data"))
        fwd = jax.shard_map(f, mesh=auto_mesh, in_specs=specs, out_specs=P("data"))
        grad = jax.shard_map(
            lambda p, x, n, loss=loss: jax.grad(loss)(p, x, n),
            mesh=auto_mesh,
            in_specs=specs,
            out_specs=P(),
        )
        want = jax.jit(lambda *a, f=f, loss=loss: (f(*a), jax.grad(loss)(*a)))(
            params, xs, lengths
        )
        got = jax.jit(lambda *a, fwd=fwd, grad=grad: (fwd(*a), grad(*a)))(
            params, xs, lengths
        )
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
            np.testing.assert_allclose(
                np.asarray(b), np.asarray(a), rtol=2e-5, atol=2e-6
            )
        print("ok", name, "shard_map over 4 devices")

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(rlinen.RNN(rnnjax.gru(H), num_layers=2)(x))

    model = Model()
    variables = model.init(k[3], xs)
    f = lambda v, x: model.apply(v, x)
    check("linen RNN", f, (variables, xs), (variables, sharded(xs)))


if __name__ == "__main__":
    main()
