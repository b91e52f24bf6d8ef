"""The one timing harness of the benchmark scripts (and of ``studies/``): timers,
medians, interleaved rounds, the contenders and their table, the environment lines,
the generated blocks of ``RESULTS.md``, and the only places where the scripts call
``rnnjax.unroll`` and ``Stack.apply`` (:func:`unroll_fn`, :func:`stack_fn`).

Every contender is a pair of callables over its own arguments: ``forward`` returns
the outputs ``ys (B, T, H)``; ``backward`` returns the gradients of ``sum(ys)``
w.r.t. the parameters and the inputs. JAX contenders are jitted; the timer blocks on
every result. Rounds are interleaved across the JAX contenders (each round times
every contender once, in a fresh random order) so that the noise of a shared
machine falls on all of them alike. PyTorch is timed in its own block afterwards:
its OpenMP threads keep spinning for a while after each call, which would slow
down whichever JAX contender came next.

A script in ``studies/`` imports it with
``sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib

# Keras 3 reads its backend once, at its first import: the JAX one, for the Keras
# contenders (a KERAS_BACKEND set by the caller wins, and those rows are skipped).
os.environ.setdefault("KERAS_BACKEND", "jax")
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import rnnjax

REFERENCE = "rnnjax auto"


# ----------------------------------------------------------------------- timers


def seconds(fn) -> float:
    """Wall seconds of one call of ``fn()`` (which blocks on its own result)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_ms(fn, *, repeats: int, warmup: int = 1, block=jax.block_until_ready):
    """Median milliseconds of ``block(fn())`` over ``repeats`` calls, after
    ``warmup`` untimed ones (the first compiles a jitted ``fn``)."""
    for _ in range(warmup):
        block(fn())
    return statistics.median(seconds(lambda: block(fn())) * 1e3 for _ in range(repeats))


def interleaved(
    runs, repeats: int, warmup: int = 1, *, block=jax.block_until_ready, seed=0
) -> dict[str, tuple[float, ...]]:
    """``runs``: name -> a tuple of callables (e.g. forward, forward+backward).
    Each is called ``warmup`` times untimed, then ``repeats`` rounds time every
    callable of every name once, the names in a fresh random order each round.
    Returns name -> the median milliseconds of each of its callables."""
    for fns in runs.values():
        for fn in fns:
            for _ in range(warmup):
                block(fn())
    times = {name: [[] for _ in fns] for name, fns in runs.items()}
    order, names = random.Random(seed), list(runs)
    for _ in range(repeats):
        order.shuffle(names)
        for name in names:
            for fn, out in zip(runs[name], times[name], strict=True):
                out.append(seconds(lambda fn=fn: block(fn())) * 1e3)
    return {name: tuple(statistics.median(t) for t in ts) for name, ts in times.items()}


# ----------------------------------------------------------------------- rnnjax


def unroll_fn(cell, **options):
    """``f(params, xs (B, T, I)) -> ys (B, T, H)``: ``rnnjax.unroll`` of ``cell``
    with ``options=rnnjax.UnrollOptions(**options)`` (``impl``, ``unroll``,
    ``remat``, ``chunk_size``; none: the defaults)."""
    opts = rnnjax.UnrollOptions(**options)
    return lambda params, xs: rnnjax.unroll(cell, params, xs, options=opts)[1]


def stack_fn(model, **options):
    """``f(params, xs (B, T, I)) -> ys``: ``model.apply`` of an ``rnnjax.Stack``
    with the unroll options ``rnnjax.UnrollOptions(**options)``. The one place the
    scripts call ``Stack.apply``."""
    opts = rnnjax.UnrollOptions(**options)
    return lambda params, xs: model.apply(params, xs, options=opts)[1]


# ----------------------------------------------------------------------- contenders


@dataclasses.dataclass
class Contender:
    name: str
    forward: Callable[[], Any]
    backward: Callable[[], Any]
    block: Callable[[Any], Any] = jax.block_until_ready
    group: str = "jax"
    #: JAX contenders: lowers and compiles both functions afresh, returns seconds
    compile: Callable[[], tuple[float, float]] | None = None


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--batch", type=int, default=32, help="B")
    p.add_argument("--time", type=int, default=128, help="T")
    p.add_argument("--input", type=int, default=128, help="I")
    p.add_argument("--hidden", type=int, default=256, help="H")
    p.add_argument("--repeats", type=int, default=20, help="timed runs (>= 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="also bfloat16 compute: rnnjax dtype=bfloat16 (float32 parameters and "
        "state) against PyTorch under torch.autocast('cpu', bfloat16)",
    )
    p.add_argument(
        "--only", default="", help="comma-separated substrings of contender names"
    )
    p.add_argument(
        "--tune-allocator",
        action="store_true",
        help="call rnnjax.hardware.tune_host_allocator() first (thresholds only, "
        "no single arena; process-wide: every contender, PyTorch included, runs "
        "under it)",
    )
    add_devices_option(p)
    args = p.parse_args()
    if args.repeats < 10:
        p.error("--repeats: at least 10")
    use_cpu_devices(p, args.devices, [args.batch])
    if args.tune_allocator and not rnnjax.hardware.tune_host_allocator():
        p.error("--tune-allocator: needs Linux with glibc")
    return args


def add_devices_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--devices",
        type=int,
        default=1,
        help="N > 1 adds rnnjax and Flax rows with the batch split over N CPU "
        "devices by jax.shard_map (jax_num_cpu_devices=N; the other rows run on one)",
    )


def use_cpu_devices(p: argparse.ArgumentParser, devices: int, batches) -> None:
    """Checks ``--devices`` against the batch sizes and, for N > 1, gives JAX N
    CPU devices (before it starts its CPU backend)."""
    if devices < 1 or any(b % devices for b in batches):
        p.error(f"--devices: a positive divisor of every batch size {list(batches)}")
    if devices > 1:
        jax.config.update("jax_num_cpu_devices", devices)


def selected(args, name: str) -> bool:
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    return name == REFERENCE or not keys or any(k in name for k in keys)


def adder(args, out: list):
    """``add(name, make)``: appends ``make()`` to ``out`` when ``--only`` selects
    ``name`` and its library is installed."""

    def add(name, make):
        if selected(args, name):
            contender = optional(make)
            if contender is not None:
                out.append(contender)

    return add


def jax_contender(name, f, params, xs) -> Contender:
    """``f(params, xs) -> ys``; jits the forward and the gradient of ``sum(ys)``."""
    fwd = jax.jit(f)
    loss = lambda p, x: jnp.sum(f(p, x))
    bwd = jax.jit(jax.grad(loss, argnums=(0, 1)))

    def compile_seconds():
        # A fresh jax.jit each time: its own trace, lowering and XLA compile.
        return tuple(
            seconds(lambda g=g: jax.jit(g).lower(params, xs).compile())
            for g in (f, jax.grad(loss, argnums=(0, 1)))
        )

    return Contender(
        name, lambda: fwd(params, xs), lambda: bwd(params, xs), compile=compile_seconds
    )


def rnnjax_rows(args, add, make_cell, params, xs) -> None:
    """``add``s the rows ``rnnjax auto``, ``rnnjax fused``, ``rnnjax scan`` of the
    cell ``make_cell()`` and, with ``--bf16``, ``rnnjax auto bf16`` (the cell
    ``make_cell(dtype=jnp.bfloat16)``: bfloat16 products, float32 parameters and
    state)."""
    cell = make_cell()
    if args.bf16:
        f = unroll_fn(make_cell(dtype=jnp.bfloat16))
        name = "rnnjax auto bf16"
        add(name, lambda: jax_contender(name, f, params, xs))
    for impl in ("auto", "fused", "scan"):
        name, f = f"rnnjax {impl}", unroll_fn(cell, impl=impl)
        add(name, lambda name=name, f=f: jax_contender(name, f, params, xs))


def shard_map_contender(name, f, params, xs, devices: int) -> Contender:
    """``f(params, xs) -> ys`` under ``jax.shard_map`` over ``devices`` CPU
    devices: parameters replicated, the batch (axis 0 of ``xs`` and ``ys``) split,
    the parameter gradient summed over the devices by a ``psum``.

    ``check_vma=False`` (and the explicit psum it needs): Flax's ``nn.RNN`` fails
    the default check (its zero carry varies over no mesh axis; rnnjax passes
    both ways), and every row should run the same program shape.
    """
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((devices,), ("data",), axis_types=(AxisType.Auto,))
    specs = (P(), P("data"))
    grad = jax.grad(lambda p, x: jnp.sum(f(p, x)), argnums=(0, 1))

    def summed_grad(p, x):
        dp, dx = grad(p, x)
        return jax.lax.psum(dp, "data"), dx

    def sharded(fn, out_specs):
        return jax.shard_map(
            fn, mesh=mesh, in_specs=specs, out_specs=out_specs, check_vma=False
        )

    programs = (sharded(f, P("data")), sharded(summed_grad, (P(), P("data"))))
    fwd, bwd = (jax.jit(g) for g in programs)
    params = jax.device_put(params, NamedSharding(mesh, P()))
    xs = jax.device_put(xs, NamedSharding(mesh, P("data")))

    def compile_seconds():
        return tuple(
            seconds(lambda g=g: jax.jit(g).lower(params, xs).compile())
            for g in programs
        )

    return Contender(
        name,
        lambda: fwd(params, xs),
        lambda: bwd(params, xs),
        compile=compile_seconds,
    )


def add_device_rows(args, add, xs, rows) -> None:
    """With ``--devices N`` (N > 1): ``add``s each ``(label, f, params)`` of
    ``rows`` again as ``"<label>, shard_map N devices"``."""
    if args.devices < 2:
        return
    for label, f, params in rows:
        name = f"{label}, shard_map {args.devices} devices"
        add(
            name,
            lambda name=name, f=f, p=params: shard_map_contender(
                name, f, p, xs, args.devices
            ),
        )


def nnx_contender(name, make_cell, xs) -> Contender:
    """Flax NNX: ``nnx.RNN(make_cell(rngs))``, split into graph, parameters and
    the rest (RNG counters); the parameters are what is differentiated."""
    from flax import nnx

    model = nnx.RNN(make_cell(nnx.Rngs(0)))
    # The zero carry made here, once: the RNN would otherwise draw it from its
    # RNG streams inside the trace, which NNX refuses across jit boundaries.
    carry = model.cell.initialize_carry(xs[:, 0].shape, nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    f = lambda p, x: nnx.merge(graphdef, p, rest)(x, initial_carry=carry, rngs=False)
    return jax_contender(name, f, params, xs)


def haiku_contender(name, make_core, xs) -> Contender:
    """Haiku: ``hk.dynamic_unroll`` of the core ``make_core()``, batch-major."""
    import haiku as hk

    def unrolled(x):
        core = make_core()
        state = core.initial_state(x.shape[0])
        return hk.dynamic_unroll(core, x, state, time_major=False)[0]

    model = hk.without_apply_rng(hk.transform(unrolled))
    return jax_contender(name, model.apply, model.init(jax.random.key(0), xs), xs)


def keras_contender(name, make_layer, xs) -> Contender | None:
    """Keras 3 on the JAX backend: the layer's ``stateless_call`` over its
    trainable variables; None when Keras runs another backend."""
    import keras

    if keras.backend.backend() != "jax":
        print(f"{name}: skipped, KERAS_BACKEND is {keras.backend.backend()!r}")
        return None
    keras.utils.set_random_seed(0)
    layer = make_layer(keras)
    layer.build(xs.shape)
    trainable = [v.value for v in layer.trainable_variables]
    frozen = [v.value for v in layer.non_trainable_variables]
    f = lambda tv, x: layer.stateless_call(tv, frozen, x)[0]
    return jax_contender(name, f, trainable, xs)


#: Per cell kind: the Flax NNX cell classes, Haiku's core and row name, Keras's
#: layer. Haiku's GRU applies the reset gate before the recurrent product (Cho et
#: al. 2014), not after it as the other GRUs here: the same cost, other maths.
LIBRARY_CELLS = {
    "lstm": (("OptimizedLSTMCell", "LSTMCell"), ("LSTM", "haiku LSTM"), "LSTM"),
    "gru": (("GRUCell",), ("GRU", "haiku GRU (reset before)"), "GRU"),
}


def library_peers(kind, n_in, hidden, xs):
    """``[(name, make)]``: the Flax NNX, Haiku and Keras rows of an ``"lstm"`` or
    ``"gru"`` workload, ``make() -> Contender`` (the library imported then)."""
    nnx_cells, (hk_core, hk_name), keras_layer = LIBRARY_CELLS[kind]

    def nnx_row(cls):
        from flax import nnx

        make_cell = lambda rngs: getattr(nnx, cls)(n_in, hidden, rngs=rngs)
        return nnx_contender(f"flax nnx {cls}", make_cell, xs)

    def haiku_row():
        import haiku as hk

        return haiku_contender(hk_name, lambda: getattr(hk, hk_core)(hidden), xs)

    def keras_row():
        make = lambda keras: getattr(keras.layers, keras_layer)(
            hidden, return_sequences=True
        )
        return keras_contender(f"keras {keras_layer}", make, xs)

    rows = [(f"flax nnx {cls}", lambda cls=cls: nnx_row(cls)) for cls in nnx_cells]
    return [*rows, (hk_name, haiku_row), (f"keras {keras_layer}", keras_row)]


def torch_peers(layer, n_in, hidden, xs_np, bf16=False):
    """``[(name, make)]``: PyTorch's ``nn.<layer>`` (``"LSTM"``, ``"GRU"``) eager
    in float32, and under bfloat16 autocast too when ``bf16``."""

    def row(autocast):
        import torch

        torch.manual_seed(0)
        module = getattr(torch.nn, layer)(n_in, hidden, batch_first=True)
        return torch_contender(names[autocast], module, xs_np, autocast=autocast)

    names = {
        False: f"pytorch nn.{layer} (eager)",
        True: f"pytorch nn.{layer} autocast bf16",
    }
    return [
        (names[a], lambda a=a: row(a)) for a in ((False, True) if bf16 else (False,))
    ]


def optional(make):
    """``make()``, or None (with a line saying why) when its library is missing."""
    try:
        return make()
    except ImportError as e:
        print(f"skipped: {e}")
        return None


def torch_contender(name, module, xs_np, autocast: bool = False) -> Contender:
    """A PyTorch recurrent module (``batch_first=True``), eager, 2 threads;
    ``autocast``: under ``torch.autocast("cpu", dtype=torch.bfloat16)``."""
    import contextlib

    import torch

    torch.set_num_threads(2)
    xs = torch.from_numpy(xs_np)
    mode = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if autocast
        else contextlib.nullcontext
    )

    def forward():
        with torch.no_grad(), mode():
            return module(xs)[0]

    def backward():
        x = xs.clone().requires_grad_(True)
        for p in module.parameters():
            p.grad = None
        with mode():
            ys = module(x)[0]
        ys.float().sum().backward()
        return x.grad

    return Contender(name, forward, backward, block=lambda out: out, group="torch")


def measure(contenders, repeats: int, warmup: int) -> dict[str, tuple[float, float]]:
    """Median ms of (forward, forward+backward) per contender: the JAX ones in
    interleaved rounds, then PyTorch's in their own (see the module docstring)."""
    medians = {}
    for group in dict.fromkeys(c.group for c in contenders):
        members = [c for c in contenders if c.group == group]
        runs = {c.name: (c.forward, c.backward) for c in members}
        medians.update(interleaved(runs, repeats, warmup, block=members[0].block))
    return {c.name: medians[c.name] for c in contenders}


def table(results, title: str) -> str:
    ref_f, ref_b = results[REFERENCE]
    lines = [
        f"### {title}",
        "",
        "| implementation | forward ms | x auto | fwd+bwd ms | x auto |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (f, b) in results.items():
        lines.append(
            f"| {name} | {f:.1f} | {f / ref_f:.2f} | {b:.1f} | {b / ref_b:.2f} |"
        )
    return "\n".join(lines)


def environment() -> str:
    """Commit, date, CPU model and its AVX-512/AMX flags, library versions."""

    def sh(cmd):
        try:
            return subprocess.run(
                cmd, shell=True, capture_output=True, text=True, check=False
            ).stdout.strip()
        except OSError:
            return "?"

    model = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    flags = sh("grep -m1 '^flags' /proc/cpuinfo").split()
    avx512 = sorted(f for f in flags if f.startswith("avx512"))
    amx = sorted(f for f in flags if f.startswith("amx"))
    import flax

    versions = f"jax {jax.__version__}, flax {flax.__version__}"
    try:
        import equinox
        import torch

        versions += f", equinox {equinox.__version__}, torch {torch.__version__}"
    except ImportError:
        pass
    return "\n".join(
        [
            f"- commit: {sh('git rev-parse --short HEAD')}"
            + (" (dirty tree)" if sh("git status --porcelain -- rnnjax") else ""),
            f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
            f"- CPU: {model}, {os.cpu_count()} cores visible",
            f"- AVX-512: {'yes (' + ' '.join(avx512) + ')' if avx512 else 'no'}",
            f"- AMX: {'yes (' + ' '.join(amx) + ')' if amx else 'no'}",
            f"- {versions}",
        ]
    )


def report(args, results, title: str, script: str) -> None:
    cmd = (
        f"python {script} --batch {args.batch} --time {args.time} "
        f"--input {args.input} --hidden {args.hidden} --repeats {args.repeats}"
        + (f" --only '{args.only}'" if args.only else "")
        + (" --bf16" if args.bf16 else "")
        + (" --tune-allocator" if args.tune_allocator else "")
        + (f" --devices {args.devices}" if args.devices > 1 else "")
    )
    print(table(results, title))
    print()
    print(f"- command: `{cmd}`")
    print(environment())


# ----------------------------------------------------------------------- RESULTS.md

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"


def markers(name: str) -> tuple[str, str]:
    """The HTML comments around the block that the script ``name`` generates."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_block(path: pathlib.Path, name: str, block: str) -> None:
    """Replaces the block ``name`` of ``path``, between its :func:`markers`
    (appended when absent); the rest of the file is kept as it is."""
    start, end = markers(name)
    text = path.read_text() if path.exists() else ""
    block = f"{start}\n{block}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def add_results_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--results",
        type=pathlib.Path,
        default=None,
        help=f"also write {what} into this file's generated block (e.g. "
        "benchmarks/RESULTS.md)",
    )
