"""One HTML page that compares several runs on the same test images (`ornet demo` writes
``demo_out/index.html`` with it).

`compare_page(runs, out_html)` reads each run folder (``metrics.json``, ``predictions.csv``,
``model.safetensors`` + ``model.json``, ``config.yaml``) and writes:

- ``out_html``: the metrics of every run side by side (percentages; with two runs a column of
  their difference), then one row per test image: the image with its ground-truth box, and for
  each run its map (jet colours, blue 0 .. red 1) with its predicted box (green) and the GT box
  (blue), captioned with the run's IoU and predicted class;
- ``<stem>_images/NN_image.png`` and ``NN_<run>.png`` beside it, linked relatively, so the page
  and its folder can be moved together.

Maps are computed by running each exported model on the images through the evaluation
transform (as ``ornet figures`` does), so maps and boxes are those the metrics saw; predicted
boxes, IoU and classes come from ``predictions.csv``. The images are ``n`` test images spread
over the first run's evaluated split (seeded, the same on every rerun). Inline CSS only, no
JavaScript, no remote resource, every value HTML-escaped; files are written atomically.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..errors import OrnetError
from ..runtime.atomic import write_text_atomic
from .run_report import METRICS

DEFAULT_N = 12
TILE = 224
"""Side in pixels of each image on the page (small images are upscaled before drawing)."""
IMAGE_FILE = re.compile(r"^\d{2,}_[a-z0-9_]+\.png$")
"""The files compare_page writes into the images folder (stale ones are removed)."""

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1400px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .7em;text-align:left;
vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best{font-weight:bold}figure{margin:0}figure img{display:block;border:1px solid #ddd}
figcaption{color:#555;font-size:.85em;max-width:224px;overflow-wrap:anywhere}.muted{color:#777}.ok{color:#070}.bad{color:#b00}
"""


@dataclass
class Cell:
    """One run's picture of one image: the PNG's relative path and its caption."""

    src: str
    caption: str
    ok: bool | None = None  # localised (IoU >= 0.5) and classified correctly, when known


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise OrnetError(f"run name {name!r} has no letter or digit to name its files")
    return slug


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def render_compare(title: str, metrics: Mapping[str, Mapping], rows: Sequence[tuple[str, Cell, list[Cell]]],
                   reports: Mapping[str, str | None], note: str = "") -> str:
    """The page as HTML text (pure). ``metrics``: run name -> metrics.json; ``rows``: per image
    (image id, the image with its GT box, one cell per run in ``metrics``' order); ``reports``:
    run name -> relative link to its report.html (None: no link)."""
    names = list(metrics)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    if note:
        out.append(f'<p class="muted">{_e(note)}</p>')
    out.append("<h2>Metrics</h2><table><tr><th>metric (%)</th>"
               + "".join(f"<th>{_e(n)}</th>" for n in names)
               + (f"<th>{_e(names[0])} &minus; {_e(names[1])}</th>" if len(names) == 2 else "") + "</tr>")
    for key, label in [*METRICS, ("threshold", "threshold"), ("seconds", "seconds")]:
        values = [_num(metrics[n].get(key)) for n in names]
        if all(v is None for v in values):
            continue
        best = max((v for v in values if v is not None), default=None) if key in dict(METRICS) else None
        cells = "".join(f'<td class="num{" best" if v is not None and v == best and len(names) > 1 else ""}">'
                        f'{"-" if v is None else _e(f"{v:.2f}" if key == "threshold" else f"{v:.1f}")}</td>'
                        for v in values)
        if len(names) == 2:
            a, b = values
            diff = "-" if a is None or b is None else f"{a - b:+.2f}" if key == "threshold" else f"{a - b:+.1f}"
            cells += f'<td class="num">{_e(diff)}</td>'
        out.append(f"<tr><td>{_e(label)}</td>{cells}</tr>")
    out.append("</table>")
    links = [f'<a href="{_e(quote(link))}">{_e(n)}</a>' for n, link in reports.items() if link]
    if links:
        out.append(f"<p>Full reports: {', '.join(links)}.</p>")
    out.append("<h2>Test images</h2>")
    out.append('<p class="muted">Ground-truth box blue, predicted box green; the map in jet colours '
               "(blue 0, red 1), after the normalisation the evaluation uses. &#10003;: class right and IoU &gt;= 0.5 "
               "(Top-1 Loc); &#10007;: not.</p>")
    out.append("<table><tr><th>image</th>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>")
    for image_id, first, cells in rows:
        tds = [f'<td><figure><img src="{_e(quote(first.src))}" alt="{_e(image_id)}" width="{TILE}">'
               f"<figcaption>{_e(first.caption)}</figcaption></figure></td>"]
        for name, c in zip(names, cells):
            mark = "" if c.ok is None else (' <span class="ok">&#10003;</span>' if c.ok else ' <span class="bad">&#10007;</span>')
            tds.append(f'<td><figure><img src="{_e(quote(c.src))}" alt="{_e(name)}: {_e(image_id)}" width="{TILE}">'
                       f"<figcaption>{_e(c.caption)}{mark}</figcaption></figure></td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"


def compare_page(runs: Mapping[str, str | os.PathLike], out_html: str | os.PathLike, n: int = DEFAULT_N,
                 title: str | None = None, device: str | None = None, batch_size: int = 16) -> Path:
    """Write the comparison page of `runs` (display name -> run folder) to `out_html`; returns its path.

    Every run needs metrics.json, predictions.csv and its exported model; a missing or broken
    file is an OrnetError naming it, raised before anything is written.
    """
    from ..runs.files import read_predictions
    from ..runtime.outdir import check_out_file, make_out_dir
    from ..viz.figures import overlay
    from .render import _enlarge, draw_records, sample_indices
    from .render import save_png as _save_png
    from .run_model import ModelRun

    if not runs:
        raise OrnetError("compare_page needs at least one run")
    if n < 1:
        raise OrnetError(f"the number of images must be >= 1, got {n}")
    out_html = Path(out_html)
    check_out_file(out_html)
    slugs = {name: _slug(name) for name in runs}
    if len(set(slugs.values())) < len(slugs) or "image" in slugs.values():
        raise OrnetError(f"run names must give distinct file names other than 'image': {list(runs)}")
    loaded: dict[str, ModelRun] = {}
    for name, folder in runs.items():
        root = Path(folder)
        for need in ("metrics.json", "predictions.csv", "model.safetensors", "model.json", "config.yaml"):
            if not (root / need).is_file():
                raise OrnetError(f"{root / need} does not exist: {name} is not a finished run folder")
        loaded[name] = ModelRun(root, device=device, batch_size=batch_size)
    metrics = {name: run.metrics() for name, run in loaded.items()}
    preds = {name: read_predictions(run.root / "predictions.csv") for name, run in loaded.items()}
    first = next(iter(loaded.values()))
    records = first.records()
    if not records:
        raise OrnetError(f"split {first.split_name()!r} of {first.root}'s dataset has no image")
    picked = [records[i] for i in sample_indices(len(records), n)]
    drawn = {name: draw_records(run, picked, preds[name]) for name, run in loaded.items()}
    classes = {name: list(run.model()[1].get("classes") or []) for name, run in loaded.items()}

    folder = out_html.with_name(out_html.stem + "_images")
    make_out_dir(folder)
    for old in folder.iterdir():
        if IMAGE_FILE.match(old.name):
            old.unlink()
    rows = []
    d0, names0 = drawn[next(iter(drawn))], classes[next(iter(classes))]  # the first run's view
    for k, rec in enumerate(picked):
        image, (gt,) = _enlarge(d0.images[k], [d0.gt_boxes[k]], TILE)
        name0 = f"{k:02d}_image.png"
        _save_png(folder / name0, overlay(image, None, None, gt))
        truth = names0[rec.label] if rec.label is not None and rec.label < len(names0) else str(rec.label)
        cells = []
        for name, d in drawn.items():
            image, (pred, gt) = _enlarge(d.images[k], [d.pred_boxes[k], d.gt_boxes[k]], TILE)
            file = f"{k:02d}_{slugs[name]}.png"
            _save_png(folder / file, overlay(image, d.eval_maps[k], pred, gt))
            p = preds[name].get(rec.image_id)
            iou = d.ious[k]
            text = "IoU -" if math.isnan(iou) else f"IoU {iou:.2f}"
            ok = None
            if p is not None and p.pred is not None:
                names = classes[name]
                text += f", predicted {names[p.pred] if p.pred < len(names) else p.pred}"
                ok = bool(p.pred == rec.label and not math.isnan(iou) and iou >= 0.5)
            cells.append(Cell(f"{folder.name}/{file}", text, ok))
        rows.append((rec.image_id, Cell(f"{folder.name}/{name0}", f"{rec.image_id} ({truth})"), cells))

    base = out_html.absolute().parent
    reports = {name: (Path(os.path.relpath(run.root.absolute() / "report.html", base)).as_posix()
                      if (run.root / "report.html").is_file() else None) for name, run in loaded.items()}
    split = first.split_name()
    m0 = metrics[next(iter(metrics))]
    note = (f"Metrics are percentages on the {split} split"
            + (f" ({m0['num_images']} images)" if isinstance(m0.get("num_images"), int) else "")
            + (f"; thresholds chosen on the {m0['threshold_split']} split" if m0.get("threshold_split") else "")
            + f". Below: {len(picked)} of the {len(records)} {split} images, spread over the split.")
    text = render_compare(title or " vs ".join(runs), metrics, rows, reports, note)
    write_text_atomic(out_html, text)
    return out_html
