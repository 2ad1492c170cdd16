"""PxAP: area under the pixel precision-recall curve, from score histograms (numpy only).

wsolevaluation's MaskEvaluator, reproduced: for thresholds ``t_0 = 0 < t_1 < ... < t_{T-1}``
(``cam_thresholds``) the histogram edges are ``t_0, ..., t_{T-1}, 1, 2, 3``, so bin ``k`` holds
scores in ``[t_k, t_{k+1})`` and a score of exactly 1 falls in ``[1, 2)``. Positive (foreground)
and negative pixels are counted separately, ignored pixels not at all. From the cumulative counts
taken from the top bin down, ``precision = tp / (tp + fp)`` and ``recall = tp / (tp + fn)``, and

    PxAP = 100 * sum_k precision[k] * (recall[k] - recall[k - 1])   (k >= 1, tp + fp > 0)

(a step-wise AUC, i.e. average precision). Histograms add up, so they stream and sync.
"""

from __future__ import annotations

import numpy as np


def pxap_edges(thresholds) -> np.ndarray:
    """Histogram edges for the thresholds: ``thresholds + [1, 2, 3]`` (T + 3 edges, T + 2 bins)."""
    return np.append(np.asarray(thresholds, dtype=np.float64), [1.0, 2.0, 3.0])


def score_histograms(scoremap: np.ndarray, foreground: np.ndarray, ignore: np.ndarray | None,
                     edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) int64 histograms of one map's scores (values in [0, 1]).

    ``foreground`` and ``ignore`` are boolean masks of the map's shape; ignored pixels are those
    of ``ignore`` that are not foreground. Bins as ``numpy.histogram`` with these edges.
    """
    scores = np.asarray(scoremap, dtype=np.float64)
    fg = np.asarray(foreground, dtype=bool)
    if fg.shape != scores.shape or (ignore is not None and np.shape(ignore) != scores.shape):
        raise ValueError(f"masks must have the map's shape {scores.shape}")
    bins = np.searchsorted(edges, scores.ravel(), side="right") - 1
    fg = fg.ravel()
    negative = ~fg if ignore is None else ~(fg | np.asarray(ignore, dtype=bool).ravel())
    n = len(edges) - 1
    return (np.bincount(bins[fg], minlength=n).astype(np.int64),
            np.bincount(bins[negative], minlength=n).astype(np.int64))


def pxap_from_histograms(positive: np.ndarray, negative: np.ndarray) -> float:
    """PxAP in percent from accumulated positive / negative histograms (ascending bins).

    Raises ValueError when there is no foreground pixel at all.
    """
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    tp = pos[::-1].cumsum()
    fn = pos.sum() - tp
    fp = neg[::-1].cumsum()
    if ((tp + fn) <= 0).all():
        raise ValueError("PxAP needs at least one foreground pixel in the evaluated masks")
    if ((tp + fp) <= 0).all():
        raise ValueError("PxAP needs at least one scored pixel")
    defined = (tp + fp) != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
    return float((precision[1:] * np.diff(recall))[defined[1:]].sum() * 100)
