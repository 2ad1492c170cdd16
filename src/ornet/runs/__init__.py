"""A run folder and the files in it, read back (the writers are `training/` and `evaluation/`).

A run folder (``ornet train --out OUT``; ``ornet evaluate`` writes the same result files into
its ``--out``) holds ``config.yaml`` (the resolved `RunConfig`), ``metrics.json``,
``predictions.csv``, ``curves.json``, ``model.safetensors`` + ``model.json``,
``checkpoints/<stage>.ckpt``, ``logs/<stage>/``, ``snapshots/`` (stage-2 maps per epoch),
``figures/`` and ``report.html`` (docs/training.md, "The run folder").

- ``files``: the readers of config.yaml, metrics.json / curves.json, predictions.csv (torch-free);
- ``snapshots``: the reader of ``snapshots/`` (torch-free; the writer is
  ``methods.ornet.map_snapshots``);
- ``run``: `Run`, a run folder with its config, metrics and dataset loaded on first use (the
  model is loaded above, by `reports.run_model.ModelRun`: runs import nothing of inference).
"""
