"""Every path compiled for real TPUs and GPUs on this CPU-only machine (deviceless
ahead-of-time compilation, ``deviceless``): TPU v4, v5e, v5p and v6e through
libtpu, NVIDIA A100 (sm_80) and H200 (sm_90) through the CUDA plugin with the
target descriptions in ``benchmarks/targets/``.

What passes means: the program lowered and the target's real compiler (XLA,
Mosaic TPU, Triton, ptxas) accepted it, within the chip's VMEM or shared memory;
a Pallas case also holds its kernel in the compiled program (``tpu_custom_call``
on TPU, the Triton custom call ``__gpu$xla.gpu.triton`` on GPU), so it is not
running in Pallas' interpreter or falling back to XLA. Nothing runs: the numbers
are checked on the CPU (Pallas' interpreter for the kernels), the speed only on
a lent GPU (``benchmarks/gpu.py``).

The cases (``cases``): every cell under every ``impl`` it accepts; the LSTM and
GRU over ``impl`` x ``H`` (64, 256, 1024) x ``B`` (8, 256) x float32/bfloat16 x
forward/gradient x ``seq_lengths`` x ``reverse`` x ``resets``; the chunkwise
mLSTM Pallas kernel at head sizes 64 to 256 and ``T`` up to 4096 (and one size
past the smaller chip's memory, refused there, compiled on the larger); a 2-layer
bidirectional stack with dropout; the linen and NNX ``RNN``; the train step of
every shipped config. The full product is thousands of compiles, so by default a
covering set runs (144 cases, each target a share; the rule is in
``cases``): each cell with all its impls on one target, the kernel factors
pairwise (every pair of values of any two factors, the target one of them) plus
the Pallas kernels' forward and backward on every target at the sizes where the
generation's limits bite, the mLSTM kernel's sizes dealt over the targets, each
model and train step on one target.
``RNNJAX_COMPILE_ALL=1`` compiles everything on every target (hours).

Each platform compiles in one subprocess (``worker``; the plugins change what
``import jax`` does in a process), once per run, its tests kept on one xdist
worker (``xdist_group``; ``tests/conftest.py`` makes ``-n 2`` deal by
``loadgroup``). The compilers live in ``.venv-accel`` (made by ``python
scripts/accel_venv.py``, the README's test command) or the Python that
``RNNJAX_ACCEL_PYTHON`` names; without them the tests skip, saying so.

A Pallas case whose plan does not fit the chip (`cases.known_refusal`, from
``rnnjax.kernels.chips``) must be refused by rnnjax before compiling, with its
``ValueError``; every other case must compile.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.accelerators import cases, deviceless

PLATFORMS = ("tpu", "gpu")
CASES = {p: cases.for_platform(p) for p in PLATFORMS}


class Compiled:
    """The results of each platform's subprocess, run on first use."""

    def __init__(self, tmp):
        self.tmp, self.results, self.failures, self.skips = tmp, {}, {}, {}

    def __call__(self, platform: str) -> dict:
        if platform in self.failures:
            pytest.fail(self.failures[platform])
        if platform in self.skips:  # asked once (a subprocess), not once a test
            pytest.skip(self.skips[platform])
        if platform not in self.results:
            self.results[platform] = self._run(platform)
        return self.results[platform]

    def _run(self, platform: str) -> dict:
        absent = deviceless.missing(platform)
        if absent:
            self.skips[platform] = (
                f"deviceless {platform.upper()} compiles need {', '.join(absent)}: "
                f"{deviceless.INSTALL} (or RNNJAX_ACCEL_PYTHON)"
            )
            pytest.skip(self.skips[platform])
        todo = self.tmp / f"{platform}.json"
        out = self.tmp / f"{platform}.jsonl"
        todo.write_text(json.dumps(CASES[platform]))
        cmd = [
            deviceless.python(),
            "-m",
            "tests.accelerators.worker",
            str(todo),
            str(out),
        ]
        proc = subprocess.run(
            cmd,
            cwd=deviceless.ROOT,
            env=deviceless.environment(platform),
            capture_output=True,
            text=True,
            timeout=None if cases.compile_all() else 900,
        )
        lines = out.read_text().splitlines() if out.exists() else []
        results = {}
        for line in lines:
            r = json.loads(line)
            results[r["target"], r["name"]] = r
        if proc.returncode != 0:
            message = (
                f"the {platform} worker exited {proc.returncode} after "
                f"{len(results)} results:\n{proc.stderr[-4000:]}"
            )
            if not results:
                self.failures[platform] = message
                pytest.fail(message)
            results["_crash"] = message
        return results


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    return Compiled(tmp_path_factory.mktemp("deviceless"))


def _params():
    for platform, by_target in CASES.items():
        group = pytest.mark.xdist_group(f"deviceless_{platform}")
        for target, target_cases in by_target.items():
            yield pytest.param(
                target, {"name": "_setup"}, id=f"{target}:device", marks=[group]
            )
            for case in target_cases:
                yield pytest.param(
                    target, case, id=f"{target}:{case['name']}", marks=[group]
                )


@pytest.mark.slow
@pytest.mark.parametrize("target, case", list(_params()))
def test_compiles_for_the_target(compiled, target, case):
    spec = deviceless.TARGETS[target]
    results = compiled(spec.platform)
    result = results.get((target, case["name"]))
    if result is None:
        pytest.fail(f"no result: the worker stopped before it\n{results.get('_crash')}")
    if case["name"] == "_setup":  # the compile-only device is the chip named
        assert result["kind"] == spec.kind
        return
    refusal = cases.known_refusal(target, case)
    if refusal is not None:  # refused by rnnjax's rule, with its clear error
        assert not result["ok"]
        assert f"impl: 'pallas' cannot run this shape: {refusal}" in result["error"]
        return
    assert result["ok"], result["error"]
    if cases.expects_kernel(case):
        assert result["kernels"] > 0, (
            "compiled without its Pallas kernel (interpreted, or fallen back to XLA)"
        )


def test_pairwise_covers_every_pair():
    factors = {"a": [0, 1, 2], "b": ["x", "y"], "c": [True, False], "d": [5, 6, 7]}
    rows = cases.pairwise(factors)
    for f, g in [
        ("a", "b"),
        ("a", "c"),
        ("a", "d"),
        ("b", "c"),
        ("b", "d"),
        ("c", "d"),
    ]:
        seen = {(r[f], r[g]) for r in rows}
        assert seen == {(x, y) for x in factors[f] for y in factors[g]}, (f, g)
    assert len(rows) < 3 * 2 * 2 * 3


def test_every_cell_and_impl_is_compiled_somewhere():
    everywhere = {
        (t, c["name"])
        for by_target in CASES.values()
        for t, cs in by_target.items()
        for c in cs
    }
    for case in cases.cell_cases():
        assert any(name == case["name"] for _, name in everywhere), case["name"]
    for target, spec in deviceless.TARGETS.items():  # the Pallas sweep everywhere
        for H in cases.SWEEP_H[spec.platform]:
            assert any(
                t == target and f"/pallas/H{H}/" in name for t, name in everywhere
            ), (target, H)
