"""impl='cudnn' against scan on the GPU: reverse, lengths, time-major, stack."""
import jax, jax.numpy as jnp, numpy as np, rnnjax

def err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))

r = np.random.default_rng(0)
B, T, I, H = 4, 6, 3, 8
x = jnp.asarray(r.standard_normal((B, T, I)), jnp.float32)
cell = rnnjax.lstm(H)
p = cell.init(jax.random.key(1), I)
carry = jax.tree.map(lambda a: a + 0.1, cell.initial_carry((B,)))
L = jnp.array([6, 3, 1, 5])
cases = [{"reverse": True}, {"reverse": True, "seq_lengths": L}, {"seq_lengths": L}, {"reverse": True, "seq_lengths": L, "time_major": True}]
for kw in cases:
    xx = jnp.moveaxis(x, 1, 0) if kw.get("time_major") else x
    def run(impl, dev):
        def f(p, x, c):
            c, y = rnnjax.unroll(cell, p, x, carry=c, options=rnnjax.UnrollOptions(impl=impl), **kw)
            return jnp.sum(y * y) + jnp.sum(c.h) + jnp.sum(c.c), (c, y)
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(*jax.device_put((p, xx, carry), dev))
    a, b = run("cudnn", jax.devices()[0]), run("scan", jax.devices("cpu")[0])
    print("unroll", list(kw), "worst leaf", max(err(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))))
model = rnnjax.stack([rnnjax.lstm(H), rnnjax.lstm(H)], bidirectional=True)
mp = model.init(jax.random.key(2), I)
def sf(impl, dev):
    o = rnnjax.UnrollOptions(impl=impl)
    g = lambda p, x: jnp.sum(model.apply(p, x, seq_lengths=L, options=o)[1] ** 2)
    return jax.jit(jax.value_and_grad(g, argnums=(0, 1)))(*jax.device_put((mp, x), dev))
print("bidirectional stack worst leaf", max(err(u, v) for u, v in zip(jax.tree.leaves(sf("cudnn", jax.devices()[0])), jax.tree.leaves(sf("scan", jax.devices("cpu")[0])))))
