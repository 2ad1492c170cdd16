"""The shared PASCAL-VOC XML parser: objects, sizes, lines, and refusal of unsafe XML."""

from __future__ import annotations

import pytest

from ornet.data import voc_xml as vx
from ornet.errors import DataError
from readers_util import voc_xml


def test_objects_size_and_lines(tmp_path):
    f = tmp_path / "a.xml"
    f.write_text(voc_xml((40, 30), [("cat", (1, 2, 10, 20)), ("dog", (3.5, 4, 5, 6))]))
    ann = vx.parse_voc(f)
    assert ann.size == (40, 30)
    assert [(o.name, o.box) for o in ann.objects] == [("cat", (1.0, 2.0, 10.0, 20.0)), ("dog", (3.5, 4.0, 5.0, 6.0))]
    assert [o.line for o in ann.objects] == [13, 25]
    f.write_text(voc_xml(None, [("cat", (1, 2, 10, 20))]))
    assert vx.parse_voc(f).size is None
    f.write_text(voc_xml((0, 0), [("cat", (1, 2, 10, 20))]))  # some releases write 0 for unknown sizes
    assert vx.parse_voc(f).size is None


@pytest.mark.parametrize("text, message", [
    ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n <!ENTITY lol2 "&lol;&lol;">\n]>\n'
     "<annotation><object><name>&lol2;</name></object></annotation>", "DOCTYPE or ENTITY"),
    ('<!DOCTYPE annotation SYSTEM "http://example.invalid/x.dtd"><annotation/>', "DOCTYPE or ENTITY"),
    ("<annotation><object>", "malformed XML"),
    ("<voc></voc>", "expected <annotation>"),
    ("<annotation><size><width>40</width><height>30</height></size></annotation>", "no <object>"),
    ("<annotation>\n<object><name>x</name></object></annotation>", "has no <bndbox>"),
    ("<annotation><object><bndbox><xmin>1</xmin></bndbox></object></annotation>", "has no <name>"),
    ("<annotation><object><name>x</name><bndbox><xmin>a</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax>"
     "</bndbox></object></annotation>", "'a' is not a finite number"),
    ("<annotation><object><name>x</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox>"
     "</object></annotation>", "has no <ymax>"),
])
def test_bad_or_unsafe_xml_is_a_data_error_naming_the_file(tmp_path, text, message):
    f = tmp_path / "bad.xml"
    f.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        vx.parse_voc(f)
    assert e.value.file == str(f)


def test_error_lines_and_size_limit(tmp_path, monkeypatch):
    f = tmp_path / "bad.xml"
    f.write_text("<annotation>\n<object>\n<name>x</name>\n</object>\n</annotation>\n")
    with pytest.raises(DataError) as e:
        vx.parse_voc(f)
    assert e.value.line == 2
    monkeypatch.setattr(vx, "MAX_BYTES", 10)
    with pytest.raises(DataError, match="larger than 10 bytes"):
        vx.parse_voc(f)
    with pytest.raises(DataError, match="missing"):
        vx.parse_voc(tmp_path / "none.xml")
