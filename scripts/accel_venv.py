"""Makes ``.venv-accel``: a virtual environment with rnnjax and the compilers for
real TPUs and NVIDIA GPUs (the ``accel`` extra: libtpu, the CUDA plugin, ptxas),
in which ``tests/accelerators`` and ``benchmarks/kernel_table.py`` compile
deviceless.

    python scripts/accel_venv.py        # part of the README's test command

The compilers stay out of the environment you work in: once installed, every JAX
process there probes for a TPU and a GPU and logs about the missing drivers. The
tests find ``.venv-accel`` by themselves (``RNNJAX_ACCEL_PYTHON`` names another
Python). Does nothing when the environment already has what it needs; prints the
path of its Python.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-accel"
PYTHON = VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
NEEDED = "import libtpu, jax_plugins.xla_cuda12, nvidia.cuda_nvcc, rnnjax"


def ready() -> bool:
    """Whether ``.venv-accel`` imports libtpu, the CUDA plugin, ptxas and rnnjax."""
    if not PYTHON.exists():
        return False
    check = subprocess.run([str(PYTHON), "-c", NEEDED], capture_output=True, cwd="/")
    return check.returncode == 0


def main() -> int:
    if not ready():
        venv.create(VENV, with_pip=True, clear=PYTHON.exists())
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "-q", "-e", f"{ROOT}[accel]"],
            check=True,
        )
    print(PYTHON)
    return 0


if __name__ == "__main__":
    sys.exit(main())
