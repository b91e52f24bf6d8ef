"""Compiles the cases of one platform's targets (`cases.for_platform`) for real
TPUs or GPUs without a device, in a process of its own, and writes one JSON line
per case.

    python -m tests.accelerators.worker CASES.json OUT.jsonl

with ``CASES.json`` the ``{target: [case]}`` of one platform
(`cases.for_platform`), run with `deviceless.environment` (the test module
does). Each line:
``{"target", "name", "ok", "error", "seconds", "kernels", "temp_bytes",
"same_as"}`` (and one ``_setup`` line per target, with the device's ``kind``);
``kernels`` counts the Pallas custom calls in the compiled program, ``same_as``
names an earlier case whose lowered program was identical (compiled once).
Shapes: ``B`` batch, ``T`` time, ``I`` input, ``H`` hidden.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import jax
import jax.numpy as jnp

import rnnjax
from rnnjax.kernels import Pallas
from tests.accelerators import cases as cases_lib
from tests.accelerators import deviceless

T_CELL, B_CELL = 16, 8
# Pallas cases at T = 32, the TPU kernel's largest time block (its VMEM need
# grows with it up to there); the others at T = 8 (compile time grows with T*B).
T_PALLAS, T_XLA, I_KERNEL = 32, 8, 64


def _impl(case, platform: str):
    """The ``impl`` of a case: Pallas compiled (not interpreted) in the target's
    flavour and sized for its chip (``case["chip"]``), the GPU design when the
    case forces one."""
    impl = case["impl"]
    if not impl.startswith("pallas"):
        return impl
    design = impl.split("_", 1)[1] if "_" in impl else None
    return Pallas(
        flavour=platform, interpret=False, gpu_design=design, target=case["chip"]
    )


def _loss(f):
    """``f``'s outputs reduced to a scalar (every float leaf)."""

    def loss(*args):
        out = f(*args)
        leaves = [
            x for x in jax.tree.leaves(out) if jnp.issubdtype(x.dtype, jnp.floating)
        ]
        return sum(jnp.sum(x.astype(jnp.float32)) for x in leaves)

    return loss


def _grad(f, argnums=(0, 1)):
    return jax.grad(_loss(f), argnums=argnums)


def _cell_program(case, platform):
    """Gradient of a loss over ``unroll`` of the case's cell, ``B=8, T=16``."""
    cell = cases_lib.make_cell(case["cell"], cases_lib.CELL_H)
    event = cases_lib.CELL_EVENT.get(case["cell"], (cases_lib.CELL_H,))
    options = rnnjax.UnrollOptions(impl=_impl(case, platform))
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), event[-1]))
    xs = jax.ShapeDtypeStruct((B_CELL, T_CELL, *event), jnp.float32)

    def forward(p, x):
        return rnnjax.unroll(cell, p, x, options=options)

    return _grad(forward), (params, xs)


def _kernel_program(case, platform):
    """The LSTM or GRU at the case's ``H``, ``B``, compute dtype, mode and
    options, ``I=64``, ``T=32`` under Pallas and 8 otherwise."""
    dtype = None if case["dtype"] == "float32" else jnp.bfloat16
    cell = cases_lib.make_cell(case["cell"], case["H"], dtype)
    options = rnnjax.UnrollOptions(impl=_impl(case, platform))
    B = case["B"]
    T_KERNEL = T_PALLAS if case["impl"].startswith("pallas") else T_XLA
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), I_KERNEL))
    xs = jax.ShapeDtypeStruct((B, T_KERNEL, I_KERNEL), jnp.float32)
    lengths = jax.ShapeDtypeStruct((B,), jnp.int32) if case["lengths"] else None
    resets = jax.ShapeDtypeStruct((B, T_KERNEL), jnp.bool_) if case["resets"] else None

    def forward(p, x, lengths, resets):
        return rnnjax.unroll(
            cell,
            p,
            x,
            seq_lengths=lengths,
            resets=resets,
            reverse=case["reverse"],
            options=options,
        )

    f = forward if case["mode"] == "fwd" else _grad(forward)
    return f, (params, xs, lengths, resets)


def _mlstm_program(case, platform):
    """The chunkwise mLSTM Pallas kernel (``NH`` heads of size ``DH``, ``B``
    sequences of ``T`` steps with a ``valid`` mask, chunks of ``L``), forward or
    the loss and its gradient w.r.t. every float input (the backward is plain
    JAX)."""
    from rnnjax.cells.mlstm import MLSTMState
    from rnnjax.kernels.pallas_mlstm import mlstm_chunkwise_pallas

    B, NH, T, DH = case["B"], case["NH"], case["T"], case["DH"]
    options = _impl(case, platform)
    S, f32 = jax.ShapeDtypeStruct, jnp.float32
    seq = S((B, NH, T, DH), jnp.dtype(case["dtype"]))
    gates = S((B, NH, T), f32)
    carry = MLSTMState(S((B, NH, DH, DH), f32), S((B, NH, DH), f32), S((B, NH), f32))
    valid = S((B, T), jnp.bool_)

    def forward(q, k, v, i_pre, f_pre, carry, valid):
        return mlstm_chunkwise_pallas(
            q, k, v, i_pre, f_pre, carry, valid=valid, chunk_size=case["L"],
            options=options,
        )  # fmt: skip

    # The gradient with the loss's value: jax.grad alone drops the kernel (the
    # backward recomputes its forward in plain JAX, so nothing reads its outputs).
    f = forward
    if case["mode"] == "grad":
        f = jax.value_and_grad(_loss(forward), argnums=tuple(range(6)))
    return f, (seq, seq, seq, gates, gates, carry, valid)


def _stack_program(case, platform):
    """A 2-layer bidirectional LSTM stack with dropout, training: the gradient,
    ``B=8, T=16, I=H=32``."""
    model = rnnjax.stack(rnnjax.lstm(32), 2, bidirectional=True, dropout=0.25)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), 32))
    xs = jax.ShapeDtypeStruct((8, 16, 32), jnp.float32)
    key = jax.eval_shape(lambda: jax.random.key(0))

    def forward(p, x, key):
        return model.apply(p, x, key=key, training=True)

    return _grad(forward), (params, xs, key)


def _linen_program(case, platform):
    """``rnnjax.flax.linen.RNN`` (2 GRU layers) under ``nn.Module.apply``: the
    gradient, ``B=8, T=16, I=H=32``."""
    from rnnjax.flax import linen

    module = linen.RNN(rnnjax.gru(32), num_layers=2)
    xs = jax.ShapeDtypeStruct((8, 16, 32), jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), xs)
    return _grad(module.apply), (variables, xs)


def _nnx_program(case, platform):
    """``rnnjax.flax.nnx.RNN`` (an LSTM, bidirectional, dropout) split into graph
    and state: the gradient in training mode, ``B=8, T=16, I=H=32``."""
    from flax import nnx

    module = nnx.eval_shape(
        lambda: rnnjax.flax.nnx.RNN(
            rnnjax.lstm(32),
            32,
            bidirectional=True,
            num_layers=2,
            dropout=0.1,
            rngs=nnx.Rngs(0),
        )
    )
    graph, params, rest = nnx.split(module, nnx.Param, ...)
    xs = jax.ShapeDtypeStruct((8, 16, 32), jnp.float32)
    key = jax.eval_shape(lambda: jax.random.key(0))

    def forward(params, x, rest, key):
        return nnx.merge(graph, params, rest)(x, rngs=key)

    return _grad(forward), (params, xs, rest, key)


def _train_program(case, platform, tmp):
    """The train step of a shipped config at its own sizes (a small text file for
    the char task, whose vocabulary sets the model's sizes)."""
    from rnnjax import configs
    from rnnjax.train import experiment, step

    _, config = configs.load(case["config"])
    pairs = []
    if config.task == "char":
        text = tmp / "text.txt"
        text.write_text(_CHAR_TEXT * 40, encoding="utf-8")
        pairs = [("data.text_path", str(text))]
    config = configs.override(config, pairs)
    exp = experiment.build(config)
    trainer = experiment.Trainer(exp)
    state = jax.eval_shape(
        lambda k: step.init_state(exp.model.init(k), exp.optimizer), jax.random.key(0)
    )
    batch = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), exp.data.train_batch(0)
    )
    key = jax.eval_shape(lambda: jax.random.key(0))
    return trainer.train_step, (state, batch, key)


_CHAR_TEXT = (
    "".join(chr(c) for c in range(32, 127))
    + "\n"
    + ("def add(a, b):\n    return a + b\n\nclass Point:\n    x: int = 0\n")
)


def build(case, platform, tmp):
    """``(function, abstract arguments)`` of ``case``."""
    kind = case["kind"]
    if kind == "train":
        return _train_program(case, platform, tmp)
    return {
        "cell": _cell_program,
        "kernel": _kernel_program,
        "mlstm": _mlstm_program,
        "stack": _stack_program,
        "linen": _linen_program,
        "nnx": _nnx_program,
    }[kind](case, platform)


def compile_case(case, target, dev, tmp, seen):
    """One JSON-able result: compiled (or the compiler's error), the Pallas
    kernels in the program, the temporary memory."""
    t0 = time.perf_counter()
    result = {"name": case["name"], "ok": False, "error": "", "same_as": None}
    digest = None
    try:
        f, args = build(dict(case, chip=target.chip), target.platform, tmp)
        args = deviceless.abstract(args, dev)
        jitted = f if hasattr(f, "lower") else jax.jit(f)
        lowered = jitted.lower(*args)
        digest = hashlib.sha256(lowered.as_text().encode()).hexdigest()
        if digest in seen:
            result.update(seen[digest], name=case["name"])
            result["same_as"] = seen[digest]["name"]
            result["seconds"] = time.perf_counter() - t0
            return result
        compiled = lowered.compile()
        text = compiled.as_text()
        memory = compiled.memory_analysis()
        result.update(
            ok=True,
            kernels=deviceless.kernel_calls(text, target.platform),
            temp_bytes=int(memory.temp_size_in_bytes) if memory else None,
        )
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"[:2000]
    result["seconds"] = time.perf_counter() - t0
    if digest is not None:
        seen[digest] = dict(result)
    return result


def main(argv):
    """``argv``: the JSON file of ``{target: [case]}`` (one platform) and the
    JSON-lines file to write, one result per case (with its ``target``), one
    ``_setup`` line per target."""
    import pathlib
    import tempfile

    todo = json.loads(pathlib.Path(argv[0]).read_text())
    with pathlib.Path(argv[1]).open("w") as f, tempfile.TemporaryDirectory() as tmp:
        for name, target_cases in todo.items():
            target = deviceless.TARGETS[name]
            t0 = time.perf_counter()
            dev = deviceless.device(target)
            setup = {"target": name, "name": "_setup", "kind": deviceless.describe(dev)}
            setup["seconds"] = time.perf_counter() - t0
            f.write(json.dumps(setup) + "\n")
            seen = {}
            for case in target_cases:
                result = compile_case(case, target, dev, pathlib.Path(tmp), seen)
                f.write(json.dumps({"target": name, **result}) + "\n")
                f.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
