"""Training stages as LightningModules, the pipeline that chains them, and model export.

- `evaluator.EvaluatorTask`: stage 0, the evaluator F_e with cross entropy;
- `coarse.CoarseTask`: stage 1, CE(y_hat) + CE(y_a);
- `refine.RefineTask`: stage 2, L_e + area + weighted entropy, only the generator's last blocks train;
- `cam.CamTask`: the CAM baseline;
- `pipeline`: runs `cfg.stages` in order, handing checkpoints on explicitly;
- `export`: model.safetensors + model.json, and `load_model` (no pickle).

Submodules are imported on use (Lightning and torchvision are slow to import).
"""
