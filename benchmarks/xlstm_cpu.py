"""xLSTM on this CPU: rnnjax's mLSTM core and sLSTM against the ``xlstm`` package's
pure-PyTorch paths, and the mLSTM's peak memory against T. One process::

    python benchmarks/xlstm_cpu.py --repeats 5        # about 15 minutes here
    python benchmarks/xlstm_cpu.py --quick --out /tmp/x.md --results /tmp/R.md

1. The mLSTM core (``rnnjax.kernels.mlstm_chunkwise / mlstm_parallel /
   mlstm_scan``) at B, NH, DH fixed and T in ``--times``, against
   ``xlstm.blocks.mlstm.backends.parallel_stabilized_simple`` and
   ``chunkwise_simple`` and ``mlstm_kernels``' pure-torch chunkwise kernels
   (``native_autograd``, ``native_custbw``): forward (``h``) and forward+backward
   (the gradient of ``sum(h)`` w.r.t. q, k, v and both gates' pre-activations),
   medians, ratios over rnnjax chunkwise (chunk 64). The quadratic forms run up to
   ``--max-parallel``, the scan up to ``--max-scan``; every row also gives the
   largest ``|h - h_rnnjax chunkwise|`` (the same computation: the package's
   functions scale q or k by ``1/sqrt(DH)`` themselves, rnnjax takes k scaled).
2. Peak memory of the forward+backward against T: rnnjax from the compiled
   executable's own analysis (arguments + outputs + temporaries, as
   ``memory.py``); both libraries also as the rise of the peak resident set
   (``VmHWM`` after ``/proc/self/clear_refs``) of one call in a fresh process with
   glibc's mmap threshold fixed at 128 KiB, so that freed large buffers leave
   the resident set.
3. The sLSTM: ``rnnjax.slstm(H, num_heads=NH)`` through ``rnnjax.unroll`` with
   ``impl="auto"`` (the fused form) and ``"scan"``, against the package's
   ``sLSTMLayer`` with ``backend="vanilla"`` (the same computation: the input
   projection, the head-wise recurrence; forward and the gradient w.r.t. the
   parameters and the inputs).

Writes the full tables to ``--out`` (``benchmarks/results/xlstm_cpu.md``) and the
headline ratios into the ``xlstm_cpu`` block of ``--results``
(``benchmarks/RESULTS.md``). PyTorch runs eager with 2 threads, timed after the
JAX rows (``harness.measure``).
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness
import jax
import jax.numpy as jnp
import numpy as np

import rnnjax
from rnnjax import kernels

HERE = pathlib.Path(__file__).resolve().parent
MIB = 2**20
REF = "rnnjax chunkwise 64"
FULL = dict(times=[256, 1024, 4096, 16384], batch=1, heads=4, head_size=64)
QUICK = dict(times=[16, 32], batch=1, heads=2, head_size=8)


# ------------------------------------------------------------------ inputs


def mlstm_inputs(args, steps, seed=0):
    """Float32 NumPy ``q, k, v (B, NH, T, DH)`` (k unscaled), ``i_pre, f_pre (B,
    NH, T)`` (the forget gate biased towards remembering, as xLSTM's init)."""
    rng = np.random.default_rng(seed)
    shape = (args.batch, args.heads, steps)
    q, k, v = (rng.standard_normal((*shape, args.head_size), np.float32) for _ in "qkv")
    i_pre = rng.standard_normal(shape, np.float32)
    f_pre = (3.0 + rng.standard_normal(shape)).astype(np.float32)
    return q, k, v, i_pre, f_pre


# ------------------------------------------------------------------ rnnjax rows


def rnnjax_core(form, chunk_size=None):
    """``f(q, k_scaled, v, i_pre, f_pre) -> h`` of one form, from the zero carry."""

    def f(q, k, v, i_pre, f_pre):
        b, nh, _, dh = q.shape
        carry = rnnjax.MLSTMState(
            jnp.zeros((b, nh, dh, dh)), jnp.zeros((b, nh, dh)), jnp.zeros((b, nh))
        )
        options = {"chunk_size": chunk_size} if form == "chunkwise" else {}
        core = getattr(kernels, f"mlstm_{form}")
        return core(q, k, v, i_pre, f_pre, carry, **options)[1]

    return f


def jax_args(inputs):
    q, k, v, i_pre, f_pre = inputs
    scaled = k / np.float32(math.sqrt(q.shape[-1]))
    return tuple(map(jnp.asarray, (q, scaled, v, i_pre, f_pre)))


def jax_programs(f):
    """The jitted forward and gradient of ``sum(h)`` w.r.t. all five inputs."""
    loss = lambda *a: jnp.sum(f(*a))
    return jax.jit(f), jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4)))


def row(name, threads, f, inputs) -> harness.Contender:
    """A JAX row (``threads`` None) or a PyTorch one."""
    if threads is None:
        return jax_row(name, f, inputs)
    return torch_row(name, f, inputs, threads)


def jax_row(name, f, inputs) -> harness.Contender:
    args = jax_args(inputs)
    fwd, bwd = jax_programs(f)
    return harness.Contender(name, lambda: fwd(*args), lambda: bwd(*args))


# ------------------------------------------------------------------ torch rows


def torch_core(name, chunk_size=None):
    """``f(q, k, v, i_pre, f_pre) -> h`` of a package function (k unscaled: each
    scales by ``1/sqrt(DH)`` itself). The package is imported at the first call."""

    def f(q, k, v, i, f):
        from mlstm_kernels.torch.chunkwise import native
        from xlstm.blocks.mlstm import backends

        if name == "parallel_stabilized_simple":
            gates = i[..., None], f[..., None]
            return backends.parallel_stabilized_simple(q, k, v, *gates)
        if name == "chunkwise_simple":
            return backends.chunkwise_simple(q, k, v, i, f, chunk_size=chunk_size)
        kernel = getattr(native, f"mlstm_chunkwise__{name}")
        return kernel(q, k, v, i, f, chunk_size=chunk_size)

    return f


def torch_row(name, f, inputs, threads=2) -> harness.Contender:
    """A package function as a contender: eager, ``threads`` intra-op threads
    (set at every call: the torch rows of one table interleave)."""
    import torch

    args = [torch.from_numpy(np.ascontiguousarray(a)) for a in inputs]

    def forward():
        torch.set_num_threads(threads)
        with torch.no_grad():
            return f(*args)

    def backward():
        torch.set_num_threads(threads)
        leaves = [a.clone().requires_grad_(True) for a in args]
        f(*leaves).sum().backward()
        return [a.grad for a in leaves]

    return harness.Contender(name, forward, backward, block=lambda o: o, group="torch")


def threaded(name, threads):
    """The row name of a PyTorch contender run with ``threads`` threads."""
    return name if threads == 2 else f"{name} ({threads} thread{'s' * (threads > 1)})"


def mlstm_rows(args, steps):
    """``([(name, threads, f)], {name: why skipped})`` at ``steps``: ``threads``
    None for a JAX row, PyTorch's thread count for a package row; the first row
    is the reference, rnnjax chunkwise."""
    c = args.chunk
    rows = [(f"rnnjax chunkwise {c}", None, rnnjax_core("chunkwise", c))]
    if not args.quick:
        rows.append(
            (f"rnnjax chunkwise {2 * c}", None, rnnjax_core("chunkwise", 2 * c))
        )
    skipped = {}
    quadratic = "(B, NH, T, T) float32 matrices: several GiB"
    if steps <= args.max_parallel:
        rows.append(("rnnjax parallel", None, rnnjax_core("parallel")))
    else:
        skipped["rnnjax parallel"] = quadratic
    if steps <= args.max_scan:
        rows.append(("rnnjax scan", None, rnnjax_core("scan")))
    else:
        skipped["rnnjax scan"] = f"T > {args.max_scan}: T sequential steps, slow"
    torch_rows = [(f"xlstm chunkwise_simple {c}", torch_core("chunkwise_simple", c))]
    for kernel in ("native_autograd", "native_custbw"):
        torch_rows.append((f"mlstm_kernels {kernel} {c}", torch_core(kernel, c)))
    name = "xlstm parallel_stabilized_simple"
    if steps <= args.max_parallel:
        torch_rows.append((name, torch_core("parallel_stabilized_simple")))
    else:
        skipped[name] = quadratic
    for threads in args.torch_threads:
        rows += [(threaded(n, threads), threads, f) for n, f in torch_rows]
    return rows, skipped


def mlstm_timings(args):
    """``[(T, {name: (fwd ms, fwd+bwd ms, max |h - h_ref|)}, skipped)]``."""
    out = []
    for steps in args.times:
        inputs = mlstm_inputs(args, steps)
        rows, skipped = mlstm_rows(args, steps)
        contenders = [row(name, threads, f, inputs) for name, threads, f in rows]
        outputs = {c.name: np.asarray(c.forward()) for c in contenders}
        ref = outputs[contenders[0].name]
        medians = harness.measure(contenders, args.repeats, args.warmup)
        results = {
            name: (*ms, float(np.max(np.abs(outputs[name] - ref))))
            for name, ms in medians.items()
        }
        out.append((steps, results, skipped))
        print(f"T={steps}: " + ", ".join(f"{n} {r[1]:.1f}" for n, r in results.items()))
    return out


def mlstm_table(args, timings) -> str:
    lines = [
        f"### mLSTM core, B={args.batch}, NH={args.heads}, DH={args.head_size}, "
        "float32, zero initial state",
        "",
        f"Median ms of {args.repeats}; `x ref`: time over rnnjax chunkwise (chunk "
        f"{args.chunk}) at the same T; `max abs dh`: the largest difference of `h` "
        "from rnnjax chunkwise's.",
        "",
        "| T | implementation | forward ms | x ref | fwd+bwd ms | x ref | max abs dh |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for steps, results, skipped in timings:
        ref_f, ref_b, _ = results[next(iter(results))]
        for name, (f, b, err) in results.items():
            lines.append(
                f"| {steps:,} | {name} | {f:.1f} | {f / ref_f:.2f} | {b:.1f} | "
                f"{b / ref_b:.2f} | {err:.1e} |"
            )
        for name, why in skipped.items():
            lines.append(f"| {steps:,} | {name} | skipped: {why} | | | | |")
    return "\n".join(lines)


# ------------------------------------------------------------------ memory


def analysed_bytes(f, inputs) -> int:
    """Arguments + outputs + temporaries - aliases of the compiled gradient."""
    shapes = [jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in inputs]
    m = jax_programs(f)[1].lower(*shapes).compile().memory_analysis()
    return (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )


def status_kib(key) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def resident_rise(threads, f, inputs) -> float:
    """MiB by which one forward+backward raises this process's peak resident set
    (run it in a fresh process: :func:`child_rss`). A JAX program is compiled
    first, so that the compiler's own peak is not counted."""
    if threads is None:
        args = jax_args(inputs)
        compiled = jax_programs(f)[1].lower(*args).compile()
        run = lambda: jax.block_until_ready(compiled(*args))
    else:
        run = torch_row("", f, inputs, threads).backward
    pathlib.Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM
    base = status_kib("VmRSS")
    run()
    return (status_kib("VmHWM") - base) / 1024


def child_rss(args, name, steps) -> float | None:
    """:func:`resident_rise` of the row ``name`` at ``steps`` in a fresh process
    with glibc's mmap threshold fixed (freed large buffers leave the RSS), this
    checkout's rnnjax first on its path."""
    cmd = [sys.executable, os.path.abspath(__file__), "--rss", name, str(steps)]
    cmd += ["--batch", str(args.batch), "--heads", str(args.heads)]
    cmd += ["--head-size", str(args.head_size), "--chunk", str(args.chunk)]
    path = os.pathsep.join(
        filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])
    )
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONPATH=path)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        print(f"--rss {name} {steps} failed: {done.stderr[-800:]}")
        return None
    return float(done.stdout.split()[-1])


def rss_main(args) -> None:
    name, steps = args.rss[0], int(args.rss[1])
    rows, _ = mlstm_rows(args, steps)
    [(threads, f)] = [(t, f) for n, t, f in rows if n == name]
    print(f"{resident_rise(threads, f, mlstm_inputs(args, steps)):.1f}")


def memory_table(args) -> str:
    c = args.chunk
    analysed = {
        f"rnnjax chunkwise {c}": rnnjax_core("chunkwise", c),
        "rnnjax parallel": rnnjax_core("parallel"),
        "rnnjax scan": rnnjax_core("scan"),
    }
    measured = [
        f"rnnjax chunkwise {c}",
        f"xlstm chunkwise_simple {c}",
        f"mlstm_kernels native_custbw {c}",
    ][: args.rss_rows]
    head = ["T", *(f"{n} analysis" for n in analysed)]
    head += [f"{n} RSS" for n in measured] + ["q, k, v"]
    lines = [
        f"### mLSTM core forward+backward peak memory (MiB), B={args.batch}, "
        f"NH={args.heads}, DH={args.head_size}, float32",
        "",
        "`analysis`: the compiled gradient's arguments + outputs + temporaries "
        "(nothing run, as `memory.py`); `RSS`: the rise of the peak resident set "
        "(VmHWM) over one call in a fresh process, glibc's mmap threshold fixed at "
        "128 KiB (about 1 MiB of noise); `-`: not measured (quadratic, or over "
        f"T={args.max_rss:,} for RSS).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---:|" * len(head),
    ]
    for steps in args.memory_times:
        inputs = mlstm_inputs(args, steps)
        cells = []
        for name, f in analysed.items():
            skip = name == "rnnjax parallel" and steps > args.max_parallel_memory
            cells.append("-" if skip else f"{analysed_bytes(f, inputs) / MIB:,.1f}")
        for name in measured:
            rss = child_rss(args, name, steps) if steps <= args.max_rss else None
            cells.append("-" if rss is None else f"{rss:,.1f}")
        qkv = 3 * args.batch * args.heads * steps * args.head_size * 4 / MIB
        lines.append(f"| {steps:,} | " + " | ".join(cells) + f" | {qkv:,.1f} |")
        print(lines[-1])
    return "\n".join(lines)


# ------------------------------------------------------------------ sLSTM


def slstm_rows(batch, steps, hidden, heads, threads=(2,)):
    """The rnnjax rows (``unroll`` of ``rnnjax.slstm``, ``"auto"`` and ``"scan"``)
    and the package's: ``nn.Linear(H, 4H)`` then ``sLSTMCell`` with
    ``backend="vanilla"`` (float32; the same product and recurrence)."""
    import torch
    from xlstm.blocks.slstm.cell import sLSTMCell, sLSTMCellConfig

    rng = np.random.default_rng(0)
    xs_np = rng.standard_normal((batch, steps, hidden), np.float32)
    cell = rnnjax.slstm(hidden, num_heads=heads)
    params = cell.init(jax.random.key(0), hidden)
    xs = jnp.asarray(xs_np)
    rows = []
    for impl in ("auto", "scan"):
        f = harness.unroll_fn(cell, impl=impl)
        rows.append(harness.jax_contender(f"rnnjax slstm {impl}", f, params, xs))

    torch.manual_seed(0)
    config = sLSTMCellConfig(
        hidden_size=hidden,
        num_heads=heads,
        backend="vanilla",
        dtype="float32",
        recurrent_weight_init="standard",
        enable_automatic_mixed_precision=False,
    )
    module = torch.nn.Sequential(torch.nn.Linear(hidden, 4 * hidden, bias=False))
    module.append(sLSTMCell(config))
    forward = lambda x: module(x)[0]
    for t in threads:
        rows.append(
            harness.Contender(
                threaded("xlstm sLSTMCell vanilla", t),
                lambda t=t: torch_forward(forward, xs_np, t),
                lambda t=t: torch_backward(module, forward, xs_np, t),
                block=lambda o: o,
                group="torch",
            )
        )
    return rows


def torch_forward(forward, xs_np, threads):
    import torch

    torch.set_num_threads(threads)
    with torch.no_grad():
        return forward(torch.from_numpy(xs_np))


def torch_backward(module, forward, xs_np, threads):
    import torch

    torch.set_num_threads(threads)
    x = torch.from_numpy(xs_np).requires_grad_(True)
    for p in module.parameters():
        p.grad = None
    forward(x).sum().backward()
    return x.grad


def slstm_table(args):
    lines = [
        f"### sLSTM layer, B={args.slstm_batch}, T={args.slstm_time}, I=H, "
        f"NH={args.heads}, float32",
        "",
        'Median ms; `x auto`: time over rnnjax `impl="auto"` (the fused form) at '
        "the same H. The package's row: `nn.Linear(H, 4H)` then `sLSTMCell` "
        '(`backend="vanilla"`, float32); fwd+bwd: the gradient of `sum(ys)` '
        "w.r.t. the parameters and the inputs.",
        "",
        "| H | implementation | forward ms | x auto | fwd+bwd ms | x auto |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    found = {}
    for hidden in args.slstm_hidden:
        rows = slstm_rows(
            args.slstm_batch, args.slstm_time, hidden, args.heads, args.torch_threads
        )
        results = harness.measure(rows, args.repeats, args.warmup)
        ref_f, ref_b = results["rnnjax slstm auto"]
        for name, (f, b) in results.items():
            lines.append(
                f"| {hidden} | {name} | {f:.1f} | {f / ref_f:.2f} | {b:.1f} | "
                f"{b / ref_b:.2f} |"
            )
        found[hidden] = results
        print(lines[-3:])
    return "\n".join(lines), found


# ------------------------------------------------------------------ output


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--batch", type=int, default=1, help="mLSTM B")
    p.add_argument("--heads", type=int, default=4, help="NH (mLSTM and sLSTM)")
    p.add_argument("--head-size", type=int, default=64, help="mLSTM DH")
    p.add_argument("--chunk", type=int, default=64, help="chunk size (and twice it)")
    p.add_argument("--times", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    p.add_argument("--max-parallel", type=int, default=4096, help="quadratic rows")
    p.add_argument("--max-scan", type=int, default=4096, help="rnnjax scan rows")
    p.add_argument("--memory-times", type=int, nargs="+", default=None)
    p.add_argument("--max-parallel-memory", type=int, default=16384)
    p.add_argument("--max-rss", type=int, default=16384, help="RSS up to this T")
    p.add_argument("--rss-rows", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--slstm-batch", type=int, default=16)
    p.add_argument("--slstm-time", type=int, default=256)
    p.add_argument("--slstm-hidden", type=int, nargs="+", default=[128, 512])
    p.add_argument(
        "--torch-threads",
        type=int,
        nargs="+",
        default=[2, 1],
        help="PyTorch intra-op threads, a row each (2: the plain name)",
    )
    p.add_argument("--parts", default="mlstm,memory,slstm", help="comma-separated")
    p.add_argument("--out", type=pathlib.Path, default=HERE / "results/xlstm_cpu.md")
    p.add_argument("--results", type=pathlib.Path, default=harness.RESULTS)
    p.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the --results block from the tables in --out",
    )
    p.add_argument("--rss", nargs=2, metavar=("ROW", "T"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:  # one T, fewer rows, one thread, one RSS child (without torch)
        args.times, args.head_size, args.heads, args.chunk = [16], 8, 2, 8
        args.repeats, args.max_parallel, args.max_scan = 2, 16, 0
        args.max_rss, args.rss_rows, args.torch_threads = 16, 1, [1]
        args.memory_times = [16]
        args.slstm_batch, args.slstm_time, args.slstm_hidden = 2, 8, [8]
    if args.memory_times is None:
        args.memory_times = [*args.times, args.times[-1] * 4]
    return args


def command(args) -> str:
    if args.quick:
        return "python benchmarks/xlstm_cpu.py --quick"
    return (
        f"python benchmarks/xlstm_cpu.py --repeats {args.repeats} --batch "
        f"{args.batch} --heads {args.heads} --head-size {args.head_size} --times "
        + " ".join(map(str, args.times))
        + (f" --parts {args.parts}" if args.parts != "mlstm,memory,slstm" else "")
    )


def flags_line() -> str:
    flags = rnnjax.hardware.cpu_flags()
    wanted = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
    return f"- CPU flags (rnnjax.hardware.cpu_flags): {' '.join(wanted) or 'none'}"


def headline_row(label, ref, package) -> str:
    """``| label | rnnjax f / b | best package f (row) | best b (row) | ratios |``
    over the package's rows ``{name: (forward, fwd+bwd, ...)}``."""
    best_f = min(package.items(), key=lambda kv: kv[1][0])
    best_b = min(package.items(), key=lambda kv: kv[1][1])
    return (
        f"| {label} | {ref[0]:.1f} / {ref[1]:.1f} | {best_f[1][0]:.1f} "
        f"({best_f[0]}) | {best_b[1][1]:.1f} ({best_b[0]}) | "
        f"{best_f[1][0] / ref[0]:.2f} / {best_b[1][1] / ref[1]:.2f} |"
    )


def headline(args, timings, slstm) -> list[str]:
    """One line per T (rnnjax chunkwise against the package's fastest chunkwise
    row), one per sLSTM H (rnnjax auto against the package's fastest row)."""
    lines = []
    for steps, results, _ in timings:
        ref = results[f"rnnjax chunkwise {args.chunk}"]
        package = {
            n: r
            for n, r in results.items()
            if not n.startswith("rnnjax") and "parallel" not in n
        }
        lines.append(headline_row(f"mLSTM T={steps:,}", ref, package))
    for hidden, results in slstm.items():
        package = {n: r for n, r in results.items() if "rnnjax" not in n}
        ref = results["rnnjax slstm auto"]
        lines.append(headline_row(f"sLSTM H={hidden}", ref, package))
    return lines


def main(argv=None):
    args = parse_args(argv)
    if args.rss:
        return rss_main(args)
    if args.render:
        return render(args)
    started = time.time()
    parts = set(args.parts.split(","))
    sections, timings, slstm = [], [], {}
    if "mlstm" in parts:
        timings = mlstm_timings(args)
        sections.append(mlstm_table(args, timings))
    if "memory" in parts:
        sections.append(memory_table(args))
    if "slstm" in parts:
        text, slstm = slstm_table(args)
        sections.append(text)
    minutes = (time.time() - started) / 60
    env = [f"- command: `{command(args)}` ({minutes:.1f} min)", harness.environment()]
    env.append(flags_line())
    env.append(
        "- PyTorch eager, 2 threads (plain row names) and 1 thread, timed after "
        "the JAX rows; the machine is shared with other test runs (medians of one "
        "run)"
    )
    title = "# xLSTM on the CPU: rnnjax against the `xlstm` package (PyTorch)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n\n".join([title, *sections, "\n".join(env)]) + "\n")
    print(f"wrote {args.out}")
    commit = harness.environment().splitlines()[0]
    write_results(args, timings, slstm, [env[0], commit])


def write_results(args, timings, slstm, provenance) -> None:
    """The headline block of ``--results``; ``provenance``: its command and
    commit lines."""
    block = [
        "### xLSTM against the `xlstm` package "
        "(generated by `benchmarks/xlstm_cpu.py`)",
        "",
        f"Median ms, forward / fwd+bwd; mLSTM core B={args.batch} NH={args.heads} "
        f"DH={args.head_size}, rnnjax chunkwise (chunk {args.chunk}) against the "
        "package's fastest pure-PyTorch chunkwise row; sLSTM B="
        f"{args.slstm_batch} T={args.slstm_time} against `sLSTMCell` vanilla. "
        "Ratios above 1: rnnjax is faster. All rows (PyTorch at 2 and 1 threads), "
        f"memory against T: `benchmarks/results/{args.out.name}`.",
        "",
        "| workload | rnnjax ms | package forward ms | package fwd+bwd ms | "
        "package / rnnjax |",
        "|---|---:|---:|---:|---:|",
        *headline(args, timings, slstm),
        "",
        *provenance,
    ]
    harness.write_block(args.results, "xlstm_cpu", "\n".join(block))
    print(f"wrote {args.results}")


def render(args) -> None:
    """Rewrites the ``--results`` block from the tables of ``--out`` (no timing)."""
    text = args.out.read_text()
    mlstm, rest = text.split("peak memory", 1)
    row = r"^\| ([\d,]+) \| ([^|]+?) \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \| [\d.]+ \|"
    timings = {}
    for steps, name, f, b in re.findall(row, mlstm, flags=re.M):
        timings.setdefault(int(steps.replace(",", "")), {})[name] = (float(f), float(b))
    slstm = {}
    for hidden, name, f, b in re.findall(row, rest.split("sLSTM layer", 1)[1], re.M):
        slstm.setdefault(int(hidden), {})[name] = (float(f), float(b))
    provenance = re.findall(r"^- (?:command|commit): .*$", text, flags=re.M)
    write_results(args, [(t, r, {}) for t, r in timings.items()], slstm, provenance)


if __name__ == "__main__":
    main()
