"""Figure functions (pure, arrays in / arrays out) and the MapSnapshots callback."""

from __future__ import annotations

import numpy as np
import pytest

from ornet.viz import draw, figures

H, W = 96, 128


def _image(value: int = 100) -> np.ndarray:
    return np.full((H, W, 3), value, dtype=np.uint8)


def _blob(h: int = 24, w: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-(((yy - h / 2) / (h / 5)) ** 2 + ((xx - w / 2) / (w / 5)) ** 2)).astype(np.float32)


def _edge_colours(img: np.ndarray, box) -> list[np.ndarray]:
    """The pixels along the four edges of an inclusive-pixel box."""
    x0, y0, x1, y1 = box
    return [img[y0, x0:x1 + 1], img[y1, x0:x1 + 1], img[y0:y1 + 1, x0], img[y0:y1 + 1, x1]]


# --- draw -------------------------------------------------------------------------------------

def test_as_rgb8_accepts_common_layouts():
    assert draw.as_rgb8(np.zeros((3, 5, 7), np.float32)).shape == (5, 7, 3)
    assert draw.as_rgb8(np.ones((5, 7), np.float32)).max() == 255
    assert draw.as_rgb8(np.zeros((5, 7, 1), np.uint8)).shape == (5, 7, 3)
    with pytest.raises(ValueError):
        draw.as_rgb8(np.zeros((5, 7, 4), np.uint8))
    with pytest.raises(ValueError):
        draw.as_rgb8(np.full((5, 7, 3), np.nan, np.float32))


def test_colorize_is_jet_like():
    low = draw.colorize(np.zeros((2, 2)))[0, 0]
    high = draw.colorize(np.ones((2, 2)))[0, 0]
    assert low[2] > low[0] and low[2] > low[1]  # 0 -> blue
    assert high[0] > high[1] and high[0] > high[2]  # 1 -> red


def test_overlay_map_resizes_and_keeps_image_with_alpha_zero():
    img = _image()
    out = draw.overlay_map(img, _blob(), alpha=0.0)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)
    hot = draw.overlay_map(img, _blob(), alpha=0.5)
    assert hot[H // 2, W // 2, 0] > hot[2, 2, 0]  # red where the map is high
    with pytest.raises(ValueError):
        draw.overlay_map(img, np.full((4, 4), np.nan))


def test_draw_boxes_puts_colour_exactly_on_the_edges_and_not_outside():
    box = (10, 20, 60, 70)
    out = draw.draw_boxes(_image(), [box], draw.GREEN, thickness=2)
    for edge in _edge_colours(out, box):
        assert (edge == draw.GREEN).all()
    assert (out[19, 10:61] == 100).all() and (out[20:71, 9] == 100).all()  # just outside: untouched
    assert (out[20 + 5, 10 + 5] == 100).all()  # inside, beyond the line width: untouched


def test_draw_boxes_clips_and_skips_off_image_boxes():
    out = draw.draw_boxes(_image(), [(-20, -20, 500, 500), (300, 300, 400, 400)], draw.BLUE, thickness=1)
    assert (out[0, :] == draw.BLUE).all() and (out[H - 1, :] == draw.BLUE).all()
    assert (out[:, 0] == draw.BLUE).all() and (out[:, W - 1] == draw.BLUE).all()
    with pytest.raises(ValueError):
        draw.draw_boxes(_image(), [(0, 0, 1)])


def test_tile_layout():
    cells = [np.full((10, 20, 3), i * 40, np.uint8) for i in range(5)]
    out = draw.tile(cells, cols=2, pad=3)
    assert out.shape == (3 * 10 + 4 * 3, 2 * 20 + 3 * 3, 3)
    np.testing.assert_array_equal(out[3 + 13:3 + 23, 3 + 23:3 + 43], cells[3])  # row 1, column 1


# --- figures ----------------------------------------------------------------------------------

def test_overlay_draws_gt_blue_and_prediction_green():
    gt, pred = (10, 10, 50, 60), (70, 30, 120, 90)
    out = figures.overlay(_image(), _blob(), pred_boxes=[pred], gt_boxes=[gt])
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    for edge in _edge_colours(out, gt):
        assert (edge == draw.BLUE).all()
    for edge in _edge_colours(out, pred):
        assert (edge == draw.GREEN).all()
    titled = figures.overlay(_image(), _blob(), title="x")
    assert titled.shape[0] > H and titled.shape[1] == W


def test_overlay_prediction_is_drawn_over_ground_truth():
    box = (10, 10, 50, 60)
    out = figures.overlay(_image(), None, pred_boxes=[box], gt_boxes=[box])
    assert (out[10, 10:51] == draw.GREEN).all()


def test_evolution_grid_layout_rows_images_columns_epochs():
    images = [_image(50), _image(150)]
    maps = [(f"epoch {e}", np.stack([_blob() * (e + 1) / 4] * 2)) for e in range(3)]
    tile_size, pad = 64, 4
    out = figures.evolution_grid(images, maps, tile_size=tile_size, pad=pad)
    cell_h, cell_w = 48, 64  # 96 x 128 fitted to 64 on the longer side
    header = 18 + pad  # caption band + the pad above it
    assert out.dtype == np.uint8
    assert out.shape == (header + 2 * cell_h + 3 * pad, 4 * cell_w + 5 * pad, 3)
    # row 1, column 0 is the plain image (value 150); column 3 is the last epoch's overlay
    y = header + pad + cell_h + pad
    np.testing.assert_array_equal(out[y:y + cell_h, pad:pad + cell_w], draw.fit(images[1], tile_size))
    x = pad + 3 * (cell_w + pad)
    expect = draw.fit(figures.overlay(images[1], maps[2][1][1]), tile_size)
    np.testing.assert_array_equal(out[y:y + cell_h, x:x + cell_w], expect)


def test_evolution_grid_thins_many_epochs_keeping_first_and_last():
    assert figures.pick_columns(30, 8)[0] == 0 and figures.pick_columns(30, 8)[-1] == 29
    assert len(figures.pick_columns(30, 8)) == 8
    assert figures.pick_columns(3, 8) == [0, 1, 2]
    maps = [(f"e{e}", np.stack([_blob()])) for e in range(20)]
    out = figures.evolution_grid([_image()], maps, tile_size=32, max_columns=5, pad=2)
    assert out.shape[1] == 6 * 32 + 7 * 2  # image + 5 epochs


def test_evolution_grid_rejects_mismatched_counts():
    with pytest.raises(ValueError):
        figures.evolution_grid([_image()], [("e1", np.stack([_blob(), _blob()]))])


@pytest.mark.parametrize("size", [(640, 400), (300, 200)])
def test_histogram_returns_image_of_requested_size(size):
    out = figures.histogram([_blob(), np.round(_blob())], labels=["soft", "hard"], size=size)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    assert out.std() > 0  # something is drawn


def test_threshold_curve_returns_image_and_checks_inputs():
    t = np.arange(0, 1, 0.01)
    acc = {f"IoU >= {v}": 100 * np.exp(-((t - 0.3) / (1 - v)) ** 2) for v in (0.3, 0.5, 0.7)}
    out = figures.threshold_curve(t, acc, chosen_index=30, size=(500, 300), note="chosen on val")
    assert out.shape == (300, 500, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError):
        figures.threshold_curve(t, {"x": [1, 2]})
    with pytest.raises(ValueError):
        figures.threshold_curve(t, acc, chosen_index=500)


def test_failures_shows_lowest_iou_first():
    n_img = 5
    images = [_image(40 * i) for i in range(n_img)]
    ious = [0.9, 0.1, float("nan"), 0.3, 0.5]
    out = figures.failures(images, [_blob()] * n_img, [[(5, 5, 40, 40)]] * n_img, [[(20, 20, 80, 80)]] * n_img,
                           ious, n=2, cols=2, tile_size=64)
    cell_h, cell_w = 48 + 18, 64  # fitted image + caption band (IoU only: no labels)
    assert out.shape == (cell_h + 2 * 4, 2 * cell_w + 3 * 4, 3)
    # the first cell is image 1 (IoU 0.1), the second image 3 (IoU 0.3): compare the plain corner pixel
    expect1 = draw.fit(figures.overlay(images[1], _blob()), 64)[-1, -1]
    expect3 = draw.fit(figures.overlay(images[3], _blob()), 64)[-1, -1]
    np.testing.assert_array_equal(out[4 + cell_h - 1, 4 + cell_w - 1], expect1)
    np.testing.assert_array_equal(out[4 + cell_h - 1, 8 + 2 * cell_w - 1], expect3)


def test_grid_is_near_square_and_checks_lengths():
    out = figures.grid([_image()] * 7, [_blob()] * 7, tile_size=32)
    assert out.shape == (3 * 24 + 4 * 4, 3 * 32 + 4 * 4, 3)
    with pytest.raises(ValueError):
        figures.grid([_image()] * 2, [_blob()])


# --- snapshots --------------------------------------------------------------------------------

def test_map_snapshots_writes_files_and_restores_modes(tmp_path):
    torch = pytest.importorskip("torch")
    import lightning as L

    from ornet.methods.ornet.map_snapshots import MapSnapshots
    from ornet.runs.snapshots import load_snapshots

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)
            self.frozen = torch.nn.BatchNorm2d(1)
            self.calls = []

        def maps(self, images):
            self.calls.append((self.training, torch.is_grad_enabled()))
            return torch.sigmoid(self.frozen(self.conv(images[:, :, ::4, ::4])))

    class Task(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = Tiny()

        def training_step(self, batch, batch_idx):
            return self.model.conv(batch[0]).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train(self, mode=True):  # like stage 2: a frozen part stays in eval mode
            super().train(mode)
            self.model.frozen.eval()
            return self

    images = torch.randn(3, 3, 32, 32)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 3, 32, 32)), batch_size=2)
    cb = MapSnapshots(images, tmp_path / "snapshots", every_n_epochs=2, image_ids=["a", "b", "c"])
    task = Task()
    trainer = L.Trainer(max_epochs=3, callbacks=[cb], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(task, data)
    names = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert names == ["epoch_000.npz", "epoch_002.npz", "epoch_003.npz", "images.npz"]
    snap = load_snapshots(tmp_path / "snapshots")
    imgs, epochs = snap.images, snap.epochs
    assert snap.image_ids == ["a", "b", "c"]
    assert imgs.shape == (3, 32, 32, 3) and imgs.dtype == np.uint8
    assert [e for e, _ in epochs] == [0, 2, 3]
    assert all(m.shape == (3, 8, 8) and m.dtype == np.uint8 for _, m in epochs)
    assert all(not training and not grad for training, grad in task.model.calls)
    # modes restored exactly: the frozen BN stayed in eval mode, the rest back in train mode
    cb.snapshot(task.train())
    assert task.model.conv.training and not task.model.frozen.training


def test_map_snapshots_checks_images():
    torch = pytest.importorskip("torch")
    from ornet.methods.ornet.map_snapshots import MapSnapshots

    with pytest.raises(ValueError):
        MapSnapshots(torch.zeros(3, 32, 32), "x")


def test_load_snapshots_reads_float_refine_epoch_files_too(tmp_path):
    from ornet.runs.snapshots import load_snapshots

    np.savez_compressed(tmp_path / "images.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    for e in (1, 0, 10):
        np.savez_compressed(tmp_path / f"refine_epoch_{e:03d}.npz", maps=np.full((2, 4, 4), e / 10, np.float32))
    snap = load_snapshots(tmp_path)
    assert [e for e, _ in snap.epochs] == [0, 1, 10] and snap.image_ids is None
    grid = figures.evolution_grid(list(snap.images), [(str(e), m) for e, m in snap.epochs], tile_size=16, pad=2)
    assert grid.shape == (18 + 2 + 2 * 16 + 3 * 2, 4 * 16 + 5 * 2, 3)  # header + two rows of 16 px cells
    with pytest.raises(FileNotFoundError):
        load_snapshots(tmp_path / "none")


def test_caption_lines_and_long_text_keeps_its_end():
    img = _image()
    two = draw.caption(img, "first\nsecond", height=18)
    assert two.shape == (H + 36, W, 3) and (two[36:] == img).all()
    assert two[:18].max() > 0 and two[18:36].max() > 0  # text on both lines
    long = draw.caption(img[:, :40], "a/very/long/path/name_that_ends_here.jpg")
    assert long.shape == (H + 18, 40, 3)
