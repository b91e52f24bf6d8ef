"""One GPU run gives the verdict: values, then timings of every implementation of
the LSTM and GRU against cuDNN, Flax and PyTorch, and the rule's decision for
``impl="auto"``.

One prepared script for one call on a lent H100 / H200 (at most 8 minutes of the
device, by its own ``--budget``)::

    PYTHONUNBUFFERED=1 python benchmarks/gpu.py

Without a device: ``--compile-only h200`` (or ``a100``) compiles every case it
would time for that GPU, deviceless (the CUDA plugin and a target description,
``benchmarks/targets/``; the suite runs it), and ``--quick --interpret`` runs the
whole script on a CPU (Pallas' interpreter, tiny shapes)::

    JAX_PLATFORMS=cpu python benchmarks/gpu.py --compile-only h200
    python benchmarks/gpu.py --quick --interpret

1. Checks (before any timing): ``pallas`` (both GPU designs), ``fused`` and
   ``cudnn`` on the device against ``scan`` on the host CPU (exact float32
   products), values and gradients (the parameters, the inputs, the initial carry)
   with lengths, reversal and resets (not resets for ``cudnn``, which has none),
   at three shapes; relative error ``|a - b| / |b|`` (Frobenius, worst leaf).
   Tolerance 1e-2 in float32 (TF32 products on the GPU, through the recurrence),
   5e-2 in bfloat16.
2. Timings: forward (``ys``) and forward+backward (gradient of ``sum(ys)`` w.r.t.
   the parameters and the inputs), T = 256, I = H; every contender of a group
   compiled first (compile time reported apart), then timed interleaved in random
   order, median of ``--repeats`` rounds after ``--warmup``, each call blocked
   until ready. Contenders: rnnjax ``pallas`` (default design), ``fused``,
   ``scan``, ``cudnn`` (LSTM, float32); Flax linen ``nn.RNN`` of
   ``OptimizedLSTMCell`` / ``GRUCell``; cuDNN through ``jax.experimental.rnn``
   directly; PyTorch ``nn.LSTM`` / ``nn.GRU`` (cuDNN). Groups in priority order, so
   that the budget cuts the least informative.
3. The verdict (`verdict`): whether ``"cuda"`` joins
   ``rnnjax.kernels.AUTO_PALLAS_PLATFORMS`` and whether ``auto`` should pick
   ``cudnn`` for the plain float32 LSTM, by the rule written there.

Prints markdown tables (``x fused``: the contender's time over rnnjax fused's);
writes ``gpu_bench.json`` and ``gpu_bench.md`` to ``$OUT`` (or ``--out``) as it
goes, so an interrupted run still leaves its rows.
"""

from __future__ import annotations

import argparse
import json
import math
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
from rnnjax.kernels import Pallas, cudnn, pallas_gpu

START = time.perf_counter()
CELLS = {"lstm": rnnjax.lstm, "gru": rnnjax.gru}
DTYPES = {"f32": None, "bf16": jnp.bfloat16}
TARGETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "targets")
REFERENCE = "rnnjax fused"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repeats")
    p.add_argument(
        "--interpret", action="store_true", help="Pallas interpreter (CPU smoke test)"
    )
    p.add_argument(
        "--compile-only",
        choices=("h200", "a100"),
        help="compile every timed case for this GPU, deviceless, and stop",
    )
    p.add_argument(
        "--covering",
        action="store_true",
        help="with --compile-only: each distinct Pallas tiling only (the suite's "
        "subset; the XLA paths are compiled by tests/accelerators)",
    )
    p.add_argument("--time", type=int, default=256, help="T")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--budget",
        type=float,
        default=400.0,
        help="seconds since start after which no new timing group begins",
    )
    p.add_argument("--skip-checks", action="store_true")
    p.add_argument(
        "--render",
        nargs="+",
        metavar="JSON",
        help="no run: merge saved gpu_bench.json files (later ones win; the checks "
        "of the last that has any) and print, or write with --results, the tables",
    )
    harness.add_results_option(p, "the GPU tables (--render)")
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
        self.out_dir = out_dir
        self.data = {"env": env, "checks": [], "timings": [], "verdict": None}

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
        "commit": _commit(),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.cuda.is_available()
        env["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
    except ImportError:
        env["torch"] = None
    try:
        import flax

        env["flax"] = flax.__version__
    except ImportError:
        env["flax"] = None
    return env


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "?"


def markdown(data) -> str:
    envs = data["env"] if isinstance(data["env"], list) else [data["env"]]
    lines = [f"Environment: `{json.dumps(env, default=str)}`" for env in envs]
    lines.append("")
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
            "| B | H | implementation | forward ms | x fused | fwd+bwd ms | x fused "
            "| compile s |",
            "|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(_row(r, _reference(rows, r)))
        lines.append("")
    if data.get("verdict"):
        lines += ["### Verdict", "", *data["verdict"]["lines"], ""]
    return "\n".join(lines)


def _reference(rows, r):
    return next(
        (
            q
            for q in rows
            if q["impl"] == REFERENCE and (q["B"], q["H"]) == (r["B"], r["H"])
        ),
        None,
    )


def _row(r, ref):
    def cell(key):
        v = r.get(key)
        return "-" if v is None else f"{v:.3f}"

    def ratio(key):
        if ref is None or r.get(key) is None or not ref.get(key):
            return "-"
        return f"{r[key] / ref[key]:.2f}"

    name = r["impl"] + (f" ({r['note']})" if r.get("note") else "")
    compile_s = "-" if r.get("compile_s") is None else f"{r['compile_s']:.1f}"
    return (
        f"| {r['B']} | {r['H']} | {name} | {cell('fwd_ms')} | {ratio('fwd_ms')} | "
        f"{cell('bwd_ms')} | {ratio('bwd_ms')} | {compile_s} |"
    )


def _short(e) -> str:
    text = "".join(traceback.format_exception_only(type(e), e)).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


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


def impl_value(args, impl, design=None):
    """The ``UnrollOptions.impl`` of a contender named ``impl``."""
    if impl == "pallas":
        return Pallas(
            flavour="gpu" if args.compile_only else None,
            interpret=args.interpret or (False if args.compile_only else None),
            gpu_design=design,
            target={"h200": "sm_90", "a100": "sm_80"}.get(args.compile_only),
        )
    return impl


def has_cudnn(args, cell_name, dtype) -> bool:
    """cuDNN runs the float32 LSTM, on a GPU (not deviceless: it needs one)."""
    return cell_name == "lstm" and dtype == "f32" and not args.compile_only


# ----------------------------------------------------------------------- checks


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
            for dtype in ["f32", "bf16"] if name != "padded" else ["f32"]:
                rec = dict(
                    name=name, cell=cell_name, dtype=dtype, B=B, T=T, H=H, design=design
                )
                cell = make(H, dtype=DTYPES[dtype])
                for impl in ("pallas", "fused"):
                    ok_all &= _check_one(args, log, rec, cell, impl, host, True)
                if cell_name == "lstm" and dtype == "f32" and cudnn.available():
                    ok_all &= _check_one(args, log, rec, cell, "cudnn", host, False)
    return ok_all


def _check_one(args, log, rec, cell, impl, host, with_resets) -> bool:
    B, T, H = rec["B"], rec["T"], rec["H"]
    params, xs = problem(cell, B, T, H, 1, None)
    r = np.random.default_rng(2)
    lengths = jnp.asarray(r.integers(T // 2, T + 1, B), jnp.int32)
    resets = jnp.asarray(r.random((B, T)) < 0.05) if with_resets else None
    ct = jnp.asarray(r.standard_normal((B, T, H)), jnp.float32)

    def loss(impl):
        options = rnnjax.UnrollOptions(impl=impl_value(args, impl, rec["design"]))

        def f(p, x, c):
            c, ys = rnnjax.unroll(
                cell,
                p,
                x,
                carry=c,
                seq_lengths=lengths,
                resets=resets,
                reverse=True,
                options=options,
            )
            return jnp.sum(ys * ct) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(c))

        return jax.value_and_grad(f, argnums=(0, 1, 2))

    carry = jax.tree.map(lambda a: a + 0.1, cell.initial_carry((B,)))
    want = jax.jit(loss("scan"))(*jax.device_put((params, xs, carry), host))
    tol = 1e-2 if rec["dtype"] == "f32" else 5e-2
    out = dict(rec, impl=impl, tol=tol)
    try:
        got = jax.block_until_ready(jax.jit(loss(impl))(params, xs, carry))
        out["err"] = rel_err(got, want)
        out["ok"] = bool(out["err"] < tol)
    except Exception as e:  # report and go on: the timings still tell something
        out.update(err=float("inf"), ok=False, error=_short(e))
    log.add("checks", out)
    print(
        f"check {rec['name']:8s} {rec['cell']} {rec['dtype']} {impl:6s} "
        f"err {out['err']:.2e} {'ok' if out['ok'] else 'FAIL'}"
        + (f"  {out['error']}" if out.get("error") else ""),
        flush=True,
    )
    return out["ok"] or impl == "fused"


# ----------------------------------------------------------------------- contenders


def timing_groups(args):
    """``(dtype, cell, B, H)`` in priority order: float32 at the sizes that decide
    (small and large batch, the H range), then bfloat16."""
    if args.quick:
        return [("f32", "lstm", 4, 32), ("f32", "gru", 4, 32), ("bf16", "lstm", 4, 32)]
    sizes = [(64, 256), (256, 1024), (16, 512), (256, 256), (16, 1024), (64, 1024)]
    groups = [("f32", c, B, H) for B, H in sizes for c in ("lstm", "gru")]
    groups += [("bf16", c, 64, H) for H in (256, 1024) for c in ("lstm", "gru")]
    return groups


def contenders(args, dtype, cell_name, B, H):
    """``[(name, note, make)]``: ``make() -> (f, params, xs)`` for a JAX contender
    (``f(params, xs) -> ys``), or a dict of timings for PyTorch; ``make`` None
    when the contender cannot run here (the note says why)."""
    cell = CELLS[cell_name](H, dtype=DTYPES[dtype])
    params, xs = problem(cell, B, args.time, H, 0, DTYPES[dtype])
    rows = []
    for impl in ("pallas", "fused", "scan", "cudnn"):
        if impl == "cudnn" and not has_cudnn(args, cell_name, dtype):
            continue
        note = _pallas_note(args, cell_name, dtype, B, H) if impl == "pallas" else ""
        if impl == "cudnn" and not cudnn.available():
            rows.append((f"rnnjax {impl}", "skipped: no GPU", None))
            continue
        f = harness.unroll_fn(cell, impl=impl_value(args, impl))
        rows.append((f"rnnjax {impl}", note, lambda f=f: (f, params, xs)))
    rows.append(_flax_row(cell_name, dtype, H, xs))
    if has_cudnn(args, cell_name, dtype):
        rows.append(_cudnn_direct_row(args, B, H))
    if not args.compile_only:
        rows.append(_torch_row(args, dtype, cell_name, B, H))
    return rows


def _pallas_note(args, cell_name, dtype, B, H) -> str:
    plan = pallas_gpu.plan(
        kind=cell_name,
        T=args.time,
        B=B,
        H=H,
        compute_dtype=jnp.dtype(DTYPES[dtype] or jnp.float32),
        out_dtype=jnp.dtype(jnp.float32),
        seq_dtypes=(jnp.dtype(DTYPES[dtype] or jnp.float32), jnp.dtype(jnp.float32)),
        options=Pallas(flavour="gpu", interpret=args.interpret),
        unroll=1,
    )
    if isinstance(plan, str):
        return f"no kernel holds it: {plan} (falls back)"
    return f"{plan.design}, " + ", ".join(f"{k}={v}" for k, v in plan.blocks)


def _flax_row(cell_name, dtype, H, xs):
    """Flax linen's ``nn.RNN`` of ``OptimizedLSTMCell`` or ``GRUCell``."""
    name = "OptimizedLSTMCell" if cell_name == "lstm" else "GRUCell"

    def make():
        import flax.linen as nn

        model = nn.RNN(getattr(nn, name)(H, dtype=DTYPES[dtype]))
        params = model.init(jax.random.key(0), xs)
        return model.apply, params, xs

    return (f"flax nn.RNN({name})", "", make)


def _cudnn_direct_row(args, B, H):
    name = "cuDNN (jax.experimental.rnn)"
    if not cudnn.available():
        return name, "skipped: no GPU", None
    from jax.experimental import rnn

    def make():
        T, I = args.time, H
        weights = rnn.init_lstm_weight(jax.random.key(0), I, H, 1, False)
        rng = np.random.default_rng(0)
        xs = jnp.asarray(rng.standard_normal((B, T, I)), jnp.float32)
        zeros = jnp.zeros((1, B, H), jnp.float32)
        lengths = jnp.full((B,), T, jnp.int32)
        f = lambda w, x: rnn.lstm(x, zeros, zeros, w, lengths, I, H, 1, 0.0, False)[0]
        return f, weights, xs

    return name, "", make


def _torch_row(args, dtype, cell_name, B, H):
    name = f"PyTorch nn.{cell_name.upper()} (cuDNN)"
    try:
        import torch
    except ImportError:
        return name, "skipped: no torch", None
    if not torch.cuda.is_available():
        return name, "skipped: torch without CUDA", None

    def make():
        tdtype = torch.float32 if dtype == "f32" else torch.bfloat16
        torch.manual_seed(0)
        module = getattr(torch.nn, cell_name.upper())(H, H, batch_first=True)
        module = module.cuda().to(tdtype)
        xs = torch.randn(B, args.time, H, device="cuda", dtype=tdtype)

        def forward():
            with torch.no_grad():
                module(xs)
            torch.cuda.synchronize()

        def backward():
            x = xs.detach().requires_grad_(True)
            for p in module.parameters():
                p.grad = None
            module(x)[0].float().sum().backward()
            torch.cuda.synchronize()

        return forward, backward

    return name, "", make


# ----------------------------------------------------------------------- timings


def compile_pair(f, params, xs):
    """``f`` (forward) and the gradient of ``sum(f)`` w.r.t. both arguments,
    compiled ahead for the arguments' devices (abstract ones for a deviceless
    target)."""
    loss = lambda p, x: jnp.sum(f(p, x).astype(jnp.float32))
    fwd = jax.jit(f).lower(params, xs).compile()
    bwd = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile()
    return fwd, bwd


def run_group(args, base, rows):
    """Compiles every contender of one group, then times them interleaved."""
    runs, records = {}, {}
    for name, note, make in rows:
        rec = records[name] = dict(base, impl=name, note=note)
        if make is None:
            continue
        try:
            made = make()
            if len(made) == 2:  # PyTorch: (forward, backward), each synchronised
                runs[name] = made
                continue
            f, params, xs = made
            t0 = time.perf_counter()
            fwd, bwd = compile_pair(f, params, xs)
            rec["compile_s"] = time.perf_counter() - t0
            runs[name] = (
                lambda fwd=fwd, p=params, x=xs: jax.block_until_ready(fwd(p, x)),
                lambda bwd=bwd, p=params, x=xs: jax.block_until_ready(bwd(p, x)),
            )
        except Exception as e:
            rec["note"] = f"error: {_short(e)}"
    if runs:
        times = harness.interleaved(
            runs, args.repeats, args.warmup, block=lambda out: out
        )
        for name, (fwd_ms, bwd_ms) in times.items():
            records[name].update(fwd_ms=fwd_ms, bwd_ms=bwd_ms)
    return list(records.values())


def run_timings(args, log):
    for dtype, cell_name, B, H in timing_groups(args):
        base = dict(cell=cell_name, dtype=dtype, B=B, H=H, T=args.time)
        if time.perf_counter() - START > args.budget:
            log.add("timings", dict(base, impl="(group)", note="skipped: budget"))
            print(f"skip {cell_name} {dtype} B={B} H={H}: budget spent", flush=True)
            continue
        for rec in run_group(args, base, contenders(args, dtype, cell_name, B, H)):
            log.add("timings", rec)
            print(
                f"{cell_name} {dtype} B={B:4d} H={H:5d} {rec['impl']:34s} "
                f"fwd {rec.get('fwd_ms', float('nan')):9.3f} ms  "
                f"fwd+bwd {rec.get('bwd_ms', float('nan')):9.3f} ms  {rec['note']}",
                flush=True,
            )


# ----------------------------------------------------------------------- verdict

# The rule. An implementation joins "auto" on CUDA when every one of its checks
# passed and, over the float32 groups timed, it is faster than what "auto" picks
# there now (fused; for cudnn, the better of fused and pallas if pallas joins) in
# forward+backward: a geometric mean of the time ratios below WIN_RATIO, and faster
# in at least WIN_SHARE of the groups. A wash is no reason to change the default.
WIN_RATIO = 0.9
WIN_SHARE = 0.75


def verdict(data) -> dict:
    checks = data["checks"]
    rows = [r for r in data["timings"] if r["dtype"] == "f32" and r.get("bwd_ms")]
    by_group = {}
    for r in rows:
        by_group.setdefault((r["cell"], r["B"], r["H"]), {})[r["impl"]] = r["bwd_ms"]

    def wins(impl, against):
        ratios = [
            t[impl] / min(t[a] for a in against if a in t)
            for t in by_group.values()
            if impl in t and any(a in t for a in against)
        ]
        if not ratios:
            return False, "not timed"
        gmean = math.exp(sum(map(math.log, ratios)) / len(ratios))
        share = sum(x < 1 for x in ratios) / len(ratios)
        ok = gmean < WIN_RATIO and share >= WIN_SHARE
        return (
            ok,
            f"geometric mean {gmean:.2f} x, faster in {share:.0%} of "
            f"{len(ratios)} groups",
        )

    def checked(impl):
        mine = [c for c in checks if c["impl"] == impl]
        return bool(mine) and all(c["ok"] for c in mine)

    pallas_ok, pallas_why = wins("rnnjax pallas", ["rnnjax fused"])
    pallas_in = pallas_ok and checked("pallas")
    against = ["rnnjax fused"] + (["rnnjax pallas"] if pallas_in else [])
    cudnn_ok, cudnn_why = wins("rnnjax cudnn", against)
    cudnn_in = cudnn_ok and checked("cudnn")
    lines = [
        f"- pallas checks {'passed' if checked('pallas') else 'did not pass'}; "
        f"fwd+bwd against fused: {pallas_why}. "
        f'AUTO_PALLAS_PLATFORMS: {"add" if pallas_in else "leave out"} "cuda".',
        f"- cudnn checks {'passed' if checked('cudnn') else 'did not pass or none ran'}"
        f"; fwd+bwd against {' and '.join(against)}: {cudnn_why}. auto for the "
        f"plain float32 LSTM on CUDA: {'cudnn' if cudnn_in else 'unchanged'}.",
        f"(Rule: geometric mean < {WIN_RATIO} and faster in >= {WIN_SHARE:.0%} "
        "of the float32 groups, all checks passed.)",
    ]
    return {"pallas_on_cuda": pallas_in, "cudnn_under_auto": cudnn_in, "lines": lines}


# ----------------------------------------------------------------- deviceless compile


def compile_only(args) -> int:
    """Compiles every JAX contender of every timing group for ``args.compile_only``
    (a target description in ``benchmarks/targets/``) without a device: forward
    and gradient (``--covering``: each distinct Pallas tiling only). Returns the
    number of failures."""
    from jax.experimental import topologies

    with open(os.path.join(TARGETS, f"{args.compile_only}.pbtxt")) as f:
        config = f.read()
    topology = topologies.get_topology_desc(
        "target", "cuda", target_config=config, topology="1x1x1"
    )
    sharding = jax.sharding.SingleDeviceSharding(topology.devices[0])
    abstract = lambda tree: jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree
    )
    failures, seen = 0, set()
    for dtype, cell_name, B, H in timing_groups(args):
        for name, note, make in contenders(args, dtype, cell_name, B, H):
            key = (dtype, cell_name, note)
            pallas = name == "rnnjax pallas"
            if make is None or (args.covering and (not pallas or key in seen)):
                continue
            seen.add(key)
            label = f"{cell_name} {dtype} B={B} H={H} {name}"
            t0 = time.perf_counter()
            try:
                f, params, xs = make()
                fwd, _ = compile_pair(f, abstract(params), abstract(xs))
                if name == "rnnjax pallas" and "falls back" not in note:
                    assert "triton" in fwd.as_text().lower(), "no Triton kernel"
                print(f"OK   {label} {time.perf_counter() - t0:.1f} s", flush=True)
            except Exception as e:  # every compiler error, reported
                failures += 1
                print(f"FAIL {label}: {_short(e)}", flush=True)
    return failures


def render(paths, results=None) -> str:
    """The markdown of saved runs merged (see ``--render``), written into the
    ``gpu`` block of ``results`` when given."""
    merged = {"env": [], "checks": [], "timings": {}}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        merged["env"].append(data["env"])
        merged["checks"] = data["checks"] or merged["checks"]
        for r in data["timings"]:
            key = (r["cell"], r["dtype"], r["B"], r["H"], r["T"], r["impl"])
            if r["impl"] != "(group)":
                merged["timings"][key] = r
    merged["timings"] = list(merged["timings"].values())
    merged["verdict"] = verdict(merged)
    text = markdown(merged)
    if results is not None:
        command = "python benchmarks/gpu.py --render " + " ".join(paths)
        heading = f"### One H200 run (generated by `{command}`)"
        harness.write_block(results, "gpu", f"{heading}\n\n{text}")
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        print(render(args.render, args.results))
        return 0
    if args.compile_only:
        failures = compile_only(args)
        print(f"\ntotal {time.perf_counter() - START:.0f} s; {failures} failed")
        return 1 if failures else 0
    log = Log(args.out, environment(args))
    print(json.dumps(log.data["env"], default=str), flush=True)
    ok = True if args.skip_checks else run_checks(args, log)
    run_timings(args, log)
    log.data["verdict"] = verdict(log.data)
    log.flush()
    print()
    print(markdown(log.data))
    print(
        f"\ntotal {time.perf_counter() - START:.0f} s; "
        f"checks {'passed' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
