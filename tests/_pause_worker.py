"""``python tests/_pause_worker.py PHASE:STEP ARGS...``: the ``rnnjax`` command
(``rnnjax.cli.main(ARGS)``) with a checkpoint callback (``on_save``) that, in the
save of ``STEP`` at ``PHASE`` (``before_commit`` or ``after_commit``), prints
``rnnjax-test: paused PHASE STEP`` to stderr and sleeps, so that
tests/test_cli.py can kill the process there."""

import sys
import time

from rnnjax import cli


def main() -> int:
    phase, step = sys.argv[1].split(":")

    def pause(at_phase: str, at_step: int) -> None:
        if (at_phase, at_step) == (phase, int(step)):
            print(f"rnnjax-test: paused {phase} {step}", file=sys.stderr, flush=True)
            time.sleep(600)

    return cli.main(sys.argv[2:], on_save=pause)


if __name__ == "__main__":
    raise SystemExit(main())
