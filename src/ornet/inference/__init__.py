"""A trained model on your own images: loading, preprocessing, maps -> boxes in original pixels.

- ``loading``: `load_model` (a run folder, model.json / model.safetensors, or a stage
  checkpoint) -> `Localizer`; `pick_device`;
- ``localizer``: `Localizer` (network + preprocessing + threshold / box mode / normalisation)
  and `Prediction` (what `Localizer.predict` returns for a batch);
- ``preprocess``: `Preprocess` (the whole image resized to crop x crop, normalised) and
  `scale_box` (a box on the network input -> the original image's pixels).

Used by `ornet localize` and exported at the package's top level (``ornet.load_model``).
"""
