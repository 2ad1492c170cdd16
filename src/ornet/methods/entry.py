"""A WSOL method as a registry entry: its stages and everything method-specific that the stage
runner (`ornet.training`), the export (`ornet.runs.export`) and the loaders ask of it.

A `Method` subclass names its stages in order (`Stage`: the stage's name, which is also its
`StageConfig` section of `RunConfig` and its checkpoints' name, and its LightningModule class,
imported only when a stage is built), and overrides the hooks below where it needs more than
the defaults. Torch-free on purpose: `ornet methods` and `--help` read the registry without
importing torch; every hook that needs torch imports it inside.

Conventions: a stage's task takes ``(to_dict(cfg), num_classes, classes)``; a finished stage
leaves ``OUT/checkpoints/<stage>.ckpt`` whose network weights are under ``model.``
(`load_state`); the exported model maps images to (maps, logits) through
``predict(images, labels)``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime.stage_checkpoints import checkpoint_path


@dataclass(frozen=True)
class Stage:
    name: str
    """The stage's name: its `StageConfig` section of `RunConfig` and its checkpoint files' name."""
    task: str
    """`module:Class` of its LightningModule, the module relative to ``ornet.methods``."""
    export: str | None = None
    """model.json's ``method`` when this stage's model is the run's final one; None: no maps."""
    frozen_stem: bool = False
    """Its task can keep its classifier's stem fixed (`StageConfig.frozen_stem`, `StageTask.stem`)."""

    def task_class(self) -> type:
        module, cls = self.task.split(":")
        return getattr(importlib.import_module(f"ornet.methods.{module}"), cls)


class Method:
    """Base of the method entries; a subclass sets the class attributes and overrides hooks."""

    name: str = ""
    description: str = ""
    """One line, shown by `ornet methods`."""
    stages: tuple[Stage, ...] = ()
    """In the order they run."""
    class_gate: bool = False
    """Its model has the class gate (`eval.cam_gate`; model.json's ``localization.cam_gate``)."""
    settings: frozenset[str] = frozenset({"model.backbone", "model.backbone_weights", "model.backbone_mean",
                                          "model.backbone_std"})
    """The keys of the shared `model` and `method` sections its stages read, or a whole section's
    name; `ornet.methods.unused_settings` names the others a config sets (they have no effect)."""

    # --- stages ------------------------------------------------------------------------------
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"method {self.name} has no stage {name!r}")

    def export_names(self) -> list[str]:
        """model.json ``method`` values this method writes (one per map-producing stage)."""
        return [s.export for s in self.stages if s.export]

    def makes_maps(self, stages: list[str]) -> bool:
        return any(self.stage(s).export for s in stages)

    def build_task(self, cfg, stage: str, num_classes: int, classes: list[str]):
        """The stage's LightningModule (weights from `model.*_weights` only: see `initialise`)."""
        from ..config.schema import to_dict

        return self.stage(stage).task_class()(to_dict(cfg), num_classes, classes)

    # --- checks --------------------------------------------------------------------------------
    def check_config(self, cfg) -> None:
        """Value checks of this method's settings (torch-free; when a config is read)."""

    def check_networks(self, cfg) -> None:
        """Checks that build a network (before a run trains; nothing is written yet)."""

    def check_run(self, cfg, out: Path) -> None:
        """Before a run trains: the checkpoints of earlier stages that `cfg.stages` need exist
        (or will: they are listed earlier)."""

    # --- training ------------------------------------------------------------------------------
    def initialise(self, task, cfg, stage: str, out: Path) -> None:
        """Hand earlier stages' weights (their checkpoints in OUT) to a new stage's task."""

    def callbacks(self, cfg, stage: str, datamodule, out: Path) -> list:
        """Extra Lightning callbacks of a stage (after the runner's own)."""
        return []

    # --- the final model -----------------------------------------------------------------------
    def final_stage(self, stages: list[str], out: Path) -> str | None:
        """The finished map-producing stage of `stages` whose model the run evaluates and exports:
        the latest in the method's order."""
        for s in reversed(self.stages):
            if s.export and s.name in stages and checkpoint_path(out, s.name).is_file():
                return s.name
        return None

    def final_model(self, cfg, stage: str, out: Path, num_classes: int):
        """The localization model (``predict(images, labels) -> maps, logits``) of a finished stage."""
        raise NotImplementedError

    def complete(self, model, stage: str, out: Path) -> None:
        """Weights a stage's model takes from other stages' checkpoints in OUT (when it is loaded)."""

    # --- model.json ------------------------------------------------------------------------------
    def architecture(self, model_cfg, backbone_norm, evaluator_norm) -> dict[str, Any]:
        """model.json's ``architecture`` beyond the backbone and its mean / std."""
        return {}

    def settings_architecture(self, cfg) -> dict[str, Any]:
        """model.json's ``architecture`` entries from the method's own settings that its network
        needs to rebuild (e.g. ACoL's erasing threshold, which shapes its maps)."""
        return {}

    def build_network(self, meta: dict):
        """An untrained network of the architecture model.json's `meta` names."""
        raise NotImplementedError


def load_state(path: Path, prefix: str = "model.") -> dict:
    """The network's state dict from a stage checkpoint (keys under `prefix`, prefix removed)."""
    from ..errors import OrnetError
    from ..models.weights import safe_torch_load

    path = Path(path)
    if not path.is_file():
        raise OrnetError(f"checkpoint {path} does not exist")
    ckpt = safe_torch_load(path)  # weights_only=True; a pickled object is refused, naming the file
    if not isinstance(ckpt, dict):
        raise OrnetError(f"checkpoint {path} is not a Lightning checkpoint (expected a dict)")
    state = ckpt["state_dict"] if "state_dict" in ckpt else ckpt
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
