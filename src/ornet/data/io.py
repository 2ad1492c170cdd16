"""Reading annotation text files and images, with errors that name the file and line."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError


def require_file(path: Path, what: str = "file") -> Path:
    if not path.is_file():
        raise DataError(f"missing {what}", file=str(path))
    return path


def iter_fields(path: Path, n: int | tuple[int, ...], sep: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of a text file, skipping blank lines.

    `n` is the number of fields a line must have (or a tuple of allowed counts); a line with
    another count raises DataError naming the file and line.
    """
    require_file(path)
    allowed = (n,) if isinstance(n, int) else n
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason})", file=str(path)) from None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(sep)] if sep else line.split()
        if len(fields) not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise DataError(f"expected {want} fields, got {len(fields)}: {line[:80]!r}", file=str(path), line=lineno)
        yield lineno, fields


def parse_int(value: str, path: Path, line: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{what} {value!r} is not an integer", file=str(path), line=line) from None


def parse_float(value: str, path: Path, line: int, what: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise DataError(f"{what} {value!r} is not a number", file=str(path), line=line) from None
    if out != out or out in (float("inf"), float("-inf")):
        raise DataError(f"{what} {value!r} is not finite", file=str(path), line=line)
    return out


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, after EXIF rotation; raises DataError if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                orientation = im.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise DataError("image file is missing", file=str(path)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"unreadable image ({e})", file=str(path)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"image too large, refused as a possible decompression bomb ({e})", file=str(path)) from None
    # EXIF orientations 5-8 swap width and height once the rotation is applied.
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def load_image(path: Path, crop_bottom: int = 0):
    """Decode an image fully as RGB with its EXIF rotation applied; DataError if it cannot be."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    # 16/32-bit grey: scale to 8 bits instead of clipping at 255.
                    import numpy as np

                    arr = np.asarray(im, dtype=np.float64)
                    top = arr.max() if arr.max() > 255 else 255.0
                    im = Image.fromarray((arr * (255.0 / top)).astype("uint8"), mode="L")
                if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                    im = im.convert("RGBA")
                    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(background, im)
                rgb = im.convert("RGB")
                rgb.load()
    except FileNotFoundError:
        raise DataError("image file is missing", file=str(path)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"image too large, refused as a possible decompression bomb ({e})", file=str(path)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"unreadable or truncated image ({e})", file=str(path)) from None
    if crop_bottom:
        w, h = rgb.size
        if h <= crop_bottom:
            raise DataError(f"image height {h} is not larger than the {crop_bottom}-pixel banner to crop", file=str(path))
        rgb = rgb.crop((0, 0, w, h - crop_bottom))
    return rgb


def load_mask(path: Path, size: tuple[int, int]):
    """A single-channel mask as a PIL image of `size` (width, height); DataError if it cannot be read."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            m = im.convert("L")
            m.load()
    except FileNotFoundError:
        raise DataError("mask file is missing", file=str(path)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"unreadable mask ({e})", file=str(path)) from None
    if m.size != size:
        raise DataError(f"mask is {m.size[0]}x{m.size[1]} but its image is {size[0]}x{size[1]}", file=str(path))
    return m
