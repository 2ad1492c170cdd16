"""Image loading: every mode becomes RGB with EXIF rotation applied; bad files are named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ornet.data.io import image_size, iter_fields, load_image, load_mask
from ornet.errors import DataError


def _save(tmp_path, name, image, **kw):
    p = tmp_path / name
    image.save(p, **kw)
    return p


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "1"])
def test_modes_become_rgb(tmp_path, mode):
    rgb = Image.fromarray(np.full((6, 9, 3), 200, dtype=np.uint8))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    p = _save(tmp_path, f"x.{fmt.lower()}", rgb.convert(mode), format=fmt)
    out = load_image(p)
    assert out.mode == "RGB" and out.size == (9, 6)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    p = _save(tmp_path, "g16.png", Image.fromarray(arr))
    out = np.asarray(load_image(p))
    assert out.shape == (2, 2, 3)
    assert out[0, 0, 0] == 0 and out[1, 1, 0] == 255 and 100 < out[1, 0, 0] < 130


def test_exif_rotation_is_applied_to_image_and_size(tmp_path):
    im = Image.fromarray(np.zeros((10, 30, 3), dtype=np.uint8))  # 30 wide, 10 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    p = _save(tmp_path, "r.jpg", im, exif=exif.tobytes())
    assert image_size(p) == (10, 30)
    assert load_image(p).size == (10, 30)


def test_transparent_pixels_become_white(tmp_path):
    arr = np.zeros((2, 2, 4), dtype=np.uint8)
    p = _save(tmp_path, "t.png", Image.fromarray(arr, mode="RGBA"))
    assert np.asarray(load_image(p)).min() == 255


def test_tiny_image_and_banner_crop(tmp_path):
    p = _save(tmp_path, "one.png", Image.new("RGB", (1, 1)))
    assert load_image(p).size == (1, 1)
    p = _save(tmp_path, "b.png", Image.new("RGB", (5, 30)))
    assert load_image(p, crop_bottom=20).size == (5, 10)
    with pytest.raises(DataError, match="not larger than the 20-pixel banner"):
        load_image(_save(tmp_path, "s.png", Image.new("RGB", (5, 20))), crop_bottom=20)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    p = _save(tmp_path, "big.png", Image.new("L", (200, 200)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match="decompression bomb") as e:
        load_image(p)
    assert str(p) in str(e.value)
    with pytest.raises(DataError, match="decompression bomb"):
        image_size(p)


def bomb_png(path, width: int = 30000, height: int = 30000):
    """A few-hundred-byte PNG whose header claims width x height pixels (30000 x 30000 = 900 Mpx,
    over twice Pillow's MAX_IMAGE_PIXELS): a decompression bomb, made without the memory."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    idat = zlib.compress(b"\x00" * (width + 1))  # a single row; the rest never arrives
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [10000, 30000])  # over the limit (a warning in Pillow), over twice (an error)
def test_header_only_bomb_is_refused_at_pillows_own_limit(tmp_path, side):
    p = bomb_png(tmp_path / "bomb.png", side, side)
    assert p.stat().st_size < 2000
    for read in (image_size, load_image):
        with pytest.raises(DataError, match="decompression bomb") as e:
            read(p)
        assert str(e.value).startswith(f"{p}: ")


def test_palette_with_a_transparent_colour_is_composited_on_white(tmp_path):
    arr = np.zeros((4, 4, 3), dtype=np.uint8)
    arr[1:3, 1:3] = (200, 0, 0)
    im = Image.fromarray(arr).quantize(colors=2)
    p = tmp_path / "p.png"
    im.save(p, transparency=im.getpixel((0, 0)))
    out = np.asarray(load_image(p))
    assert out[0, 0].tolist() == [255, 255, 255] and out[1, 1, 0] > 150 and out[1, 1, 1] < 60


def test_data_error_from_a_dataloader_worker_keeps_only_the_original_message():
    """torch re-raises a worker's exception as DataError(<formatted traceback>)."""
    wrapped = ("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise DataError(...)\n'
               "ornet.errors.DataError: a/b.jpg: unreadable or truncated image (image file is truncated)\n")
    assert str(DataError(wrapped)) == "a/b.jpg: unreadable or truncated image (image file is truncated)"


def test_truncated_and_garbage_files_are_named(tmp_path):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    p = _save(tmp_path, "t.jpg", im, quality=95)
    p.write_bytes(p.read_bytes()[:-2000])
    with pytest.raises(DataError, match="t.jpg: unreadable or truncated image"):
        load_image(p)
    g = tmp_path / "g.jpg"
    g.write_bytes(b"hello")
    with pytest.raises(DataError, match="g.jpg: unreadable image"):
        image_size(g)
    with pytest.raises(DataError, match="image file is missing"):
        load_image(tmp_path / "missing.jpg")


def test_mask_size_must_match(tmp_path):
    p = _save(tmp_path, "m.png", Image.new("L", (4, 3)))
    assert load_mask(p, (4, 3)).size == (4, 3)
    with pytest.raises(DataError, match="mask is 4x3 but its image is 5x3"):
        load_mask(p, (5, 3))


def test_iter_fields_names_file_and_line(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("1 2\n\n3 4 5\n")
    it = iter_fields(f, 2)
    assert next(it) == (1, ["1", "2"])
    with pytest.raises(DataError, match=r"a.txt:3: expected 2 fields, got 3"):
        next(it)
    with pytest.raises(DataError, match="missing file"):
        list(iter_fields(tmp_path / "none.txt", 2))
