"""Map extractors (`ornet.extractors`, docs/maps.md) on hand-built networks whose maps are known.

The toy classifier: the image's channel k is 1 on square S_k (8 x 8 pixels on the 4-pixel grid)
and 0 elsewhere; ``rest`` = 4 x 4 average pooling, so feature channel k is 1 on S_k's 2 x 2 cells
of the 8 x 8 feature map; the head is GAP + a Linear of chosen weights W (no bias). Class c's
CAM is sum_k W[c, k] f_k, known exactly, and each extractor's map follows from its formula.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ornet.errors import ConfigError, OrnetError
from ornet.extractors import DEFAULT_MAPS, EXTRACTORS, check_maps, with_maps
from ornet.extractors.class_maps import orient, pc1_maps
from ornet.models.split import ClassifierHead, ExplainedClassifier, SplitClassifier

SQUARES = [(slice(4, 12), slice(4, 12)), (slice(20, 28), slice(4, 12)), (slice(12, 20), slice(20, 28))]
W = torch.tensor([[2.0, -1.0, 0.0], [-1.0, 2.0, 0.0], [0.5, 0.0, 1.0]])
LIBRARY = ["gradcam", "gradcam++", "xgradcam", "layercam", "scorecam"]


def toy(weights: torch.Tensor = W, head: nn.Module | None = None) -> ExplainedClassifier:
    k, c = weights.shape
    if head is None:
        head = ClassifierHead(nn.AdaptiveAvgPool2d(1), nn.Linear(c, k, bias=False))
        with torch.no_grad():
            head.classifier.weight.copy_(weights)
    net = SplitClassifier("toy", nn.Identity(), nn.AvgPool2d(4), head, 3, c, k).eval()
    return ExplainedClassifier(net, nn.Identity(), "toy network", "toy")


def images(batch: int = 3) -> torch.Tensor:
    x = torch.zeros(batch, 3, 32, 32)
    for k, (rows, cols) in enumerate(SQUARES):
        x[:, k, rows, cols] = 1.0
    return x


def features() -> torch.Tensor:
    return F.avg_pool2d(images(1), 4)[0]  # 3 x 8 x 8: channel k is 1 on S_k's cells


def upsampled_minmax(cam: torch.Tensor) -> torch.Tensor:
    """What pytorch-grad-cam returns for an h x w map: ReLU, min-max, resized (bilinear) to 32 x 32, min-max."""
    cam = cam.clamp_min(0)
    cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-7)
    up = F.interpolate(cam[None, None], size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    return (up - up.min()) / (up.max() - up.min() + 1e-7)


def outside(k: int, margin: int = 2) -> torch.Tensor:
    """Pixels farther than `margin` from S_k (bilinear upsampling of a 4-pixel cell spreads 2 pixels)."""
    mask = torch.ones(32, 32, dtype=torch.bool)
    rows, cols = SQUARES[k]
    mask[rows.start - margin: rows.stop + margin, cols.start - margin: cols.stop + margin] = False
    return mask


def extract(name: str, target: ExplainedClassifier, x: torch.Tensor, labels: torch.Tensor | None):
    with torch.inference_mode():  # as in Lightning's test loop
        return EXTRACTORS.get(name).build(target)(x, labels)


def test_the_registry_lists_every_extractor_with_one_line():
    assert EXTRACTORS.names() == sorted(["own", "cam", "gradcam", "gradcam++", "xgradcam", "layercam", "scorecam",
                                         "pc1"])
    assert DEFAULT_MAPS == "own" and EXTRACTORS.get("own").impl is None
    for name in EXTRACTORS:
        d = EXTRACTORS.get(name).description
        assert d and "\n" not in d
    with pytest.raises(ConfigError, match=r"^eval.maps: unknown map extractor 'gradcam\+'; known: cam, gradcam, gradcam\+\+, layercam, own, pc1, "):
        check_maps("gradcam+")


@pytest.mark.parametrize("name", ["cam", *LIBRARY, "pc1"])
def test_every_extractor_gives_b_1_h_w_maps_in_0_1_and_the_classifier_logits(name):
    target = toy(50 * W)
    x = images()
    maps, logits = extract(name, target, x, torch.tensor([0, 1, 2]))
    assert maps.ndim == 4 and maps.shape[:2] == (3, 1) and maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() <= 1 and torch.isfinite(maps).all()
    assert torch.allclose(logits, target.network(x), atol=1e-5)
    assert all(p.requires_grad and p.grad is None for p in target.network.parameters())  # left as found


@pytest.mark.parametrize("name", ["gradcam", "xgradcam", "layercam"])
def test_gradient_maps_equal_relu_cam_for_a_gap_linear_head(name):
    # GAP + Linear: d logit_c / d f_k(i, j) = W[c, k] / (h * w) everywhere, so Grad-CAM's channel
    # weights are W[c] / (h w) (XGrad-CAM's too: sum grad * f / sum f); LayerCAM's relu(W[c]) f_k
    # equals relu(CAM) here because the squares do not overlap. Map = ReLU(CAM) up to scale.
    target = toy(W)
    maps, _ = extract(name, target, images(), torch.tensor([0, 1, 2]))
    f = features()
    for c in range(3):
        want = upsampled_minmax(torch.einsum("k,khw->hw", W[c], f))
        assert torch.allclose(maps[c, 0], want, atol=1e-5), (name, c)
    for c in (0, 1):  # one positive weight: ~0 away from the class's square, 1 on it
        assert maps[c, 0][outside(c)].abs().max() < 1e-6
        rows, cols = SQUARES[c]
        assert maps[c, 0][rows, cols].max() == pytest.approx(1.0)
    rows, cols = SQUARES[0]
    assert maps[2, 0][rows, cols].max() == pytest.approx(0.5, abs=1e-5)  # W[2] = (0.5, 0, 1)


def test_grad_cam_plus_plus_weights_by_hand():
    # Equation 19 of Grad-CAM++ (the library's eps 1e-6) with the constant gradient g_k = W[c, k] / (h w)
    # and S_k = sum f_k: alpha_k = g^2 / (2 g^2 + S_k g^3 + eps), weight_k = h w relu(g_k) alpha_k: only
    # the positive weights count, and not in Grad-CAM's proportions (class 2: square 0 at 0.505, not 0.5).
    target = toy(W)
    maps, _ = extract("gradcam++", target, images(), torch.tensor([0, 1, 2]))
    f = features()
    sums = f.sum(dim=(1, 2)).double()
    for c in range(3):
        g = W[c].double() / 64
        weights = 64 * g.clamp_min(0) * g ** 2 / (2 * g ** 2 + sums * g ** 3 + 1e-6)
        want = upsampled_minmax(torch.einsum("k,khw->hw", weights.float(), f))
        assert torch.allclose(maps[c, 0], want, atol=1e-5), c
    rows, cols = SQUARES[0]
    assert maps[2, 0][rows, cols].max() == pytest.approx(0.5046, abs=1e-4)


@pytest.mark.parametrize("name", LIBRARY)
def test_each_class_map_peaks_on_its_square_and_is_zero_elsewhere(name):
    # Large weights, so that Score-CAM's softmax over the masked images' scores picks one channel.
    target = toy(200 * torch.eye(3) - 100 * (1 - torch.eye(3)))
    maps, _ = extract(name, target, images(), torch.tensor([0, 1, 2]))
    for c in range(3):
        rows, cols = SQUARES[c]
        assert maps[c, 0][rows, cols].max() == pytest.approx(1.0)
        assert maps[c, 0][outside(c)].max() < (0.01 if name == "scorecam" else 1e-6), (name, c)


def test_cam_is_the_normalised_class_activation_map_without_relu():
    maps, _ = extract("cam", toy(W), images(1), torch.tensor([0]))
    cam = torch.einsum("k,khw->hw", W[0], features())  # 2 on S_0, -1 on S_1, 0 elsewhere
    assert torch.allclose(maps[0, 0], (cam + 1) / 3)


def test_without_labels_the_predicted_class_is_explained():
    target = toy(50 * W)
    x = images(1)
    x[:, 1] *= 3  # square 1 brighter: class 1 wins
    for name in ["cam", "gradcam", "pc1"]:
        with_labels, logits = extract(name, target, x, torch.tensor([1]))
        assert logits.argmax(dim=1).item() == 1
        assert torch.equal(extract(name, target, x, None)[0], with_labels), name


def test_pc1_picks_the_dominant_co_varying_pattern_with_the_object_positive():
    # Six channels: four fire on the object square O (different strengths), two on everything but O.
    # After the per-channel min-max, rows are 1_O or 1 - 1_O; centred over channels every row is a
    # multiple of (1_O - 1/2): PC1 is that pattern, and the sign rule puts O at 1, the rest at 0.
    obj = torch.zeros(8, 8)
    obj[2:5, 3:6] = 1.0
    feats = torch.stack([obj * s for s in (1.0, 2.0, 0.5, 3.0)] + [(1 - obj) * s for s in (1.0, 4.0)])
    weights = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.3, 1.0])
    assert torch.allclose(pc1_maps(feats[None], weights[None])[0], obj, atol=1e-5)
    # a weaker, independent pattern (one channel on a distractor D) does not displace it
    dist = torch.zeros(8, 8)
    dist[6:8, 0:2] = 1.0
    m = pc1_maps(torch.cat([feats, dist[None]])[None], torch.cat([weights, torch.tensor([1.0])])[None])[0]
    assert m[obj.bool()].min() > 0.9 and m[~obj.bool()].max() < 0.6


def test_pc1_orientation_rule():
    obj = torch.zeros(1, 6, 6)
    obj[0, 2:4, 2:4] = 1.0
    assert torch.equal(orient(obj - 0.5), obj - 0.5)
    assert torch.equal(orient(0.5 - obj), obj - 0.5)  # the largest |entry| (a border one) made positive, then
    border = torch.ones(1, 6, 6)                     # the border checked
    border[0, 1:-1, 1:-1] = 0.0
    assert torch.equal(orient(border), -border)  # a map bright on its whole border is taken upside down
    half = torch.zeros(1, 6, 6)
    half[0, :, :3] = 1.0  # half of the ring above the mean: kept (more than half flips)
    assert torch.equal(orient(half), half)


def test_pc1_matches_scikit_learn_pca_as_the_release_computes_it():
    from sklearn.decomposition import PCA

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(4, 32, 7, 7, generator=gen).relu() + 0.01  # no flat channel
    weights = torch.randn(4, 32, generator=gen)
    ours = pc1_maps(feats, weights)
    for b in range(4):
        terms = (feats[b] * weights[b, :, None, None]).flatten(1).double().numpy()
        terms = (terms - terms.min(1, keepdims=True)) / (terms.max(1, keepdims=True) - terms.min(1, keepdims=True))
        comp = PCA(n_components=1).fit(terms).components_[0].reshape(7, 7)  # channels are the samples
        comp = comp / comp.max()
        ring = np.ones((7, 7), dtype=bool)
        ring[1:-1, 1:-1] = False
        if (comp > comp.mean())[ring].mean() > 0.5:
            comp = 1 - comp
        want = (comp - comp.min()) / (comp.max() - comp.min())
        assert np.allclose(ours[b].numpy(), want, atol=1e-4), b


def test_pc1_of_a_map_without_variance_is_zero():
    assert torch.equal(pc1_maps(torch.ones(2, 5, 1, 1), torch.ones(2, 5)), torch.zeros(2, 1, 1))
    assert torch.equal(pc1_maps(torch.ones(1, 5, 4, 4), torch.ones(1, 5)), torch.zeros(1, 4, 4))


def test_heads_without_class_weights_are_refused_for_cam_and_pc1_but_not_for_gradients():
    head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 3))  # not GAP + Linear
    target = toy(W, head=head)
    for name in ("cam", "pc1"):
        with pytest.raises(OrnetError, match=rf"eval.maps {name} needs a classifier whose head is GAP \+ Linear"):
            EXTRACTORS.get(name).build(target)
    maps, _ = extract("gradcam", target, images(1), torch.tensor([0]))
    assert maps.shape == (1, 1, 32, 32)


def test_gradients_run_under_no_grad_and_autocast_and_leave_no_state():
    target = toy(W)
    ex = EXTRACTORS.get("gradcam").build(target)
    with torch.inference_mode():
        want, _ = ex(images(1), torch.tensor([0]))
    with torch.no_grad():  # as a Localizer calls it
        assert torch.allclose(ex(images(1), torch.tensor([0]))[0], want)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # trainer.precision bf16-mixed
        maps, _ = ex(images(1), torch.tensor([0]))
    assert maps.dtype == torch.float32 and torch.allclose(maps, want, atol=1e-5)
    assert not target.network._forward_hooks and not ex.tapped.tap._forward_hooks  # the library's hooks removed
    assert all(p.requires_grad and p.grad is None for p in target.network.parameters())


def test_run_models_give_their_classifier_and_cam_of_a_cam_run_is_its_own_map():
    from ornet.models.cam_network import CAMModel
    from ornet.models.ornet_network import ORNet

    torch.manual_seed(0)
    x, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    cam = CAMModel("resnet18", 3).eval()
    assert with_maps(cam, "own") is cam
    wrapped = with_maps(cam, "cam")
    assert wrapped.maps == "cam" and wrapped.maps_network == "CAM network (resnet18)"
    with torch.inference_mode():
        (a, la), (b, lb) = cam.predict(x, labels), wrapped.predict(x, labels)
        assert torch.equal(a, b) and torch.equal(la, lb)
        maps, logits = with_maps(wrapped, "gradcam").predict(x, labels)  # a wrapped model is re-wrapped
    assert maps.shape == (2, 1, 32, 32) and torch.allclose(logits, la, atol=1e-5)
    assert with_maps(wrapped, "own") is cam
    from ornet.models.adl_network import ADLModel

    adl = ADLModel("resnet18", 3).eval()  # the zoo's CAM networks (HaS and CutMix train a CAMModel)
    assert with_maps(adl, "pc1").maps_network == "CAM network (resnet18)"
    with torch.inference_mode():
        maps, logits = with_maps(adl, "gradcam").predict(x, labels)
        assert maps.shape == (2, 1, 32, 32) and torch.allclose(logits, adl.predict(x, labels)[1], atol=1e-5)
    net = ORNet("resnet18", 3, evaluator="resnet18", generator_width=8).eval()
    ornet_maps = with_maps(net, "gradcam")
    assert ornet_maps.maps_network == "evaluator (resnet18)"
    with torch.inference_mode():
        _, own_logits = net.predict(x, labels)
        maps, logits = ornet_maps.predict(x, labels)
    assert torch.allclose(logits, own_logits, atol=1e-5)  # the evaluator, on its own normalisation
    with pytest.raises(OrnetError, match=r"^eval.maps pc1 explains the model's classifier, and this ORNet has none"):
        with_maps(ORNet("resnet18", 3, evaluator=None, generator_width=8), "pc1")
    with pytest.raises(ConfigError, match="eval.maps: unknown map extractor 'gradcam2'"):
        with_maps(cam, "gradcam2")


def test_score_cam_runs_one_image_per_library_call(monkeypatch):
    # The library materialises B x C x 3 x H x W masked copies at once (36 GB for 64 Lite0 images at 192 px, an
    # OOM kill on a 24 GB machine): ornet hands it one image at a time, with the same maps and logits.
    import pytorch_grad_cam

    sizes = []
    original = pytorch_grad_cam.ScoreCAM.get_cam_weights

    def spy(self, input_tensor, *rest):
        sizes.append(input_tensor.shape[0])
        return original(self, input_tensor, *rest)

    monkeypatch.setattr(pytorch_grad_cam.ScoreCAM, "get_cam_weights", spy)
    target = toy(200 * torch.eye(3) - 100 * (1 - torch.eye(3)))
    x, labels = images(), torch.tensor([0, 1, 2])
    maps, logits = extract("scorecam", target, x, labels)
    assert sizes == [1, 1, 1]
    singles = [extract("scorecam", target, x[i:i + 1], labels[i:i + 1]) for i in range(3)]
    assert torch.equal(maps, torch.cat([m for m, _ in singles]))
    assert torch.allclose(logits, target.network(x), atol=1e-5)
    maps_free, _ = extract("scorecam", target, x, None)  # no labels: each image's predicted class
    assert torch.equal(maps_free, extract("scorecam", target, x, logits.argmax(1))[0])


def test_score_cam_runs_blank_masked_copies_once_and_matches_the_library():
    # Channels 3-5 of the image, hence of the feature map, are zero everywhere: their masked copies are all-zero
    # images. ornet runs one of them per library call and gives the others its logits; the maps equal the
    # library's on the unchanged network (every copy run), and the network sees 3 live copies + 1 blank + the image.
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    weights = torch.cat([W, torch.tensor([[0.3, -0.2, 0.1]] * 3).T], dim=1)  # 3 classes x 6 channels
    head = ClassifierHead(nn.AdaptiveAvgPool2d(1), nn.Linear(6, 3, bias=True))
    with torch.no_grad():
        head.classifier.weight.copy_(weights)
        head.classifier.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))  # a blank image's scores are not zero
    net = SplitClassifier("toy", nn.Identity(), nn.AvgPool2d(4), head, 6, 6, 3).eval()
    target = ExplainedClassifier(net, nn.Identity(), "toy network", "toy")
    x = torch.cat([images(2), torch.zeros(2, 3, 32, 32)], dim=1)
    x[1, :3] *= torch.linspace(0.5, 1.5, 32)  # two different images
    rows = []
    net.stem.register_forward_hook(lambda m, i, o: rows.append(o.shape[0]))
    maps, _ = extract("scorecam", target, x, torch.tensor([0, 2]))
    assert rows == [1, 1, 3] * 2  # per image: its own forward, the blank copy, the live copies (one batch)

    class Plain(nn.Module):  # the network as the library would see it without ornet's wrapper
        def __init__(self):
            super().__init__()
            self.net, self.tap = net, nn.Identity()

        def forward(self, images):
            return self.net.head(self.tap(self.net.features(images)))

    plain = Plain()
    for i, c in enumerate((0, 2)):
        cam = pytorch_grad_cam.ScoreCAM(model=plain, target_layers=[plain.tap])
        want = cam(input_tensor=x[i:i + 1], targets=[ClassifierOutputTarget(c)])
        cam.activations_and_grads.release()
        assert np.abs(maps[i, 0].numpy() - want[0]).max() < 1e-6, c
    assert maps[0, 0].max() == pytest.approx(1.0)
    # the blank rows' scores (the bias here) reach the library as the network's own: a mixed batch
    from ornet.extractors.library_cams import _Tapped

    batch = torch.stack([x[0], torch.zeros_like(x[0]), x[1], torch.zeros_like(x[0])])
    with torch.no_grad():
        assert torch.allclose(_Tapped(net)(batch), net(batch), atol=1e-6)
