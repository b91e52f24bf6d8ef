"""minGRU and minLSTM: the associative (parallel) scan against the sequential scan.

``rnnjax.unroll(cell, params, xs, options=UnrollOptions(impl=...))`` end to end
(input projection included, the same for both), forward (outputs of every step)
and forward+backward (gradient of the sum of the outputs w.r.t. the parameters and
the inputs), float32, jitted, for sequence lengths from 64 to 16384. Both
implementations of one cell and length are timed in the same process, in
interleaved rounds (``harness.measure``)::

    python benchmarks/studies/minimal_scan.py --batch 8 --input 256 --hidden 256
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness
import jax
import jax.numpy as jnp

import rnnjax

CELLS = {"min_gru": rnnjax.min_gru, "min_lstm": rnnjax.min_lstm}
IMPLS = ("associative", "scan")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8, help="B")
    p.add_argument("--input", type=int, default=256, help="I")
    p.add_argument("--hidden", type=int, default=256, help="H")
    p.add_argument("--times", default="64,256,1024,4096,16384", help="values of T")
    p.add_argument("--cells", default="min_gru,min_lstm")
    p.add_argument("--repeats", type=int, default=10, help="timed runs (>= 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    args = p.parse_args()
    if args.repeats < 5:
        p.error("--repeats: at least 5")
    return args


def contenders(cell, params, xs):
    out = []
    for impl in IMPLS:
        f = harness.unroll_fn(cell, impl=impl)
        out.append(harness.jax_contender(impl, f, params, xs))
    return out


def main() -> None:
    args = parse_args()
    times = [int(t) for t in args.times.split(",")]
    rows = []
    for name in args.cells.split(","):
        cell = CELLS[name](args.hidden)
        params = cell.init(jax.random.key(0), args.input)
        for num_steps in times:
            xs = jax.random.normal(
                jax.random.key(1), (args.batch, num_steps, args.input), jnp.float32
            )
            res = harness.measure(
                contenders(cell, params, xs), args.repeats, args.warmup
            )
            (af, ab), (sf, sb) = res["associative"], res["scan"]
            rows.append(
                f"| {name} | {num_steps} | {af:.2f} | {sf:.2f} | {sf / af:.2f} "
                f"| {ab:.2f} | {sb:.2f} | {sb / ab:.2f} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    print(
        f"### B={args.batch}, I={args.input}, H={args.hidden}, float32, median of "
        f"{args.repeats}"
    )
    print()
    print(
        "| cell | T | associative fwd ms | scan fwd ms | scan / assoc "
        "| associative fwd+bwd ms | scan fwd+bwd ms | scan / assoc |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    cmd = (
        f"python benchmarks/studies/minimal_scan.py --batch {args.batch}"
        f" --input {args.input} --hidden {args.hidden} --times {args.times}"
        f" --cells {args.cells}"
        f" --repeats {args.repeats}"
    )
    print(f"- command: `{cmd}`")
    print(harness.environment())


if __name__ == "__main__":
    main()
