"""The per-step program of each LSTM implementation, read from its compiled
program: for TPU v5e and the H200 compiled without a device (deviceless, as
``tests/accelerators``), and for this CPU. For each target, ``impl`` (``scan``,
``fused``, ``pallas``, and Flax's ``nn.OptimizedLSTMCell`` under ``nn.RNN`` as the
reference) and two sizes: the kernels launched per time step inside each time
loop (the ``while`` body of the compiled HLO: fusions, library and custom calls,
unfused operations), the bytes those kernels read and write per step (from the
HLO shapes: a model of the traffic, not a measurement), and the executable's
temporary memory (``compiled.memory_analysis()``). Nothing runs, so nothing here
is a timing; the one time column is a model (bytes over the chip's published
memory bandwidth).

    python benchmarks/kernel_table.py            # print the table
    python benchmarks/kernel_table.py --write    # and rewrite docs/kernels.md's block
    python benchmarks/kernel_table.py --quick    # one small size (the smoke test)

TPU and GPU rows need ``.venv-accel`` (``python scripts/accel_venv.py``: libtpu,
the CUDA plugin); without them those rows are left out, saying so. Shapes: ``B``
batch, ``T`` time, ``I`` input, ``H`` hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/

import harness

from tests.accelerators import deviceless

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "kernels.md"
SIZES = [(32, 256), (64, 1024)]  # (B, H), with T = 128, I = H
QUICK_SIZES = [(8, 64)]
T = 128
IMPLS = ("scan", "fused", "pallas", "flax")
TARGETS = {"cpu": ("cpu",), "tpu": ("tpu_v5e",), "gpu": ("gpu_h200",)}
# Published memory bandwidth, bytes/s (the H200's from its target description).
BANDWIDTH = {"tpu_v5e": 819e9, "gpu_h200": 4.8e12}


def _program(impl, platform, B, H, mode):
    """``(function, arguments as shape structs)``: the LSTM over ``xs (B, T, H)``,
    forward or the gradient of a sum of its outputs."""
    import jax
    import jax.numpy as jnp

    xs = jax.ShapeDtypeStruct((B, T, H), jnp.float32)
    if impl == "flax":
        from flax import linen as nn

        module = nn.RNN(nn.OptimizedLSTMCell(H))
        params = jax.eval_shape(module.init, jax.random.key(0), xs)
        forward = module.apply
    else:
        import rnnjax
        from rnnjax.kernels import Pallas

        cell = rnnjax.lstm(H)
        params = jax.eval_shape(lambda: cell.init(jax.random.key(0), H))
        choice = impl
        if impl == "pallas":
            choice = Pallas(flavour=platform, interpret=False)
        run = harness.unroll_fn(cell, impl=choice)
        forward = run
    if mode == "fwd":
        return forward, (params, xs)
    return jax.grad(lambda p, x: forward(p, x).sum(), argnums=(0, 1)), (params, xs)


def collect(platform: str, sizes, out: pathlib.Path) -> None:
    """Compiles every row of ``platform``'s targets and writes them as JSON."""
    import jax

    rows = []
    for name in TARGETS[platform]:
        if platform == "cpu":
            dev, label = jax.devices("cpu")[0], "this CPU"
        else:
            target = deviceless.TARGETS[name]
            dev, label = deviceless.device(target), target.label
        for B, H in sizes:
            for impl in IMPLS:
                if impl == "pallas" and platform == "cpu":
                    continue  # Pallas' interpreter there: not a kernel
                for mode in ("fwd", "grad"):
                    f, args = _program(impl, platform, B, H, mode)
                    row = {"target": name, "label": label, "impl": impl, "B": B}
                    row.update(H=H, mode=mode)
                    try:
                        lowered = jax.jit(f).lower(*deviceless.abstract(args, dev))
                        compiled = lowered.compile()
                    except Exception as e:  # a refusal is a row too
                        row["error"] = f"{type(e).__name__}: {str(e)[:160]}"
                        rows.append(row)
                        continue
                    text = compiled.as_text()
                    memory = compiled.memory_analysis()
                    row["temp"] = int(memory.temp_size_in_bytes) if memory else None
                    row["kernels"] = (
                        deviceless.kernel_calls(text, platform)
                        if platform != "cpu"
                        else 0
                    )
                    row["loops"] = [
                        {"kernels": s.kernels, "read": s.read, "written": s.written}
                        for s in deviceless.loops(text)
                    ]
                    rows.append(row)
                    print(name, impl, B, H, mode, file=sys.stderr, flush=True)
    out.write_text(json.dumps(rows))


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _kinds(kernels: dict) -> str:
    short = {"custom-call __gpu$xla.gpu.triton": "Triton", "fusion": "fusion"}
    parts = []
    for k, n in sorted(kernels.items(), key=lambda kv: -kv[1]):
        name = short.get(k, k.replace("custom-call ", ""))
        parts.append(f"{n} {name}")
    return ", ".join(parts)


def _row(r) -> str:
    impl = "Flax OptimizedLSTMCell" if r["impl"] == "flax" else f"`{r['impl']}`"
    head = f"| {r['label']} | {impl} | {r['B']}, {r['H']} | {r['mode']} |"
    if "error" in r:
        return head + f" refused: {r['error']} | | | | |"
    loops = r["loops"]
    if not loops:
        what = f"no time loop: {r['kernels']} Pallas kernel(s) walk all {T} steps"
        return head + f" {what} | | | {_size(r['temp'] or 0)} | |"
    launches = " / ".join(str(sum(s["kernels"].values())) for s in loops)
    kinds = " / ".join(_kinds(s["kernels"]) for s in loops)
    traffic = " / ".join(f"{_size(s['read'])}, {_size(s['written'])}" for s in loops)
    bandwidth = BANDWIDTH.get(r["target"])
    model = ""
    if bandwidth:
        model = " / ".join(
            f"{(s['read'] + s['written']) / bandwidth * 1e6:.2f}" for s in loops
        )
    return (
        head
        + f" {launches} | {kinds} | {traffic} | {_size(r['temp'] or 0)} |"
        + (f" {model} |")
    )


def table(rows, skipped) -> str:
    lines = [
        "| target | impl | B, H | pass | kernels per step | which | read, written "
        "per step | temp memory | HBM-bound us per step (model) |",
        "|---|---|---|---|---:|---|---|---:|---:|",
    ]
    lines += [_row(r) for r in rows]
    notes = [
        "",
        f"T = {T}, I = H, float32. A gradient has two time loops, forward / "
        "backward, given in that order. Read and written: the operands and "
        "results of the loop's kernels, a slice at its size (a model of the "
        "traffic from the program's shapes; caches not counted). The last "
        "column is that traffic over the chip's published memory bandwidth "
        "(TPU v5e 819 GB/s, H200 4.8 TB/s): a model, not a measurement; nothing "
        "here ran.",
    ]
    notes += [f"- not compiled: {s}" for s in skipped]
    return "\n".join(lines + notes)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"rewrite the block of {DOC}")
    p.add_argument("--quick", action="store_true", help="one small size")
    p.add_argument("--doc", type=pathlib.Path, default=DOC)
    p.add_argument("--collect", choices=tuple(TARGETS), help=argparse.SUPPRESS)
    p.add_argument("--out", type=pathlib.Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    sizes = QUICK_SIZES if args.quick else SIZES
    if args.collect:
        collect(args.collect, sizes, args.out)
        return
    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for platform in TARGETS:
            absent = deviceless.missing(platform) if platform != "cpu" else []
            if absent:
                skipped.append(f"{platform.upper()} (needs {', '.join(absent)})")
                continue
            out = pathlib.Path(tmp) / f"{platform}.json"
            python = deviceless.python() if platform != "cpu" else sys.executable
            cmd = [python, __file__, "--collect", platform, "--out", str(out)]
            cmd += ["--quick"] if args.quick else []
            env = deviceless.environment(platform)
            subprocess.run(cmd, env=env, check=True, cwd=ROOT)
            rows += json.loads(out.read_text())
    text = table(rows, skipped)
    print(text)
    if args.write:
        command = "python benchmarks/kernel_table.py --write"
        command += " --quick" if args.quick else ""
        block = [
            "### The per-step program (generated by `benchmarks/kernel_table.py`)",
            "",
            text,
            "",
            f"- command: `{command}`",
            harness.environment(),
        ]
        harness.write_block(args.doc, "kernel_table", "\n".join(block))
        print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
