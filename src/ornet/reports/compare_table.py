"""The comparison's metrics table, one row per compared run: as HTML and as CSV (pure: dicts in, text out).

Columns (``FIELDS``: metrics.json's key, the page's title): the method, the map extractor
(``maps``: ``own`` for the method's own map), the network the extractor explains
(``maps_network``; empty for the own map), GT-known Loc, Top-1 Loc, MaxBoxAccV2, PxAP, Top-1 Cls
(percentages), the threshold, the evaluated split and its number of images.

- CSV (``metrics.csv``): a header line ``label,folder,<keys>``, then one row per run; numbers
  exactly as metrics.json holds them (Python's shortest round-trip text of the float), a missing
  value empty. The header is the same whatever the runs hold.
- HTML: percentages to one decimal and the threshold to two; a metric column that no run has
  (PxAP on a dataset without masks) is left out; the best value of each metric in bold; with
  exactly two runs a last row holds their difference (first minus second).
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Mapping
from urllib.parse import quote

FIELDS: list[tuple[str, str]] = [
    ("method", "method"),
    ("maps", "map extractor"),
    ("maps_network", "network explained"),
    ("gt_known_loc", "GT-known Loc"),
    ("top1_loc", "Top-1 Loc"),
    ("max_box_acc_v2", "MaxBoxAccV2"),
    ("pxap", "PxAP"),
    ("top1_cls", "Top-1 Cls"),
    ("threshold", "threshold"),
    ("split", "split"),
    ("num_images", "images"),
]
PERCENT = ("gt_known_loc", "top1_loc", "max_box_acc_v2", "pxap", "top1_cls")
NUMERIC = (*PERCENT, "threshold")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: object) -> float | None:
    """A finite-or-not float of metrics.json, None for anything else (a bool, a string, null, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def row_values(metrics: Mapping) -> dict[str, object]:
    """The table's values of one run (metrics.json): ``maps`` defaults to ``own`` (runs from before
    map extractors); anything missing is None."""
    values = {key: metrics.get(key) for key, _ in FIELDS}
    values["maps"] = values["maps"] or "own"
    return values


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def table_csv(runs: Mapping[str, tuple[str, Mapping]]) -> str:
    """``runs``: label -> (folder as shown, metrics.json). The CSV text, header line first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["label", "folder", *(key for key, _ in FIELDS)])
    for label, (folder, metrics) in runs.items():
        values = row_values(metrics)
        w.writerow([label, folder, *(_csv_cell(values[key]) for key, _ in FIELDS)])
    return buf.getvalue()


def _fmt(key: str, value: float) -> str:
    return f"{value:.2f}" if key == "threshold" else f"{value:.1f}"


def table_html(runs: Mapping[str, Mapping], links: Mapping[str, str | None] | None = None) -> str:
    """``runs``: label -> metrics.json; ``links``: label -> relative link to its report.html."""
    links = links or {}
    values = {label: row_values(m) for label, m in runs.items()}
    shown = [(key, title) for key, title in FIELDS
             if key not in NUMERIC or any(number(v[key]) is not None for v in values.values())]
    best = {key: max((n for v in values.values() if (n := number(v[key])) is not None), default=None)
            for key in PERCENT}
    out = ["<table><tr><th>run</th>" + "".join(f"<th>{_e(t)}{' (%)' * (k in PERCENT)}</th>" for k, t in shown)
           + "</tr>"]
    for label, v in values.items():
        link = links.get(label)
        name = f'<a href="{_e(quote(link))}">{_e(label)}</a>' if link else _e(label)
        cells = [f"<th>{name}</th>"]
        for key, _ in shown:
            if key in NUMERIC:
                n = number(v[key])
                bold = " best" if key in PERCENT and n is not None and n == best[key] and len(values) > 1 else ""
                cells.append(f'<td class="num{bold}">{"-" if n is None else _e(_fmt(key, n))}</td>')
            elif key == "num_images":
                cells.append(f'<td class="num">{"-" if v[key] is None else _e(v[key])}</td>')
            else:
                cells.append(f"<td>{'-' if v[key] is None else _e(v[key])}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    if len(values) == 2:
        (a_label, a), (b_label, b) = values.items()
        cells = [f"<th>{_e(a_label)} &minus; {_e(b_label)}</th>"]
        for key, _ in shown:
            x, y = (number(a[key]), number(b[key])) if key in NUMERIC else (None, None)
            diff = "" if key not in NUMERIC else "-" if x is None or y is None else (
                f"{x - y:+.2f}" if key == "threshold" else f"{x - y:+.1f}")
            cells.append(f'<td class="num">{_e(diff)}</td>' if key in NUMERIC else "<td></td>")
        out.append('<tr class="diff">' + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)
