"""The methods registry: one entry per WSOL method (`METHODS.get("ornet")`), each a `Method`
(`entry.py`) in its own module or package: `cam` (the CAM baseline), `ornet` (ORNet's three
stages), and wsolevaluation's methods re-implemented as one-stage methods: `has`, `cutmix`,
`adl` (CAM variants), `acol`, `spg`, and `bas` from its authors' code (docs/methods.md).
Torch-free: listing the methods imports no network.

A config names its method with ``wsol_method`` (docs/training.md, "Methods"); without it, the
method is the one whose stages ``stages`` lists (configs written before the key existed).
``stages`` is a subset of the method's stages, in the method's order; left at its default
with another method named, it becomes all of that method's stages. `check_config` resolves
both and runs every check a config can fail before a run starts (`config.parse.validate`,
the method's own, and the threshold's split).

Adding a method: a module (or package) here with a `Method` subclass, and one `register`
line below.
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError, OrnetError
from ..extractors import DEFAULT_MAPS
from ..registry import Registry
from .acol import AcolMethod
from .adl import AdlMethod
from .bas import BasMethod
from .cam import CamMethod
from .cutmix import CutMixMethod
from .entry import Method, Stage, load_state
from .has import HasMethod
from .ornet import OrnetMethod
from .spg import SpgMethod

METHODS: Registry[Method] = Registry("method")
"""method name -> its entry."""
STAGES: Registry[Method] = Registry("stage")
"""stage name -> the method it belongs to (stage names are unique across methods)."""
EXPORTS: Registry[Method] = Registry("model.json method")
"""model.json ``method`` value -> the method that writes it."""


def register(method: Method) -> Method:
    """Add a method; a name (of the method, a stage or an export) that exists already raises."""
    METHODS.register(method.name)(method)
    for stage in method.stage_names():
        STAGES.register(stage)(method)
    for name in method.export_names():
        EXPORTS.register(name)(method)
    return method


register(CamMethod())
register(OrnetMethod())
register(HasMethod())
register(CutMixMethod())
register(AdlMethod())
register(AcolMethod())
register(SpgMethod())
register(BasMethod())


def method_of(cfg) -> Method:
    """The config's method: ``wsol_method``, else the method of its first stage."""
    name = getattr(cfg, "wsol_method", None)
    try:
        return METHODS.get(name) if name else STAGES.get(cfg.stages[0])
    except OrnetError as e:
        raise ConfigError(f"wsol_method: {e}" if name else str(e)) from None


def resolve(cfg):
    """`cfg` with ``wsol_method`` set and ``stages`` checked against it (module docstring)."""
    from ..config.schema import RunConfig

    if not cfg.stages:
        raise ConfigError("stages is empty; list at least one of: " + ", ".join(STAGES.names()))
    method = method_of(cfg)
    names = method.stage_names()
    stages = list(cfg.stages)
    if cfg.wsol_method and stages == RunConfig().stages and not set(stages) <= set(names):
        stages = names  # stages left at its default: all of the named method's
        if cfg.trainer.max_epochs is not None:  # applied to every listed stage (config.parse.to_run_config)
            for stage in stages:
                getattr(cfg, stage).epochs = cfg.trainer.max_epochs
    for stage in stages:
        if stage not in names:
            raise ConfigError(f"stage {stage!r} is not a stage of method {method.name}; its stages, in order: "
                              f"{', '.join(names)}")
    if [n for n in names if n in stages] != stages:
        raise ConfigError(f"stages {stages} must be listed once each, in method {method.name}'s order: "
                          f"{', '.join(names)}")
    return dataclasses.replace(cfg, wsol_method=method.name, stages=stages)


def check_config(cfg):
    """Every check a config can fail before anything runs; returns it resolved (`resolve`)."""
    from ..config.parse import validate
    from ..config.schema import check_threshold_source

    validate(cfg)
    if cfg.eval.maps != DEFAULT_MAPS:  # model.json's threshold belongs to the maps the run exports: its own
        raise ConfigError(f"eval.maps {cfg.eval.maps} is for `ornet evaluate` and `ornet localize` on a trained run; "
                          f"training evaluates and exports the run's own maps (eval.maps {DEFAULT_MAPS})")
    cfg = resolve(cfg)
    method = METHODS.get(cfg.wsol_method)
    _check_frozen_stem(cfg, method)
    method.check_config(cfg)
    check_threshold_source(cfg, maps=method.makes_maps(cfg.stages))
    return cfg


def _check_frozen_stem(cfg, method) -> None:
    able = [s.name for s in method.stages if s.frozen_stem]
    for stage in method.stages:
        if stage.name in cfg.stages and getattr(cfg, stage.name).frozen_stem and not stage.frozen_stem:
            where = f"{method.name}'s stages that can: {', '.join(able)}" if able else f"{method.name} has none"
            hint = "; stage 1's stem: model.freeze_features" if stage.name == "coarse" else ""
            raise ConfigError(f"{stage.name}.frozen_stem: stage {stage.name} does not train a classifier stem it could "
                              f"keep fixed ({where}){hint}")


_RESOLVED = frozenset({"model.evaluator_mean", "model.evaluator_std"})
"""Written into every run's config.yaml by `weights_spec.resolve_model` (a resumed CAM run has them
too): a record, not a setting."""


def unused_settings(cfg) -> list[str]:
    """``key=value`` of every `model.*` / `method.*` setting that differs from its default and that
    the config's method does not read (`Method.settings`; e.g. ORNet's generator keys in a CAM run):
    `ornet train` warns of them, as they have no effect."""
    from ..config.method_settings import MethodConfig
    from ..config.schema import ModelConfig

    method = method_of(cfg)
    out = []
    for section, default in (("model", ModelConfig()), ("method", MethodConfig())):
        if section in method.settings:
            continue
        for f in dataclasses.fields(default):
            key = f"{section}.{f.name}"
            value = getattr(getattr(cfg, section), f.name)
            if key not in method.settings | _RESOLVED and value != getattr(default, f.name):
                out.append(f"{key}={value!r}")
    return out


def check_networks(cfg) -> None:
    """The method's checks that build a network (`Method.check_networks`)."""
    method_of(cfg).check_networks(cfg)


__all__ = ["EXPORTS", "METHODS", "STAGES", "Method", "Stage", "check_config", "check_networks", "load_state",
           "unused_settings",
           "method_of", "register", "resolve"]
