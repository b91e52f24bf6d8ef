"""The CPU benchmark suite, in one command: every workload against every peer.

Workloads: LSTM and GRU at B=32 T=128 I=128 H=256 and at B=64 T=256 I=H=512,
float32. Peers: the rows of ``lstm_cpu.py`` / ``gru_cpu.py`` (Flax linen and NNX,
Equinox, Haiku, Keras 3 on JAX, a hand-written scan, PyTorch), each against
``rnnjax`` with ``impl="auto"``. Printed and written, per workload: median
milliseconds of the forward and the forward+backward, the ratio to rnnjax, the
fraction of the measured matrix-product peak each reaches, and the lower+compile
seconds of each JAX function. The tables replace the block between the
``suite:start`` and ``suite:end`` markers of ``benchmarks/RESULTS.md`` (appended
when absent), and a chart goes to ``benchmarks/suite.png``::

    python benchmarks/suite.py                    # about 10 minutes here
    python benchmarks/suite.py --quick --results /tmp/r.md --chart /tmp/s.png
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gru_cpu
import harness
import jax
import jax.numpy as jnp
import lstm_cpu

HERE = pathlib.Path(__file__).resolve().parent
#: (cell, B, T, I, H); the cell's module gives the contenders and gate count G.
WORKLOADS = [
    ("lstm", 32, 128, 128, 256),
    ("gru", 32, 128, 128, 256),
    ("lstm", 64, 256, 512, 512),
    ("gru", 64, 256, 512, 512),
]
QUICK = [("lstm", 4, 6, 3, 8), ("gru", 4, 6, 3, 8)]
CELLS = {"lstm": (lstm_cpu, 4), "gru": (gru_cpu, 3)}
#: every peer once: rnnjax's "fused"/"scan" rows and bfloat16 are left to the
#: single-cell scripts.
PEERS = "rnnjax auto,flax,equinox,haiku,keras,hand-written,pytorch"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10, help="timed runs (>= 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    p.add_argument("--only", default=PEERS, help="comma-separated name substrings")
    p.add_argument("--results", type=pathlib.Path, default=harness.RESULTS)
    p.add_argument("--chart", type=pathlib.Path, default=HERE / "suite.png")
    p.add_argument("--tune-allocator", action="store_true")
    harness.add_devices_option(p)
    args = p.parse_args()
    if args.repeats < 10:
        p.error("--repeats: at least 10")
    workloads = QUICK if args.quick else WORKLOADS
    harness.use_cpu_devices(p, args.devices, [w[1] for w in workloads])
    if args.tune_allocator and not harness.rnnjax.hardware.tune_host_allocator():
        p.error("--tune-allocator: needs Linux with glibc")
    return args


def matmul_peak(size: int = 2048, repeats: int = 10) -> dict[str, float]:
    """GFLOP/s of a large float32 matrix product, JAX and (if installed) PyTorch."""
    a = jax.random.normal(jax.random.key(0), (size, size))
    mm = jax.jit(jnp.matmul)
    gflop = 2 * size**3 / 1e9
    peaks = {"jax": gflop / harness.median_ms(lambda: mm(a, a), repeats=repeats) * 1e3}
    try:
        import torch
    except ImportError:
        return peaks
    torch.set_num_threads(2)
    t = torch.randn(size, size)
    ms = harness.median_ms(lambda: t @ t, repeats=repeats, block=lambda out: out)
    peaks["pytorch"] = gflop / ms * 1e3
    return peaks


def forward_flops(cell: str, b: int, t: int, i: int, h: int) -> float:
    """Matrix-product FLOPs of one forward pass: ``2 B T (I + H) G H``."""
    return 2 * b * t * (i + h) * CELLS[cell][1] * h


def run_workload(args, cell, b, t, i, h):
    """Contenders of one workload: median ms and compile seconds per name."""
    module = CELLS[cell][0]
    ns = types.SimpleNamespace(
        batch=b,
        time=t,
        input=i,
        hidden=h,
        bf16=False,
        only=args.only,
        devices=args.devices,
    )
    contenders = module.contenders(ns)
    compiled = {c.name: c.compile() for c in contenders if c.compile is not None}
    return harness.measure(contenders, args.repeats, args.warmup), compiled


def table(cell, shape, results, compiled, peak) -> str:
    b, t, i, h = shape
    flops = forward_flops(cell, b, t, i, h)
    ref_f, ref_b = results[harness.REFERENCE]
    lines = [
        f"#### {cell.upper()} B={b} T={t} I={i} H={h}",
        "",
        "| implementation | forward ms | x rnnjax | % peak | fwd+bwd ms | x rnnjax "
        "| % peak | compile fwd s | compile fwd+bwd s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (f, g) in results.items():
        pf = 100 * flops / (f * 1e-3) / (peak * 1e9)
        pb = 100 * 3 * flops / (g * 1e-3) / (peak * 1e9)
        cf, cb = (f"{s:.2f}" for s in compiled.get(name, (float("nan"),) * 2))
        lines.append(
            f"| {name} | {f:.1f} | {f / ref_f:.2f} | {pf:.0f} | {g:.1f} "
            f"| {g / ref_b:.2f} | {pb:.0f} | {cf} | {cb} |"
        )
    return "\n".join(lines)


def chart(path: pathlib.Path, runs) -> None:
    """One panel per workload: forward and forward+backward ms per contender."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(runs), 0.35 * max(len(r[2]) for r in runs) + 1.8))
    for k, (cell, shape, results) in enumerate(runs):
        ax = fig.add_subplot(1, len(runs), k + 1)
        names = list(results)[::-1]
        y = range(len(names))
        ax.barh([v + 0.2 for v in y], [results[n][0] for n in names], 0.4, label="fwd")
        ax.barh(
            [v - 0.2 for v in y], [results[n][1] for n in names], 0.4, label="fwd+bwd"
        )
        ax.set_yticks(list(y), names, fontsize=7)
        ax.set_xlabel("median ms (lower is better)")
        ax.set_title(
            f"{cell.upper()} B={shape[0]} T={shape[1]} I={shape[2]} H={shape[3]}",
            fontsize=9,
        )
        ax.grid(alpha=0.3, axis="x")
    fig.axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    args = parse_args()
    started = time.time()
    peaks = matmul_peak(256 if args.quick else 2048)
    peak = max(peaks.values())
    runs, tables = [], []
    for cell, *shape in QUICK if args.quick else WORKLOADS:
        results, compiled = run_workload(args, cell, *shape)
        tables.append(table(cell, shape, results, compiled, peak))
        runs.append((cell, shape, results))
        print(tables[-1], "\n", flush=True)
    cmd = "python benchmarks/suite.py" + (" --quick" if args.quick else "")
    cmd += f" --repeats {args.repeats}" + (
        " --tune-allocator" if args.tune_allocator else ""
    )
    cmd += f" --devices {args.devices}" if args.devices > 1 else ""
    peak_line = ", ".join(f"{k} {v:.0f}" for k, v in peaks.items())
    block = "\n".join(
        [
            "### The benchmark suite (generated by `benchmarks/suite.py`)",
            "",
            f'Median ms of {args.repeats} runs; "x rnnjax": time over rnnjax '
            '`impl="auto"`\'s; "% peak": matrix-product FLOPs (forward '
            "`2 B T (I + H) G H`, forward+backward three times that) per second, "
            f"over the measured float32 product peak ({peak_line} GFLOP/s, "
            f"{'256' if args.quick else '2048'}^3; the larger is used); compile: "
            "lower + XLA compile of a fresh `jax.jit`, seconds. Chart: "
            f"`{args.chart.name}`.",
            "",
            *[t + "\n" for t in tables],
            f"- command: `{cmd}` ({(time.time() - started) / 60:.1f} min)",
            harness.environment(),
        ]
    )
    harness.write_block(args.results, "suite", block)
    chart(args.chart, runs)
    print(f"wrote {args.results} and {args.chart}")


if __name__ == "__main__":
    main()
