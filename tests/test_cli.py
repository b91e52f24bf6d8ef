"""The ``rnnjax`` command: bad input is one clear line and leaves no files; a run
killed with SIGKILL (between steps, and in the middle of a checkpoint write)
resumes to the same parameters, bit for bit, as an uninterrupted run."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from rnnjax import cli, configs
from rnnjax.train import checkpoint, experiment, metrics, schema
from tests.conftest import FAST_COMPILE

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAUSE_WORKER = ROOT / "tests" / "_pause_worker.py"
TEXT = "def add(a, b):\n    return a + b\n\nclass A:\n    pass\n" * 40
TINY = [
    "--config.model.hidden_size=16",
    "--config.batch_size=4",
    "--config.seq_len=16",
    "--config.log_every=2",
    "--config.keep=2",
    "--config.sample.length=20",
]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "char_lstm" in out and "jsb_gru" in out


@pytest.mark.parametrize("name", configs.NAMES)
def test_config_by_path_and_by_name_agree(monkeypatch, name):
    monkeypatch.chdir(ROOT)
    by_path = configs.load(f"configs/{name}.py")
    assert by_path[0] == name
    assert by_path[1].to_dict() == configs.load(name)[1].to_dict()
    schema.check_config(by_path[1])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.model.hiden_size=8"], "unknown key 'hiden_size' in model"),
        (["--config.model.hidden_size=big"], "model.hidden_size: expected an int"),
        (["--config.steps", "1.5"], "--config.steps: expected an int, got '1.5'"),
        (["--config.seq_len=100000"], "config.seq_len: 100000 is longer than the"),
        (["--config.model.cell=lstn"], "config.model.cell: expected one of"),
        (["--config", "nope"], "'nope' is neither a file nor a built-in config"),
        (["--resume"], "--resume: needs --workdir"),
        (["--cpu-devices", "3"], "--cpu-devices: expected a positive divisor of"),
        (["--cpu-devices", "0"], "of the batch size 4, got 0"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path, capsys, text_file, args, message
):
    workdir = tmp_path / "run"
    argv = ["train", f"--config.data.text_path={text_file}", *TINY, *args]
    if "--resume" not in args:
        argv += ["--workdir", str(workdir)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnjax train: error: ") and message in err
    assert err.count("\n") == 1
    assert not workdir.exists()


@pytest.mark.parametrize(
    "batch, requested, cores, want",
    [
        (32, None, 2, 2),
        (32, None, 12, 8),
        (6, None, 4, 3),
        (7, None, 2, 1),
        (32, None, 1, 1),
        (32, 4, 2, 4),
        (32, 1, 16, 1),
    ],
)
def test_cpu_device_count(batch, requested, cores, want):
    """One device per core by default, at most 8, a divisor of the batch."""
    assert cli._cpu_device_count(batch, requested, cores) == want


def test_train_splits_the_batch_over_cpu_devices(tmp_path, text_file):
    """``--cpu-devices 2`` (a process of its own: the count is fixed when JAX
    starts) splits the batch by shard_map and, without dropout, trains to the
    same losses as one device."""
    runs = {}
    for n in (1, 2):
        workdir = tmp_path / f"run{n}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "rnnjax",
                "train",
                "--workdir",
                str(workdir),
                f"--config.data.text_path={text_file}",
                *TINY,
                "--config.steps=4",
                "--config.eval_every=4",
                "--config.checkpoint_every=4",
                "--cpu-devices",
                str(n),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=False,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "JAX_PLATFORMS": "cpu",
                **FAST_COMPILE,
            },
        )
        assert done.returncode == 0, done.stderr[-3000:]
        split = "batch split over 2 CPU devices (shard_map)" in done.stdout
        assert split == (n == 2), done.stdout
        runs[n] = [r["loss"] for r in metrics.read(workdir / "metrics.jsonl")]
    np.testing.assert_allclose(runs[2], runs[1], rtol=1e-5)


@pytest.mark.parametrize(
    "content, message", [(b"", "the file is empty"), (b"ok \xff", "not UTF-8")]
)
def test_bad_text_file(tmp_path, capsys, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    argv = ["train", "--workdir", str(tmp_path / "run"), *TINY]
    assert cli.main([*argv, f"--config.data.text_path={path}"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {message}" in err
    assert not (tmp_path / "run").exists()


def test_refuses_a_used_workdir(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["train", "--workdir", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err
    assert "is not empty; pass --resume" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert cli.main(["train", "--workdir", str(tmp_path), "--resume", *TINY]) == 2
    err = capsys.readouterr().err
    assert "config.json: missing (not an rnnjax run directory)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_unrecognized_argument(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["eval", "--workdir", "x", "--config.steps=3"])
    assert info.value.code == 2
    assert "unrecognized argument: --config.steps=3" in capsys.readouterr().err


def test_new_workdir_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = cli._new_workdir("char_lstm")
    assert first.parent == pathlib.Path("runs")
    assert first.name.startswith("char_lstm-20")
    first.mkdir(parents=True)
    assert cli._new_workdir("char_lstm").name == first.name + "-2"


# ------------------------------------------------------------- kill and resume


def start(workdir, text_file, cache, *extra, pause=None):
    """``python -m rnnjax train`` on a tiny 2-layer LSTM with dropout: 12 steps,
    a checkpoint every 2; stderr goes to a file, returned with the process. With
    ``pause="PHASE:STEP"`` the command runs in tests/_pause_worker.py, which
    sleeps in that checkpoint save (an ``on_save`` callback) for a kill."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        **FAST_COMPILE,
        # Shares compiled steps between the runs (the test's time is compiling).
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    args = [
        *("train", "--workdir", str(workdir), f"--config.data.text_path={text_file}"),
        *TINY,
        *("--config.steps=12", "--config.checkpoint_every=2", "--config.eval_every=6"),
        *("--config.model.num_layers=2", "--config.model.dropout=0.25", *extra),
    ]
    # With a pause, the command runs with an on_save callback that stops there.
    command = ["-m", "rnnjax"] if not pause else [str(PAUSE_WORKER), pause]
    log = workdir.parent / f"{workdir.name}-{time.monotonic_ns()}.log"
    with log.open("ab") as f:  # appends: the child's writes never overwrite
        proc = subprocess.Popen(
            [sys.executable, *command, *args],
            stdout=f,
            stderr=f,
            cwd=ROOT,
            env=env,
        )
    return proc, log


def output(log) -> str:
    return log.read_text(encoding="utf-8", errors="replace")


def kill_at_pause(proc, log, marker, timeout=180):
    deadline = time.monotonic() + timeout
    while marker not in output(log):
        assert proc.poll() is None, f"exited before {marker!r}:\n{output(log)}"
        assert time.monotonic() < deadline, f"no {marker!r}:\n{output(log)}"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def finish(proc, log) -> str:
    assert proc.wait(timeout=300) == 0, output(log)
    return output(log)


def final_state(workdir):
    _, state, step = experiment.load_run(workdir, with_data=False)
    assert step == 12
    return state


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_is_bit_exact(tmp_path, text_file, capsys):
    cache = tmp_path / "jax-cache"
    reference, run = tmp_path / "reference", tmp_path / "run"
    finish(*start(reference, text_file, cache))

    # Killed between steps, just after checkpoint 4 was committed.
    proc, log = start(run, text_file, cache, pause="after_commit:4")
    kill_at_pause(proc, log, "rnnjax-test: paused after_commit 4")
    # Resumed, then killed in the middle of writing checkpoint 8: Orbax has
    # renamed its directory into place, the manifest (the commit) is not written.
    proc, log = start(run, text_file, cache, "--resume", pause="before_commit:8")
    kill_at_pause(proc, log, "rnnjax-test: paused before_commit 8")
    assert f"resuming {run} from step 4" in output(log)
    assert (run / "checkpoints" / "8").is_dir()
    assert not (run / "checkpoints" / "8" / checkpoint.MANIFEST).exists()
    # Resumed again: checkpoint 8 is skipped with a warning, 6 is the latest.
    out = finish(*start(run, text_file, cache, "--resume"))
    assert "rnnjax: warning: skipping checkpoint 8" in out
    assert f"resuming {run} from step 6" in out

    want, got = final_state(reference), final_state(run)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # The metrics read as one run: the killed runs' records after 4 and 6 dropped.
    records = [metrics.read(d / "metrics.jsonl") for d in (reference, run)]
    want, got = ([(r["step"], r["split"], r["loss"]) for r in x] for x in records)
    assert want == got

    # eval and sample on the finished run.
    assert cli.main(["eval", "--workdir", str(run)]) == 0
    assert "test (step 12): loss" in capsys.readouterr().out
    argv = ["sample", "--workdir", str(run), "--prompt", "class", "--length", "7"]
    assert cli.main([*argv, "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("class") and len(out.rstrip("\n")) == 12
    assert cli.main([*argv, "--prompt", "\u00e9"]) == 2
    assert "prompt: character '\u00e9' is not in the vocabulary" in (
        capsys.readouterr().err
    )
