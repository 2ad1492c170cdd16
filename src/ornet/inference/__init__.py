"""A trained model on your own images: loading, preprocessing, maps -> boxes in original pixels.

- ``loading``: `load_model` (a run folder, model.json / model.safetensors, or a stage
  checkpoint) -> `Localizer`; `pick_device`;
- ``localizer``: `Localizer` (network + preprocessing + threshold / box mode / normalisation)
  and `Prediction` (what `Localizer.predict` returns for a batch);
- ``preprocess``: `Preprocess` (the whole image resized to crop x crop, normalised); boxes go
  back to the original's pixels by `localization.boxes.scale_boxes` (rule ``cover``);
- ``on_files``: `localize_files` / `Localizer.localize_files` (files, folders, globs -> one
  `FilePrediction` per image, in batches, decoded ahead by ``inputs``): ``ornet localize``'s loop.

Used by `ornet localize` and exported at the package's top level (``ornet.load_model``).
"""
