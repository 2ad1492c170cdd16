"""The registry of evaluation protocols: how maps become boxes, which boxes count, which threshold.

A protocol (METHOD.md, "Evaluation protocol and metrics") is one entry of `PROTOCOLS`, an
instance of a `Protocol` subclass in its own module (`wsol_protocol`: wsolevaluation's;
`release_protocol`: the ORNet release's). Each entry owns its threshold list, the split that
chooses the threshold (and whether that is the evaluated split itself, which the outputs then
say), its box rule and IoU convention, how a map becomes the box a `Localizer` returns, the
``localization`` part of model.json, the keys it writes to metrics.json, its evaluation pass and
the lines that tell a reader which protocol produced the numbers. What it fixes among the
settings is its row in `ornet.config.protocol_settings` (the config is resolved below here).

Nothing outside `ornet.evaluation` compares a protocol's name: it asks the entry
(`protocol_of(cfg.eval)`, `stored_protocol(model_json["localization"])`,
`protocol_of_metrics(metrics)`). `evaluate_split` evaluates a model under the configured one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..config.protocol_settings import ProtocolSettings, protocol_settings
from ..config.schema import EvalConfig, RunConfig
from ..errors import OrnetError
from ..extractors import DEFAULT_MAPS
from ..registry import Registry

if TYPE_CHECKING:
    import torch

    from .outputs import EvalResult

DEFAULT_PROTOCOL: str = EvalConfig.__dataclass_fields__["protocol"].default
"""The protocol of a config, model.json or metrics.json that names none (wsolevaluation)."""


class Protocol:
    """One evaluation protocol; subclasses set the class attributes and override what differs."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    """One line: what the protocol does (listings, docs)."""
    reuses_stored_threshold: ClassVar[bool] = True
    """Whether a threshold this protocol chose (model.json) may be applied again without choosing."""
    iou_plus_one: ClassVar[bool] = True
    """IoU on inclusive pixels (widths and heights + 1, wsolevaluation) or on continuous coordinates."""
    metric_keys: ClassVar[frozenset[str]] = frozenset()
    """Keys every metrics.json of a dataset with boxes holds under this protocol."""
    optional_metric_keys: ClassVar[frozenset[str]] = frozenset()
    """Keys it writes only in some cases (masks, logits, a class gate)."""

    @property
    def settings(self) -> ProtocolSettings:
        """Its row in `ornet.config.protocol_settings`."""
        return protocol_settings(self.name)

    def threshold_split(self, eval_cfg: EvalConfig) -> str:
        """The split that chooses the threshold: the one the protocol fixes, else eval.threshold_split."""
        return self.settings.threshold_split or eval_cfg.threshold_split

    def chooses_on_evaluated_split(self, eval_cfg: EvalConfig) -> bool:
        """True when the threshold is chosen on the split it is applied to (metrics.json says so)."""
        return self.threshold_split(eval_cfg) != "val"

    def thresholds(self, eval_cfg: EvalConfig) -> np.ndarray:
        """The thresholds swept (float64), in the order `threshold_index` counts them."""
        raise NotImplementedError

    def iou_strict(self, eval_cfg: EvalConfig) -> bool:
        """Correct when IoU > the level (True) or >= (False)."""
        return bool(eval_cfg.iou_strict)

    def box_rule(self, box_mode: str) -> str:
        """How a map becomes boxes in `box_mode`: ``evaluation`` (`localization.boxes`: the map resized
        to the input, normalised, thresholded) unless a protocol has its own rule for that mode."""
        return "evaluation"

    def map_boxes(self, raw_map: torch.Tensor, scoremap: np.ndarray, threshold: float, box_mode: str,
                  input_size: tuple[int, int], relative: bool) -> list[list[int]]:
        """The boxes a `Localizer` returns for one map, in input pixels (inclusive), none when no
        pixel is above. `raw_map`: h x w as the network gave it; `scoremap`: the input-size map
        as evaluation thresholds it; `relative`: thresholds are fractions of its max (minmax)."""
        from ..localization.boxes import boxes_from_map

        found = np.asarray(boxes_from_map(scoremap, threshold, box_mode, relative=relative))
        return [b for b in found.reshape(-1, 4).tolist() if any(b)]  # [0, 0, 0, 0]: nothing above

    def model_localization(self, eval_cfg: EvalConfig) -> dict:
        """model.json's ``localization`` settings (besides the threshold and the class gate)."""
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module, datamodule, cfg: RunConfig, split: str, quiet: bool,
                 scoremap_dir: Path | None, stored: Mapping | None) -> EvalResult:
        """Choose the threshold, evaluate `split`; `stored`: model.json's ``localization``, if any."""
        raise NotImplementedError

    def stored_threshold_index(self, stored: Mapping, eval_cfg: EvalConfig) -> int:
        """The threshold index model.json stores, for this protocol to apply without choosing one.

        Only the protocol that chose a threshold reuses it, and only on the same threshold list;
        otherwise a one-line error says which split to pass instead."""
        owner = stored_protocol(stored)
        if owner is not self or not self.reuses_stored_threshold:
            raise OrnetError(f"model.json's threshold was chosen under eval.protocol {owner.name} (on "
                             f"{stored.get('threshold_split') or 'an unknown split'}) and only that protocol reuses it; "
                             f"the val split is empty: pass --eval.threshold_split test to choose it on the test split "
                             f"(the outputs say so), or use a dataset with a val split (--data.val_per_class > 0)")
        index, grid = int(stored["threshold_index"]), self.thresholds(eval_cfg)
        value = stored.get("threshold")
        if not 0 <= index < len(grid) or (value is not None and abs(float(grid[index]) - float(value)) > 1e-6):
            raise OrnetError(f"model.json's threshold {value} (index {index}) is not on this evaluation's threshold "
                             f"list (eval.cam_curve_interval {eval_cfg.cam_curve_interval}): pass the run's "
                             "--eval.cam_curve_interval, or --eval.threshold_split test")
        return index

    def check_model_threshold(self, stored: Mapping, source) -> None:
        """``--threshold-split model`` (reuse model.json's threshold): only under the protocol that chose it."""
        if not self.reuses_stored_threshold:
            others = [p.name for p in (PROTOCOLS.get(n) for n in PROTOCOLS) if p.reuses_stored_threshold]
            raise OrnetError(f"eval.protocol {self.name} chooses the threshold on the evaluated split itself; "
                             f"--threshold-split model is for the {' / '.join(others)} protocol")
        owner = stored_protocol(stored)
        if owner is not self:
            raise OrnetError(f"{source}: its threshold was chosen under eval.protocol {owner.name}, not "
                             f"{self.name}; use --threshold-split val or test")

    def command_note(self, metrics: Mapping) -> str:
        """For `ornet evaluate`'s one-line summary, inside its parentheses (``""``: nothing to add)."""
        return ""

    def train_note(self, metrics: Mapping) -> str:
        """For `ornet train`'s one-line summary, after the threshold's split."""
        return ""

    def report_lines(self, metrics: Mapping) -> list[str]:
        """What report.html says about the protocol before the numbers."""
        return []


PROTOCOLS: Registry[Protocol] = Registry("evaluation protocol")


def register_protocol(cls: type[Protocol]) -> type[Protocol]:
    """Class decorator: register one instance of `cls` under ``cls.name``."""
    PROTOCOLS.register(cls.name)(cls())
    return cls


def protocol_of(eval_cfg: EvalConfig) -> Protocol:
    """The entry of an eval config (``eval.protocol``)."""
    return PROTOCOLS.get(eval_cfg.protocol)


def stored_protocol(localization: Mapping) -> Protocol:
    """The entry that model.json's ``localization`` names (none named: wsolevaluation)."""
    return PROTOCOLS.get(localization.get("protocol") or DEFAULT_PROTOCOL)


def protocol_of_metrics(metrics: Mapping) -> Protocol:
    """The entry a metrics.json was written under (none or an unknown one: the default's notes)."""
    name = metrics.get("protocol") or DEFAULT_PROTOCOL
    return PROTOCOLS.get(name if name in PROTOCOLS else DEFAULT_PROTOCOL)


def evaluate_split(model: torch.nn.Module, datamodule, cfg: RunConfig, split: str = "test", quiet: bool = False,
                   scoremap_dir: str | Path | None = None, stored: Mapping | None = None) -> EvalResult:
    """Evaluate `model` (``predict(images, labels) -> (maps, logits)``) on `split` under ``cfg.eval``'s
    protocol: choose the threshold where it says, return metrics, per-image rows and curves.

    `stored`: model.json's ``localization`` of an evaluated model; its threshold is applied when the
    threshold's split (val) is empty, and only by the protocol that chose it (else an error).
    The maps are ``cfg.eval.maps``' (`ornet.extractors`: the model's own, or an extractor explaining
    its classifier); metrics.json says which (``maps``, ``maps_network``). A stored threshold, chosen
    on the model's own maps, is never applied to another extractor's.
    """
    from ..extractors.maps_model import maps_metrics, with_maps
    from ..models.memory_format import use_channels_last
    from ..training.pipeline import quiet_lightning_warnings

    quiet_lightning_warnings()
    model = with_maps(model, cfg.eval.maps)
    use_channels_last(model, cfg.trainer.channels_last)
    own = maps_metrics(model)["maps"] == DEFAULT_MAPS
    result = protocol_of(cfg.eval).evaluate(model, datamodule, cfg, split, quiet,
                                            None if scoremap_dir is None else Path(scoremap_dir),
                                            stored if own else None)
    result.metrics.update(maps_metrics(model))
    return result


from . import release_protocol, wsol_protocol  # noqa: E402,F401  (the entries register themselves)
