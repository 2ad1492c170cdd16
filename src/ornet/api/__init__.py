"""What the commands do, as functions: parse -> call one of these -> print.

- ``config``: `load_config` (a preset or YAML file plus dotted overrides -> `RunConfig`);
- ``data``: `read_dataset` (a reader by name), `make_synthetic` (the `ornet synth` benchmark);
- ``train``: `train` (config -> run folder: stages, evaluation, export, figures);
- ``evaluate``: `evaluate` (a trained model on a dataset split, optionally written to a folder).

The package's top level (``import ornet``) exports them with the inference (`load_model`,
`Localizer`), metrics and figure functions; see docs/api.md. Submodules are imported on use.
"""
