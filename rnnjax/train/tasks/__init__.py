"""The tasks of ``rnnjax train``, one file each, found by ``config.task``.

`TASKS` maps a ``config.task`` to its task object, which follows the
`Task` protocol (`rnnjax.train.tasks.base`). A new task is one new
file with one class, registered with [`register`][rnnjax.train.tasks.register]:

    from rnnjax.train import tasks

    tasks.register(MyTask())   # config.task == MyTask.name now trains it

Built in: ``char`` ([`char`][rnnjax.train.tasks.char]), ``adding``
([`adding`][rnnjax.train.tasks.adding]), ``temporal_order``
([`temporal_order`][rnnjax.train.tasks.temporal_order]), ``jsb``
([`jsb`][rnnjax.train.tasks.jsb]) and ``mqar`` ([`mqar`][rnnjax.train.tasks.mqar]).
"""

from __future__ import annotations

from rnnjax.train.tasks.adding import AddingTask
from rnnjax.train.tasks.base import Task, TaskData
from rnnjax.train.tasks.char import CharTask
from rnnjax.train.tasks.jsb import JsbTask
from rnnjax.train.tasks.mqar import MqarTask
from rnnjax.train.tasks.temporal_order import TemporalOrderTask

__all__ = [
    "TASKS",
    "AddingTask",
    "CharTask",
    "JsbTask",
    "MqarTask",
    "Task",
    "TaskData",
    "TemporalOrderTask",
    "get",
    "register",
]

#: The registry: ``config.task`` -> task object.
TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Adds ``task`` to `TASKS` under ``task.name`` and returns it.

    Raises ``TypeError`` for an object that lacks a member of `Task`, and
    ``ValueError`` for a name already taken by another task.
    """
    if not isinstance(task, Task):
        missing = [
            m
            for m in ("name", "paths", "vocabulary", *_METHODS)
            if not hasattr(task, m)
        ]
        raise TypeError(
            f"task: expected an object with the members of rnnjax.train.tasks.Task, "
            f"got a {type(task).__name__} without {', '.join(missing)}"
        )
    name = task.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"task.name: expected a non-empty str, got {name!r}")
    if TASKS.get(name, task) is not task:
        raise ValueError(
            f"task.name: {name!r} is taken by {type(TASKS[name]).__name__}"
        )
    TASKS[name] = task
    return task


def get(name) -> Task:
    """The task registered as ``name``; ``ValueError`` naming ``config.task``."""
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"config.task: expected one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name]


_METHODS = (
    "get_config",
    "check",
    "load",
    "sizes",
    "seq_lengths",
    "loss",
    "eval_sums",
    "summary",
)

for _task in (CharTask(), AddingTask(), JsbTask(), TemporalOrderTask(), MqarTask()):
    register(_task)
del _task
