"""The programs compiled for each accelerator target, named and described as plain
data (JSON-able dicts), so the tests can list them without compiling anything.

Four families (``B`` batch, ``T`` time, ``I`` input, ``H`` hidden):

- ``cell/<cell>/<impl>``: every cell under every ``impl`` it accepts (``auto``,
  ``scan``, ``fused`` for fused-form cells, ``associative`` for cells linear in
  the state, ``pallas`` for the plain LSTM and GRU), gradient of a loss over
  ``unroll`` (its program holds the forward too), ``B=8, T=16, I=H=32``.
- ``kernel/<cell>/<impl>/H../B../<dtype>/<mode>[/lengths][/reverse][/resets]``: the
  LSTM and GRU at ``H`` in 64, 256, 1024, ``B`` in 8, 256, float32 or bfloat16
  compute, forward or gradient, with or without ``seq_lengths``, ``reverse``
  and ``resets``, under ``auto``, ``scan``, ``fused`` and ``pallas`` (on GPUs
  also ``pallas_stepwise`` and ``pallas_sequence``, the two designs forced),
  ``I=64``, ``T=32`` under Pallas and 8 otherwise.
- ``mlstm/pallas/DH../T../L../<dtype>/<mode>``: the chunkwise mLSTM Pallas
  kernel (``rnnjax.kernels.pallas_mlstm``) at ``NH=4``, ``B=2`` with a
  ``valid`` mask, head sizes 64 to 256 and ``T`` 256 to 4096 in chunks of 64 or
  128, forward (and the gradient at the smallest size) on every target
  (`MLSTM_CASES`); plus one size past a chip's memory (refused on TPU v4, or on
  the A100, compiled elsewhere).
- ``model/...``: a 2-layer bidirectional LSTM stack with dropout, the linen and
  the NNX ``RNN`` (gradients, training mode).
- ``train/<config>``: the train step (`rnnjax.train.Trainer`) of every shipped
  config at its own sizes.

The covering design (`for_platform`; the full product is thousands of
compiles, a GPU compile about a second, a TPU one about half that):

- ``cell``: each cell, with every impl it accepts, on one target, dealt round
  robin (`CELL_DEAL`: a GPU once for every four TPU cells).
- ``kernel``: a pairwise covering array (`pairwise`) over the target (within
  the platform) and every factor above: every pair of values of any two factors
  is compiled; plus, on every target, the Pallas kernels' forward and backward
  at the sizes where the generation's limits bite (`SWEEP_H`), and the GPU
  ``sequence`` design forced past its limit once (an expected refusal).
- ``model`` and ``train``: each on one target (`MODEL_TARGETS`,
  `TRAIN_TARGETS`).

``RNNJAX_COMPILE_ALL=1`` compiles everything on every target: every cell case,
the full ``kernel`` product, every model and train step (hours).
"""

from __future__ import annotations

import dataclasses
import itertools
import os

import rnnjax
from tests.accelerators.deviceless import TARGETS

# ------------------------------------------------------------------ the cells

# name -> the cell at hidden size H.
CELLS = {
    "simple_rnn": lambda H: rnnjax.simple_rnn(H),
    "simple_rnn_relu": lambda H: rnnjax.simple_rnn(H, activation="relu"),
    "lstm": lambda H: rnnjax.lstm(H),
    "lstm_peephole": lambda H: rnnjax.lstm(H, peephole=True),
    "lstm_coupled": lambda H: rnnjax.lstm(H, coupled=True),
    "lstm_nig": lambda H: rnnjax.lstm(H, input_gate=False),
    "lstm_nfg": lambda H: rnnjax.lstm(H, forget_gate=False),
    "lstm_nog": lambda H: rnnjax.lstm(H, output_gate=False),
    "lstm_niaf": lambda H: rnnjax.lstm(H, input_activation=None),
    "lstm_noaf": lambda H: rnnjax.lstm(H, output_activation=None),
    "lstm_fgr": lambda H: rnnjax.lstm(H, full_gate_recurrence=True),
    "lstm_layer_norm": lambda H: rnnjax.lstm(H, layer_norm=True),
    "lstmp": lambda H: rnnjax.lstm(H, proj_size=H // 2),
    "gru": lambda H: rnnjax.gru(H),
    "gru_reset_before": lambda H: rnnjax.gru(H, reset_after=False),
    "mgu": lambda H: rnnjax.mgu(H),
    "min_gru": lambda H: rnnjax.min_gru(H),
    "min_gru_log": lambda H: rnnjax.min_gru(H, log_space=True),
    "min_lstm": lambda H: rnnjax.min_lstm(H),
    "min_lstm_log": lambda H: rnnjax.min_lstm(H, log_space=True),
    "mut1": lambda H: rnnjax.mut1(H),  # needs I == H
    "mut2": lambda H: rnnjax.mut2(H),
    "mut3": lambda H: rnnjax.mut3(H),
    "depth_gated_lstm": lambda H: rnnjax.depth_gated_lstm(H, 2),
    "conv_lstm_1d": lambda H: rnnjax.conv_lstm(H // 4, 3, spatial_shape=(8,)),
    "conv_lstm_2d": lambda H: rnnjax.conv_lstm(H // 4, 3, spatial_shape=(4, 4)),
    "clockwork_rnn": lambda H: rnnjax.clockwork_rnn(H, 4),
    "grid_lstm": lambda H: rnnjax.grid_lstm(H, 2),
    "slstm": lambda H: rnnjax.slstm(H),
}
CELL_H = 32
# The event shape of one step's input, ``(*S, I)`` for ConvLSTM; ``(H,)`` else.
CELL_EVENT = {"conv_lstm_1d": (8, 8), "conv_lstm_2d": (4, 4, 8)}


def make_cell(name: str, H: int, dtype=None):
    """The cell ``name`` of `CELLS` at hidden size ``H`` (compute ``dtype``)."""
    cell = CELLS[name](H)
    return cell if dtype is None else dataclasses.replace(cell, dtype=dtype)


def accepted_impls(name: str) -> list[str]:
    """The ``impl`` values cell ``name`` accepts."""
    from rnnjax.cells.base import is_fusable
    from rnnjax.kernels import has_linear_recurrence
    from rnnjax.kernels.pallas import is_supported

    cell = make_cell(name, CELL_H)
    impls = ["auto", "scan"]
    impls += ["fused"] if is_fusable(cell) else []
    impls += ["associative"] if has_linear_recurrence(cell) else []
    impls += ["pallas"] if is_supported(cell) else []
    return impls


# ------------------------------------------------------------------ pairwise


def pairwise(factors: dict[str, list]) -> list[dict]:
    """A covering array of strength 2 over ``factors`` (name -> values): rows in
    which every pair of values of any two factors appears at least once. Greedy
    and deterministic: each row starts from the first pair not yet covered and
    fills the other factors with the value that covers most new pairs."""
    names = list(factors)
    uncovered = {
        (a, va, b, vb)
        for a, b in itertools.combinations(range(len(names)), 2)
        for va in range(len(factors[names[a]]))
        for vb in range(len(factors[names[b]]))
    }
    rows = []
    while uncovered:
        a, va, b, vb = min(uncovered)
        row = {a: va, b: vb}
        for f in range(len(names)):
            if f in row:
                continue

            def gain(v, f=f, row=row):
                return sum(
                    (min(f, g), v if f < g else w, max(f, g), w if f < g else v)
                    in uncovered
                    for g, w in row.items()
                )

            row[f] = max(range(len(factors[names[f]])), key=lambda v: (gain(v), -v))
        for x, y in itertools.combinations(sorted(row), 2):
            uncovered.discard((x, row[x], y, row[y]))
        rows.append({names[f]: factors[names[f]][v] for f, v in sorted(row.items())})
    return rows


# ------------------------------------------------------------------ the cases

KERNEL_FACTORS = {
    "impl": ["auto", "scan", "fused", "pallas"],
    "cell": ["lstm", "gru"],
    "H": [64, 256, 1024],
    "B": [8, 256],
    "dtype": ["float32", "bfloat16"],
    "mode": ["fwd", "grad"],
    "lengths": [False, True],
    "reverse": [False, True],
    "resets": [False, True],
}
# The sizes at which every target compiles the Pallas kernels.
SWEEP_H = {"tpu": (256, 1024), "gpu": (64, 1024)}
# The shipped configs whose train step compiles: the RNN ones and the xLSTM stack
# (the MQAR configs add no other program: an LSTM, an xLSTM stack).
CONFIGS = (
    "char_lstm",
    "adding_lstm",
    "jsb_lstm",
    "jsb_gru",
    "temporal_order_lstm",
    "xlstm_char",
)
# Where each model and train step compiles by default (everywhere with
# RNNJAX_COMPILE_ALL=1): each on one target, the GPUs' compiles costing about
# three times the TPUs'.
MODEL_TARGETS = {"stack": "tpu_v5e", "linen": "tpu_v5p", "nnx": "tpu_v6e"}
TRAIN_TARGETS = {
    "char_lstm": "gpu_h200",  # the `rnnjax train` default
    "adding_lstm": "tpu_v5e",
    "jsb_lstm": "tpu_v5p",
    "jsb_gru": "tpu_v6e",
    "temporal_order_lstm": "tpu_v4",
    "xlstm_char": "tpu_v4",
}
# The deal of the cells over the targets, round robin: each GPU once for every
# four TPU cells (a GPU compile costs about three times a TPU one).
_TPUS = ("tpu_v4", "tpu_v5e", "tpu_v5p", "tpu_v6e")
CELL_DEAL = (*_TPUS, "gpu_a100", *_TPUS, "gpu_h200")


def compile_all() -> bool:
    """Whether ``RNNJAX_COMPILE_ALL=1`` asks for the full product."""
    return os.environ.get("RNNJAX_COMPILE_ALL", "") not in ("", "0")


def kernel_name(case: dict) -> str:
    flags = [k for k in ("lengths", "reverse", "resets") if case[k]]
    parts = [case["cell"], case["impl"], f"H{case['H']}", f"B{case['B']}"]
    parts += ["bf16" if case["dtype"] == "bfloat16" else "f32", case["mode"], *flags]
    return "kernel/" + "/".join(parts)


def _kernel(**row) -> dict:
    row = {"lengths": False, "reverse": False, "resets": False, **row}
    return {"kind": "kernel", "name": kernel_name(row), **row}


def kernel_cases(platform: str, full: bool) -> dict[str, list[dict]]:
    """``{target: kernel cases}`` for the targets of ``platform``."""
    targets = [n for n, t in TARGETS.items() if t.platform == platform]
    factors = dict(KERNEL_FACTORS)
    if platform == "gpu":
        factors["impl"] = [*factors["impl"], "pallas_stepwise"]
    out = {t: [] for t in targets}
    if full:
        factors["impl"] += ["pallas_sequence"] if platform == "gpu" else []
        for t in targets:
            for values in itertools.product(*factors.values()):
                out[t].append(_kernel(**dict(zip(factors, values, strict=True))))
        return out
    # Pairwise over the factors and the target; then the Pallas kernel's forward
    # and backward at the sizes where a generation's limits bite (VMEM on TPU: H
    # = 256 and 1024; on GPU the two designs the plan picks, H = 64 "sequence"
    # and 1024 "stepwise"); then the GPU "sequence" design forced past its limit.
    for row in pairwise({"target": targets, **factors}):
        out[row.pop("target")].append(_kernel(**row))
    sweep = SWEEP_H[platform]
    for i, t in enumerate(targets):
        for j, H in enumerate(sweep):
            cell = KERNEL_FACTORS["cell"][(i + j) % 2]
            dtype = KERNEL_FACTORS["dtype"][(i + j + 1) % 2]
            out[t].append(
                _kernel(
                    impl="pallas",
                    cell=cell,
                    H=H,
                    B=8,
                    dtype=dtype,
                    mode="grad",
                    lengths=True,
                )
            )
    if platform == "gpu":
        out["gpu_h200"].append(
            _kernel(
                impl="pallas_sequence",
                cell="lstm",
                H=256,
                B=8,
                dtype="float32",
                mode="fwd",
            )
        )
    for t in targets:  # a row may repeat one of the sweep's: keep one
        out[t] = list({c["name"]: c for c in out[t]}.values())
    return out


def cell_cases() -> list[dict]:
    """Every cell under every ``impl`` it accepts."""
    return [
        {"kind": "cell", "name": f"cell/{cell}/{impl}", "cell": cell, "impl": impl}
        for cell in CELLS
        for impl in accepted_impls(cell)
    ]


# (DH, T, L, dtype, mode) of the mLSTM kernel, compiled on every target (the
# gradient at the small size only: its backward is the plain chunkwise form's,
# whose compile grows with T and is XLA's, not the kernel's); and per platform
# one size past the smaller chip's memory (v4's 16 MiB of VMEM, the A100's 163
# KiB of shared memory), which that chip must refuse.
MLSTM_CASES = (
    (64, 256, 64, "float32", "fwd"),
    (64, 256, 64, "bfloat16", "grad"),
    (128, 1024, 128, "bfloat16", "fwd"),
    (256, 4096, 64, "float32", "fwd"),
)
MLSTM_LIMIT = {
    "tpu": (768, 256, 64, "float32", "fwd"),
    "gpu": (1024, 256, 32, "float32", "fwd"),
}


def mlstm_name(case: dict) -> str:
    dtype = "bf16" if case["dtype"] == "bfloat16" else "f32"
    sizes = f"DH{case['DH']}/T{case['T']}/L{case['L']}"
    return f"mlstm/pallas/{sizes}/{dtype}/{case['mode']}"


def mlstm_cases(platform: str, targets: list[str], target: str, full: bool):
    """The mLSTM kernel's cases for ``target`` (one of ``targets``, the
    platform's): every case with ``full``; else `MLSTM_CASES` dealt over the
    targets in turn, and the limit case on the first target (the smaller chip,
    which refuses it) and the second (which compiles it)."""
    index = targets.index(target)
    sizes = [c for i, c in enumerate(MLSTM_CASES) if full or i % len(targets) == index]
    if full or index < 2:
        sizes.append(MLSTM_LIMIT[platform])
    out = []
    for DH, T, L, dtype, mode in sizes:
        case = {"kind": "mlstm", "impl": "pallas", "NH": 4, "B": 2, "DH": DH}
        case |= {"T": T, "L": L, "dtype": dtype, "mode": mode}
        out.append({**case, "name": mlstm_name(case)})
    return out


MODEL_CASES = [
    {"kind": "stack", "name": "model/stack_2layer_bidir_dropout"},
    {"kind": "linen", "name": "model/linen_rnn"},
    {"kind": "nnx", "name": "model/nnx_rnn"},
]


def for_platform(platform: str, full: bool | None = None) -> dict[str, list[dict]]:
    """``{target: cases}`` for every target of ``platform`` (``"tpu"`` or
    ``"gpu"``): the covering set, or everything with ``full`` (default:
    ``RNNJAX_COMPILE_ALL=1``). Each case is a dict with ``kind`` and ``name``."""
    full = compile_all() if full is None else full
    targets = [n for n, t in TARGETS.items() if t.platform == platform]
    out = kernel_cases(platform, full)
    names = list(CELLS)
    for t in targets:
        cells = [  # each cell, with all its impls, on one target
            c
            for c in cell_cases()
            if full or CELL_DEAL[names.index(c["cell"]) % len(CELL_DEAL)] == t
        ]
        models = [c for c in MODEL_CASES if full or MODEL_TARGETS[c["kind"]] == t]
        train = [
            {"kind": "train", "name": f"train/{c}", "config": c}
            for c in CONFIGS
            if full or TRAIN_TARGETS[c] == t
        ]
        mlstm = mlstm_cases(platform, targets, t, full)
        out[t] = cells + out[t] + mlstm + models + train
    return out


# ------------------------------------------------------------------ expectations


def expects_kernel(case: dict) -> bool:
    """Whether the case's compiled program must hold a Pallas kernel."""
    return str(case.get("impl", "")).startswith("pallas")


def known_refusal(target: str, case: dict) -> str | None:
    """Why rnnjax refuses ``case`` on ``target`` before compiling (its Pallas
    kernel's plan does not fit the chip: ``rnnjax.kernels.chips``), or ``None``.
    Such a case must fail with that ``ValueError``, never in the compiler."""
    impl = case.get("impl", "")
    if case.get("kind") == "mlstm":
        return _mlstm_refusal(target, case)
    if case.get("kind") != "kernel" or not impl.startswith("pallas"):
        return None
    import jax.numpy as jnp

    from rnnjax.kernels import Pallas, pallas_gpu, pallas_tpu
    from tests.accelerators import worker

    spec = TARGETS[target]
    f32 = jnp.dtype(jnp.float32)
    design = impl.split("_", 1)[1] if "_" in impl else None
    options = Pallas(
        flavour=spec.platform, interpret=False, gpu_design=design, target=spec.chip
    )
    flavour = pallas_gpu if spec.platform == "gpu" else pallas_tpu
    plan = flavour.plan(
        kind=case["cell"],
        T=worker.T_PALLAS,
        B=case["B"],
        H=case["H"],
        compute_dtype=jnp.dtype(case["dtype"]),
        out_dtype=f32,
        seq_dtypes=(f32, f32),
        options=options,
        unroll=1,
    )
    return plan if isinstance(plan, str) else None


def _mlstm_refusal(target: str, case: dict) -> str | None:
    """Why the mLSTM kernel's plan refuses ``case`` on ``target``, or None."""
    import jax.numpy as jnp

    from rnnjax.kernels import Pallas, pallas_mlstm

    spec = TARGETS[target]
    plan = pallas_mlstm.plan(
        L=case["L"],
        T=case["T"],
        DH=case["DH"],
        in_dtype=jnp.dtype(case["dtype"]),
        eps=1e-6,
        forget_gate="sigmoid",
        options=Pallas(flavour=spec.platform, interpret=False, target=spec.chip),
    )
    return plan if isinstance(plan, str) else None
