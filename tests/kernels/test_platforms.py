"""``impl="auto"`` decides by the platform a program is lowered for, not by the
default backend: lowered here (a CPU host) for TPU and CUDA it holds their
kernels, for the CPU the CPU path; ``jax.export`` for several platforms at once
keeps each one's path, and its CPU part equals the live model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import rnnjax
from rnnjax import kernels
from tests.kernels._compare import assert_tree_close

MARKERS = {"tpu": "tpu_custom_call", "cuda": "triton"}


@pytest.fixture
def pallas_under_auto(monkeypatch):
    """As if benchmarks/gpu.py had admitted the Pallas kernels on TPU and CUDA."""
    monkeypatch.setattr(kernels, "AUTO_PALLAS_PLATFORMS", frozenset(MARKERS))


def _loss_and_grad(cell, xs):
    def loss(params, xs):
        carry, ys = rnnjax.unroll(cell, params, xs, seq_lengths=jnp.array([5, 2]))
        return jnp.sum(ys) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(carry))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


@pytest.mark.usefixtures("pallas_under_auto")
@pytest.mark.parametrize("platform", ["tpu", "cuda", "cpu"])
def test_auto_lowers_to_each_platforms_path(platform):
    cell = rnnjax.lstm(8)
    params = cell.init(jax.random.key(0), 3)
    xs = jnp.ones((2, 5, 3))
    traced = _loss_and_grad(cell, xs).trace(params, xs)
    text = traced.lower(lowering_platforms=(platform,)).as_text()
    for other, marker in MARKERS.items():
        assert (marker in text) == (other == platform), other


@pytest.mark.usefixtures("pallas_under_auto")
def test_auto_on_cpu_equals_fused():
    cell = rnnjax.gru(6)
    params = cell.init(jax.random.key(1), 3)
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 3)), jnp.float32)
    got = _loss_and_grad(cell, xs)(params, xs)

    def fused(params, xs):
        options = rnnjax.UnrollOptions(impl="fused")
        carry, ys = rnnjax.unroll(
            cell, params, xs, seq_lengths=jnp.array([5, 2]), options=options
        )
        return jnp.sum(ys) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(carry))

    assert_tree_close(
        got, jax.jit(jax.value_and_grad(fused, argnums=(0, 1)))(params, xs)
    )


def test_cpu_projection_in_chunks_is_chosen_by_the_lowering_platform():
    """A large forward projects chunk by chunk inside the loop only when lowered
    for the CPU (a second, outer loop over chunks)."""
    cell = rnnjax.lstm(256)
    params = cell.init(jax.random.key(0), 512)
    xs = jax.ShapeDtypeStruct((64, 128, 512), jnp.float32)
    traced = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x)[1]).trace(params, xs)
    loops = {
        platform: traced.lower(lowering_platforms=(platform,))
        .compile()
        .as_text()
        .count(" while(")
        if platform == "cpu"
        else traced.lower(lowering_platforms=(platform,)).as_text().count("while")
        for platform in ("cpu", "cuda")
    }
    assert loops["cpu"] == 2 and loops["cuda"] == 1, loops


def test_export_for_three_platforms_runs_its_cpu_part():
    """With today's ``auto`` (``fused`` everywhere, the CPU projecting in chunks):
    one module for three platforms."""
    model = rnnjax.stack([rnnjax.lstm(8), rnnjax.gru(8)], bidirectional=True)
    params = model.init(jax.random.key(2), 3)
    xs = jnp.asarray(np.random.default_rng(1).standard_normal((2, 5, 3)), jnp.float32)
    apply = jax.jit(lambda p, x: model.apply(p, x, seq_lengths=jnp.array([5, 3]))[1])
    exported = export.export(apply, platforms=("cpu", "cuda", "tpu"))(params, xs)
    restored = export.deserialize(exported.serialize())
    assert restored.platforms == ("cpu", "cuda", "tpu")
    assert_tree_close(restored.call(params, xs), apply(params, xs))


@pytest.mark.usefixtures("pallas_under_auto")
@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_export_with_pallas_under_auto_holds_the_kernel(platform):
    """With Pallas admitted under ``auto``, an export per accelerator holds its
    kernel. (One module for several platforms cannot hold a compiled Pallas
    kernel: JAX lowers it for every platform of the module, and the CPU refuses
    it; export for each platform apart. Triton's custom call comes with no
    compatibility guarantee, so JAX asks that its check be waived.)"""
    cell = rnnjax.lstm(8)
    params = cell.init(jax.random.key(0), 3)
    apply = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x)[1])
    waive = [export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
    exported = export.export(
        apply,
        platforms=(platform,),
        disabled_checks=waive if platform == "cuda" else (),
    )(params, jnp.ones((2, 5, 3)))
    assert MARKERS[platform] in exported.mlir_module()
