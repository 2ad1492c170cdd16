"""PASCAL-VOC style annotation XML (ILSVRC localization, Stanford Dogs), parsed safely.

    <annotation>
      <size><width>500</width><height>375</height></size>        (optional)
      <object><name>n01751748</name>
        <bndbox><xmin>111</xmin><ymin>108</ymin><xmax>441</xmax><ymax>332</ymax></bndbox>
      </object>  ... one <object> per annotated instance
    </annotation>

Untrusted files: a DOCTYPE or ENTITY declaration is refused before any expansion can
happen (billion-laughs bombs), and a file over `MAX_BYTES` is refused unread. Expat feeds
an ElementTree `TreeBuilder`, so every element keeps the line it starts on and errors
name file and line. Coordinates are returned as written; each reader states its own
pixel convention.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

from ..errors import DataError
from .records import Box

MAX_BYTES = 1 << 20
"""An annotation of a few objects is a few KiB; anything over 1 MiB is refused."""


@dataclass(frozen=True)
class VocObject:
    name: str
    box: Box
    line: int | None
    """Line of the <object> element in its file."""


@dataclass(frozen=True)
class VocAnnotation:
    path: Path
    size: tuple[int, int] | None
    """(width, height) from <size>, or None when absent or zero."""
    objects: tuple[VocObject, ...]


class _Refused(Exception):
    pass


def _parse_tree(path: Path) -> tuple[ET.Element, dict[int, int]]:
    """The root element and, per element id, the line it starts on."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise DataError("annotation file is missing", file=str(path)) from None
    except OSError as e:
        raise DataError(f"unreadable annotation file ({e.strerror})", file=str(path)) from None
    if len(data) > MAX_BYTES:
        raise DataError(f"annotation file larger than {MAX_BYTES} bytes, refused", file=str(path))
    builder = ET.TreeBuilder()
    lines: dict[int, int] = {}
    parser = expat.ParserCreate()

    def refuse(*_args):
        raise _Refused

    def start(tag, attrs):
        lines[id(builder.start(tag, attrs))] = parser.CurrentLineNumber

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _Refused:
        raise DataError("XML with a DOCTYPE or ENTITY declaration refused (entity expansion is unsafe)",
                        file=str(path), line=parser.CurrentLineNumber) from None
    except expat.ExpatError as e:
        raise DataError(f"malformed XML ({expat.ErrorString(e.code)})", file=str(path), line=e.lineno) from None
    return builder.close(), lines


def _text(elem: ET.Element, tag: str, path: Path, lines: dict[int, int]) -> str:
    child = elem.find(tag)
    if child is None or not (child.text or "").strip():
        raise DataError(f"<{elem.tag}> has no <{tag}>", file=str(path), line=lines.get(id(elem)))
    return child.text.strip()


def _number(elem: ET.Element, tag: str, path: Path, lines: dict[int, int]) -> float:
    value = _text(elem, tag, path, lines)
    try:
        out = float(value)
    except ValueError:
        out = float("nan")
    if out != out or abs(out) == float("inf"):
        raise DataError(f"<{tag}> {value!r} is not a finite number", file=str(path),
                        line=lines.get(id(elem.find(tag))))
    return out


def parse_voc(path: Path) -> VocAnnotation:
    """Read one annotation; DataError (file, line) when malformed or when it has no <object>."""
    root, lines = _parse_tree(path)
    if root.tag != "annotation":
        raise DataError(f"root element is <{root.tag}>, expected <annotation>", file=str(path), line=1)
    size = None
    size_el = root.find("size")
    if size_el is not None and size_el.find("width") is not None and size_el.find("height") is not None:
        w, h = _number(size_el, "width", path, lines), _number(size_el, "height", path, lines)
        if w > 0 and h > 0:
            size = (int(w), int(h))
    objects = []
    for obj in root.iter("object"):
        name = _text(obj, "name", path, lines)
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DataError(f"<object> {name!r} has no <bndbox>", file=str(path), line=lines.get(id(obj)))
        box = tuple(_number(bndbox, k, path, lines) for k in ("xmin", "ymin", "xmax", "ymax"))
        objects.append(VocObject(name=name, box=box, line=lines.get(id(obj))))
    if not objects:
        raise DataError("annotation has no <object>", file=str(path))
    return VocAnnotation(path=path, size=size, objects=tuple(objects))
