"""Evaluating a trained model: the protocols registry and the passes over a dataset split.

- `protocols`: `Protocol`, the registry `PROTOCOLS` (`wsol_protocol.WsolEvaluation`,
  `release_protocol.Release`), `protocol_of` / `stored_protocol` / `protocol_of_metrics`, and
  `evaluate_split` (a model on a split under the configured protocol).
- `sweep_pass` (wsolevaluation's pass: box accuracy at every threshold, PxAP, per-image rows),
  `release_pass` (the release's), `split_runner` (the `Trainer` and loader they share).
- `outputs`: `EvalResult`, `write_outputs` (metrics.json, predictions.csv, curves.json).
- `class_gate`: choosing ORNet's class gate where the threshold is chosen.
"""
