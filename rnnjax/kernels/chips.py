"""The on-chip memories the Pallas kernels are sized for, per chip generation.

A design holds ``W_h`` on chip only where it fits: the GPU ``sequence`` design in
one block's shared memory (the opt-in maximum per block: 163 KiB on an A100, 227
KiB on an H100 / H200), the TPU kernel in a core's VMEM (16 MiB on v4, 128 MiB on
v5e and v6e, 64 MiB on v5p; JAX's own table, ``pltpu.get_tpu_info``). Which chip:
``Pallas(target=...)`` names one (for a deviceless compile or an export); without
it, the local device's when JAX sees one of the flavour, else the smallest of the
flavour (A100, v4), so that what compiles here also compiles there.

``python -m rnnjax.kernels.chips`` prints the largest ``H`` each design holds per
chip and dtype (the table in ``docs/kernels.md``).
"""

from __future__ import annotations

import dataclasses
import functools

import jax

_KiB, _MiB = 1 << 10, 1 << 20


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator generation.

    Attributes:
      name: the target's name in ``Pallas(target=...)``.
      flavour: ``"gpu"`` or ``"tpu"``.
      label: what the docs call it.
      memory: bytes on chip for one kernel program: a GPU block's opt-in shared
        memory, a TPU core's VMEM.
    """

    name: str
    flavour: str
    label: str
    memory: int


CHIPS = {
    c.name: c
    for c in (
        Chip("sm_80", "gpu", "A100 (sm_80)", 163 * _KiB),
        Chip("sm_86", "gpu", "RTX 30xx, A40 (sm_86)", 99 * _KiB),
        Chip("sm_89", "gpu", "RTX 40xx, L4, L40 (sm_89)", 99 * _KiB),
        Chip("sm_90", "gpu", "H100, H200 (sm_90)", 227 * _KiB),
        Chip("v4", "tpu", "TPU v4", 16 * _MiB),
        Chip("v5e", "tpu", "TPU v5e", 128 * _MiB),
        Chip("v5p", "tpu", "TPU v5p", 64 * _MiB),
        Chip("v6e", "tpu", "TPU v6e", 128 * _MiB),
    )
}
DEFAULTS = {"gpu": "sm_80", "tpu": "v4"}  # the smallest data-centre chip of each


def check_target(target) -> None:
    """Raises ValueError naming ``target`` unless it is None or a known chip."""
    if target is not None and target not in CHIPS:
        raise ValueError(
            f"target: expected one of {tuple(CHIPS)} or None, got {target!r}"
        )


def chip(flavour: str, target: str | None = None) -> Chip:
    """The chip a ``flavour`` kernel is sized for: ``target`` when named (it must be
    of that flavour), else the local device's, else the flavour's default."""
    if target is not None:
        check_target(target)
        found = CHIPS[target]
        if found.flavour != flavour:
            raise ValueError(
                f"target: {target!r} is a {found.flavour.upper()}, not a "
                f"{flavour.upper()} (Pallas flavour {flavour!r})"
            )
        return found
    return _local(flavour) or CHIPS[DEFAULTS[flavour]]


def _local(flavour: str) -> Chip | None:
    """The local device's chip when JAX's default backend is of ``flavour``."""
    backend = jax.default_backend()
    if flavour == "gpu" and backend == "gpu":
        capability = getattr(jax.devices()[0], "compute_capability", "")
        return CHIPS.get("sm_" + str(capability).replace(".", ""))
    if flavour == "tpu" and backend == "tpu":
        from jax.experimental.pallas import tpu as pltpu

        try:
            vmem = int(pltpu.get_tpu_info().vmem_capacity_bytes)
        except Exception:  # an unknown chip: the default's
            return None
        return Chip("local", "tpu", jax.devices()[0].device_kind, vmem)
    return None


def _holds(fits, kind, dtype, chip, H) -> bool:
    return fits(kind, H, dtype, chip)


def _largest_hidden(holds) -> int:
    """The largest ``H`` (a multiple of 8, up to 4096) for which ``holds(H)``."""
    return max((H for H in range(8, 4097, 8) if holds(H)), default=0)


def capacity_table() -> str:
    """Markdown: per chip, dtype and cell, the largest ``H`` that the GPU
    ``sequence`` design (else ``stepwise``, any H) or the TPU kernel holds."""
    import jax.numpy as jnp

    from rnnjax.kernels import pallas_gpu, pallas_tpu

    lines = [
        "| chip | on-chip memory | LSTM float32 | LSTM bfloat16 | GRU float32 "
        "| GRU bfloat16 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in CHIPS.values():
        fits = pallas_gpu.sequence_fits if c.flavour == "gpu" else pallas_tpu.fits
        cells = []
        for kind in ("lstm", "gru"):
            for dtype in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)):
                holds = functools.partial(_holds, fits, kind, dtype, c)
                cells.append(str(_largest_hidden(holds)))
        size = (
            f"{c.memory // _KiB} KiB" if c.memory < _MiB else f"{c.memory // _MiB} MiB"
        )
        lines.append(f"| {c.label} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(capacity_table())
