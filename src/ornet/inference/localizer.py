"""`Localizer`: a trained model with its preprocessing and map-to-box settings; `Prediction`.

    loc = ornet.load_model("runs/ornet")              # or model.json, or checkpoints/refine.ckpt
    pred = loc.predict(["a.jpg", "b.png"])            # or PIL images, or a B x 3 x H x W tensor
    pred.boxes[0]                                     # N x 4 int64, x0 y0 x1 y1 (inclusive) pixels of a.jpg
    pred.class_names[0], pred.probs[0].max()

Maps -> boxes exactly as evaluation does (`localization.metrics.prepare_maps`, then
`localization.boxes.boxes_from_map`): the raw map (B x 1 x h x w) is resized bilinearly to the
network input, min-max normalised per image (``normalize="minmax"``; ``"none"`` keeps it),
thresholded, and the boxes of the box mode (all / largest / multi) are scaled to each original
image (`localization.boxes.scale_boxes`, rule ``cover``). Files and lists of images go through `Preprocess` (the whole
image resized to crop x crop); a tensor is taken as already preprocessed (`Localizer.transform`),
and its boxes are in its own pixels unless ``sizes`` gives the originals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import OrnetError
from ..evaluation.protocols import PROTOCOLS, stored_protocol
from .preprocess import Preprocess, image_size, to_uint8


def eval_maps(raw: torch.Tensor, size: int | tuple[int, int], normalize: str) -> np.ndarray:
    """B x 1 x h x w maps -> B x H x W float32 numpy: resized (bilinear) to `size` (the network
    input, an int for a square one) and normalised exactly as evaluation does
    (`localization.metrics.prepare_maps`): the maps that are thresholded."""
    from ..localization.metrics import prepare_maps

    size = (size, size) if isinstance(size, int) else tuple(size)
    return prepare_maps(raw.float(), size, normalize).astype(np.float32)


@dataclass
class Prediction:
    """What `Localizer.predict` returns for a batch of B images.

    ``maps``: B x 1 x h x w float32, the network's raw maps (on the model's device);
    ``scoremaps``: B x H x W float32 numpy in [0, 1], the maps resized to the network input
    (H x W) and normalised: what was thresholded; ``boxes``: per image an N_i x 4 int64 array of
    x0, y0, x1, y1 pixels of the ORIGINAL image (N_i = 0 when nothing passes the threshold), in
    docs/metrics.md's convention: counted inclusively, x1 and y1 being OpenCV's ``x + w``,
    ``y + h`` on the input as wsolevaluation writes them; ``logits``: B x K float32 (None for a
    model without a classifier); ``sizes``: (height, width) of each original image.
    """

    maps: torch.Tensor
    scoremaps: np.ndarray
    boxes: list[np.ndarray]
    logits: torch.Tensor | None
    sizes: list[tuple[int, int]]
    threshold: float
    box_mode: str
    normalize: str
    classes: list[str] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def probs(self) -> torch.Tensor | None:
        """B x K softmax probabilities (None without logits)."""
        return None if self.logits is None else self.logits.float().softmax(dim=1)

    @property
    def labels(self) -> torch.Tensor | None:
        """(B,) top-1 class indices."""
        return None if self.logits is None else self.logits.argmax(dim=1)

    @property
    def class_names(self) -> list[str]:
        """Top-1 class name per image (the index as text when the model has no names)."""
        if self.logits is None:
            return []
        return [self.classes[i] if i < len(self.classes) else str(i) for i in self.labels.tolist()]

    @cached_property
    def image_maps(self) -> list[np.ndarray]:
        """``scoremaps`` resized to each original image: H_i x W_i float32 in [0, 1]."""
        from ..viz.draw import resize_map

        return [resize_map(m, *s) for m, s in zip(self.scoremaps, self.sizes)]


class Localizer:
    """A trained localization model: network, preprocessing, classes and map-to-box settings.

    ``threshold`` (None when the run was never evaluated), ``box_mode`` (all / largest /
    multi) and ``normalize`` (minmax / none) start from model.json (or the run's metrics) and
    may be changed, or overridden per call. ``transform`` is the preprocessing
    (`Preprocess`); ``model`` the network in eval mode, ``predict(images, labels) -> (maps,
    logits)``; ``meta`` model.json's dict. ``predict`` runs without gradients, inside your
    own loop too, and under ``torch.autocast``.
    """

    def __init__(self, model: nn.Module, meta: dict, *, source: Path | None = None, info: Path | None = None,
                 run_dir: Path | None = None, threshold: float | None = None):
        from ..localization.boxes import MODES

        self.model, self.meta = model.eval(), meta
        self.source = source
        """What it was loaded from (model.json or a checkpoint), if anything."""
        self.info, self.run_dir = info, run_dir
        """model.json (None for a checkpoint) and the run folder holding config.yaml, if known."""
        loc = meta.get("localization") or {}
        pre = meta["preprocessing"]
        self.classes: list[str] = [str(c) for c in meta.get("classes") or []]
        self.method: str = meta.get("method", "")
        self.threshold: float | None = threshold if threshold is not None else loc.get("threshold")
        self.box_mode: str = loc.get("box_mode") or "largest"
        self.normalize: str = loc.get("normalize") or "minmax"
        self.protocol: str = stored_protocol(loc).name
        """The evaluation protocol model.json names (`ornet.evaluation.protocols`); it says how a map
        becomes boxes (`box_rule`): the release's boxes the raw map's cells above the threshold in box mode `all`."""
        if self.box_mode not in MODES:
            raise OrnetError(f"unknown box mode {self.box_mode!r}; modes: {', '.join(MODES)}")
        self.transform = Preprocess(int(pre["crop"]), pre["mean"], pre["std"])
        self.maps: str = "own"
        """The map extractor whose maps `predict` returns (`use_maps`; docs/maps.md): own, the model's."""

    def __repr__(self) -> str:
        return (f"Localizer(method={self.method!r}, classes={len(self.classes)}, input={self.crop}x{self.crop}, "
                f"threshold={self.threshold}, box_mode={self.box_mode!r}, normalize={self.normalize!r}, "
                f"device={self.device})")

    @property
    def crop(self) -> int:
        return self.transform.crop

    @property
    def device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        param = next(self.model.parameters(), None)
        return param.dtype if param is not None else torch.float32

    def to(self, device: str | torch.device) -> Localizer:
        self.model.to(device)
        return self

    def use_maps(self, name: str) -> Localizer:
        """Return maps of extractor `name` from now on (``eval.maps``: own, cam, gradcam, ..., pc1;
        docs/maps.md), explaining the model's classifier; returns self. The stored threshold was
        chosen on the model's own maps: pass one chosen for these (``ornet evaluate --eval.maps``)."""
        from ..extractors import with_maps

        self.model = with_maps(self.model, name).eval()
        self.maps = name
        return self

    @property
    def maps_network(self) -> str | None:
        """The network the maps explain, e.g. ``evaluator (resnet18)``; None for the model's own maps."""
        return getattr(self.model, "maps_network", None)

    def box_rule(self, box_mode: str | None = None) -> str:
        """How `predict` makes boxes in `box_mode`: ``evaluation`` (the map resized to the input,
        normalised, thresholded: `localization.boxes`) or, for a release-protocol model in box
        mode ``all``, ``release`` (raw map > threshold, one box around those cells x the stride:
        `localization.release_rule.release_boxes`; no cell above: no box). The protocol's entry decides."""
        return PROTOCOLS.get(self.protocol).box_rule(box_mode or self.box_mode)

    def preprocess(self, images) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """A list of PIL images / paths (or one) -> (B x 3 x crop x crop batch, [(height, width)])."""
        if isinstance(images, (str, os.PathLike)) or hasattr(images, "convert"):
            images = [images]
        pixels = [to_uint8(image) for image in images]
        if not pixels:
            raise ValueError("no image to preprocess")
        return torch.stack([self.transform.from_uint8(p) for p in pixels]), [image_size(p) for p in pixels]

    def predict(self, images, *, threshold: float | None = None, box_mode: str | None = None,
                labels: torch.Tensor | None = None, sizes: list[tuple[int, int]] | None = None) -> Prediction:
        """Maps, boxes and classes for a batch.

        images: a B x 3 x H x W float tensor already preprocessed (normalised; 3 x H x W for
        one image), or one / a list of PIL images or paths (preprocessed here).
        threshold, box_mode: this call's (default: the Localizer's). labels: (B,) classes for
        a CAM model to map (default: its top-1 class); ORNet's map is class-agnostic, unless
        the model has a class gate (`ORNet.set_cam_gate`): then its CAM of these classes.
        sizes: (height, width) of the originals of a tensor batch, to scale its boxes to.
        """
        from ..localization.boxes import MODES, scale_boxes

        threshold = self.threshold if threshold is None else float(threshold)
        if threshold is None:
            raise OrnetError("the model has no chosen threshold (its run was not evaluated): pass threshold=T "
                             "or set Localizer.threshold")
        if not 0.0 <= threshold <= 1.0:
            raise OrnetError(f"threshold must be in [0, 1], got {threshold}")
        box_mode = box_mode or self.box_mode
        if box_mode not in MODES:
            raise OrnetError(f"unknown box mode {box_mode!r}; modes: {', '.join(MODES)}")
        if isinstance(images, torch.Tensor):
            x = images[None] if images.ndim == 3 else images
            if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
                raise ValueError(f"images must be a B x 3 x H x W float tensor, got {x.dtype} {tuple(images.shape)}")
            sizes = [tuple(s) for s in sizes] if sizes is not None else [tuple(x.shape[-2:])] * len(x)
        else:
            x, sizes = self.preprocess(images)
        if len(sizes) != len(x):
            raise ValueError(f"{len(x)} images but {len(sizes)} sizes")
        x = x.to(self.device, self.dtype)
        with torch.no_grad():
            maps, logits = self.model.predict(x, None if labels is None else labels.to(self.device))
        maps = maps.float()
        input_size = (int(x.shape[-2]), int(x.shape[-1]))
        scoremaps = eval_maps(maps, input_size, self.normalize)
        protocol = PROTOCOLS.get(self.protocol)  # how its maps become boxes
        boxes = []
        for j, (m, (h, w)) in enumerate(zip(scoremaps, sizes)):
            found = protocol.map_boxes(maps[j, 0], m, threshold, box_mode, input_size, relative=self.normalize == "minmax")
            boxes.append(scale_boxes(found, input_size[::-1], (w, h), "cover"))
        return Prediction(maps=maps, scoremaps=scoremaps, boxes=boxes,
                          logits=None if logits is None else logits.float(), sizes=[(int(h), int(w)) for h, w in sizes],
                          threshold=threshold, box_mode=box_mode, normalize=self.normalize, classes=self.classes)

    __call__ = predict

    def localize_files(self, inputs, **options):
        """Image files, folders (recursive) or globs -> one `on_files.FilePrediction` per image, in
        batches, boxes in each photo's pixels; unreadable files come back with their error.
        Options: threshold, box_mode, batch_size (16), exclude (a folder), progress (False).
        See `on_files.localize_files`."""
        from .on_files import localize_files

        return localize_files(self, inputs, **options)

