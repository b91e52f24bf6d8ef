"""The scripts meant for accelerators, compiled for them without a device:
``benchmarks/gpu.py``'s cases for the H200 (``--compile-only h200 --covering``:
each distinct Pallas tiling; the XLA paths compile in ``test_compile``; the full
list is ``--compile-only h200`` alone) and notebook 07's timing cell for a TPU v5e (its
code run with the backend taken to be a TPU and ``time_jax`` compiling for the
v5e instead of timing). Each in a process of its own, in the Python that
``deviceless.python`` names; skipped without the compilers."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.accelerators import deviceless

NOTEBOOK_CELL = r"""
import json, sys
import jax
import jax.numpy as jnp
from tests.accelerators import deviceless

cells = json.load(open("notebooks/07_speed.ipynb"))["cells"]
code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
QUICK = False
env = {"QUICK": QUICK, "jax": jax}
setup = code[1].replace("BACKEND = jax.default_backend()", 'BACKEND = "tpu"')
exec(setup, env)  # the timing helpers, the sizes
dev = deviceless.device(deviceless.TARGETS["tpu_v5e"])
compiled = {}


def time_jax(f, params):  # compile forward and backward for the v5e
    args = deviceless.abstract((params, env["xs"]), dev)
    grad = jax.grad(lambda p, x: jnp.sum(f(p, x)), argnums=(0, 1))
    texts = [jax.jit(g).lower(*args).compile().as_text() for g in (f, grad)]
    compiled[len(compiled)] = sum(t.count("tpu_custom_call") for t in texts)
    return (0.0, 0.0)


env["time_jax"] = time_jax
exec(code[2], env)  # the timing cell: rnnjax's impls and Flax
print(json.dumps({"results": sorted(env["results"]), "kernels": compiled}))
"""


def _run(platform, args):
    absent = deviceless.missing(platform)
    if absent:
        pytest.skip(f"needs {', '.join(absent)}: {deviceless.INSTALL}")
    return subprocess.run(
        [deviceless.python(), *args],
        cwd=deviceless.ROOT,
        env=deviceless.environment(platform),
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
@pytest.mark.xdist_group("deviceless_gpu")
def test_gpu_benchmark_cases_compile_for_the_h200():
    done = _run("gpu", ["benchmarks/gpu.py", "--compile-only", "h200", "--covering"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 failed" in done.stdout and "OK   lstm f32 B=64 H=256 rnnjax pallas" in (
        done.stdout
    )


@pytest.mark.slow
@pytest.mark.xdist_group("deviceless_tpu")
def test_notebook_timing_cell_compiles_for_a_tpu_v5e():
    done = _run("tpu", ["-c", NOTEBOOK_CELL])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped" not in done.stdout, done.stdout
    out = json.loads(done.stdout.strip().splitlines()[-1])
    rnnjax_rows = [f"rnnjax {impl}" for impl in ("auto", "scan", "fused", "pallas")]
    assert out["results"] == sorted([*rnnjax_rows, "flax OptimizedLSTMCell"])
    kernels = [out["kernels"][str(i)] for i in range(5)]  # in the cell's order
    assert kernels[3] >= 2 and kernels[:3] + kernels[4:] == [0, 0, 0, 0], kernels
