"""``impl="pallas"`` on a GPU: correctness first, then timings against ``fused``,
cuDNN (``jax.experimental.rnn.lstm``) and PyTorch (``nn.LSTM`` / ``nn.GRU``).

One prepared script for one call on a lent H100 / H200 (about 8 minutes with the
machine's start; ``--budget`` stops the timings in time)::

    PYTHONUNBUFFERED=1 python benchmarks/gpu.py

Smoke test on a CPU (the kernels in Pallas' interpreter, tiny shapes)::

    python benchmarks/gpu.py --quick --interpret

1. Checks: ``pallas`` (both GPU designs) and ``fused`` on the device against
   ``scan`` on the host CPU (exact float32 products), values and gradients (the
   parameters, the inputs, the initial carry) with lengths, reversal and resets,
   at three shapes; relative error ``|a - b| / |b|`` (Frobenius, worst leaf).
   Tolerance 1e-2 in float32 (TF32 products on the GPU, through the recurrence),
   5e-2 in bfloat16.
2. Timings: forward (``ys``) and forward+backward (gradient of ``sum(ys)`` w.r.t.
   the parameters and the inputs); median of ``--repeats`` runs after
   ``--warmup`` runs, each blocked until ready (JAX ``block_until_ready``, PyTorch
   ``torch.cuda.synchronize``); compile time reported apart. B in {16, 64, 256},
   H in {256, 512, 1024}, T = 256, I = H; float32 for every contender, bfloat16
   (``dtype=jnp.bfloat16``: bf16 products, float32 carry) at B = 64 unless
   ``--full``. cuDNN through JAX is LSTM and float32 only.

Prints markdown tables (``x pallas``: the contender's time over pallas'); writes
``gpu_bench.json`` and ``gpu_bench.md`` to ``$OUT`` (or ``--out``) as it goes, so
an interrupted run still leaves its rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness
import jax
import jax.numpy as jnp
import numpy as np

import rnnjax
from rnnjax.kernels import Pallas, pallas_gpu

START = time.perf_counter()
CELLS = {"lstm": rnnjax.lstm, "gru": rnnjax.gru}
DTYPES = {"f32": None, "bf16": jnp.bfloat16}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repeats")
    p.add_argument(
        "--interpret", action="store_true", help="Pallas interpreter (CPU smoke test)"
    )
    p.add_argument("--full", action="store_true", help="bf16 at every B too")
    p.add_argument("--time", type=int, default=256, help="T")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--budget",
        type=float,
        default=330.0,
        help="seconds since start after which no new timing group begins",
    )
    p.add_argument("--skip-checks", action="store_true")
    p.add_argument("--out", default=os.environ.get("OUT", ""), help="results folder")
    args = p.parse_args(argv)
    if args.quick:
        args.time = min(args.time, 8)
        args.repeats, args.warmup = min(args.repeats, 3), 1
    return args


# ----------------------------------------------------------------------- output


class Log:
    """Collects the records and rewrites the JSON and markdown after each one."""

    def __init__(self, out_dir, env):
        self.out_dir, self.data = out_dir, {"env": env, "checks": [], "timings": []}

    def add(self, kind, record):
        self.data[kind].append(record)
        self.flush()

    def flush(self):
        if not self.out_dir:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        with open(os.path.join(self.out_dir, "gpu_bench.json"), "w") as f:
            json.dump(self.data, f, indent=1, default=str)
        with open(os.path.join(self.out_dir, "gpu_bench.md"), "w") as f:
            f.write(markdown(self.data) + "\n")


def environment(args):
    env = {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in jax.devices()],
        "interpret": args.interpret,
        "matmul_precision": jax.config.jax_default_matmul_precision,
        "argv": sys.argv,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.cuda.is_available()
        env["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
    except ImportError:
        env["torch"] = None
    try:
        import subprocess

        env["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        env["commit"] = "?"
    return env


def markdown(data) -> str:
    lines = [f"Environment: `{json.dumps(data['env'], default=str)}`", ""]
    if data["checks"]:
        lines += [
            "| check | cell | dtype | B | T | H | design | impl | max rel err | tol "
            "| ok |",
            "|---|---|---|---:|---:|---:|---|---|---:|---:|---|",
        ]
        for c in data["checks"]:
            err = "error" if c.get("error") else f"{c['err']:.2e}"
            lines.append(
                f"| {c['name']} | {c['cell']} | {c['dtype']} | {c['B']} | {c['T']} | "
                f"{c['H']} | {c['design']} | {c['impl']} | {err} | {c['tol']:.0e} | "
                f"{'yes' if c['ok'] else 'NO'} |"
            )
        lines.append("")
    groups = {}
    for r in data["timings"]:
        groups.setdefault((r["cell"], r["dtype"], r["T"]), []).append(r)
    for (cell, dtype, T), rows in groups.items():
        lines += [
            f"### {cell.upper()}, {dtype}, T={T}, I=H (median ms)",
            "",
            "| B | H | implementation | forward ms | x pallas | fwd+bwd ms | x pallas "
            "| compile s |",
            "|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            ref = next(
                (
                    q
                    for q in rows
                    if q["impl"].startswith("rnnjax pallas")
                    and (q["B"], q["H"]) == (r["B"], r["H"])
                ),
                None,
            )
            lines.append(_row(r, ref))
        lines.append("")
    return "\n".join(lines)


def _row(r, ref):
    def cell(key):
        v = r.get(key)
        return "-" if v is None else f"{v:.2f}"

    def ratio(key):
        if ref is None or r.get(key) is None or not ref.get(key):
            return "-"
        return f"{r[key] / ref[key]:.2f}"

    name = r["impl"] + (f" ({r['note']})" if r.get("note") else "")
    return (
        f"| {r['B']} | {r['H']} | {name} | {cell('fwd_ms')} | {ratio('fwd_ms')} | "
        f"{cell('bwd_ms')} | {ratio('bwd_ms')} | {cell('compile_s')} |"
    )


# ----------------------------------------------------------------------- problems


def problem(cell, B, T, I, seed, dtype):
    """Parameters (float32) and inputs ``(B, T, I)`` (in ``dtype`` if bf16)."""
    params = cell.init(jax.random.key(seed), I)
    r = np.random.default_rng(seed)
    xs = jnp.asarray(r.standard_normal((B, T, I)), jnp.float32)
    return params, xs if dtype is None else xs.astype(dtype)


def rel_err(got, want) -> float:
    """Worst leaf of ``|a - b| / |b|`` (Frobenius); NaN anywhere gives inf."""
    worst = 0.0
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if not np.all(np.isfinite(a)):
            return float("inf")
        worst = max(worst, np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
    return float(worst)


def check_shapes(args):
    """(name, gpu design, B, T, H): both designs; odd sizes that the wrapper pads."""
    if args.quick:
        return [("small", "sequence", 3, 6, 5), ("tiles", "stepwise", 5, 6, 40)]
    return [
        ("sequence", "sequence", 16, 48, 64),
        ("stepwise", "stepwise", 64, 48, 256),
        ("padded", "stepwise", 24, 40, 200),
    ]


def run_checks(args, log) -> bool:
    ok_all = True
    host = jax.devices("cpu")[0]
    for name, design, B, T, H in check_shapes(args):
        for cell_name, make in CELLS.items():
            dtypes = ["f32", "bf16"] if name != "padded" else ["f32"]
            for dtype in dtypes:
                rec = dict(
                    name=name, cell=cell_name, dtype=dtype, B=B, T=T, H=H, design=design
                )
                ok_all &= _check_one(args, log, rec, make(H, dtype=DTYPES[dtype]), host)
    return ok_all


def _check_one(args, log, rec, cell, host):
    B, T, H = rec["B"], rec["T"], rec["H"]
    params, xs = problem(cell, B, T, H, 1, None)
    r = np.random.default_rng(2)
    lengths = jnp.asarray(r.integers(T // 2, T + 1, B), jnp.int32)
    resets = jnp.asarray(r.random((B, T)) < 0.05)
    ct = jnp.asarray(r.standard_normal((B, T, H)), jnp.float32)

    def loss(impl):
        if impl == "pallas":
            impl = Pallas(interpret=args.interpret or None, gpu_design=rec["design"])

        def f(p, x, c):
            c, ys = rnnjax.unroll(
                cell,
                p,
                x,
                carry=c,
                seq_lengths=lengths,
                resets=resets,
                reverse=True,
                options=rnnjax.UnrollOptions(impl=impl),
            )
            return jnp.sum(ys * ct) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(c))

        return jax.value_and_grad(f, argnums=(0, 1, 2))

    carry = jax.tree.map(lambda a: a + 0.1, cell.initial_carry((B,)))
    want = jax.jit(loss("scan"))(*jax.device_put((params, xs, carry), host))
    tol = 1e-2 if rec["dtype"] == "f32" else 5e-2
    ok = True
    for impl in ("pallas", "fused"):
        out = dict(rec, impl=impl, tol=tol)
        try:
            got = jax.jit(loss(impl))(params, xs, carry)
            got = jax.block_until_ready(got)
            out["err"] = rel_err(got, want)
            out["ok"] = bool(out["err"] < tol)
        except Exception as e:  # report and go on: the timings still tell something
            out.update(err=float("inf"), ok=False, error=_short(e))
        ok &= out["ok"] or impl != "pallas"
        log.add("checks", out)
        print(
            f"check {rec['name']:8s} {rec['cell']} {rec['dtype']} {impl:6s} "
            f"err {out['err']:.2e} {'ok' if out['ok'] else 'FAIL'}"
            + (f"  {out['error']}" if out.get("error") else ""),
            flush=True,
        )
    return ok


def _short(e) -> str:
    text = "".join(traceback.format_exception_only(type(e), e)).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


# ----------------------------------------------------------------------- timings


def timing_groups(args):
    if args.quick:
        return [("f32", "lstm", 4, 32), ("f32", "gru", 4, 32), ("bf16", "lstm", 4, 32)]
    groups = []
    for dtype in ("f32", "bf16"):
        for cell in ("lstm", "gru"):
            for H in (256, 512, 1024):
                for B in (16, 64, 256):
                    if dtype == "f32" or args.full or B == 64:
                        groups.append((dtype, cell, B, H))
    return groups


def jax_timing(args, f, params, xs, options):
    """``f(params, xs) -> ys``: compiled ahead (under ``options``), then timed."""
    loss = lambda p, x: jnp.sum(f(p, x).astype(jnp.float32))
    compiled = {}

    def compile_both():
        with options:
            compiled["fwd"] = jax.jit(f).lower(params, xs).compile()
            g = jax.grad(loss, argnums=(0, 1))
            compiled["bwd"] = jax.jit(g).lower(params, xs).compile()

    compile_s = harness.seconds(compile_both)
    fwd, bwd = compiled["fwd"], compiled["bwd"]
    times = dict(repeats=args.repeats, warmup=args.warmup)
    return dict(
        fwd_ms=harness.median_ms(lambda: fwd(params, xs), **times),
        bwd_ms=harness.median_ms(lambda: bwd(params, xs), **times),
        compile_s=compile_s,
    )


def rnnjax_rows(args, dtype, cell_name, B, H):
    cell = CELLS[cell_name](H, dtype=DTYPES[dtype])
    params, xs = problem(cell, B, args.time, H, 0, DTYPES[dtype])
    plan = pallas_gpu.plan(
        kind=cell_name,
        T=args.time,
        B=B,
        H=H,
        compute_dtype=jnp.dtype(DTYPES[dtype] or jnp.float32),
        out_dtype=jnp.dtype(jnp.float32),
        seq_dtypes=(jnp.dtype(jnp.float32),) * 2,
        options=Pallas(flavour="gpu", interpret=args.interpret),
        unroll=1,
    )
    note = f"{plan.design}, " + ", ".join(f"{k}={v}" for k, v in plan.blocks)
    for impl in ("pallas", "fused"):
        value = Pallas(interpret=args.interpret or None) if impl == "pallas" else impl
        f = harness.unroll_fn(cell, impl=value)
        opts = contextlib.nullcontext()
        yield (
            f"rnnjax {impl}",
            (note if impl == "pallas" else ""),
            (lambda f=f, opts=opts: jax_timing(args, f, params, xs, opts)),
        )


def cudnn_rows(args, dtype, cell_name, B, H):
    if cell_name != "lstm" or dtype != "f32":
        return
    if jax.default_backend() != "gpu":
        yield "cuDNN (jax.experimental.rnn)", "skipped: no GPU backend", None
        return
    from jax.experimental import rnn

    T, I = args.time, H
    weights = rnn.init_lstm_weight(jax.random.key(0), I, H, 1, False)
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((B, T, I)), jnp.float32)
    zeros = jnp.zeros((1, B, H), jnp.float32)
    lengths = jnp.full((B,), T, jnp.int32)

    def f(w, x):
        return rnn.lstm(x, zeros, zeros, w, lengths, I, H, 1, 0.0, False)[0]

    yield (
        "cuDNN (jax.experimental.rnn)",
        "",
        (lambda: jax_timing(args, f, weights, xs, contextlib.nullcontext())),
    )


def torch_rows(args, dtype, cell_name, B, H):
    name = f"PyTorch nn.{cell_name.upper()} (cuDNN)"
    try:
        import torch
    except ImportError:
        yield name, "skipped: no torch", None
        return
    if not torch.cuda.is_available():
        yield name, "skipped: torch without CUDA", None
        return

    def run():
        tdtype = torch.float32 if dtype == "f32" else torch.bfloat16
        torch.manual_seed(0)
        module = getattr(torch.nn, cell_name.upper())(H, H, batch_first=True)
        module = module.cuda().to(tdtype)
        xs = torch.randn(B, args.time, H, device="cuda", dtype=tdtype)
        sync = lambda out: torch.cuda.synchronize()

        def forward():
            with torch.no_grad():
                return module(xs)[0]

        def backward():
            x = xs.detach().requires_grad_(True)
            for p in module.parameters():
                p.grad = None
            module(x)[0].float().sum().backward()

        times = dict(repeats=args.repeats, warmup=args.warmup, block=sync)
        return dict(
            fwd_ms=harness.median_ms(forward, **times),
            bwd_ms=harness.median_ms(backward, **times),
            compile_s=None,
        )

    yield name, "", run


def run_timings(args, log):
    for dtype, cell_name, B, H in timing_groups(args):
        base = dict(cell=cell_name, dtype=dtype, B=B, H=H, T=args.time)
        if time.perf_counter() - START > args.budget:
            log.add("timings", dict(base, impl="(group)", note="skipped: budget"))
            print(f"skip {cell_name} {dtype} B={B} H={H}: budget spent", flush=True)
            continue
        rows = [
            *rnnjax_rows(args, dtype, cell_name, B, H),
            *cudnn_rows(args, dtype, cell_name, B, H),
            *torch_rows(args, dtype, cell_name, B, H),
        ]
        for impl, note, run in rows:
            rec = dict(base, impl=impl, note=note)
            if run is not None:
                try:
                    rec.update(run())
                except Exception as e:
                    rec["note"] = f"error: {_short(e)}"
            log.add("timings", rec)
            print(
                f"{cell_name} {dtype} B={B:4d} H={H:5d} {impl:32s} "
                f"fwd {rec.get('fwd_ms', float('nan')):9.3f} ms  "
                f"fwd+bwd {rec.get('bwd_ms', float('nan')):9.3f} ms  {rec['note']}",
                flush=True,
            )


def main(argv=None) -> int:
    args = parse_args(argv)
    log = Log(args.out, environment(args))
    print(json.dumps(log.data["env"], default=str), flush=True)
    ok = True if args.skip_checks else run_checks(args, log)
    run_timings(args, log)
    print()
    print(markdown(log.data))
    verdict = "passed" if ok else "FAILED"
    print(f"\ntotal {time.perf_counter() - START:.0f} s; checks {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
