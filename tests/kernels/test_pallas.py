"""The Pallas recurrences must equal the plain ``lax.scan`` of the same cell.

On this CPU the kernels run in Pallas' interpreter: the GPU flavour in both designs
(``sequence``: one program walks all steps; ``stepwise``: one launch per step) and
the TPU flavour. Values and reverse-mode derivatives (every parameter leaf, the
inputs, the initial carry, the recurrent mask) with lengths, reversal and resets,
through ``rnnjax.unroll``. Cross-lowering for ``cuda`` and ``tpu`` checks that the
kernels pass the real compilers' front ends (Triton's power-of-two tiles, Mosaic's
(8, 128) blocks), which the interpreter does not enforce.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import kernels
from rnnjax.kernels import Pallas, chips, fused_recurrence, pallas_gpu, pallas_tpu
from tests.conftest import randomize
from tests.kernels._compare import (
    assert_tree_close,
    jit_fast,
    values_and_vjp,
)

IN, T = 3, 5
CELLS = {"lstm": rnnjax.lstm, "gru": rnnjax.gru}
# (flavour, gpu_design): the three kernel families.
KERNELS = {
    "gpu_sequence": ("gpu", "sequence"),
    "gpu_stepwise": ("gpu", "stepwise"),
    "tpu": ("tpu", None),
}


def _problem(cell, batch_shape, seed, *, lengths, resets, mask):
    r = np.random.default_rng(seed)
    params = randomize(cell.init(jax.random.key(seed), IN), seed=seed)
    xs = jnp.asarray(r.standard_normal((*batch_shape, T, IN)), jnp.float32)
    carry = jax.tree.map(
        lambda a: jnp.asarray(0.5 * r.standard_normal(a.shape), a.dtype),
        cell.initial_carry(batch_shape),
    )
    kwargs = {}
    n = int(np.prod(batch_shape, dtype=int))
    if lengths:  # zero, full and partial lengths
        lens = np.resize(np.array([0, T, 2, T - 1, 1, T]), n).reshape(batch_shape)
        kwargs["seq_lengths"] = jnp.asarray(lens, jnp.int32)
    if resets:
        kwargs["resets"] = jnp.asarray(r.random((*batch_shape, T)) < 0.3)
    rec_mask = None
    if mask:
        m = (r.random((*batch_shape, cell.hidden_size)) < 0.7) / 0.7
        rec_mask = jnp.asarray(m, jnp.float32)
    return (params, xs, carry) + ((rec_mask,) if mask else ()), kwargs


def _runner(cell, impl, kwargs, reverse):
    def f(params, xs, carry, rec_mask=None):
        return rnnjax.unroll(
            cell,
            params,
            xs,
            carry=carry,
            reverse=reverse,
            rec_mask=rec_mask,
            **kwargs,
            options=rnnjax.UnrollOptions(impl=impl),
        )

    return f


def _compare(
    kernel,
    cell,
    batch_shape=(3,),
    seed=0,
    reverse=False,
    tol=1e-5,
    forward_only=False,
    **opt,
):
    """Values and VJP of ``impl="pallas"`` (in ``kernel``'s flavour) against
    ``impl="scan"``; with ``forward_only`` also the values alone (the kernels
    that write no residuals)."""
    primals, kwargs = _problem(cell, batch_shape, seed, **opt)
    flavour, design = KERNELS[kernel]

    def run(impl):
        f = _runner(cell, impl, kwargs, reverse)
        vjp = jit_fast(lambda *a: values_and_vjp(f, a, seed + 1))(*primals)
        return vjp, (jit_fast(f)(*primals) if forward_only else None)

    pallas = Pallas(flavour=flavour, interpret=True, gpu_design=design)
    (got_vjp, got), (want_vjp, want) = run(pallas), run("scan")
    assert_tree_close(got_vjp, want_vjp, tol)
    if forward_only:
        assert_tree_close(got, want, tol)


ALL_OPTIONS = {"lengths": True, "resets": True, "mask": True}
NO_OPTIONS = {"lengths": False, "resets": False, "mask": False}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("name", sorted(CELLS))
def test_everything_at_once(kernel, name):
    """Lengths (zero, partial, full), reversal, resets and a recurrent mask; two
    batch dimensions and odd sizes (B = 6, H = 5) that the kernels pad."""
    cell = CELLS[name](5)
    _compare(
        kernel, cell, (2, 3), seed=1, reverse=True, forward_only=True, **ALL_OPTIONS
    )


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("name", sorted(CELLS))
def test_plain(kernel, name):
    """No options: the kernels' flag-free paths; one batch dimension."""
    _compare(kernel, CELLS[name](5), (3,), seed=2, **NO_OPTIONS)


@pytest.mark.parametrize(
    "kernel, name", [("gpu_sequence", "lstm"), ("gpu_stepwise", "gru"), ("tpu", "lstm")]
)
def test_bfloat16_compute(kernel, name):
    """``dtype=jnp.bfloat16``: bf16 matrix products, float32 carry and gates;
    against the scan with the same compute dtype, bf16 tolerance."""
    cell = CELLS[name](5, dtype=jnp.bfloat16)
    _compare(kernel, cell, (3,), seed=3, tol=3e-2, **ALL_OPTIONS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CELLS))
def test_stepwise_tiles(name):
    """H = 70 (padded to 128): several column tiles per step and a K loop of two
    chunks in the stepwise GPU kernels."""
    cell = CELLS[name](70)
    _compare("gpu_stepwise", cell, (3,), seed=4, reverse=True, **ALL_OPTIONS)


@pytest.mark.parametrize("name, lengths", [("lstm", True), ("gru", False)])
def test_tpu_time_and_batch_blocks(name, lengths, monkeypatch):
    """Several time blocks (T = 5 in blocks of 2: one padded step, invalid even
    without lengths) and batch tiles (B = 20 in tiles of 8) in the TPU grid."""
    monkeypatch.setattr(pallas_tpu, "_MAX_TT", 2)
    monkeypatch.setattr(pallas_tpu, "_MAX_BB", 8)
    cell = CELLS[name](5)
    _compare("tpu", cell, (20,), seed=5, lengths=lengths, resets=True, mask=True)


def test_grad_of_inputs_only():
    """Only ``xs`` differentiated: the parameters' cotangents are skipped."""
    cell = rnnjax.lstm(5)
    (params, xs, carry), _ = _problem(cell, (3,), 6, **NO_OPTIONS)

    def grad(impl):
        options = rnnjax.UnrollOptions(impl=impl)
        loss = lambda x: jnp.sum(
            jnp.sin(rnnjax.unroll(cell, params, x, carry=carry, options=options)[1])
        )
        return jit_fast(jax.grad(loss))(xs)

    assert_tree_close(grad(Pallas(interpret=True)), grad("scan"))


@pytest.mark.parametrize(
    "shape", [(2, 0, IN), (0, T, IN)], ids=["no_steps", "no_batch"]
)
def test_empty(shape):
    cell = rnnjax.gru(5)
    params = cell.init(jax.random.key(0), IN)
    options = rnnjax.UnrollOptions(impl=Pallas(interpret=True))
    carry, ys = rnnjax.unroll(cell, params, jnp.ones(shape), options=options)
    assert ys.shape == (*shape[:2], 5) and carry.shape == (shape[0], 5)


# ---------------------------------------------------------------------- selection


@pytest.mark.parametrize(
    "cell",
    [
        rnnjax.lstm(4, peephole=True),
        rnnjax.lstm(4, layer_norm=True),
        rnnjax.lstm(4, proj_size=2),
        rnnjax.gru(4, reset_after=False),
        rnnjax.simple_rnn(4),
        rnnjax.lstm(4, dtype=jnp.float16),
    ],
    ids=["peephole", "layer_norm", "proj", "gru_reset_before", "simple", "float16"],
)
def test_unsupported_cell_raises(cell):
    params = cell.init(jax.random.key(0), IN)
    with pytest.raises(ValueError, match="impl: 'pallas'.*" + type(cell).__name__):
        rnnjax.unroll(
            cell,
            params,
            jnp.ones((2, T, IN)),
            options=rnnjax.UnrollOptions(impl="pallas"),
        )


def test_auto_never_picks_pallas_on_cpu():
    assert jax.default_backend() == "cpu"
    assert kernels.select(rnnjax.lstm(4), "auto") is fused_recurrence
    assert kernels.select(rnnjax.gru(4), "auto") is fused_recurrence


def test_auto_does_not_pick_pallas_before_hardware_checks():
    assert not kernels.AUTO_PALLAS_PLATFORMS


def test_auto_picks_pallas_on_verified_platforms(monkeypatch):
    monkeypatch.setattr(kernels, "AUTO_PALLAS_PLATFORMS", frozenset({"tpu", "cuda"}))
    chosen = kernels.select(rnnjax.lstm(4), "auto")
    assert chosen.func is kernels.auto_pallas_recurrence
    assert chosen.keywords == {"platforms": ("cuda", "tpu")}
    assert kernels.select(rnnjax.lstm(4, peephole=True), "auto") is fused_recurrence


def test_too_large_for_tpu_vmem(monkeypatch):
    """A shape whose ``W_h`` does not fit the target's VMEM: ``impl="pallas"``
    raises; the fallback that ``"auto"`` passes runs ``fused``."""
    tiny = chips.Chip("v4", "tpu", "TPU v4", 1 << 16)
    monkeypatch.setitem(chips.CHIPS, "v4", tiny)
    cell = rnnjax.lstm(5)
    params = cell.init(jax.random.key(0), IN)
    xs = jnp.ones((2, T, IN))
    pallas = Pallas(flavour="tpu", interpret=True, target="v4")
    with pytest.raises(ValueError, match="VMEM"):
        rnnjax.unroll(cell, params, xs, options=rnnjax.UnrollOptions(impl=pallas))
    zs, bias = cell.project_split(params, jnp.moveaxis(xs, 1, 0))
    carry0 = cell.initial_carry((2,))
    inputs = kernels.StepInputs(zs, bias=bias)
    got = kernels.pallas_recurrence(
        cell, params, carry0, inputs, options=pallas, fallback=fused_recurrence
    )
    want = fused_recurrence(cell, params, carry0, inputs)
    assert_tree_close(got, want)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"flavour": "cuda"}, "flavour"),
        ({"gpu_design": "persistent"}, "gpu_design"),
        ({"interpret": "yes"}, "interpret"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Pallas(**kwargs)


@pytest.mark.parametrize("impl", ["cuda", 3, None, Pallas])
def test_bad_impl_names_impl(impl):
    with pytest.raises(ValueError, match="impl: expected one of"):
        rnnjax.UnrollOptions(impl=impl)


def test_impl_values():
    """Strings become ``Impl`` members (equal to them); a ``Pallas`` value is kept
    and hashable with the options, so ``jit`` retraces when it changes."""
    assert rnnjax.UnrollOptions(impl="scan").impl is kernels.Impl.SCAN
    assert rnnjax.UnrollOptions(impl="scan") == rnnjax.UnrollOptions(impl="scan")
    pallas = Pallas(flavour="tpu", interpret=True)
    options = rnnjax.UnrollOptions(impl=pallas)
    assert options.impl is pallas
    assert hash(options) == hash(
        rnnjax.UnrollOptions(impl=Pallas(flavour="tpu", interpret=True))
    )
    assert options != rnnjax.UnrollOptions(impl=Pallas(flavour="gpu", interpret=True))
    assert Pallas().resolved() == Pallas(flavour="gpu", interpret=True)


def test_unsupported_reason_names_the_options():
    """The cell is compared with the default one of its size; initialisation-only
    options and the compute dtype may differ."""
    from rnnjax.kernels.pallas import unsupported_reason

    reason = unsupported_reason(rnnjax.lstm(4, peephole=True, layer_norm=True))
    assert "['peephole', 'layer_norm']" in reason and "rnnjax.lstm(4)" in reason
    assert "reset_after" in unsupported_reason(rnnjax.gru(4, reset_after=False))
    free = rnnjax.lstm(4, forget_bias=0.0, chrono_init=8, dtype=jnp.bfloat16)
    assert unsupported_reason(free) is None


# ---------------------------------------------------------------- cross-lowering

# (flavour, gpu_design, platform, the kernel's custom call, H)
LOWERINGS = {
    "cuda_sequence": ("gpu", "sequence", "cuda", "triton", 40),
    "cuda_stepwise": ("gpu", "stepwise", "cuda", "triton", 70),
    "tpu": ("tpu", None, "tpu", "tpu_custom_call", 70),
}


@pytest.mark.parametrize(
    "name, dtype",
    [("lstm", None), ("gru", None), ("lstm", jnp.bfloat16)],
    ids=["lstm", "gru", "lstm_bf16"],
)
@pytest.mark.parametrize("target", sorted(LOWERINGS))
def test_cross_lowering(name, dtype, target):
    """``jit(value_and_grad)`` lowered for real hardware from this CPU host: the
    forward and backward kernels with every option. H = 70 pads to 128 (GPU
    stepwise: a K loop of two chunks; TPU: lane-aligned gates); H = 40 pads to 64
    (GPU sequence: ``W_h`` within one program)."""
    flavour, design, platform, marker, H = LOWERINGS[target]
    cell = CELLS[name](H, dtype=dtype)
    primals, kwargs = _problem(cell, (3,), 7, **ALL_OPTIONS)

    def loss(*args):
        pallas = Pallas(flavour=flavour, interpret=False, gpu_design=design)
        carry, ys = _runner(cell, pallas, kwargs, True)(*args)
        return jnp.sum(ys) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(carry))

    traced = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3))).trace(*primals)
    text = traced.lower(lowering_platforms=(platform,)).as_text()
    assert text.count(marker) >= 2  # the forward and the backward kernel


def test_gpu_plan_picks_design():
    """``sequence`` while ``W_h`` fits one block's shared memory of the target
    chip (the A100's 163 KiB by default), ``stepwise`` above; a named design
    that does not fit is refused with the reason."""

    def design(H, dtype, kind="lstm", **options):
        p = pallas_gpu.plan(
            kind=kind,
            T=8,
            B=4,
            H=H,
            compute_dtype=jnp.dtype(dtype),
            out_dtype=jnp.dtype(jnp.float32),
            seq_dtypes=(jnp.dtype(jnp.float32),) * 2,
            options=Pallas(flavour="gpu", interpret=False, **options),
            unroll=1,
        )
        return p if isinstance(p, str) else (p.design, p.Hp)

    assert design(64, jnp.float32) == ("sequence", 64)
    assert design(65, jnp.float32) == ("stepwise", 128)
    assert design(100, jnp.bfloat16) == ("sequence", 128)
    assert design(5, jnp.float32) == ("sequence", 16)
    assert design(128, jnp.float32, "gru") == ("stepwise", 128)  # 208 KiB
    assert design(128, jnp.float32, "gru", target="sm_90") == ("sequence", 128)
    refusal = design(256, jnp.float32, gpu_design="sequence", target="sm_90")
    assert "1056 KiB at H=256 in float32, more than the 227 KiB" in refusal


def test_shared_memory_model_matches_what_triton_asked():
    """Bytes Triton requested (compiled deviceless for sm_80 and sm_90)."""
    f32, bf16 = jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)
    asked = {
        ("lstm", 128, f32): 278528,
        ("lstm", 256, f32): 1081344,
        ("lstm", 256, bf16): 548864,
        ("gru", 128, f32): 212992,
        ("gru", 256, f32): 819200,
        ("gru", 256, bf16): 417792,
    }
    for (kind, H, dtype), n in asked.items():
        assert pallas_gpu.sequence_shared_bytes(kind, H, dtype) == n


def test_capacity_table_in_the_docs_is_current():
    docs = (pathlib.Path(__file__).parents[2] / "docs" / "kernels.md").read_text()
    assert chips.capacity_table() in docs
