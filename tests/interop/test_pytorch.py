"""PyTorch parity: values and gradients of ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``
against their rnnjax conversion, on packed variable-length batches."""

import itertools
import subprocess
import sys
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.interop import from_torch, to_torch, torch_carry, torch_state
from tests.conftest import assert_close, randomize

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

B, T, IN, H, P = 3, 5, 3, 4, 2
LENGTHS = (2, 5, 4)  # one short, one full length, not sorted
KINDS = ("rnn_tanh", "rnn_relu", "lstm", "lstmp", "gru")


def make_module(kind, num_layers=1, bidirectional=False, batch_first=True, **kw):
    torch.manual_seed(zlib.crc32(repr((kind, num_layers, bidirectional)).encode()))
    common = dict(
        num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first
    )
    if kind.startswith("rnn"):
        return torch.nn.RNN(IN, H, nonlinearity=kind[4:], **common, **kw)
    if kind.startswith("lstm"):
        proj = P if kind == "lstmp" else 0
        return torch.nn.LSTM(IN, H, proj_size=proj, **common, **kw)
    return torch.nn.GRU(IN, H, **common, **kw)


def torch_run(module, x, lengths, hx=None):
    """Packed forward and backward of ``sum(out*gy) + sum(state*gs)``."""
    x = x.clone().requires_grad_(True)
    if hx is not None:
        hx = tuple(h.clone().requires_grad_(True) for h in hx)
    packed = pack_padded_sequence(
        x, torch.tensor(lengths), batch_first=module.batch_first, enforce_sorted=False
    )
    hx_arg = None if hx is None else (hx if len(hx) == 2 else hx[0])
    out, state = module(packed, hx_arg)
    out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
    state = state if isinstance(state, tuple) else (state,)
    cotangents = cotangents_like([out, *state])
    loss = sum(
        (a * torch.from_numpy(g)).sum()
        for a, g in zip([out, *state], cotangents, strict=True)
    )
    module.zero_grad()
    loss.backward()
    grads = {n: p.grad.numpy().copy() for n, p in module.named_parameters()}
    hx_grads = None if hx is None else [h.grad.numpy() for h in hx]
    values = [v.detach().numpy() for v in (out, *state)]
    return values, cotangents, x.grad.numpy(), grads, hx_grads


def cotangents_like(arrays):
    r = np.random.default_rng(1)
    return [r.standard_normal(tuple(a.shape)).astype(np.float32) for a in arrays]


def rnnjax_run(model, params, x, lengths, cotangents, hx=None, impl="auto"):
    """The same loss through rnnjax; returns values and the gradients."""
    seq_lengths = jnp.asarray(lengths, jnp.int32)

    def forward(params, xs, hx):
        carry = None if hx is None else torch_carry(model, *hx)
        carry, ys = model.apply(
            params,
            xs,
            carry=carry,
            seq_lengths=seq_lengths,
            options=rnnjax.UnrollOptions(impl=impl),
        )
        state = torch_state(carry)
        return [ys, *(state if isinstance(state, tuple) else (state,))]

    def loss(params, xs, hx):
        outs = forward(params, xs, hx)
        total = sum(jnp.sum(a * g) for a, g in zip(outs, cotangents, strict=True))
        return total, outs

    xs = jnp.asarray(x.numpy())
    hx = None if hx is None else tuple(jnp.asarray(h.numpy()) for h in hx)
    grad_fn = jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))
    grads, values = grad_fn(params, xs, hx)  # one compilation for both
    return values, grads


def torch_grads(model, gparams, has_bias=True):
    """rnnjax's parameter gradients in PyTorch's names and layouts."""
    out = {}
    for layer, layer_grads in enumerate(gparams):
        for d, g in enumerate(layer_grads):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            out["weight_ih" + sfx] = np.asarray(g["w_x"]).T
            out["weight_hh" + sfx] = np.asarray(g["w_h"]).T
            if "w_hr" in g:
                out["weight_hr" + sfx] = np.asarray(g["w_hr"]).T
            if has_bias:
                gb = np.asarray(g["b"])
                out["bias_ih" + sfx] = gb
                if "b_hn" in g:  # b = b_ih + b_hh except n, whose b_hh is b_hn
                    out["bias_hh" + sfx] = np.concatenate([gb[: 2 * H], g["b_hn"]])
                else:
                    out["bias_hh" + sfx] = gb
    return out


def random_input(batch_first, seed=0):
    r = np.random.default_rng(seed)
    shape = (B, T, IN) if batch_first else (T, B, IN)
    return torch.from_numpy(r.standard_normal(shape).astype(np.float32))


def check_parity(module, hx=None, impl="auto"):
    model, params = from_torch(module)
    x = random_input(module.batch_first)
    values, cts, gx, grads, hx_grads = torch_run(module, x, LENGTHS, hx)
    jvalues, (gp, gxs, ghx) = rnnjax_run(model, params, x, LENGTHS, cts, hx, impl)
    names = ("ys", "h_n", "c_n")[: len(values)]
    for name, a, b in zip(names, jvalues, values, strict=True):
        assert_close(a, b, name)
    assert_close(gxs, gx, "d/dx")
    expected = torch_grads(model, gp, module.bias)
    assert expected.keys() == grads.keys()
    for name, g in grads.items():
        assert_close(expected[name], g, f"d/d{name}")
    if hx is not None:
        names = ("h_0", "c_0")[: len(hx)]
        for name, a, b in zip(names, ghx, hx_grads, strict=True):
            assert_close(a, b, f"d/d{name}")
    return model, params


def initial_state(kind, num_layers, bidirectional, seed=3):
    """Random ``h_0`` (and ``c_0``) tensors."""
    r = np.random.default_rng(seed)
    num = num_layers * (2 if bidirectional else 1)
    out = P if kind == "lstmp" else H
    hx = (torch.from_numpy(r.standard_normal((num, B, out)).astype(np.float32)),)
    if kind.startswith("lstm"):
        hx += (torch.from_numpy(r.standard_normal((num, B, H)).astype(np.float32)),)
    return hx


# Every kind x (1, 2 layers) x (uni, bidirectional). Each such case also varies one
# more option, and batch_first alternates, so that every kind meets both layouts,
# bias=False, the plain scan implementation and initial states, while the file
# compiles only 20 models (compilation dominates its time).
VARIANTS = ("plain", "scan", "no_bias", "initial_state")
CASES = [
    (kind, layers, bidir, (i + j) % 2 == 0, variant)
    for i, kind in enumerate(KINDS)
    for j, ((layers, bidir), variant) in enumerate(
        zip(itertools.product((1, 2), (False, True)), VARIANTS, strict=True)
    )
]


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first,variant", CASES)
def test_parity_packed(kind, num_layers, bidirectional, batch_first, variant):
    kw = {"bias": False} if variant == "no_bias" else {}
    module = make_module(kind, num_layers, bidirectional, batch_first, **kw)
    hx = None
    if variant == "initial_state":
        hx = initial_state(kind, num_layers, bidirectional)
    impl = "scan" if variant == "scan" else "auto"
    model, _ = check_parity(module, hx=hx, impl=impl)
    assert model.time_major == (not batch_first)
    assert model.num_layers == num_layers and model.bidirectional == bidirectional


def test_unbatched_sequence():
    module = make_module("lstmp", 1, True, batch_first=False)
    model, params = from_torch(module)
    x = random_input(False)[:, 0]  # (T, I)
    out, (h, c) = module(x)
    carry, ys = jax.jit(model.apply)(params, jnp.asarray(x.numpy()))
    h_n, c_n = torch_state(carry)
    assert_close(ys, out.detach().numpy(), "ys")
    assert_close(h_n, h.detach().numpy(), "h_n")
    assert_close(c_n, c.detach().numpy(), "c_n")


@pytest.mark.parametrize("kind", KINDS)
def test_to_torch_round_trip(kind):
    module = make_module(kind, 2, True, dropout=0.25)
    model, params = from_torch(module)
    assert model.dropout == 0.25
    back = to_torch(model, params)
    assert type(back) is type(module)
    for attr in ("mode", "input_size", "hidden_size", "num_layers", "bias"):
        assert getattr(back, attr) == getattr(module, attr), attr
    for attr in ("batch_first", "dropout", "bidirectional", "proj_size"):
        assert getattr(back, attr) == getattr(module, attr), attr
    model2, params2 = from_torch(back)
    assert model2 == model
    assert jax.tree.structure(params2) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(params2), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "cell,num_layers,bidirectional",
    [(rnnjax.lstm(H, proj_size=P), 1, True), (rnnjax.gru(H), 2, False)],
    ids=["lstmp", "gru"],
)
def test_to_torch_from_rnnjax_params(cell, num_layers, bidirectional):
    """rnnjax-initialised (randomised) params -> torch module -> same outputs."""
    model = rnnjax.stack(cell, num_layers=num_layers, bidirectional=bidirectional)
    params = randomize(model.init(jax.random.key(0), IN), seed=2)
    module = to_torch(model, params).eval()
    assert module.batch_first
    x = random_input(True)
    out, state = module(x)
    carry, ys = jax.jit(model.apply)(params, jnp.asarray(x.numpy()))
    assert_close(ys, out.detach().numpy(), "ys")
    state = state if isinstance(state, tuple) else (state,)
    mine = torch_state(carry)
    mine = mine if isinstance(mine, tuple) else (mine,)
    for a, b in zip(mine, state, strict=True):
        assert_close(a, b.detach().numpy(), "state")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_to_torch_biases_as_documented(kind):
    """One rnnjax bias b becomes bias_ih = b and bias_hh = 0 (the GRU's b_hn stays
    in bias_hh's n block): the same function, not the original state dict."""
    module = make_module(kind, 1, False)
    model, params = from_torch(module)
    state = to_torch(model, params).state_dict()
    p = params[0][0]
    np.testing.assert_array_equal(state["bias_ih_l0"].numpy(), p["b"])
    expected_hh = np.zeros_like(p["b"])
    if kind == "gru":
        expected_hh[2 * H :] = p["b_hn"]
    np.testing.assert_array_equal(state["bias_hh_l0"].numpy(), expected_hh)
    assert not np.array_equal(
        state["bias_hh_l0"].numpy(), module.state_dict()["bias_hh_l0"].numpy()
    )


def test_to_torch_without_bias():
    model = rnnjax.stack(rnnjax.gru(H))
    params = randomize(model.init(jax.random.key(0), IN))
    with pytest.raises(ValueError, match="bias: False needs zero biases"):
        to_torch(model, params, bias=False)
    zero = jax.tree.map(lambda a: a, params)
    zero[0][0]["b"] = jnp.zeros_like(params[0][0]["b"])
    zero[0][0]["b_hn"] = jnp.zeros_like(params[0][0]["b_hn"])
    module = to_torch(model, zero, bias=False)
    assert not module.bias
    _, back = from_torch(module)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(zero), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "model,match",
    [
        (rnnjax.stack(rnnjax.lstm(H, peephole=True)), "peephole=True"),
        (rnnjax.stack(rnnjax.lstm(H, layer_norm=True)), "layer_norm=True"),
        (rnnjax.stack(rnnjax.lstm(H, coupled=True)), "coupled=True"),
        (rnnjax.stack(rnnjax.gru(H, reset_after=False)), "reset_after=False"),
        (rnnjax.stack(rnnjax.mgu(H)), "cell type MGU"),
        (rnnjax.stack([rnnjax.lstm(H), rnnjax.gru(H)]), r"cells\[1\]"),
        (rnnjax.stack([rnnjax.lstm(H), rnnjax.lstm(H + 1)]), r"cells\[1\]"),
        (rnnjax.stack(rnnjax.lstm(H), recurrent_dropout=0.1), "variational"),
    ],
    ids=[
        "peephole",
        "layer_norm",
        "cifg",
        "gru_reset_before",
        "mgu",
        "mixed",
        "sizes",
        "vd",
    ],
)
def test_to_torch_rejects_inexpressible(model, match):
    params = model.init(jax.random.key(0), IN)
    with pytest.raises(ValueError, match=match):
        to_torch(model, params)


def _bidirectional(fwd, bwd, merge=rnnjax.layers.concatenate):
    return rnnjax.Bidirectional(rnnjax.Layer(fwd), rnnjax.Layer(bwd), merge)


@pytest.mark.parametrize(
    "layers,match",
    [
        ((rnnjax.Layer(rnnjax.lstm(H), reverse=True),), "a reversed Layer"),
        ((_bidirectional(rnnjax.lstm(H), rnnjax.lstm(H), jnp.add),), "merge="),
        ((_bidirectional(rnnjax.lstm(H), rnnjax.gru(H)),), "two different cells"),
        (
            (
                _bidirectional(rnnjax.lstm(H), rnnjax.lstm(H)),
                rnnjax.Layer(rnnjax.lstm(H)),
            ),
            r"mixing Layer and Bidirectional at layers\[0\]",
        ),
    ],
    ids=["reversed", "merge", "two_cells", "mixed_directions"],
)
def test_to_torch_rejects_composed_stacks_torch_cannot_run(layers, match):
    model = rnnjax.Stack(layers)
    with pytest.raises(ValueError, match=match):
        to_torch(model, model.init(jax.random.key(0), IN))


def test_to_torch_ignores_init_only_options():
    model = rnnjax.stack(
        [rnnjax.lstm(H, forget_bias=1.0), rnnjax.lstm(H, forget_bias=0.0)]
    )
    module = to_torch(model, model.init(jax.random.key(0), IN))
    assert isinstance(module, torch.nn.LSTM) and module.num_layers == 2


def test_to_torch_checks_arguments():
    model = rnnjax.stack(rnnjax.lstm(H), num_layers=2)
    with pytest.raises(TypeError, match=r"model: expected an rnnjax\.Stack"):
        to_torch(rnnjax.lstm(H), None)
    params = model.init(jax.random.key(0), IN)
    with pytest.raises(ValueError, match="params: expected a tuple of 2 layer"):
        to_torch(model, params[:1])
    bad = ((params[0][0],), ({"w_x": params[1][0]["w_x"][:, :H]},))
    with pytest.raises(ValueError, match="params"):
        to_torch(model, bad)


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match=r"module: expected a torch.nn.RNN.*Linear"):
        from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(TypeError, match="module: expected"):
        from_torch(torch.nn.LSTMCell(2, 3))


def test_from_torch_float64_module():
    module = make_module("gru", 1, False).double()
    _, params = from_torch(module)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))


def test_torch_state_and_carry_round_trip():
    model = rnnjax.stack(rnnjax.lstm(H, proj_size=P), num_layers=2, bidirectional=True)
    r = np.random.default_rng(0)
    h0 = r.standard_normal((4, B, P)).astype(np.float32)
    c0 = r.standard_normal((4, B, H)).astype(np.float32)
    carry = torch_carry(model, torch.from_numpy(h0), torch.from_numpy(c0))
    assert isinstance(carry[1][1], rnnjax.LSTMState)
    np.testing.assert_array_equal(carry[1][0].h, h0[2])
    h, c = torch_state(carry)
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(c, c0)
    pair = torch_carry(model, (h0, c0))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), pair, carry))


def test_torch_carry_checks_arguments():
    lstm_model = rnnjax.stack(rnnjax.lstm(H), num_layers=2)
    gru_model = rnnjax.stack(rnnjax.gru(H), num_layers=2)
    h0 = np.zeros((2, B, H), np.float32)
    with pytest.raises(TypeError, match="c_0: the model's cells are LSTMs"):
        torch_carry(lstm_model, h0)
    with pytest.raises(TypeError, match="c_0: the model's cells are not LSTMs"):
        torch_carry(gru_model, h0, h0)
    with pytest.raises(ValueError, match=r"h_0: expected shape \(2, \*B, H_out\)"):
        torch_carry(gru_model, h0[:1])
    with pytest.raises(ValueError, match=r"h_0: expected shape \(2, 3, 4\)"):
        torch_carry(gru_model, np.zeros((2, B, H + 1), np.float32))
    with pytest.raises(ValueError, match=r"c_0: expected shape \(2, 3, 4\)"):
        torch_carry(lstm_model, h0, h0[:, :1])
    with pytest.raises(TypeError, match=r"model: expected an rnnjax\.Stack"):
        torch_carry(rnnjax.gru(H), h0)
    with pytest.raises(ValueError, match="carry: expected carry"):
        torch_state(jnp.zeros((B, H)))


def test_import_does_not_load_torch_or_keras():
    code = (
        "import sys, rnnjax, rnnjax.interop; "
        "bad = [m for m in ('torch', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
