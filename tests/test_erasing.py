"""Erasing strategies (METHOD.md, Attentive erasing): sets, rates, reproducibility, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from ornet.errors import OrnetError
from ornet.methods.ornet import ERASERS, build_eraser


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _block_maps(b=8, size=32, top=4, left=6, side=20, value=0.5, background=0.05):
    """Constant-valued square region on a constant background (R = the block for any f > 0)."""
    maps = torch.full((b, 1, size, size), background)
    maps[:, :, top:top + side, left:left + side] = value
    return maps


def _smooth_maps(b=16, size=24, seed=0):
    g = _gen(seed)
    centres = torch.rand(b, 2, generator=g) * (size - 1)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    d2 = (ys[None] - centres[:, :1, None]) ** 2 + (xs[None] - centres[:, 1:, None]) ** 2
    return torch.exp(-d2 / (2 * 6.0**2)).unsqueeze(1)


def _rect(masks, size_h, size_w):
    rows = torch.arange(size_h).view(1, -1, 1)
    cols = torch.arange(size_w).view(1, 1, -1)
    cy, cx = masks.centre[:, 0].view(-1, 1, 1), masks.centre[:, 1].view(-1, 1, 1)
    hh, hw = masks.half[:, 0].view(-1, 1, 1), masks.half[:, 1].view(-1, 1, 1)
    return (((rows - cy).abs() <= hh) & ((cols - cx).abs() <= hw)).unsqueeze(1)


def _extent(mask2d):
    ys, xs = torch.nonzero(mask2d, as_tuple=True)
    return int(ys.max() - ys.min()), int(xs.max() - xs.min())


@pytest.mark.parametrize("name", ERASERS.names())
def test_registry_common_contract(name):
    eraser = build_eraser(name, p=1.0)
    maps = _smooth_maps()
    eraser.eval()
    assert eraser(maps, generator=_gen()) is maps  # identity at evaluation
    eraser.train()
    a = eraser(maps, generator=_gen(3))
    b = eraser(maps, generator=_gen(3))
    assert a.shape == maps.shape and torch.equal(a, b)  # reproducible under a seed
    torch.manual_seed(5)
    c = eraser(maps)
    torch.manual_seed(5)
    assert torch.equal(c, eraser(maps))  # and under the global RNG
    flat = torch.full((3, 1, 16, 16), 0.7)  # max == min: R is empty, nothing erased
    out = eraser(flat, generator=_gen())
    assert torch.isfinite(out).all()
    if name != "none":
        torch.testing.assert_close(out, 0.6 * flat + 0.2)


def test_none_is_identity_in_training():
    eraser = build_eraser("none").train()
    maps = _smooth_maps()
    assert eraser(maps) is maps
    assert not eraser.masks(maps).erased.any()


def test_unknown_strategy_and_bad_settings():
    with pytest.raises(OrnetError, match="known: attentive, none, random, rectangle"):
        build_eraser("dropout")
    with pytest.raises(OrnetError, match="probability"):
        build_eraser("attentive", p=1.5)
    with pytest.raises(OrnetError, match="f_max"):
        build_eraser("attentive", f_max=-0.1)
    with pytest.raises(OrnetError, match="B x 1 x h x w"):
        build_eraser("attentive").train()(torch.rand(2, 3, 8, 8))


def test_attentive_erases_only_region_inside_rectangle():
    eraser = build_eraser("attentive", p=1.0).train()
    maps = _smooth_maps(b=32)
    masks = eraser.masks(maps, generator=_gen(1))
    assert masks.applied.any()
    b = maps.shape[0]
    flat = maps.view(b, -1)
    peak = flat.argmax(1)
    assert torch.equal(masks.centre[:, 0], peak // 24) and torch.equal(masks.centre[:, 1], peak % 24)
    expected = masks.region & _rect(masks, 24, 24) & masks.applied.view(-1, 1, 1, 1)
    assert torch.equal(masks.erased, expected)
    assert not (masks.dropped & ~masks.erased).any()
    for i in torch.nonzero(masks.applied).view(-1).tolist():
        ext_h, ext_w = _extent(masks.region[i, 0])
        assert 4 <= masks.half[i, 0] < ext_h // 2 and 4 <= masks.half[i, 1] < ext_w // 2
        # the region is {p > max - (max - min) f} for some f in [0, f_max)
        inside, outside = maps[i][masks.region[i]], maps[i][~masks.region[i]]
        assert inside.min() > outside.max()
        assert inside.min() >= flat[i].max() - 0.5 * (flat[i].max() - flat[i].min())
    # output: p' = 0.6 p + 0.2 everywhere, 0 at dropped pixels
    out = eraser(maps, generator=_gen(1))
    squeezed = 0.6 * maps + 0.2
    assert torch.equal(out[masks.dropped], torch.zeros(int(masks.dropped.sum())))
    torch.testing.assert_close(out[~masks.dropped], squeezed[~masks.dropped])


def test_drop_rate_matches_p_prime():
    value = 0.5  # p' = 0.6 * 0.5 + 0.2 = 0.5
    eraser = build_eraser("attentive", p=1.0).train()
    maps = _block_maps(b=512, value=value)
    masks = eraser.masks(maps, generator=_gen(2))
    assert masks.applied.all()  # block extent 19 -> half sizes in [4, 9): always possible
    n = int(masks.erased.sum())
    rate = masks.dropped.sum().item() / n
    p_prime = 0.6 * value + 0.2
    assert n > 20000
    assert abs(rate - p_prime) < 4 * math.sqrt(p_prime * (1 - p_prime) / n)
    # a stronger region is dropped more often
    masks = eraser.masks(_block_maps(b=512, value=0.9), generator=_gen(2))
    n = int(masks.erased.sum())
    p_prime = 0.6 * 0.9 + 0.2
    assert abs(masks.dropped.sum().item() / n - p_prime) < 4 * math.sqrt(p_prime * (1 - p_prime) / n)


def test_applied_with_probability_p():
    p, b = 0.3, 4000
    eraser = build_eraser("attentive", p=p).train()
    masks = eraser.masks(_block_maps(b=b, size=24, top=2, left=2), generator=_gen(4))
    rate = masks.applied.float().mean().item()
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / b)
    assert not masks.erased[~masks.applied].any()
    assert masks.erased[masks.applied].view(int(masks.applied.sum()), -1).any(1).all()


def test_small_region_is_skipped():
    eraser = build_eraser("attentive", p=1.0).train()
    maps = _block_maps(b=4, side=9)  # extent 8 -> [4, 4) is empty
    masks = eraser.masks(maps, generator=_gen())
    assert not masks.applied.any() and not masks.erased.any()
    assert build_eraser("attentive", p=1.0, min_half=1).train().masks(maps).applied.all()


def test_random_erasing_is_a_whole_rectangle_anywhere():
    eraser = build_eraser("random", p=1.0).train()
    maps = _block_maps(b=256, size=32, top=2, left=2, side=12)
    masks = eraser.masks(maps, generator=_gen(5))
    assert masks.applied.all()
    assert torch.equal(masks.erased, _rect(masks, 32, 32))
    assert (masks.erased & ~masks.region).any()  # not restricted to R
    centres = masks.centre.float()
    assert centres.min() >= 0 and centres.max() <= 31 and centres.std(0).min() > 6
    assert not torch.equal(masks.centre, torch.full_like(masks.centre, 2))  # not at the peak
    rate = masks.dropped.sum().item() / masks.erased.sum().item()
    assert 0.2 <= rate <= 0.8  # drops follow p' in [0.2, 0.8] as in AE
    # the half sizes follow AE's distribution (they depend on R only)
    ae = build_eraser("attentive", p=1.0).train().masks(maps, generator=_gen(5))
    assert torch.equal(ae.half, masks.half)


def test_rectangle_erasing_drops_the_whole_rectangle_around_the_peak():
    eraser = build_eraser("rectangle", p=1.0).train()
    maps = _smooth_maps(b=32)
    masks = eraser.masks(maps, generator=_gen(6))
    assert masks.applied.any()
    flat = maps.view(32, -1)
    assert torch.equal(masks.centre[:, 0] * 24 + masks.centre[:, 1], flat.argmax(1))
    expected = _rect(masks, 24, 24) & masks.applied.view(-1, 1, 1, 1)
    assert torch.equal(masks.erased, expected)
    assert torch.equal(masks.dropped, masks.erased)  # every pixel of it
    assert (masks.erased & ~masks.region).any()


def test_gradients_flow_only_through_kept_pixels():
    eraser = build_eraser("attentive", p=1.0).train()
    maps = _smooth_maps(b=8).requires_grad_(True)
    masks = eraser.masks(maps.detach(), generator=_gen(7))
    out = eraser(maps, generator=_gen(7))
    assert masks.dropped.any()
    out.sum().backward()
    assert torch.equal(maps.grad[masks.dropped], torch.zeros(int(masks.dropped.sum())))
    torch.testing.assert_close(maps.grad[~masks.dropped],
                               torch.full((int((~masks.dropped).sum()),), 0.6))


def test_squeeze_off_passes_the_map_itself():
    eraser = build_eraser("attentive", p=0.0, squeeze=False).train()
    maps = _smooth_maps()
    assert torch.equal(eraser(maps, generator=_gen()), maps)
    assert torch.equal(build_eraser("attentive", p=0.0).train()(maps), 0.6 * maps + 0.2)


def _box(rows: tuple[int, int], cols: tuple[int, int], size: int = 16) -> torch.Tensor:
    """1 x 16 x 16 bool: rows and columns inclusive."""
    m = torch.zeros(1, size, size, dtype=torch.bool)
    m[:, rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    return m


NOTHING = torch.zeros(1, 16, 16, dtype=torch.bool)
# The hand-computed case: 3 copies of a 16 x 16 map, 0.1 with a block of 0.9 on rows 2..13, columns 1..14
# and its peak 1.0 at (5, 6); generator seed 0. Its first draws (B x 6: apply, f, h, w, centre row,
# centre column) are
#   0: 0.4963 0.7682 0.0885 0.1320 0.3074 0.6341 -> f = 0.384, t = 1 - 0.9 f = 0.65: R = the block
#      (extents 11 and 13: h in [4, 5) -> 4, w in [4, 6) -> 4 + int(0.1320 * 2) = 4)
#   1: 0.4901 0.8964 0.4556 0.6323 0.3489 0.4017 -> R = the block, h = 4, w = 4 + int(0.6323 * 2) = 5
#   2: 0.0223 0.1689 ...                         -> f = 0.084, t = 0.92: R = the peak alone, skipped
# so the rectangles around the peak are rows 1..9 x columns 2..10 and rows 1..9 x columns 1..11; random
# erasing centres them on (int(0.3074 * 16), int(0.6341 * 16)) = (4, 10) and (5, 6).
HAND = {  # strategy -> (centres of samples 0 and 1, E of samples 0, 1, 2)
    "attentive": ([[5, 6], [5, 6]], [_box((2, 9), (2, 10)), _box((2, 9), (1, 11)), NOTHING]),  # R within it
    "rectangle": ([[5, 6], [5, 6]], [_box((1, 9), (2, 10)), _box((1, 9), (1, 11)), NOTHING]),
    "random": ([[4, 10], [5, 6]], [_box((0, 8), (6, 14)), _box((1, 9), (1, 11)), NOTHING]),
    "none": (None, [NOTHING, NOTHING, NOTHING]),
}


def _check_hand_computed(device: str) -> dict[str, tuple]:
    """Every strategy on the hand-computed case on `device` (a CPU generator: the same draws
    everywhere); checks the contract and returns (masks, output) per strategy."""
    maps = torch.full((3, 1, 16, 16), 0.1)
    maps[:, :, 2:14, 1:15] = 0.9
    maps[:, :, 5, 6] = 1.0
    g = _gen(0)
    torch.rand((3, 6), generator=g)  # the documented draw order: B x 6, then one per pixel
    pixel_draws = torch.rand((3, 1, 16, 16), generator=g)
    squeezed = 0.6 * maps + 0.2
    maps = maps.to(device)
    results = {}
    for name in ERASERS.names():
        eraser = build_eraser(name, p=1.0).train()
        masks = eraser.masks(maps, generator=_gen(0))
        out = eraser(maps, generator=_gen(0))
        centres, erased = HAND[name]
        for field in ("applied", "region", "erased", "dropped", "centre", "half"):
            assert getattr(masks, field).device == maps.device, field
        assert masks.applied.dtype == masks.region.dtype == masks.erased.dtype == masks.dropped.dtype == torch.bool
        assert masks.centre.dtype == masks.half.dtype == torch.long
        assert masks.region.shape == masks.erased.shape == masks.dropped.shape == maps.shape
        assert masks.applied.shape == (3,) and masks.centre.shape == masks.half.shape == (3, 2)
        assert out.shape == maps.shape and out.dtype == maps.dtype and out.device == maps.device
        erased_cpu, dropped_cpu = masks.erased.cpu(), masks.dropped.cpu()
        for i in range(3):
            assert torch.equal(erased_cpu[i], erased[i]), \
                f"{name}, sample {i}: E has {int(erased_cpu[i].sum())} pixels, the hand-computed {int(erased[i].sum())}"
        if name == "none":
            assert out is maps
            results[name] = (masks, out)
            continue
        assert masks.applied.tolist() == [True, True, False]
        assert masks.centre[:2].tolist() == centres and masks.half[:2].tolist() == [[4, 4], [4, 5]]
        assert torch.equal(masks.region.cpu()[:2], (maps.cpu() > 0.5)[:2])  # R: the block
        expected_drop = torch.stack(erased) & (pixel_draws < squeezed) if name != "rectangle" else torch.stack(erased)
        assert torch.equal(dropped_cpu, expected_drop), \
            f"{name}: {int(dropped_cpu.sum())} pixels dropped, expected {int(expected_drop.sum())} (p' = 0.6 p + 0.2)"
        assert 0 < int(dropped_cpu.sum()) and (name == "rectangle" or int(dropped_cpu.sum()) < int(erased_cpu.sum()))
        # p' everywhere, 0 where dropped: values 0 or in [0.2, 0.8]
        assert torch.equal(out.cpu(), torch.where(expected_drop, torch.zeros(()), squeezed))
        results[name] = (masks, out)
    return results


def test_cpu_matches_the_hand_computed_contract():
    _check_hand_computed("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_matches_contract():
    """On CUDA: the hand-computed case (the draws come from a CPU generator, so they are the
    CPU's) gives the CPU's masks and output exactly; a CUDA generator reproduces itself."""
    on_cuda, on_cpu = _check_hand_computed("cuda"), _check_hand_computed("cpu")
    for name, (masks, out) in on_cuda.items():
        cpu_masks, cpu_out = on_cpu[name]
        for field in ("applied", "region", "erased", "dropped", "centre", "half"):
            assert torch.equal(getattr(masks, field).cpu(), getattr(cpu_masks, field)), (name, field)
        assert torch.equal(out.cpu(), cpu_out), name
    maps = _smooth_maps(b=64).cuda()
    for name in ERASERS.names():
        eraser = build_eraser(name, p=1.0).train()
        gen = torch.Generator(device="cuda").manual_seed(0)
        out = eraser(maps, generator=gen)
        gen = torch.Generator(device="cuda").manual_seed(0)
        assert out.device == maps.device and torch.equal(out, eraser(maps, generator=gen))
        masks = eraser.masks(maps, generator=torch.Generator(device="cuda").manual_seed(0))
        assert masks.erased.device == maps.device and not (masks.dropped & ~masks.erased).any()
        if name != "none":  # p' >= 0.2: a 0 in the output is a dropped pixel and nothing else
            assert torch.equal(out == 0, masks.dropped)
