"""Explicit sharding (``jax.make_mesh``'s default axis type): unroll, stacks and
the linen module on a batch sharded over 4 forced CPU devices equal the unsharded
calls, values and gradients, and keep the batch sharded. Runs in a subprocess
(``tests/_explicit_sharding_worker.py``): the device count is fixed at start-up."""

import os
import pathlib
import subprocess
import sys

from tests.conftest import FAST_COMPILE

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_explicitly_sharded_batch_matches_unsharded():
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        **FAST_COMPILE,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests._explicit_sharding_worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(done.stdout, done.stderr[-4000:])
    assert done.returncode == 0
    assert done.stdout.count("ok ") == 26  # every case ran
