"""Run configuration: the dataclasses (``schema``), their parser (``parse``: a YAML file or a
preset plus dotted overrides, one-line errors) and where the presets live (``presets``).

Torch-free, so that ``ornet --help`` and config errors stay fast.
"""
