"""Parsing a `RunConfig` from YAML presets and dotted command-line flags (jsonargparse).

`--config FILE` loads a preset; any key can then be overridden: `--data.root DIR`,
`--coarse.epochs 3`, `--stages [cam]`. Unknown keys and ill-typed values are errors (exit 2)
that name the key and, for unknown ones, list the valid keys of that section.
"""

from __future__ import annotations

import dataclasses
import difflib
import math

from ..errors import ConfigError
from ..extractors import check_maps
from ..models.weights_spec import weights_spec
from .schema import (
    MIN_SIDE,
    DataConfig,
    MethodConfig,
    RunConfig,
    apply_protocol,
    downscaled_side,
    from_dict,
    stage_sections,
)

_build = from_dict  # the former name, kept for callers


class _Parser:
    """Lazily-built jsonargparse parser (jsonargparse is light, but keep the import local)."""


def _error_handler(prog: str):
    def handler(parser, message: str):  # jsonargparse calls this instead of printing usage
        raise ConfigError(_explain(message))

    return handler


def _valid_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory() if f.default_factory is not dataclasses.MISSING else None):
            keys += _valid_keys(type(f.default_factory()), f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _explain(message: str) -> str:
    """Make jsonargparse's multi-line messages one clear line; list valid keys for unknown ones."""
    text = " ".join(message.split())
    import re

    m = re.search(r"Group '([\w.]+)' does not accept (?:option|nested key) '([\w.]+)'", text)
    bad = f"{m.group(1)}.{m.group(2)}" if m else None
    if bad is None:
        m = re.search(r"[Uu]nrecognized arguments?: (\S+)", text) or re.search(r"[Kk]ey '([\w.]+)' is not expected", text)
        bad = m.group(1) if m else None
    if bad:
        bad = bad.lstrip("-").split("=")[0]
        section = bad.rsplit(".", 1)[0] if "." in bad else ""
        valid = [k for k in _valid_keys(RunConfig) if not section or k.startswith(section + ".")] or _valid_keys(RunConfig)
        close = difflib.get_close_matches(bad, valid, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown key {bad!r}{hint}; valid keys{' of ' + section if section else ''}: {', '.join(valid)}"
    return text


def make_parser(prog: str, description: str, with_config: bool = True, run_config: bool = True):
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False,
                            default_meta=False, parser_mode="yaml", allow_abbrev=False)
    if with_config:
        parser.add_argument("--config", action=ActionConfigFile, help="YAML preset (see configs/)")
    if run_config:
        parser.add_class_arguments(RunConfig, fail_untyped=True, sub_configs=True)
    return parser


def make_data_parser(prog: str, description: str):
    """A parser with only the `data` section (check-data); parse it with `parse_data`."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False, default_meta=False, allow_abbrev=False)
    parser.add_argument("--config", type=str, default=None,
                        help="YAML config or preset name (only its data section is used)")
    parser.add_class_arguments(DataConfig, "data", fail_untyped=True)
    return parser


def parse(parser, argv: list[str]):
    """Parse argv; any parse problem becomes a ConfigError with one clear line."""
    from jsonargparse import ArgumentError

    argv = _expand_presets(argv)
    try:
        ns = parser.parse_args(argv)
    except (ArgumentError, ValueError, TypeError) as e:  # bad keys or types, YAML syntax
        message = _explain(str(e))
        configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
        configs += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
        if configs and _from_config_file(message, argv) and not any(c in message for c in configs):
            message = f"{', '.join(configs)}: {message}"
        raise ConfigError(message) from None
    return ns


def parse_data(parser, argv: list[str]):
    """`parse` for a data-only parser (check-data): a --config file contributes its `data`
    section only, so a full training preset works; its other sections are ignored. Each
    file's values are checked on their own first, so that an error there names the file."""
    argv = _expand_presets(argv)
    rest: list[str] = []
    from_files: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--config" or a.startswith("--config="):
            if a == "--config":
                if i + 1 >= len(argv):
                    raise ConfigError("--config needs a file")
                path, i = argv[i + 1], i + 2
            else:
                path, i = a.split("=", 1)[1], i + 1
            flags = _data_flags(path)
            try:
                parse(parser, flags)
            except ConfigError as e:
                raise ConfigError(f"{path}: {e}") from None
            from_files += flags
        else:
            rest.append(a)
            i += 1
    return parse(parser, from_files + rest)


def _data_flags(path: str) -> list[str]:
    """The `data` section of a YAML config as `--data.KEY VALUE` flags."""
    import json

    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if loaded is None:
        return []
    if not isinstance(loaded, dict) or not isinstance(loaded.get("data", {}) or {}, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'data' section")
    flags: list[str] = []
    for key, value in (loaded.get("data") or {}).items():
        flags += [f"--data.{key}", value if isinstance(value, str) else json.dumps(value)]
    return flags


def _from_config_file(message: str, argv: list[str]) -> bool:
    """Whether a parse error comes from a --config file rather than a flag (to name the file)."""
    import re

    if "parsing config" in message or message.startswith("Unexpected config"):
        return True
    m = re.search(r"unknown key '([\w.]+)'", message) or re.search(r'Parser key "([\w.]+)"', message)
    return bool(m) and m.group(1) != "config" and not any(
        a == f"--{m.group(1)}" or a.startswith(f"--{m.group(1)}=") for a in argv)


def _expand_presets(argv: list[str]) -> list[str]:
    """`--config demo` -> the bundled configs/demo.yaml when no file of that name exists."""
    from pathlib import Path

    from .presets import preset_path

    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a == "--config" and not Path(out[i + 1]).exists() and "/" not in out[i + 1] \
                and not out[i + 1].endswith((".yaml", ".yml")):
            out[i + 1] = str(preset_path(out[i + 1]))
    return out


def to_run_config(parser, ns) -> RunConfig:
    init = parser.instantiate_classes(ns)
    d = init.as_dict() if hasattr(init, "as_dict") else dict(init)
    d.pop("config", None)
    d.pop("__path__", None)
    cfg = apply_protocol(from_dict(RunConfig, d))
    validate(cfg)
    if cfg.trainer.max_epochs is not None:
        if cfg.trainer.max_epochs <= 0:
            raise ConfigError(f"trainer.max_epochs must be positive, got {cfg.trainer.max_epochs}")
        for stage in cfg.stages:
            getattr(cfg, stage).epochs = cfg.trainer.max_epochs
    return cfg


def validate(cfg: RunConfig) -> None:
    """Value checks a type cannot express (the method's own: `ornet.methods.check_config`)."""
    sections = stage_sections()
    bad = [s for s in cfg.stages if s not in sections]
    if bad:
        raise ConfigError(f"unknown stage {bad[0]!r} in stages; valid: {', '.join(sections)}")
    if not cfg.stages:
        raise ConfigError("stages is empty; list at least one of: " + ", ".join(sections))
    d = cfg.data
    for key in ("resize", "crop", "batch_size", "eval_batch_size"):
        if getattr(d, key) <= 0:
            raise ConfigError(f"data.{key} must be positive, got {getattr(d, key)}")
    if d.num_workers < 0 or d.val_per_class < 0:
        raise ConfigError("data.num_workers and data.val_per_class must be >= 0")
    if d.cache_mb < 0:
        raise ConfigError(f"data.cache_mb must be >= 0 (MiB; 0: no cache), got {d.cache_mb}")
    if d.tune_per_class < 0:
        raise ConfigError(f"data.tune_per_class must be >= 0, got {d.tune_per_class}")
    if d.tune_list is not None and d.tune_per_class > 0:
        raise ConfigError(f"data.tune_list and data.tune_per_class ({d.tune_per_class}) both carve the tune split; set one")
    if d.crop > d.resize or d.crop % 32:
        raise ConfigError(f"data.crop must be <= data.resize and divisible by 32, got crop={d.crop}, resize={d.resize}")
    for name in sections:
        st = getattr(cfg, name)
        if st.epochs <= 0:
            raise ConfigError(f"{name}.epochs must be positive, got {st.epochs}")
        if not st.lr > 0:
            raise ConfigError(f"{name}.lr must be positive, got {st.lr}")
        if st.batch_size is not None and st.batch_size <= 0:
            raise ConfigError(f"{name}.batch_size must be positive, got {st.batch_size}")
        if name in cfg.stages and st.keep == "best_val" and d.val_per_class == 0:
            raise ConfigError(f"{name}.keep best_val needs a val split (data.val_per_class > 0)")
    m = cfg.method
    if not 0 <= m.erase_p <= 1:
        raise ConfigError(f"method.erase_p must be in [0, 1], got {m.erase_p}")
    if not 0 < m.f_max <= 1:
        raise ConfigError(f"method.f_max must be in (0, 1], got {m.f_max}")
    if m.sigma <= 0:
        raise ConfigError(f"method.sigma must be positive, got {m.sigma}")
    if not 0 < m.entropy_eps < 1:
        raise ConfigError(f"method.entropy_eps must be in (0, 1), got {m.entropy_eps}")
    if m.area_topk <= 0 or m.area_skip < 0:
        raise ConfigError("method.area_topk must be positive and method.area_skip >= 0")
    _check_constraints(m, d.crop)
    if cfg.model.generator_width <= 0:
        raise ConfigError(f"model.generator_width must be positive, got {cfg.model.generator_width}")
    if not 0.0 < cfg.model.generator_bn_momentum <= 1.0:
        raise ConfigError(f"model.generator_bn_momentum must be in (0, 1], got {cfg.model.generator_bn_momentum}")
    for net in ("backbone", "evaluator"):
        weights_spec(cfg.model, net)  # parsed: a bad weights value is one ConfigError naming the key
        for stat in ("mean", "std"):
            v = getattr(cfg.model, f"{net}_{stat}")
            if v is not None and (len(v) != 3 or (stat == "std" and not all(x > 0 for x in v))):
                raise ConfigError(f"model.{net}_{stat} must be 3 {'positive ' if stat == 'std' else ''}"
                                  f"numbers (R, G, B), got {v}")
        if (getattr(cfg.model, f"{net}_mean") is None) != (getattr(cfg.model, f"{net}_std") is None):
            raise ConfigError(f"model.{net}_mean and model.{net}_std are set together (one is missing)")
    if any(not isinstance(n, str) or not n.strip() for n in cfg.model.reinit):
        raise ConfigError(f"model.reinit must list layer names (e.g. [layer4, fc]), got {cfg.model.reinit}")
    e = cfg.eval
    check_maps(e.maps)  # an unknown name: one line listing the extractors
    if not 0 < e.cam_curve_interval < 1:
        raise ConfigError(f"eval.cam_curve_interval must be in (0, 1), got {e.cam_curve_interval}")
    if not e.iou_thresholds or any(not 0 < t <= 100 for t in e.iou_thresholds):
        raise ConfigError(f"eval.iou_thresholds must be percentages in (0, 100], got {e.iou_thresholds}")
    if any(not math.isfinite(a) or a < 0 for a in e.cam_gate):
        raise ConfigError(f"eval.cam_gate must list exponents >= 0, got {e.cam_gate}")
    if not (math.isfinite(e.cam_gate_margin) and e.cam_gate_margin >= 0):
        raise ConfigError(f"eval.cam_gate_margin must be a number of points >= 0, got {e.cam_gate_margin}")


CONSTRAINT_WEIGHTS = ("gate_distill_weight", "tv_weight", "flip_consistency_weight", "scale_consistency_weight")
"""Stage 2's constraints against texture noise (issue 30; docs/method.md): 0 turns each off."""


def _check_constraints(m: MethodConfig, crop: int) -> None:
    """The constraint keys: weights finite and >= 0, the distillation's exponent and form, the
    down-scale factor in (0, 1) with a down-scaled crop the generator still takes."""
    for key in (*CONSTRAINT_WEIGHTS, "eval_weight", "area_weight", "entropy_weight", "background_weight",
                "objectness_weight"):
        v = getattr(m, key)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ConfigError(f"method.{key} must be a number >= 0 (0: off), got {v}")
    if not (math.isfinite(m.gate_distill_alpha) and m.gate_distill_alpha >= 0):
        raise ConfigError(f"method.gate_distill_alpha must be a number >= 0, got {m.gate_distill_alpha}")
    if m.gate_distill_form not in ("product", "cam"):
        raise ConfigError(f"method.gate_distill_form must be product or cam, got {m.gate_distill_form!r}")
    f = m.scale_consistency_factor
    if not (math.isfinite(f) and 0 < f < 1):
        raise ConfigError(f"method.scale_consistency_factor must be in (0, 1), got {f}")
    if m.scale_consistency_weight and downscaled_side(crop, f) < MIN_SIDE:
        raise ConfigError(f"method.scale_consistency_factor {f} makes the {crop} px crop "
                          f"{downscaled_side(crop, f)} px, below the generator's smallest input "
                          f"({MIN_SIDE} px): raise the factor or data.crop")
