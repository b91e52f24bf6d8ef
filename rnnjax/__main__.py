"""``python -m rnnjax``: the ``rnnjax`` command (see `rnnjax.cli`)."""

from rnnjax.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
