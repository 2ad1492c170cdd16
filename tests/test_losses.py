"""Weighted entropy and area loss against hand-computed numbers (METHOD.md, Stage 2)."""

from __future__ import annotations

import math

import pytest
import torch

from ornet.methods.ornet import area_loss, background_loss, weighted_entropy

# ---------------------------------------------------------------- weighted entropy
# p = 0.5, 0.6, 0.9, 0.1 with mu = 0.5, sigma = 0.1:
#   w = exp(-(p - 0.5)^2 / 0.02) = 1, exp(-0.5) = 0.606531, exp(-8) = 0.000335463 (twice)
#   H = -(p ln p + (1-p) ln(1-p)) = 0.693147, 0.673012, 0.325083 (twice)
#   L = (1 * 0.693147 + 0.606531 * 0.673012 + 2 * 0.000335463 * 0.325083) / 4 = 0.275392
# beta = 0.5 adds 0.5 * mean(H) = 0.5 * 2.016325 / 4 = 0.252041 -> 0.527433


def _p(*values, grad=False):
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1).requires_grad_(grad)


def test_weighted_entropy_hand_value():
    p = _p(0.5, 0.6, 0.9, 0.1)
    assert weighted_entropy(p, eps=0.0).item() == pytest.approx(0.275392, abs=1e-6)
    assert weighted_entropy(p, beta=0.5, eps=0.0).item() == pytest.approx(0.527433, abs=1e-6)
    # a 2-image batch with the same values is the same mean
    assert weighted_entropy(p.view(2, 1, 1, 2), eps=0.0).item() == pytest.approx(0.275392, abs=1e-6)
    # the default eps = 1e-6 inside the logs moves the value by about 2 eps * mean(w)
    assert weighted_entropy(p).item() == pytest.approx(0.275392, abs=5e-6)


def test_weighted_entropy_gradient_hand_value():
    # single pixel p = 0.55: w = exp(-0.125) = 0.882497, w' = -(0.05 / 0.01) w = -4.412485,
    # H = 0.688139, H' = ln(0.45 / 0.55) = -0.200671
    # dL/dp = w' H + w H' = -3.036398 - 0.177091 = -3.213489; detached weight: -0.177091
    p = _p(0.55, grad=True)
    weighted_entropy(p).backward()
    assert p.grad.item() == pytest.approx(-3.213489, abs=1e-4)
    p = _p(0.55, grad=True)
    weighted_entropy(p, detach_weight=True).backward()
    assert p.grad.item() == pytest.approx(-0.177091, abs=1e-4)


@pytest.mark.parametrize("detach", [False, True])
def test_weighted_entropy_pushes_away_from_half(detach):
    p = _p(0.45, 0.5, 0.55, 0.7, 0.3, 0.0, 1.0, grad=True)
    weighted_entropy(p, detach_weight=detach).backward()
    g = p.grad.view(-1)
    assert g[2] < 0 and g[3] < 0  # above 0.5: descent raises p
    assert g[0] > 0 and g[4] > 0  # below 0.5: descent lowers p
    assert abs(g[1]) < 1e-9  # stationary at 0.5
    assert abs(g[5]) < 1e-3 and abs(g[6]) < 1e-3  # nothing left to do at 0 and 1
    assert torch.isfinite(g).all()


# ---------------------------------------------------------------- area loss

def _channels(k, b=1, h=2, w=3, base=2.0):
    """f_a with channel k constant base**k: the sum of a channel set identifies the set."""
    values = base ** torch.arange(k, dtype=torch.float64)
    return values.view(1, k, 1, 1).expand(b, k, h, w).clone()


def _probs(order):
    """Probabilities whose descending ranking is `order` (order[0] is the top class)."""
    k = len(order)
    probs = torch.empty(k, dtype=torch.float64)
    probs[torch.tensor(order)] = torch.linspace(1.0, 0.1, k, dtype=torch.float64)
    return probs / probs.sum()


def test_area_loss_picks_ranks_4_to_25():
    k = 30
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(k, generator=gen).tolist()
    p_a = torch.full((1, 1, 2, 3), 0.25, dtype=torch.float64)
    loss = area_loss(p_a, _channels(k), _probs(order).view(1, k))
    expected = 0.25 + sum(2.0 ** c for c in order[3:25])  # ranks 4..25 = positions 3..24
    assert loss.item() == expected


def test_area_loss_per_sample_ranking_and_batch_mean():
    k = 30
    gen = torch.Generator().manual_seed(1)
    orders = [torch.randperm(k, generator=gen).tolist() for _ in range(2)]
    probs = torch.stack([_probs(o) for o in orders])
    p_a = torch.tensor([0.0, 1.0], dtype=torch.float64).view(2, 1, 1, 1).expand(2, 1, 2, 3)
    loss = area_loss(p_a, _channels(k, b=2), probs)
    sums = [sum(2.0 ** c for c in o[3:25]) for o in orders]
    assert loss.item() == 0.5 + (sums[0] + sums[1]) / 2


def test_area_loss_fewer_classes_than_topk():
    order = [4, 2, 9, 0, 7, 1, 3, 8, 6, 5]  # K = 10: ranks 4..10 are used
    p_a = torch.zeros(1, 1, 2, 3, dtype=torch.float64)
    loss = area_loss(p_a, _channels(10), _probs(order).view(1, 10))
    assert loss.item() == sum(2.0 ** c for c in order[3:])
    assert loss.item() == 2**0 + 2**7 + 2**1 + 2**3 + 2**8 + 2**6 + 2**5
    # K <= skip: only the map term is left
    p_a = torch.full((1, 1, 2, 3), 0.5, dtype=torch.float64)
    assert area_loss(p_a, _channels(3), _probs([0, 1, 2]).view(1, 3)).item() == 0.5
    # custom topk / skip
    loss = area_loss(torch.zeros(1, 1, 2, 3, dtype=torch.float64), _channels(10),
                     _probs(order).view(1, 10), topk=5, skip=1)
    assert loss.item() == 2**2 + 2**9 + 2**0 + 2**7


def test_area_loss_faithful_versus_bounded():
    order = list(range(30))
    f_a = -_channels(30)  # every channel negative
    f_a[:, 10] = 3.0  # one positive channel among ranks 4..25
    p_a = torch.full((1, 1, 2, 3), 0.5, dtype=torch.float64)
    probs = _probs(order).view(1, 30)
    faithful = area_loss(p_a, f_a, probs, form="faithful")
    bounded = area_loss(p_a, f_a, probs, form="bounded")
    assert bounded.item() == 0.5 + 3.0
    assert faithful.item() == 0.5 + 3.0 - sum(2.0 ** c for c in range(3, 25) if c != 10)
    with pytest.raises(ValueError, match="form"):
        area_loss(p_a, f_a, probs, form="other")
    with pytest.raises(ValueError, match="shapes"):
        area_loss(p_a, f_a, probs[:, :20])


def test_area_loss_gradients():
    order = list(range(30))
    f_a = _channels(30).requires_grad_(True)
    p_a = torch.full((1, 1, 2, 3), 0.5, dtype=torch.float64, requires_grad=True)
    probs = _probs(order).view(1, 30).requires_grad_(True)
    area_loss(p_a, f_a, probs).backward()
    assert probs.grad is None  # ranks carry no gradient
    per_channel = f_a.grad[0].sum(dim=(1, 2))
    used = torch.zeros(30, dtype=torch.float64)
    used[3:25] = 1.0
    torch.testing.assert_close(per_channel, used)  # d/d f_a of sum / (B h w) over 6 pixels
    torch.testing.assert_close(p_a.grad, torch.full_like(p_a, 1 / 6))


def test_background_loss_hand_value_and_gradient():
    # softmax([0, 0, 0])[0] = 1/3; softmax([2, 0, 0])[0] = e^2 / (e^2 + 2)
    logits = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 0])
    e2 = math.exp(2.0)
    loss = background_loss(logits, labels)
    assert float(loss) == pytest.approx((1 / 3 + e2 / (e2 + 2)) / 2, rel=1e-6)
    loss.backward()
    # d softmax_y / d z_y = s_y (1 - s_y) > 0, / d z_j = -s_y s_j: lowering the true class lowers the loss
    s = e2 / (e2 + 2)
    assert logits.grad[1, 0].item() == pytest.approx(s * (1 - s) / 2, rel=1e-5)
    assert logits.grad[1, 1].item() == pytest.approx(-s * (1 / (e2 + 2)) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="background_loss shapes"):
        background_loss(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
