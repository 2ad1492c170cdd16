"""Datasets from Python: `read_dataset` (a reader by name) and `make_synthetic` (`ornet synth`)."""

from __future__ import annotations

import dataclasses
import os

from ..config.schema import DataConfig
from ..errors import OrnetError


def read_dataset(name: str | DataConfig = "cub", root: str | os.PathLike | None = None, *,
                 strict: bool = False, **fields):
    """The `DatasetIndex` of a dataset: classes, per split a list of `Record` (image path, label,
    boxes as x0, y0, x1, y1 original pixels, size, mask path), and the problems found.

    name: a reader (cub, ilsvrc, wsol, dogs, aircraft, market1501, dukemtmc, msmt17, folder; see
    docs/datasets.md) or a whole `DataConfig`. fields: other `DataConfig` fields, e.g.
    ``metadata=`` (wsol), ``val_per_class=`` (images per class carved from train into ``val``),
    ``tune_per_class=`` (into ``tune``, after val), ``tune_list=`` (a file of the ids that form ``tune``),
    ``options={...}`` (reader options). strict: raise the first problem (as training does)
    instead of leaving them in ``index.problems`` (as ``ornet check-data`` lists them).
    """
    from ..data.readers import read_index as read

    if isinstance(name, DataConfig):
        if root is not None or fields:
            cfg = dataclasses.replace(name, **({"root": os.fspath(root)} if root is not None else {}), **fields)
        else:
            cfg = name
    else:
        known = {f.name for f in dataclasses.fields(DataConfig)} - {"name", "root"}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise OrnetError(f"unknown dataset field {unknown[0]!r}; fields: {', '.join(sorted(known))}")
        cfg = DataConfig(name=name, root=None if root is None else os.fspath(root), **fields)
    index = read(cfg)
    if strict:
        index.raise_problems()
    return index


def make_synthetic(out: str | os.PathLike, *, classes: int = 10, train: int = 1200, test: int = 400,
                   size: int = 96, seed: int = 0, second_object: float = 0.0, body_cue: float = 0.0,
                   workers: int = 2, force: bool = False, quiet: bool = True):
    """Write the synthetic WSOL benchmark (CUB layout, with masks) to `out`, as ``ornet synth``.

    train / test: images in total, split evenly over classes; second_object: share of test
    images holding a second object; body_cue: share of objects whose body wears its class's own
    style. The same arguments give the same bytes (docs/synthetic.md).
    Returns a `SynthSummary` (image counts, seconds). Read it with ``read_dataset("cub", out)``.
    """
    from ..data.synthetic import SynthConfig, generate

    cfg = SynthConfig(classes=classes, train=train, test=test, size=size, seed=seed, second_object=second_object,
                      body_cue=body_cue)
    return generate(cfg, out, workers=workers, force=force, quiet=quiet)
