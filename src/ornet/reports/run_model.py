"""`ModelRun`: a run folder (`runs.run.Run`) with its exported model loaded on first use.

What the figures and the comparison page draw with: the run's config, metrics and records
(`Run`) plus the model of model.safetensors + model.json, loaded through
`inference.loading.load_model` (no pickle), on ``device``, and the map-to-box settings the run
was scored with. It lives here, above runs and inference, so that runs/ never imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runs.files import MissingSource
from ..runs.run import Run


@dataclass
class ModelRun(Run):
    """A `Run` that also loads its model. ``device`` cpu or cuda (default: cuda when available);
    ``batch_size`` images per forward pass."""

    device: str | None = None
    batch_size: int = 16

    def localizer(self):
        """The run's `Localizer` (model.safetensors + model.json) giving the maps metrics.json was scored
        on (``maps``, docs/maps.md); MissingSource without them."""
        if "localizer" not in self._cache:
            from ..inference.loading import load_model

            if not (self.model_dir / "model.safetensors").is_file():
                raise MissingSource(f"{self.model_dir} has no model.safetensors (train or evaluate the run first)")
            # the maps metrics.json was scored on (eval.maps; the model's own without the key)
            maps = self.metrics().get("maps") or "own"
            self._cache["localizer"] = load_model(self.model_dir, device=self.torch_device()).use_maps(maps)
        return self._cache["localizer"]

    def model(self):
        """(network in eval mode, model.json's dict)."""
        loc = self.localizer()
        return loc.model, loc.meta

    def torch_device(self):
        from ..inference.loading import pick_device

        return pick_device(self.device, "--device")

    def localization(self) -> dict:
        """threshold, box mode, normalisation: metrics.json first, then model.json, then config."""
        _, meta = self.model()
        loc = dict(meta.get("localization") or {})
        m = self.metrics()
        for key in ("threshold", "box_mode", "normalize"):
            if m.get(key) is not None:
                loc[key] = m[key]
        cfg = self.config().eval
        loc.setdefault("box_mode", cfg.box_mode)
        loc.setdefault("normalize", cfg.normalize)
        return loc
