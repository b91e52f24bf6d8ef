"""The ``rnnjax`` command (also ``python -m rnnjax``):

    rnnjax train  [--config NAME|PATH] [--workdir DIR] [--resume] [--config.KEY=V ...]
    rnnjax eval   --workdir DIR
    rnnjax sample --workdir DIR [--prompt S] [--temperature T] [--length N] [--seed S]

``train`` runs `rnnjax.train.experiment.train_and_evaluate` on a config from
`rnnjax.configs` (``char_lstm`` when none is given) with any
``--config.model.hidden_size=512``-style overrides; without ``--workdir`` the run
goes to ``runs/<config>-<date>-<time>``. ``eval`` reports a run's test metric from
its newest checkpoint, ``sample`` draws text from a char model. Bad input (a
config, a file, a workdir in use) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import pathlib
import sys
import time
import warnings

from rnnjax import hardware

__all__ = ["main"]

_EPILOG = """\
built-in configs: {names} (default {default}); a path to a .py file with
get_config() works too. Override any field: --config.model.hidden_size=512
--config.steps=200 --config.data.text_path=my.txt
"""


def _parser() -> argparse.ArgumentParser:
    from rnnjax import configs

    parser = argparse.ArgumentParser(
        prog="rnnjax", description="Train, evaluate and sample rnnjax models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a config",
        allow_abbrev=False,
        epilog=_EPILOG.format(names=", ".join(configs.NAMES), default=configs.DEFAULT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", help="a built-in config name or a .py path")
    train.add_argument("--workdir", type=pathlib.Path, help="the run directory")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --workdir from its newest complete checkpoint",
    )
    train.add_argument(
        "--cpu-devices",
        type=int,
        help="JAX CPU devices to split the batch over (default: one per core, at "
        "most 8, a divisor of the batch size; 1 keeps one device)",
    )
    train.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar (default: when stderr is a terminal)",
    )
    ev = commands.add_parser("eval", help="a run's test metric", allow_abbrev=False)
    ev.add_argument("--workdir", type=pathlib.Path, required=True)
    ev.add_argument("--json", action="store_true", help="print one JSON line")
    sample = commands.add_parser(
        "sample", help="text from a char model", allow_abbrev=False
    )
    sample.add_argument("--workdir", type=pathlib.Path, required=True)
    sample.add_argument("--prompt", help="default: the run's config.sample.prompt")
    sample.add_argument("--temperature", type=float, help="0 picks the likeliest")
    sample.add_argument("--length", type=int, help="characters after the prompt")
    sample.add_argument("--num-samples", type=int, default=1)
    sample.add_argument("--seed", type=int, default=0)
    return parser


def _overrides(parser, command: str, extra: list[str]) -> list[tuple[str, str]]:
    """``--config.a.b=v`` (or ``--config.a.b v``) -> ``[("a.b", "v")]``."""
    pairs, rest = [], list(extra)
    while rest:
        arg = rest.pop(0)
        if command != "train" or not arg.startswith("--config."):
            parser.error(f"unrecognized argument: {arg}")
        key, eq, value = arg[len("--config.") :].partition("=")
        if not eq:
            if not rest:
                parser.error(f"{arg}: expected a value (--config.{key}=VALUE)")
            value = rest.pop(0)
        pairs.append((key, value))
    return pairs


def _new_workdir(name: str) -> pathlib.Path:
    base = pathlib.Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _train(args, overrides, on_save=None) -> None:
    from rnnjax import configs
    from rnnjax.train import experiment, runs

    if args.resume and args.workdir is None:
        raise ValueError("--resume: needs --workdir, the run to continue")
    saved = args.workdir is not None and (args.workdir / runs.CONFIG_JSON)
    if args.resume and args.config is None and saved.is_file():
        name, config = args.workdir.name, runs.saved_config(args.workdir)
    else:
        name, config = configs.load(args.config or configs.DEFAULT)
    config = configs.override(config, overrides)
    _use_cpu_cores(config.batch_size, args.cpu_devices)
    experiment.train_and_evaluate(
        config,
        args.workdir or _new_workdir(name),
        resume=args.resume,
        progress=args.progress,
        on_save=on_save,
    )


def _use_cpu_cores(batch_size: int, requested: int | None = None) -> None:
    """Gives JAX `_cpu_device_count` CPU devices before it starts; the
    experiment then splits the batch over them with ``shard_map``, each device's
    recurrent loop on its own core (XLA runs a small step's matrix product on one
    core: the default training 13 -> 17 steps/s on two; benchmarks/RESULTS.md).
    Dropout masks then depend on the device count. Changes nothing where JAX has
    already started (an in-process caller). Accelerators are unaffected: the
    experiment splits its batch over ``jax.devices()``."""
    import jax

    count = _cpu_device_count(batch_size, requested, _cores())
    if count > 1:
        # JAX already running in this process (RuntimeError): leave it as it is.
        with contextlib.suppress(RuntimeError):
            jax.config.update("jax_num_cpu_devices", count)


def _cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_device_count(batch_size: int, requested: int | None, cores: int) -> int:
    """``requested`` (``--cpu-devices``), checked; by default the largest divisor
    of ``batch_size`` not above ``cores`` or 8."""
    if requested is not None:
        if requested < 1 or batch_size % requested:
            raise ValueError(
                f"--cpu-devices: expected a positive divisor of the batch size "
                f"{batch_size}, got {requested}"
            )
        return requested
    count = max(1, min(cores, 8, batch_size))
    while batch_size % count:
        count -= 1
    return count


def _eval(args, overrides) -> None:
    from rnnjax.train import experiment, trainer

    exp, state, step = experiment.load_run(args.workdir)
    results = experiment.evaluate(exp, state.params, "test")
    if args.json:
        print(json.dumps({"step": step, "split": "test", **results}))
    else:
        print(f"test (step {step}): {trainer.format_metrics(results)}")


def _sample(args, overrides) -> None:
    from rnnjax.train import experiment

    exp, state, _ = experiment.load_run(args.workdir, with_data=False)
    defaults = exp.config.get("sample")
    if defaults is None:
        raise ValueError(
            f"--workdir: {args.workdir} holds a model of the {exp.config.task!r} "
            f"task; only char models generate text"
        )
    texts = experiment.generate(
        exp,
        state.params,
        defaults.prompt if args.prompt is None else args.prompt,
        length=defaults.length if args.length is None else args.length,
        temperature=(
            defaults.temperature if args.temperature is None else args.temperature
        ),
        num_samples=args.num_samples,
        seed=args.seed,
    )
    print("\n\n".join(texts))


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"rnnjax: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None, *, on_save=None) -> int:
    """Runs the command in ``argv`` (default ``sys.argv[1:]``); returns the exit
    status: 0, or 2 for bad input.

    ``on_save``: a test seam, passed to
    `train_and_evaluate` by ``train``: called as
    ``on_save(phase, step)`` in each checkpoint save (see
    `rnnjax.train.Checkpoints`), so that a test can kill the run there.
    """
    parser = _parser()
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    overrides = _overrides(parser, args.command, extra)
    train = functools.partial(_train, on_save=on_save)
    run = {"train": train, "eval": _eval, "sample": _sample}[args.command]
    # Before JAX starts its threads: XLA:CPU's per-call temporary arenas are then
    # reused from the heap instead of being faulted in again every step (see
    # rnnjax.hardware).
    hardware.tune_host_allocator(single_arena=True)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            run(args, overrides)
        except (ValueError, TypeError, FileNotFoundError) as e:
            print(f"rnnjax {args.command}: error: {e}", file=sys.stderr)
            return 2
    return 0
