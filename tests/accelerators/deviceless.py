"""Compiling for a real TPU or NVIDIA GPU on a machine that has neither
(deviceless ahead-of-time compilation; ``../shared/ACCELERATORS.md``).

A target is a compile-only device: a TPU topology described by libtpu (``jax[tpu]``)
or a GPU described by a ``GpuTargetConfig`` text file in ``benchmarks/targets/``
(the CUDA PJRT plugin, ``ptxas`` from ``nvidia-cuda-nvcc-cu12``). The real compilers run
(XLA, Mosaic TPU, Triton, ptxas); nothing executes, so a compile proves that the
program lowers, fits the chip's memories and holds the kernels it should, never
its numbers or its speed.

The plugins change what ``import jax`` does in a process that has them (it probes
for the accelerator and logs to stderr), so every target compiles in a process of
its own started with `environment` (`worker`: one for the TPUs, one for
the GPUs); this module imports JAX
lazily and is safe to import anywhere.

`loops` reads a compiled program's text: the kernels inside the time loop's
``while`` body and the bytes each of them reads and writes (used by
``benchmarks/kernel_table.py``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@dataclasses.dataclass(frozen=True)
class Target:
    """One compile-only device.

    Attributes:
      name: the test id (``tpu_v5e``, ``gpu_h200``, ...).
      platform: ``"tpu"`` or ``"gpu"``.
      topology: the TPU topology (``"v5e:2x2"``), or the GPU target file in
        ``benchmarks/targets/`` (``"h200.pbtxt"``).
      label: what the tables call it.
      kind: the compile-only device's ``device_kind``, and for a GPU its compute
        capability (``"NVIDIA H200 9.0"``).
      chip: the chip the Pallas kernels are sized for,
        ``Pallas(target=chip)`` (``rnnjax.kernels.chips``).
    """

    name: str
    platform: str
    topology: str
    label: str
    kind: str
    chip: str


TARGETS = {
    t.name: t
    for t in (
        Target("tpu_v4", "tpu", "v4:2x2x1", "TPU v4", "TPU v4", "v4"),
        Target("tpu_v5e", "tpu", "v5e:2x2", "TPU v5e", "TPU v5 lite", "v5e"),
        Target("tpu_v5p", "tpu", "v5p:2x2x1", "TPU v5p", "TPU v5", "v5p"),
        # v6e:1x1 is refused (not a multiple of the 2x2x1 chips of a host); 2x2 works.
        Target("tpu_v6e", "tpu", "v6e:2x2", "TPU v6e", "TPU v6 lite", "v6e"),
        Target(
            "gpu_a100",
            "gpu",
            "a100.pbtxt",
            "A100 (sm_80)",
            "NVIDIA A100-SXM4-80GB 8.0",
            "sm_80",
        ),
        Target(
            "gpu_h200", "gpu", "h200.pbtxt", "H200 (sm_90)", "NVIDIA H200 9.0", "sm_90"
        ),
    )
}

# The packages each platform needs, and the extra that installs them.
PACKAGES = {
    "tpu": ("libtpu",),
    # jax-cuda12-pjrt installs jax_plugins.xla_cuda12, jax-cuda12-plugin
    # jax_cuda12_plugin, nvidia-cuda-nvcc-cu12 (ptxas) nvidia.cuda_nvcc.
    "gpu": ("jax_plugins.xla_cuda12", "jax_cuda12_plugin", "nvidia.cuda_nvcc"),
}
INSTALL = "python scripts/accel_venv.py"
ACCEL_VENV = ROOT / ".venv-accel" / "bin" / "python"


def python() -> str:
    """The Python that compiles: ``RNNJAX_ACCEL_PYTHON``, else the one of
    ``.venv-accel`` (``scripts/accel_venv.py``), else this one."""
    named = os.environ.get("RNNJAX_ACCEL_PYTHON")
    if named:
        return named
    return str(ACCEL_VENV) if ACCEL_VENV.exists() else sys.executable


def missing(platform: str) -> list[str]:
    """The packages ``platform``'s compiler needs that `python` lacks (asked of
    that Python itself: it may be another environment's)."""
    check = (
        "import importlib.util as u, sys\n"
        "for m in sys.argv[1:]:\n"
        "    try:\n"
        "        found = u.find_spec(m) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        found = False\n"
        "    if not found:\n"
        "        print(m)\n"
    )
    run = subprocess.run(
        [python(), "-c", check, *PACKAGES[platform]], capture_output=True, text=True
    )
    if run.returncode:
        return [f"a working {python()}"]
    return run.stdout.split()


def environment(platform: str, base=None) -> dict[str, str]:
    """The environment of a process that compiles for ``platform``'s targets: JAX
    stays on the CPU (``JAX_PLATFORMS=cpu``), libtpu is told it is on a TPU host
    (else it logs errors about the missing TPU metadata; any TPU type will do, the
    topologies name the chips), the repository is importable, and the test
    suite's persistent compilation cache is left out."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key.startswith("JAX_COMPILATION_CACHE") or key.startswith(
            "JAX_PERSISTENT_CACHE"
        ):
            del env[key]
    env["JAX_PLATFORMS"] = "cpu"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    if platform == "tpu":
        env["TPU_ACCELERATOR_TYPE"] = "v5litepod-4"
        env["TPU_WORKER_HOSTNAMES"] = "localhost"
        # No chip to own: two compiling processes (two test runs) may both load
        # libtpu, which otherwise takes /tmp/libtpu_lockfile for one process.
        env["ALLOW_MULTIPLE_LIBTPU_LOAD"] = "1"
    return env


def gpu_config(target: Target) -> str:
    """The ``GpuTargetConfig`` text of a GPU target."""
    return (ROOT / "benchmarks" / "targets" / target.topology).read_text()


def device(target: Target):
    """The first compile-only device of ``target`` (in a process started with
    `environment`)."""
    from jax.experimental import topologies

    if target.platform == "tpu":
        topo = topologies.get_topology_desc(target.topology, "tpu")
    else:
        topo = topologies.get_topology_desc(
            "name", "cuda", target_config=gpu_config(target), topology="1x1x1"
        )
    return topo.devices[0]


def describe(dev) -> str:
    """``dev``'s kind, with its compute capability on a GPU (`Target.kind`)."""
    capability = getattr(dev, "compute_capability", None)
    return dev.device_kind + (f" {capability}" if capability else "")


def abstract(tree, dev):
    """``tree``'s arrays (or shape structs) as ``jax.ShapeDtypeStruct`` placed on
    ``dev``."""
    import jax

    sharding = jax.sharding.SingleDeviceSharding(dev)
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree
    )


# The custom calls that show a Pallas kernel in a compiled program.
KERNEL_MARKS = {
    "tpu": ("tpu_custom_call",),
    "gpu": ("__gpu$xla.gpu.triton", "mosaic_gpu"),
}


def kernel_calls(text: str, platform: str) -> int:
    """How many Pallas kernels (``tpu_custom_call`` on TPU; the Triton or Mosaic
    GPU custom call on GPU) the compiled program ``text`` holds."""
    return sum(
        len(re.findall(rf'custom_call_target="{re.escape(m)}', text))
        for m in KERNEL_MARKS[platform]
    )


# ------------------------------------------------------------------ per-step program

_BYTES = {
    "pred": 1,
    "s8": 1,
    "u8": 1,
    "s16": 2,
    "u16": 2,
    "f16": 2,
    "bf16": 2,
    "s32": 4,
    "u32": 4,
    "f32": 4,
    "s64": 8,
    "u64": 8,
    "f64": 8,
}
_SHAPE = re.compile(r"\b(" + "|".join(_BYTES) + r")\[([0-9,]*)\]")
# An integer or boolean result of at most a few elements: index bookkeeping (the
# loop counter, a dynamic-slice offset), on TPU run by the scalar unit.
_INDEX = re.compile(r"(pred|s\d+|u\d+)\[(|1|2|3|4)\](\{[^}]*\})?")
_INSTR = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (.*?) ([\w\-]+)\((.*)$")
_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$")
# Instructions that launch no kernel of their own.
_FREE = {
    "parameter",
    "get-tuple-element",
    "tuple",
    "constant",
    "bitcast",
    "after-all",
    "partition-id",
    "replica-id",
    "opt-barrier",
    "add-dependency",
}


_SLICES = ("dynamic-slice", "slice")


def _nbytes(text: str) -> int:
    return sum(
        _BYTES[t] * math.prod(int(d) for d in dims.split(",") if d)
        for t, dims in _SHAPE.findall(text)
    )


def _computations(text: str) -> dict[str, list[tuple[str, str, str, str]]]:
    """``{computation: [(name, result type, opcode, rest of line)]}``."""
    comps, current = {}, None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header and " = " not in line.split("{")[0]:
            current = comps.setdefault(header.group(1), [])
            continue
        m = _INSTR.match(line)
        if m and current is not None:
            current.append(m.groups())
    return comps


def _operands(rest: str) -> list[str]:
    """The operands of an instruction (``f32[8,64]{1,0} %x`` on the CPU and GPU,
    ``%x`` on TPU), up to the closing parenthesis of its operand list."""
    depth, out, start = 0, [], 0
    for i, ch in enumerate(rest):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                out.append(rest[start:i])
                break
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(rest[start:i])
            start = i + 1
    return [o.strip() for o in out if o.strip()]


def _ref(operand: str) -> str:
    return operand.split()[-1].lstrip("%") if operand else ""


def _operand_bytes(operand: str, types: dict[str, str]) -> int:
    """An operand's size: its printed shape, else its instruction's result type."""
    shape = operand.rsplit(" ", 1)[0] if " " in operand else ""
    return _nbytes(shape) if shape else _nbytes(types.get(_ref(operand), ""))


def _written(instr, by_name, types) -> int:
    """Bytes an instruction's result writes: an in-place ``dynamic-update-slice``
    (alone or in a tuple) at its update's size."""
    _, result, op, rest = instr
    if op == "dynamic-update-slice":
        return _operand_bytes(_operands(rest)[1], types)
    if op == "tuple":
        return sum(
            _written(by_name[_ref(o)], by_name, types)
            if _ref(o) in by_name
            else _operand_bytes(o, types)
            for o in _operands(rest)
        )
    return _nbytes(result)


def _fusion_traffic(comps, called: str) -> tuple[int, int]:
    """Bytes a fusion reads and writes: each parameter at its size, or at the
    slice's size when the fusion only slices it; the buffer a
    ``dynamic-update-slice`` updates in place not read, and written at the
    update's size."""
    body = comps.get(called, [])
    types = {b[0]: b[1] for b in body}
    by_name = {b[0]: b for b in body}
    users: dict[str, list] = {b[0]: [] for b in body if b[2] == "parameter"}
    for instr in body:
        for i, operand in enumerate(_operands(instr[3])):
            if _ref(operand) in users:
                users[_ref(operand)].append((instr[2], i, instr[1]))
    read = 0
    for p, uses in users.items():
        if any(op == "dynamic-update-slice" and i == 0 for op, i, _ in uses):
            continue  # updated in place
        if uses and all(op in _SLICES and i == 0 for op, i, _ in uses):
            read += sum(_nbytes(r) for _, _, r in uses)
        else:
            read += _nbytes(types[p])
    written = _written(body[-1], by_name, types) if body else 0
    return read, written


@dataclasses.dataclass(frozen=True)
class StepProgram:
    """What one iteration of a compiled program's time loop does.

    Attributes:
      kernels: the kernels it launches (fusions, library calls such as cuBLAS,
        custom calls such as a Pallas kernel, unfused operations), by opcode.
      read: bytes those kernels read (operands; an operand only sliced at the
        slice's size).
      written: bytes they write (results; an in-place update at its size).
    """

    kernels: dict[str, int]
    read: int
    written: int

    @property
    def launches(self) -> int:
        return sum(self.kernels.values())


def loops(text: str) -> list[StepProgram]:
    """One `StepProgram` per outermost ``while`` loop of the compiled program
    ``text`` (``compiled.as_text()``), in the order the program lists them (a
    gradient's forward and backward time loops); empty without a loop (a Pallas
    kernel that walks time itself). A loop nested in one counts as one launch."""
    comps = _computations(text)
    bodies = []
    for body in comps.values():
        for _, _, op, rest in body:
            m = re.search(r"body=%?([\w.\-]+)", rest) if op == "while" else None
            if m and m.group(1) in comps and m.group(1) not in bodies:
                bodies.append(m.group(1))
    nested = {
        m.group(1)
        for n in bodies
        for _, _, op, rest in comps[n]
        if op == "while" and (m := re.search(r"body=%?([\w.\-]+)", rest))
    }
    return [_step(comps, n) for n in bodies if n not in nested]


def _step(comps, body: str) -> StepProgram:
    instrs = comps[body]
    types = {b[0]: b[1] for b in instrs}
    by_name = {b[0]: b for b in instrs}
    kernels: dict[str, int] = {}
    read = written = 0
    for instr in instrs:
        _, result, op, rest = instr
        if op in _FREE or (op != "fusion" and _INDEX.fullmatch(result.strip())):
            continue  # no kernel, or index bookkeeping
        operands = _operands(rest)
        if op == "fusion":
            m = re.search(r"calls=%?([\w.\-]+)", rest)
            label = "fusion"
            r, w = _fusion_traffic(comps, m.group(1) if m else "")
        else:
            m = re.search(r'custom_call_target="([^"]+)"', rest)
            label = f"custom-call {m.group(1)}" if m else op
            w = _written(instr, by_name, types)
            if op == "dynamic-update-slice":
                r = w
            elif op in _SLICES:
                r = _nbytes(result)
            else:
                r = sum(_operand_bytes(o, types) for o in operands)
        kernels[label] = kernels.get(label, 0) + 1
        read += r
        written += w
    return StepProgram(kernels, read, written)
