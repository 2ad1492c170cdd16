"""The figures of a run, as pure functions: arrays in, one ``H x W x 3`` uint8 RGB array out.

Which figure shows what (METHOD.md, "Figures the supplementary shows"):

- ``overlay``: one image with its map, ground-truth boxes (blue) and predicted boxes (green).
- ``evolution_grid``: the map of fixed images across stage-2 epochs (rows images, columns
  epochs), from the snapshots ``MapSnapshots`` saves.
- ``histogram``: the distribution of map values per image; a well-separated map (the weighted
  entropy loss's aim) piles up at 0 and 1 with little in between.
- ``failures``: the N images with the lowest IoU, with boxes and map (failure modes of
  METHOD.md: box too large, merged objects, clutter leaking into the map).
- ``threshold_curve``: box accuracy against the threshold for each IoU level, with the chosen
  threshold marked (the sweep behind MaxBoxAcc / MaxBoxAccV2).
- ``grid``: maps on many images of a dataset (the extra-datasets figure).

Plots are drawn with matplotlib's Agg canvas directly (no pyplot, no global backend switch).
Writing the arrays to files is the caller's business (``ornet figures``, ``ornet localize``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .draw import annotate, caption, check_map, fit, tile

__all__ = ["overlay", "evolution_grid", "histogram", "failures", "threshold_curve", "grid",
           "pick_columns", "render"]


def overlay(image: np.ndarray, activation: np.ndarray | None, pred_boxes=None, gt_boxes=None,
            alpha: float = 0.5, thickness: int = 2, title: str | None = None) -> np.ndarray:
    """One image with its map (jet colours, 0 blue .. 1 red), GT boxes blue, predicted green.

    ``image`` H x W x 3 (uint8, or float in [0, 1]); ``activation`` a 2-D map in [0, 1] of any
    resolution (resized to the image) or None; boxes ``N x 4`` XYXY in the image's pixels.
    With ``title`` a caption band is added on top (the result is then taller than the image).
    """
    out = annotate(image, activation, pred_boxes, gt_boxes, alpha=alpha, thickness=thickness)
    return caption(out, title) if title is not None else out


def pick_columns(count: int, max_columns: int) -> list[int]:
    """Indices of at most ``max_columns`` evenly spaced items of ``count``, first and last kept."""
    if count <= 0:
        return []
    if max_columns < 2 or count <= max_columns:
        return list(range(min(count, max(max_columns, 1))))
    return sorted({int(round(v)) for v in np.linspace(0, count - 1, max_columns)})


def evolution_grid(images: Sequence[np.ndarray], maps_by_epoch: Sequence[tuple[str, np.ndarray]],
                   tile_size: int = 112, max_columns: int = 8, pad: int = 4, alpha: float = 0.5,
                   show_image: bool = True) -> np.ndarray:
    """Rows are images, columns are epochs: how the map of fixed images changes in training.

    ``images``: N images (H x W x 3); ``maps_by_epoch``: (column label, ``N x h x w`` maps in
    [0, 1] or uint8 0..255) in training order, e.g. ``[("start", m0), ("epoch 1", m1), ...]``.
    With more than ``max_columns`` epochs, evenly spaced ones are shown (first and last kept).
    The first column is the plain image when ``show_image``. A header band labels the columns.
    Each cell is the overlay fitted to ``tile_size`` pixels on its longer side.
    """
    n = len(images)
    if n == 0 or not maps_by_epoch:
        raise ValueError("evolution_grid needs at least one image and one epoch")
    for label, maps in maps_by_epoch:
        if len(maps) != n:
            raise ValueError(f"{label}: {len(maps)} maps for {n} images")
    chosen = [maps_by_epoch[i] for i in pick_columns(len(maps_by_epoch), max_columns)]
    labels = (["image"] if show_image else []) + [str(label) for label, _ in chosen]
    cells = []
    for r in range(n):
        if show_image:
            cells.append(fit(images[r], tile_size))
        cells += [fit(overlay(images[r], maps[r], alpha=alpha), tile_size) for _, maps in chosen]
    cols = len(labels)
    body = tile(cells, cols, pad=pad)
    cell_w = max(c.shape[1] for c in cells)
    header = tile([caption(np.zeros((0, cell_w, 3), np.uint8), t) for t in labels], cols, pad=pad)
    return np.concatenate([header[:-pad] if pad else header, body], axis=0)


def render(fig) -> np.ndarray:
    """Draw a matplotlib ``Figure`` on an Agg canvas and return its pixels (H x W x 3 uint8)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _figure(size: tuple[int, int], dpi: int = 100):
    from matplotlib.figure import Figure

    width, height = size
    if width < 50 or height < 50:
        raise ValueError(f"figure size must be at least 50 x 50 pixels, got {width} x {height}")
    return Figure(figsize=(width / dpi, height / dpi), dpi=dpi)


def histogram(maps: Sequence[np.ndarray], labels: Sequence[str] | None = None, bins: int = 50,
              size: tuple[int, int] = (720, 480), max_lines: int = 10,
              title: str = "Distribution of map values per image") -> np.ndarray:
    """Per-image histograms of map values in [0, 1] (share of pixels per bin, log scale).

    One thin line per image (the first ``max_lines`` are labelled, with their share of
    uncertain pixels, 0.1 < p < 0.9) and a thick black line for all images pooled. A separated
    map (METHOD.md, weighted entropy loss) has its mass at both ends and little in between.
    ``size`` is (width, height) in pixels of the returned image.
    """
    if not len(maps):
        raise ValueError("histogram needs at least one map")
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = _figure(size)
    ax = fig.add_subplot(1, 1, 1)
    pooled = np.zeros(bins)
    floor = 1e-5
    for i, m in enumerate(maps):
        v = check_map(m).ravel()
        counts = np.histogram(v, bins=edges)[0].astype(np.float64)
        pooled += counts
        share = counts / max(v.size, 1)
        uncertain = float(np.mean((v > 0.1) & (v < 0.9))) * 100
        name = labels[i] if labels is not None and i < len(labels) else f"image {i}"
        label = f"{name} ({uncertain:.0f}% in 0.1-0.9)" if i < max_lines else None
        ax.step(centres, np.maximum(share, floor), where="mid", linewidth=1, alpha=0.75, label=label)
    ax.step(centres, np.maximum(pooled / pooled.sum(), floor), where="mid", color="black",
            linewidth=2.2, label="all images")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_ylim(floor, 1.05)
    ax.set_xlabel("map value")
    ax.set_ylabel("share of pixels")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return render(fig)


def failures(images: Sequence[np.ndarray], maps: Sequence[np.ndarray], gt_boxes: Sequence,
             pred_boxes: Sequence, ious: Sequence[float], n: int = 8, labels: Sequence[str] | None = None,
             cols: int = 4, tile_size: int = 192, alpha: float = 0.5) -> np.ndarray:
    """The ``n`` images with the lowest IoU, each with its map, GT boxes blue, predicted green.

    Inputs are parallel sequences (one entry per image; boxes ``N_i x 4`` in that image's
    pixels). Images are sorted by IoU, lowest first (NaN last); each cell is captioned with its
    IoU and, when given, its label (e.g. the image id) on a second line.
    """
    k = len(images)
    if k == 0:
        raise ValueError("failures needs at least one image")
    for name, seq in (("maps", maps), ("gt_boxes", gt_boxes), ("pred_boxes", pred_boxes), ("ious", ious)):
        if len(seq) != k:
            raise ValueError(f"{name} has {len(seq)} entries for {k} images")
    iou = np.asarray(ious, dtype=np.float64)
    order = np.argsort(np.where(np.isnan(iou), np.inf, iou), kind="stable")[:max(n, 1)]
    cells = []
    for i in order:
        text = f"IoU {iou[i]:.2f}" if not np.isnan(iou[i]) else "IoU n/a"
        if labels is not None:
            text += f"\n{labels[i]}"
        cell = overlay(images[i], maps[i], pred_boxes[i], gt_boxes[i], alpha=alpha)
        cells.append(caption(fit(cell, tile_size), text))
    return tile(cells, min(cols, len(cells)))


def threshold_curve(thresholds: Sequence[float], accuracy: Mapping[str, Sequence[float]],
                    chosen_index: int | None = None, size: tuple[int, int] = (720, 420),
                    title: str = "Box accuracy vs threshold", note: str | None = None) -> np.ndarray:
    """Box accuracy (percent) against the threshold, one line per IoU level.

    ``accuracy`` maps a legend label (e.g. ``"IoU >= 0.5"``) to one value per threshold. The
    chosen threshold, when given, is a dashed vertical line with each curve's value there
    marked; ``note`` (e.g. "chosen on val") is added to its label.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError("thresholds must be a non-empty 1-D sequence")
    if not accuracy:
        raise ValueError("threshold_curve needs at least one accuracy curve")
    if chosen_index is not None and not 0 <= chosen_index < t.size:
        raise ValueError(f"chosen_index {chosen_index} is outside the {t.size} thresholds")
    fig = _figure(size)
    ax = fig.add_subplot(1, 1, 1)
    for label, values in accuracy.items():
        v = np.asarray(values, dtype=np.float64)
        if v.shape != t.shape:
            raise ValueError(f"curve {label!r} has {v.size} values for {t.size} thresholds")
        line = ax.plot(t, v, linewidth=1.6, label=str(label))[0]
        best = int(np.nanargmax(v)) if np.isfinite(v).any() else None
        if best is not None:
            ax.plot([t[best]], [v[best]], marker="^", color=line.get_color(), markersize=6)
        if chosen_index is not None:
            ax.plot([t[chosen_index]], [v[chosen_index]], marker="o", color=line.get_color(), markersize=6)
    if chosen_index is not None:
        text = f"chosen threshold {t[chosen_index]:.2f}" + (f" ({note})" if note else "")
        ax.axvline(t[chosen_index], color="black", linestyle="--", linewidth=1, label=text)
    ax.set_xlim(float(t.min()), float(t.max()) if t.max() > t.min() else float(t.min()) + 1e-3)
    ax.set_ylim(0, 100)
    ax.set_xlabel("threshold")
    ax.set_ylabel("box accuracy (%)")
    ax.plot([], [], marker="^", linestyle="none", color="gray", label="maximum of each curve")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return render(fig)


def grid(images: Sequence[np.ndarray], maps: Sequence[np.ndarray] | None, cols: int | None = None,
         tile_size: int = 128, labels: Sequence[str] | None = None, pred_boxes: Sequence | None = None,
         gt_boxes: Sequence | None = None, alpha: float = 0.5) -> np.ndarray:
    """Maps on many images (a dataset at a glance): overlays in a grid, ``cols`` per row.

    ``maps`` may be None (plain images); boxes are optional. ``cols`` defaults to a near-square
    layout. Cells are fitted to ``tile_size`` and captioned when ``labels`` are given.
    """
    k = len(images)
    if k == 0:
        raise ValueError("grid needs at least one image")
    if maps is not None and len(maps) != k:
        raise ValueError(f"{len(maps)} maps for {k} images")
    cells = []
    for i in range(k):
        cell = overlay(images[i], None if maps is None else maps[i],
                       None if pred_boxes is None else pred_boxes[i],
                       None if gt_boxes is None else gt_boxes[i], alpha=alpha)
        cell = fit(cell, tile_size)
        if labels is not None:
            cell = caption(cell, labels[i])
        cells.append(cell)
    return tile(cells, cols or max(1, math.ceil(math.sqrt(k))))

