"""A reference of the ORNet release's networks for the tests, written from its documented
architecture (Sierkinhane/ORNet models/unet.py, models/model.py, models/evaluator.py; key names,
shapes and operations are the facts used), independently of ornet's own generator.

- ``UConv`` block: conv3x3 (no bias) - BN(momentum 0.01) - LeakyReLU(0.01) - conv3x3 (no bias) -
  BN(momentum 0.01) - LeakyReLU(0.01), stored under ``<block>.UConv.{0,1,3,4}``;
- ``UNet(C, K, c)``: ``down_k = Sequential(MaxPool2d(2), UConv)`` with C -> 2c -> 4c -> 8c;
  ``up_k.conv = UConv`` after doubling the input (bilinear, scale 2, align_corners False) and
  concatenating ``[skip, upsampled]``: 12c -> 4c, 6c -> 3c, 3c + C -> K;
- map = sigmoid(bn_att3(att_conv3(UNet(maxpool(relu(bn1(conv1(x))))))));
- coarse files: ``conv1, bn1, layer1-4, fc`` (torchvision ResNet), ``att_layer4``, ``att_conv2``
  (1x1 K -> K), ``att_conv3`` (3x3 K -> 1), ``bn_att3``; fine files: ``conv1, bn1, att_layer4,
  att_conv3, bn_att3`` and the evaluator under ``vgg.model``; evaluator files: ``model.*``.

`save_release_file` writes what the release's scripts write: ``torch.save({"state_dict": ...,
"epoch", "best_acc", ...})`` with numpy scalars and optimiser / scheduler state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class RefUConv(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.UConv = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out, momentum=0.01),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out, momentum=0.01),
            nn.LeakyReLU(inplace=True))

    def forward(self, x):
        return self.UConv(x)


class RefUp(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = RefUConv(c_in, c_out)

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, x], dim=1))


class RefUNet(nn.Module):
    def __init__(self, c_in: int, k: int, c: int):
        super().__init__()
        self.down_1 = nn.Sequential(nn.MaxPool2d(2), RefUConv(c_in, 2 * c))
        self.down_2 = nn.Sequential(nn.MaxPool2d(2), RefUConv(2 * c, 4 * c))
        self.down_3 = nn.Sequential(nn.MaxPool2d(2), RefUConv(4 * c, 8 * c))
        self.up_1 = RefUp(12 * c, 4 * c)
        self.up_2 = RefUp(6 * c, 3 * c)
        self.up_3 = RefUp(3 * c + c_in, k)

    def forward(self, x1):
        x2 = self.down_1(x1)
        x3 = self.down_2(x2)
        x4 = self.down_3(x3)
        return self.up_3(self.up_2(self.up_1(x4, x3), x2), x1)


class RefEvaluator(nn.Module):
    """The release's Evaluator: a torchvision classifier under ``model`` with a K-class last Linear."""

    def __init__(self, arch: str, k: int):
        super().__init__()
        self.model = torchvision.models.get_model(arch, weights=None)
        if hasattr(self.model, "fc"):
            self.model.fc = nn.Linear(self.model.fc.in_features, k)
        else:
            self.model.classifier[-1] = nn.Linear(self.model.classifier[-1].in_features, k)

    def forward(self, x):
        return self.model(x)


class RefGeneratorPart(nn.Module):
    """What coarse and fine files share: the ResNet stem, att_layer4, att_conv3, bn_att3."""

    def _build_generator(self, k: int, c: int, resnet: nn.Module) -> None:
        self.att_layer4 = RefUNet(64, k, c)
        self.att_conv3 = nn.Conv2d(k, 1, 3, padding=1, bias=False)
        self.bn_att3 = nn.BatchNorm2d(1)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool

    def stem(self, x):
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def att_map(self, x):
        """B x 1 x H/4 x W/4: the map the release evaluates (56 x 56 at 224)."""
        return torch.sigmoid(self.bn_att3(self.att_conv3(self.att_layer4(self.stem(x)))))


class RefCoarse(RefGeneratorPart):
    def __init__(self, k: int, c: int, backbone: str = "resnet18"):
        super().__init__()
        net = torchvision.models.get_model(backbone, weights=None)
        self._build_generator(k, c, net)
        self.att_conv2 = nn.Conv2d(k, k, 1, bias=False)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.fc = nn.Linear(net.fc.in_features, k)


class RefFine(RefGeneratorPart):
    def __init__(self, k: int, c: int, evaluator: str = "mobilenet_v3_small"):
        super().__init__()
        self._build_generator(k, c, torchvision.models.get_model("resnet18", weights=None))
        self.vgg = RefEvaluator(evaluator, k)


def randomise_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so eval-mode BN matters in the maps."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
            m.num_batches_tracked.fill_(7)
    return module


def save_release_file(path: Path, module: nn.Module, optimizer: str = "sgd", **numbers) -> Path:
    """torch.save as the release's scripts do: state_dict, numpy numbers, optimiser and scheduler state."""
    params = [p for p in module.parameters() if p.requires_grad][:3]
    opt = (torch.optim.SGD(params, lr=1e-3, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=1e-4))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 10)
    loss = sum(p.float().sum() for p in params)
    loss.backward()
    opt.step()
    sched.step()
    payload = {"state_dict": module.state_dict(), "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict()}
    payload.update(numbers)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def numpy_numbers() -> dict:
    """Numbers saved as numpy scalars, as a script that computed them with numpy would."""
    return {"epoch": np.int64(30), "best_acc": np.float64(0.8123), "best_epoch": np.int32(12)}


# --- files as the release writes them -----------------------------------------------------------

def write_fine(path: Path, k: int = 3, width: int = 4, evaluator: str = "mobilenet_v3_small", seed: int = 0,
               drop: tuple[str, ...] = (), **numbers) -> tuple[Path, RefFine]:
    """A FineModel checkpoint (train_2nd_step.py: state_dict, best_threshold, Adam, cosine)."""
    torch.manual_seed(seed)
    model = randomise_bn(RefFine(k, width, evaluator), seed).eval()
    numbers = {"best_threshold": 0.45, **numbers}
    save_release_file(path, model, optimizer="adam", **numbers)
    if drop:
        _drop_keys(path, drop)
    return path, model


def write_coarse(path: Path, k: int = 3, width: int = 4, backbone: str = "resnet18", seed: int = 1,
                 shapes_only: bool = False, **numbers) -> tuple[Path, RefCoarse | None]:
    """A CoarseModel checkpoint. `shapes_only`: every tensor one broadcast zero (right names and
    shapes, a file of a few kB) for tests that never look at the values."""
    if shapes_only:
        with torch.device("meta"):
            meta = RefCoarse(k, width, backbone)
        state = {name: torch.zeros(()).expand(t.shape) if t.dim() else torch.zeros((), dtype=t.dtype)
                 for name, t in meta.state_dict().items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": state, **numpy_numbers(), **numbers}, path)
        return path, None
    torch.manual_seed(seed)
    model = randomise_bn(RefCoarse(k, width, backbone), seed).eval()
    save_release_file(path, model, **{**numpy_numbers(), **numbers})
    return path, model


def write_evaluator(path: Path, k: int = 3, arch: str = "mobilenet_v3_small", seed: int = 2) -> tuple[Path, RefEvaluator]:
    """An Evaluator checkpoint (train_evaluator.py: best_acc, best_epoch, SGD, cosine)."""
    torch.manual_seed(seed)
    model = randomise_bn(RefEvaluator(arch, k), seed).eval()
    save_release_file(path, model, **numpy_numbers())
    return path, model


def _drop_keys(path: Path, prefixes: tuple[str, ...]) -> None:
    from ornet.models.weights import numpy_scalar_globals, safe_torch_load

    obj = safe_torch_load(path, allow=numpy_scalar_globals())
    obj["state_dict"] = {k: v for k, v in obj["state_dict"].items() if not k.startswith(prefixes)}
    torch.save(obj, path)
