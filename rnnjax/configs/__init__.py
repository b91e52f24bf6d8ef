"""Built-in experiment configs (``ml_collections``), loading by name or path, and
command-line overrides.

Each config is a module with ``get_config() -> ml_collections.ConfigDict``:
``char_lstm`` (the default), ``adding_lstm``, ``jsb_lstm``, ``jsb_gru``,
``temporal_order_lstm``, ``mqar_lstm``, and the xLSTM ones: ``xlstm_char`` and
``mqar_xlstm``. The repository's ``configs/*.py`` re-export them, so
``--config configs/char_lstm.py`` (a path) and ``--config char_lstm`` (a name) load
the same thing.

Overrides are ``("model.hidden_size", "512")`` pairs, from
``--config.model.hidden_size=512``: the key must exist and the text is parsed as the
type of the value it replaces (as ``ml_collections.config_flags`` does).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import pathlib

import ml_collections

__all__ = ["DEFAULT", "NAMES", "from_json", "load", "override"]

#: The built-in configs, by name.
NAMES = (
    "char_lstm",
    "adding_lstm",
    "jsb_lstm",
    "jsb_gru",
    "temporal_order_lstm",
    "mqar_lstm",
    "mqar_xlstm",
    "xlstm_char",
)
#: What ``rnnjax train`` runs without ``--config``.
DEFAULT = "char_lstm"

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def load(spec: str = DEFAULT) -> tuple[str, ml_collections.ConfigDict]:
    """``(name, config)`` for a built-in name or the path of a ``.py`` file.

    A path is any ``spec`` that names an existing file, ends in ``.py`` or contains
    a ``/``; its name is the file's stem. The file must define ``get_config()``.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"config: expected a name or a path, got {spec!r}")
    path = pathlib.Path(spec)
    if path.is_file() or spec.endswith(".py") or "/" in spec:
        return path.stem, _from_file(path)
    if spec not in NAMES:
        raise ValueError(
            f"config: {spec!r} is neither a file nor a built-in config; built-in: "
            f"{', '.join(NAMES)}"
        )
    module = importlib.import_module(f"rnnjax.configs.{spec}")
    return spec, _checked(module.get_config(), spec)


def _from_file(path: pathlib.Path) -> ml_collections.ConfigDict:
    if not path.is_file():
        raise FileNotFoundError(f"config: no such file {path}")
    spec = importlib.util.spec_from_file_location(f"_rnnjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ValueError(f"config: {path} defines no get_config()")
    return _checked(module.get_config(), path)


def _checked(config, where) -> ml_collections.ConfigDict:
    if not isinstance(config, ml_collections.ConfigDict):
        raise TypeError(
            f"config: {where}: get_config() must return an ml_collections.ConfigDict, "
            f"got {type(config).__name__}"
        )
    return config


def from_json(text: str) -> ml_collections.ConfigDict:
    """The config saved by ``config.to_json()`` (as in a run's ``config.json``)."""
    return ml_collections.ConfigDict(json.loads(text))


def override(
    config: ml_collections.ConfigDict, assignments
) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``(dotted_key, text)`` assignments applied.

    Raises ``ValueError`` naming the key for an unknown key (with the known ones)
    or a group assigned a value, and for text that does not parse as the type of
    the value it replaces (bool, int, float or str).
    """
    config = ml_collections.ConfigDict(config.to_dict())
    for key, text in assignments:
        parts = key.split(".")
        node = config
        for depth, part in enumerate(parts):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                raise ValueError(_unknown(key, parts[:depth], node, part))
            if depth + 1 < len(parts):
                node = node[part]
        old = node[parts[-1]]
        if isinstance(old, ml_collections.ConfigDict):
            raise ValueError(
                f"--config.{key}: is a group of settings ({', '.join(sorted(old))}); "
                f"set one of them, e.g. --config.{key}.{sorted(old)[0]}=..."
            )
        node[parts[-1]] = _parse(key, text, old)
    return config


def _unknown(key, parents, node, part) -> str:
    where = ".".join(parents) or "the config"
    if not isinstance(node, ml_collections.ConfigDict):
        return f"--config.{key}: {where} is a {type(node).__name__}, not a group"
    known = sorted(node)
    close = difflib.get_close_matches(part, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"--config.{key}: unknown key {part!r} in {where} (known: "
        f"{', '.join(known)}){hint}"
    )


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in _TRUE + _FALSE:
        raise ValueError(text)
    return lowered in _TRUE


_PARSERS = {bool: _bool, int: int, float: float, str: str}


def _parse(key, text, old):
    kind = type(old)
    if kind not in _PARSERS:
        raise ValueError(f"--config.{key}: cannot override a {kind.__name__} value")
    try:
        return _PARSERS[kind](text)
    except ValueError:
        article = "an" if kind is int else "a"
        raise ValueError(
            f"--config.{key}: expected {article} {kind.__name__}, got {text!r}"
        ) from None
