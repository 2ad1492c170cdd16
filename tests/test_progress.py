"""Progress display: a bar on a terminal, plain lines (no control characters) elsewhere."""

from __future__ import annotations

import io
from types import SimpleNamespace

import torch

from ornet.runtime.progress_bars import EpochLines, progress_callbacks
from ornet.runtime.progress_lines import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_training_gets_a_bar_on_a_terminal_and_lines_elsewhere():
    callbacks, bar = progress_callbacks("refine", True, stream=io.StringIO())
    assert bar is False and isinstance(callbacks[0], EpochLines)
    callbacks, bar = progress_callbacks("refine", True, stream=_Tty())
    assert bar is True and type(callbacks[0]).__name__ == "RichProgressBar"
    assert progress_callbacks("refine", False) == ([], False)


def test_epoch_line_is_plain_and_names_stage_epoch_and_metrics():
    stream = io.StringIO()
    cb = EpochLines("coarse", stream)
    trainer = SimpleNamespace(is_global_zero=True, max_epochs=6, current_epoch=2, sanity_checking=False,
                              callback_metrics={"train/loss": torch.tensor(1.23456), "val/gt_known_loc": torch.tensor(30.0)})
    cb.on_validation_epoch_end(trainer, None)
    line = stream.getvalue()
    assert line.startswith("coarse: epoch 3/6  train/loss 1.235  val/gt_known_loc 30")
    assert "\r" not in line and "\x1b" not in line and line.count("\n") == 1
    trainer.is_global_zero = False  # other DDP ranks stay silent
    cb.on_validation_epoch_end(trainer, None)
    assert stream.getvalue() == line


def test_loop_progress_plain_lines_and_summary():
    stream = io.StringIO()
    with Progress(20, "evaluate", stream=stream) as p:
        for _ in range(20):
            p.update()
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "evaluate: 2/20 images (10%)" and lines[-1].startswith("evaluate: 20 images in ")
    quiet = io.StringIO()
    with Progress(5, "x", quiet=True, stream=quiet) as p:
        p.update(5)
    assert quiet.getvalue() == ""
