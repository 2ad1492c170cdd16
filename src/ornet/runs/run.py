"""`Run`: a run folder with what is read from it (config, metrics, dataset), on first use.

Loading the run's model is above runs in the layers: `reports.run_model.ModelRun` adds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OrnetError
from .files import read_config, read_json


@dataclass
class Run:
    """A run folder and what the figures read from it, loaded on first use.

    ``data_root`` / ``data_name`` replace config.yaml's dataset (maps on another dataset);
    ``split`` the evaluated one (metrics.json's, else test). ``run_dir``: the run folder that holds
    config.yaml (and the model) when ``root`` is an evaluation folder (``ornet evaluate --out DIR``:
    metrics.json, predictions.csv, curves.json only); default ``root``.
    """

    root: Path
    data_root: str | None = None
    data_name: str | None = None
    split: str | None = None
    run_dir: Path | None = None
    _cache: dict = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        """The folder of config.yaml, model.json and model.safetensors (``run_dir``, else ``root``)."""
        return Path(self.run_dir) if self.run_dir is not None else self.root

    def metrics(self) -> dict:
        if "metrics" not in self._cache:
            p = self.root / "metrics.json"
            self._cache["metrics"] = read_json(p) if p.is_file() else {}
        return self._cache["metrics"]

    def config(self):
        if "config" not in self._cache:
            from ..config.schema import RunConfig, from_dict

            cfg = from_dict(RunConfig, read_config(self.model_dir / "config.yaml"))
            if self.data_root is not None:
                cfg.data.root = self.data_root
            if self.data_name is not None:
                cfg.data.name = self.data_name
            self._cache["config"] = cfg
        return self._cache["config"]

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
