"""The ORNet authors' public release (Sierkinhane/ORNet): its checkpoints and its scoring.

- `checkpoints`: reading the release's ``torch.save`` files safely and recognising what they hold;
- `convert`: the release's key names -> ornet's networks (width and K from the shapes);
- `importer`: `import_release(...)`, a run folder from the authors' files (`ornet import-release`);
- the release's scoring is an evaluation protocol (`eval.protocol: release`;
  `ornet.evaluation.release_protocol`, its geometry `ornet.localization.release_rule`).

docs/reproducing.md shows the commands.
"""
