"""What needs a run and its model to draw: the layer above runs and inference that loads them,
with `viz` (pure drawing) doing the pictures.

- ``run_model``: `ModelRun`, a `runs.Run` plus its exported model (through
  `inference.load_model`), the device and the map-to-box settings;
- ``render``: a run folder's figures, one function per kind (``ornet figures``);
- ``run_report``: report.html;
- ``compare``: `compare_runs` / `compare_page`, the comparison page of any number of runs and
  evaluations (``ornet compare``, the demo's index.html), with ``compare_inputs`` (folders as
  labelled columns, the same-split / same-images check) and ``compare_table`` (HTML and CSV table);
- ``publish``: figures + report after ``train`` / ``evaluate``.
"""
