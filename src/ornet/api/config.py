"""`load_config`: a `RunConfig` from a preset name or YAML file plus dotted overrides.

The same parser as ``ornet train --config X --key value`` (`cli_config`), so a Python config and
a command line with the same keys give the same `RunConfig`, and an unknown key or a bad value
is the same one-line `ConfigError` naming it (and listing the valid keys of its section).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from ..config.schema import RunConfig


def load_config(config: str | os.PathLike | None = None,
                overrides: Mapping[str, object] | Sequence[str] | None = None) -> RunConfig:
    """A validated `RunConfig`.

    config: a preset name (``"demo"``, see `presets`: the files of configs/) or a YAML file;
    None starts from the defaults. overrides: ``{"data.root": "data/synth", "coarse.epochs": 3,
    "stages": ["cam"]}`` or ``["data.root=data/synth", "coarse.epochs=3"]`` (dotted keys as the
    command line's ``--data.root``).
    """
    from ..config.parse import make_parser, parse, to_run_config
    from ..methods import check_config

    argv = [] if config is None else ["--config", os.fspath(config)]
    argv += _override_flags(overrides)
    parser = make_parser("ornet.load_config", "A run config from a preset or YAML file and overrides.")
    return check_config(to_run_config(parser, parse(parser, argv)))


def _override_flags(overrides: Mapping[str, object] | Sequence[str] | None) -> list[str]:
    """Overrides as command-line flags: values that are not text go as JSON (lists, numbers, bools)."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise TypeError("overrides must be a dict or a list of 'key=value' strings, not one string")
    if isinstance(overrides, Mapping):
        flags = []
        for key, value in overrides.items():
            text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else json.dumps(value)
            flags += [f"--{str(key).removeprefix('--')}", text]
        return flags
    flags = []
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        flags.append(f"--{item.removeprefix('--')}")
    return flags
