"""The `rnnjax` command's default training step (config `char_lstm`) on one CPU
device against the batch split over N CPU devices, two ways: by hand with
``jax.shard_map`` (``make_train_step(..., mesh=)``) and by ``jit``'s automatic
partitioning of a sharded batch (``make_train_step`` fed ``shard_batch``). Same
process, interleaved, medians::

    python benchmarks/studies/train_step_devices.py --devices 2 --steps 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()

    import jax

    jax.config.update("jax_num_cpu_devices", args.devices)  # before JAX starts
    import functools

    from rnnjax import train
    from rnnjax.configs import char_lstm
    from rnnjax.train import experiment, step

    config = char_lstm.get_config()
    exp = experiment.build(config)
    apply_fn, loss_fn = exp.apply_fn, exp.loss_fn
    clip = config.optimizer.clip_norm or None
    mesh = train.data_mesh()
    make = functools.partial(step.make_train_step, apply_fn, loss_fn, exp.optimizer)
    runs = {  # name: (step, mesh to place the state and batch on, or None)
        "1 device": (make(clip_norm=clip), None),
        f"shard_map, {args.devices} devices": (make(clip_norm=clip, mesh=mesh), mesh),
        f"jit of a sharded batch, {args.devices} devices": (make(clip_norm=clip), mesh),
    }
    state0 = experiment.init_state(exp)
    states = {
        k: state0 if m is None else train.replicate(state0, m)
        for k, (_, m) in runs.items()
    }
    times = {k: [] for k in runs}

    def step_once(name, fn, batch, i):
        states[name], metrics = fn(states[name], batch, jax.random.key(i))
        jax.block_until_ready(metrics)

    for i in range(args.steps + 1):  # the first round compiles
        batch = exp.data.train_batch(i)
        for name, (fn, m) in runs.items():
            b = batch if m is None else train.shard_batch(batch, m)
            took = harness.seconds(lambda a=(name, fn, b, i): step_once(*a))
            if i:
                times[name].append(took)
    for name, t in times.items():
        ms = 1e3 * statistics.median(t)
        print(f"| {name} | {ms:.1f} ms | {1e3 / ms:.1f} steps/s |")


if __name__ == "__main__":
    main()
