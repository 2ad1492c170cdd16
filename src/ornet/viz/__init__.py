"""Pure drawing: arrays in, arrays (or figures) out (STYLE.md, habit 9).

- ``draw``: primitives: colour maps, map overlays, boxes, captions, tiles;
- ``figures``: the figures of a run (overlay, evolution grid, histogram, failures, threshold
  curve, grid), each a function of arrays and plain values returning an ``H x W x 3`` uint8 image.

Nothing here reads or writes files, loads a run or a model, or imports torch or Lightning; it
imports nothing of ornet outside viz/ (numpy, OpenCV and matplotlib only). Loading runs and
models for the figures, report.html and the comparison page is `ornet.reports`; the stage-2 map
snapshots are written by `ornet.methods.ornet.map_snapshots`.
"""
