"""One HTML page that compares any number of runs on the same test images (`ornet compare`;
`ornet demo` writes ``demo_out/index.html`` with it).

`compare_runs(folders, out)` (the command) labels each folder (`compare_inputs`: a run folder or an
evaluation folder of ``ornet evaluate --out``, ``cam + gradcam`` for an extractor's maps), checks
that they were evaluated on one split and the same images, and writes into ``out``:

- ``index.html``: the metrics table (`compare_table`: one row per run with its method, map
  extractor and the network it explains; with two runs a row of their difference), links to each
  folder's report.html, then one row per test image: the image with its ground-truth box, and for
  each run its map (jet colours, blue 0 .. red 1) with its predicted box (green) and the GT box
  (blue), captioned with the run's IoU and predicted class;
- ``metrics.csv``: the same table, one row per run, numbers exactly as in metrics.json;
- ``index_images/NN_image.png`` and ``NN_<label>.png``, linked relatively, so the page and its
  folder can be moved together.

`compare_page(runs, out_html)` is the same page for {label: folder} (the demo: ORNet and CAM).
Maps are computed by running each exported model on the images through the evaluation
transform (as ``ornet figures`` does), with the map extractor its metrics.json names, so maps and
boxes are those the metrics saw; predicted boxes, IoU and classes come from ``predictions.csv``.
The images are ``n`` test images spread over the first run's evaluated split (seeded, the same on
every rerun), read from the first run's dataset. Inline CSS only, no JavaScript, no remote
resource, every value HTML-escaped; files are written atomically.
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
from .compare_inputs import Column, check_comparable, label_columns, open_folder
from .compare_table import table_csv, table_html

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
td.best{font-weight:bold}tr.diff th,tr.diff td{color:#555}figure{margin:0}figure img{display:block;border:1px solid #ddd}
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


def file_slugs(labels: Sequence[str]) -> dict[str, str]:
    """label -> the distinct lower-case name of its image files (``image`` is the GT picture's;
    a repeat gets ``_2``, ``_3``, ...; a label without letters or digits is ``run``)."""
    used, out = {"image"}, {}
    for label in labels:
        base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "run"
        slug, k = base, 1
        while slug in used:
            k += 1
            slug = f"{base}_{k}"
        used.add(slug)
        out[label] = slug
    return out


def render_compare(title: str, metrics: Mapping[str, Mapping], rows: Sequence[tuple[str, Cell, list[Cell]]],
                   reports: Mapping[str, str | None], note: str = "") -> str:
    """The page as HTML text (pure). ``metrics``: run label -> metrics.json; ``rows``: per image
    (image id, the image with its GT box, one cell per run in ``metrics``' order); ``reports``:
    run label -> relative link to its report.html (None: no link)."""
    names = list(metrics)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    if note:
        out.append(f'<p class="muted">{_e(note)}</p>')
    out += ["<h2>Metrics</h2>", table_html(metrics, reports)]
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
                 title: str | None = None, device: str | None = None, batch_size: int = 16,
                 csv: str | os.PathLike | None = None) -> Path:
    """Write the comparison page of `runs` (label -> run or evaluation folder) to `out_html`, and the
    metrics table to `csv` when given; returns the page's path.

    Every folder needs metrics.json and predictions.csv, and its run (the folder itself, or the run an
    evaluation folder's metrics.json names) config.yaml and its exported model; the runs must have been
    evaluated on one split and the same images. Any of that is an OrnetError naming the folder, raised
    before anything is written.
    """
    if not runs:
        raise OrnetError("compare_page needs at least one run")
    columns = [Column(label, *open_folder(folder)) for label, folder in runs.items()]
    check_comparable(columns)
    return write_comparison(columns, out_html, n=n, title=title, device=device, batch_size=batch_size, csv=csv)


def compare_runs(folders: Sequence[str | os.PathLike], out: str | os.PathLike, *, split: str | None = "test",
                 n: int = DEFAULT_N, force: bool = False, device: str | None = None,
                 batch_size: int = 16) -> list[Column]:
    """`ornet compare FOLDER... --out OUT`: OUT/index.html, OUT/metrics.csv, OUT/index_images/; returns
    the labelled columns. OUT must be new or empty unless ``force`` (then the page, the CSV and the
    images are replaced, nothing else is touched); ``split``: the split every folder must have been
    evaluated on (None: any, as long as they agree)."""
    from ..runtime.outdir import check_out_dir, nonempty

    out = Path(out)
    check_out_dir(out, "--out")
    columns = label_columns(folders)
    check_comparable(columns, split)
    for c in columns:
        if out.resolve() in (c.root.resolve(), c.run_dir.resolve()):
            raise OrnetError(f"--out {out} is the folder of {c.root}: write the comparison to a folder of its own")
    if nonempty(out) and not force:
        raise OrnetError(f"--out {out} exists and is not empty; pass --force to write into it")
    write_comparison(columns, out / "index.html", n=n, device=device, batch_size=batch_size, csv=out / "metrics.csv")
    return columns


def write_comparison(columns: Sequence[Column], out_html: str | os.PathLike, n: int = DEFAULT_N,
                     title: str | None = None, device: str | None = None, batch_size: int = 16,
                     csv: str | os.PathLike | None = None) -> Path:
    """The page (and the CSV) of checked, labelled columns; every model runs before anything is written."""
    from ..runs.files import read_predictions
    from ..runtime.outdir import check_out_dir, make_out_dir, removed_if_failed
    from ..viz.figures import overlay
    from .render import _enlarge, draw_records, sample_indices
    from .render import save_png as _save_png
    from .run_model import ModelRun

    if n < 1:
        raise OrnetError(f"the number of images must be >= 1, got {n}")
    out_html = Path(out_html)
    if out_html.is_dir():
        raise OrnetError(f"{out_html} is a folder, not a file")
    check_out_dir(out_html.parent)
    labels = [c.label for c in columns]
    if len(set(labels)) < len(labels):
        raise OrnetError(f"run labels must be distinct: {labels}")
    slugs = file_slugs(labels)
    loaded = {c.label: ModelRun(c.root, run_dir=c.run_dir, device=device, batch_size=batch_size) for c in columns}
    metrics = {c.label: c.metrics for c in columns}
    preds = {label: read_predictions(run.root / "predictions.csv") for label, run in loaded.items()}
    first = next(iter(loaded.values()))
    # the images every column was scored on (its predictions.csv; a subset with trainer.limit_test_batches)
    records = [r for r in first.records() if r.image_id in preds[labels[0]]]
    if not records:
        raise OrnetError(f"none of the images of split {first.split_name()!r} of {first.model_dir}'s dataset is in "
                         f"{first.root / 'predictions.csv'}: evaluated on another dataset (--data.root)?")
    picked = [records[i] for i in sample_indices(len(records), n)]
    drawn = {label: draw_records(run, picked, preds[label]) for label, run in loaded.items()}
    classes = {label: list(run.model()[1].get("classes") or []) for label, run in loaded.items()}

    folder = out_html.with_name(out_html.stem + "_images")
    with removed_if_failed(out_html.parent):
        make_out_dir(folder)
        for old in folder.iterdir():
            if IMAGE_FILE.match(old.name):
                old.unlink()
        rows = []
        d0, names0 = drawn[labels[0]], classes[labels[0]]  # the first run's view
        for k, rec in enumerate(picked):
            image, (gt,) = _enlarge(d0.images[k], [d0.gt_boxes[k]], TILE)
            name0 = f"{k:02d}_image.png"
            _save_png(folder / name0, overlay(image, None, None, gt))
            truth = names0[rec.label] if rec.label is not None and rec.label < len(names0) else str(rec.label)
            cells = []
            for label, d in drawn.items():
                image, (pred, gt) = _enlarge(d.images[k], [d.pred_boxes[k], d.gt_boxes[k]], TILE)
                file = f"{k:02d}_{slugs[label]}.png"
                _save_png(folder / file, overlay(image, d.eval_maps[k], pred, gt))
                cells.append(Cell(f"{folder.name}/{file}", *_caption(preds[label].get(rec.image_id), rec.label,
                                                                      d.ious[k], classes[label])))
            rows.append((rec.image_id, Cell(f"{folder.name}/{name0}", f"{rec.image_id} ({truth})"), cells))

        base = out_html.absolute().parent
        reports = {label: (Path(os.path.relpath(run.root.absolute() / "report.html", base)).as_posix()
                           if (run.root / "report.html").is_file() else None) for label, run in loaded.items()}
        split = first.split_name()
        note = (f"Metrics are percentages on the {split} split; each row's threshold was chosen on the split its "
                f"metrics.json names. Below: {len(picked)} of the {len(records)} {split} images, spread over the "
                f"split; each map is its run's (`+ extractor`: that extractor's map of the run's classifier).")
        text = render_compare(title or " vs ".join(labels), metrics, rows, reports, note)
        write_text_atomic(out_html, text)
        if csv is not None:
            shown = {c.label: (str(c.root), c.metrics) for c in columns}
            write_text_atomic(Path(csv), table_csv(shown))
    return out_html


def _caption(pred, label, iou: float, names: list) -> tuple[str, bool | None]:
    """(caption, Top-1 Loc hit or None) of one run's cell: its IoU and predicted class."""
    text = "IoU -" if math.isnan(iou) else f"IoU {iou:.2f}"
    if pred is None or pred.pred is None:
        return text, None
    text += f", predicted {names[pred.pred] if pred.pred < len(names) else pred.pred}"
    return text, bool(pred.pred == label and not math.isnan(iou) and iou >= 0.5)
