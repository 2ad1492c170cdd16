"""`Run`: a run folder with what is read from it (config, metrics, model, dataset), on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OrnetError
from .files import MissingSource, read_config, read_json


@dataclass
class Run:
    """A run folder and what the figures read from it, loaded on first use.

    ``data_root`` / ``data_name`` replace config.yaml's dataset (maps on another dataset);
    ``split`` the evaluated one (metrics.json's, else test); ``device`` cpu or cuda (default:
    cuda when available); ``batch_size`` images per forward pass.
    """

    root: Path
    data_root: str | None = None
    data_name: str | None = None
    split: str | None = None
    device: str | None = None
    batch_size: int = 16
    _cache: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        if "metrics" not in self._cache:
            p = self.root / "metrics.json"
            self._cache["metrics"] = read_json(p) if p.is_file() else {}
        return self._cache["metrics"]

    def config(self):
        if "config" not in self._cache:
            from ..config.schema import RunConfig, from_dict

            cfg = from_dict(RunConfig, read_config(self.root / "config.yaml"))
            if self.data_root is not None:
                cfg.data.root = self.data_root
            if self.data_name is not None:
                cfg.data.name = self.data_name
            self._cache["config"] = cfg
        return self._cache["config"]

    def model(self):
        if "model" not in self._cache:
            from .export import load_exported

            if not (self.root / "model.safetensors").is_file():
                raise MissingSource(f"{self.root} has no model.safetensors (train or evaluate the run first)")
            self._cache["model"] = load_exported(self.root, device=self.torch_device())
        return self._cache["model"]

    def torch_device(self):
        from ..inference.loading import pick_device

        return pick_device(self.device, "--device")

    def split_name(self) -> str:
        return self.split or self.metrics().get("split") or "test"

    def records(self):
        if "records" not in self._cache:
            from ..data.readers import read_index

            cfg = self.config()
            if cfg.data.root is None:
                raise OrnetError("config.yaml names no dataset root; pass --data.root DIR")
            index = read_index(cfg.data)
            self._cache["records"] = index.split(self.split_name())
        return self._cache["records"]

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
