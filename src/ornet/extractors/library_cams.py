"""The pytorch-grad-cam extractors: gradcam, gradcam++, xgradcam, layercam, scorecam.

The library (jacobgil/pytorch-grad-cam, PyPI ``grad-cam``) is the field's implementation and is
used as it is: its class (``GradCAM``, ``GradCAMPlusPlus``, ``XGradCAM``, ``LayerCAM``,
``ScoreCAM``) on the explained classifier, target layer = the last conv feature map (the output
of the network's ``rest``, what CAM weights), target = ``ClassifierOutputTarget`` of each image's
label (of its predicted class without labels: the library's own argmax). What the library
returns is what the extractor returns: per image the ReLU'd map, min-max normalised to [0, 1] and
resized (OpenCV, bilinear) to the input size.

`_Tapped` is the network as the library sees it: ``head(tap(features(x)))``. The tap (an
``nn.Identity``, the target layer) cuts the graph at the feature map, so the backward pass runs
through the head only, and it is passed only by a forward that records a graph: the image's own.
Score-CAM's masked copies (one forward per channel, under ``torch.no_grad`` in the library) go
around it, else the library's hook would keep every masked copy's feature map until the call
ends (C x C x h x w floats per image, gigabytes for a ResNet-50). The library also builds every
masked copy of the whole batch at once (B x C x 3 x H x W floats: 36 GB for 64 Lite0 images at
192 px), so Score-CAM is given one image per call; each image's map is its own, the same either way.

Much of that work is wasted on blank copies: a channel that is zero everywhere after the network's
last ReLU (about half of Lite0's 1,280 on real photos: 0.33-0.65 per image on the objects sets) masks
the image to all zeros, and every such copy has the same scores, those of an all-zero image. `_Tapped`
runs the network once per library call on one of them and gives the rest its logits (the other
copies run as the library batches them), which changes no map beyond float rounding (tested
against the library run on the unchanged network) and makes Score-CAM several times faster.
"""

from __future__ import annotations

import contextlib
import io

import torch
from torch import Tensor, nn

from .maps_model import float_weights, gradients

SCORECAM_BATCH = 16
"""Masked images per forward in Score-CAM (the library's ``batch_size``, its default). With the blank
copies skipped, 16 ran a Lite0 map at 192 px in 14 s on one core, 32 in 18 s, 64 in 27 s."""


class _Tapped(nn.Module):
    """``network`` as ``head(tap(features(x)))``; the tap only on forwards that record a graph."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.tap = nn.Identity()
        self.blank_logits: Tensor | None = None
        """The logits of an all-zero image; reset by each library call (`LibraryCam.__call__`)."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            features = self.tap(self.network.features(x).detach().requires_grad_())  # a leaf: gradients stop here
            return self.network.head(features)
        # Score-CAM's masked copies: the blank ones (all zeros) share one forward (module doc)
        blank = x.flatten(1).abs().amax(1) == 0
        if not blank.any():
            return self._logits(x)
        if self.blank_logits is None:
            self.blank_logits = self._logits(x[blank][:1])[0]
        out = self.blank_logits.expand(x.shape[0], -1).clone()
        if not blank.all():
            out[~blank] = self._logits(x[~blank])
        return out

    def _logits(self, x: Tensor) -> Tensor:
        return self.network.head(self.network.features(x))


class LibraryCam:
    """One pytorch-grad-cam class (``entry.option``) on the explained classifier `target`."""

    def __init__(self, target, entry):
        import pytorch_grad_cam

        self.target, self.name = target, entry.name
        self.cam_class = getattr(pytorch_grad_cam, entry.option)
        self.score_cam = entry.option == "ScoreCAM"
        self.tapped = _Tapped(target.network)

    def __call__(self, images: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.score_cam and images.shape[0] > 1:  # its masked copies of one image at a time (module doc)
            parts = [self(images[i:i + 1], None if labels is None else labels[i:i + 1])
                     for i in range(images.shape[0])]
            return torch.cat([m for m, _ in parts]), torch.cat([o for _, o in parts])
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        dtype = float_weights(self.target.network, self.name)
        targets = None if labels is None else [ClassifierOutputTarget(int(c)) for c in labels.tolist()]
        with gradients(self.target.network, images.device):
            x = self.target.convert(images.detach().clone().to(dtype))  # a normal tensor, not an inference one
            cam = self.cam_class(model=self.tapped, target_layers=[self.tapped.tap])
            self.tapped.blank_logits = None  # this call's network and input size
            try:
                if self.score_cam:
                    cam.batch_size = SCORECAM_BATCH
                    # its progress bar (tqdm, one per image, on stderr) has no switch: kept out of the logs
                    with contextlib.redirect_stderr(io.StringIO()):
                        maps = cam(input_tensor=x, targets=targets)
                else:
                    maps = cam(input_tensor=x, targets=targets)
                logits = cam.outputs.detach()  # the forward the library ran: the classifier's logits
            finally:
                cam.activations_and_grads.release()  # its hooks off the network
        return torch.from_numpy(maps).to(images.device).unsqueeze(1), logits
