"""The run report: one self-contained, offline ``report.html`` beside a run's files.

`write_report(run_dir)` reads ``metrics.json``, ``config.yaml`` and the PNGs in ``figures/``
and writes ``report.html`` atomically. The page has the metrics table, the settings that
produced the numbers (threshold and the split that chose it, box mode, IoU strictness, map
normalisation, ...), every figure (``<img src="figures/...">``, relative, so the folder can be
moved or copied whole) and the resolved configuration. Inline CSS only, no JavaScript, no
remote resource; every value is HTML-escaped. `render_report` is the pure part (dicts and
strings in, HTML text out).
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from ..errors import OrnetError
from ..runs.files import read_json_object
from ..runtime.atomic import write_text_atomic

# metrics.json key -> label; percentages 0-100 (ARCHITECTURE.md, metrics.json).
METRICS: list[tuple[str, str]] = [
    ("top1_cls", "Top-1 Cls"),
    ("top5_cls", "Top-5 Cls"),
    ("top1_loc", "Top-1 Loc"),
    ("top5_loc", "Top-5 Loc"),
    ("gt_known_loc", "GT-known Loc"),
    ("max_box_acc", "MaxBoxAcc"),
    ("max_box_acc_v2", "MaxBoxAccV2"),
    ("pxap", "PxAP"),
]

# settings: key -> (label, config.yaml fallback path)
SETTINGS: list[tuple[str, str, tuple[str, ...] | None]] = [
    ("method", "method", None),
    ("split", "evaluated split", None),
    ("num_images", "images", None),
    ("threshold", "threshold", None),
    ("threshold_index", "threshold index in the sweep", None),
    ("protocol", "evaluation protocol", ("eval", "protocol")),
    ("maps", "maps (eval.maps)", ("eval", "maps")),
    ("maps_network", "network the maps explain", None),
    ("threshold_split", "threshold chosen on", ("eval", "threshold_split")),
    ("chosen_on_test", "chosen on the test split", None),
    ("box_mode", "box mode", ("eval", "box_mode")),
    ("iou_strict", "IoU strictness", ("eval", "iou_strict")),
    ("iou_thresholds", "IoU levels (MaxBoxAccV2)", ("eval", "iou_thresholds")),
    ("normalize", "map normalisation", ("eval", "normalize")),
    ("cam_curve_interval", "threshold step", ("eval", "cam_curve_interval")),
    ("seconds", "time (s)", None),
    ("seconds_per_stage", "time per stage (s)", None),
    ("stages_run", "stages run", None),
]

# figure file (or prefix) -> (title, what to look for); order of appearance.
FIGURES: list[tuple[str, str, str]] = [
    ("threshold_curve", "Box accuracy vs threshold",
     "One curve per IoU level; the dashed line is the chosen threshold. A flat top means the "
     "result does not hinge on the exact threshold."),
    ("overlay", "Maps and boxes",
     "Map overlaid in jet colours (blue 0, red 1); predicted box green, ground truth blue."),
    ("evolution", "Evolution of the map during refinement",
     "Rows are fixed images, columns stage-2 epochs ('start' is the map before refinement). "
     "The map should grow to the whole object and sharpen towards 0 / 1."),
    ("histogram", "Distribution of map values",
     "Share of pixels per map value for each image (log scale). A separated map has its mass "
     "at 0 and 1 and little in between."),
    ("failures", "Failure cases (lowest IoU)",
     "Boxes too large, objects merged, background clutter leaking into the map: the failure "
     "modes METHOD.md lists."),
    ("grid", "Maps on many images", "The map on a sample of the dataset."),
    ("gate", "Plain and gated maps",
     "Left (plain p_a): ORNet's own map, without the class gate; right (gated): the map the metrics "
     "scored, p_a times the evaluator's class activation map to the chosen exponent (eval.cam_gate). "
     "Shown when a gate was chosen, so that what ORNet's refinement found and what the gate added can "
     "be told apart."),
]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .7em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:.9em}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.85em}.muted{color:#777}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_format(v)}" for k, v in value.items())
    return str(value)


def _lookup(config: Mapping | None, path: tuple[str, ...] | None):
    node = config
    for key in path or ():
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if path else None


def _setting(key: str, metrics: Mapping, config: Mapping | None, path) -> object | None:
    value = metrics.get(key)
    if value is None:
        value = _lookup(config, path)
    if key == "iou_strict" and value is not None:
        return "IoU > 0.5 (strict, the release)" if value else "IoU >= 0.5 (wsolevaluation)"
    if key == "chosen_on_test" and value is not None:
        return ", ".join(map(str, value)) if value else "nothing"
    if key == "normalize" and value is not None:
        return {"minmax": "per-image min-max", "none": "none (map as it is)"}.get(str(value), value)
    return value


def protocol_lines(metrics: Mapping) -> list[str]:
    """What a reader must know before comparing the numbers: the protocol and where the threshold came from."""
    from ..evaluation.protocols import protocol_of_metrics

    lines = [*chosen_on_test_lines(metrics), *protocol_of_metrics(metrics).report_lines(metrics)]
    split = metrics.get("threshold_split")
    if split is not None and split == metrics.get("split"):
        lines.append(f"The map threshold was chosen on the evaluated {split} split itself (the paper's "
                     "practice), not on held-out data: the localization numbers are optimistic.")
    return lines


def chosen_on_test_lines(metrics: Mapping) -> list[str]:
    """The line about metrics.json's ``chosen_on_test`` (every choice made on the test split); none
    for files written before the key existed."""
    chosen = metrics.get("chosen_on_test")
    if chosen is None:
        return []
    if not chosen:
        return ["Nothing behind these numbers was chosen on the test split (chosen_on_test is empty)."]
    return [f"Chosen on the TEST split: {', '.join(map(str, chosen))}. These numbers are not results on "
            "held-out data (metrics.json, chosen_on_test)."]


def figure_entries(names: Sequence[str]) -> list[tuple[str, str, str]]:
    """(file name, title, description) for PNG names, in the report's order; unknown names last."""
    entries, seen = [], set()
    for prefix, title, text in FIGURES:
        for name in sorted(names):
            stem = Path(name).stem
            if name not in seen and (stem == prefix or stem.startswith(prefix + "_")):
                seen.add(name)
                suffix = stem[len(prefix):].strip("_")
                entries.append((name, title + (f" ({suffix})" if suffix else ""), text))
    entries += [(n, Path(n).stem, "") for n in sorted(names) if n not in seen]
    return entries


def render_report(metrics: Mapping, config: Mapping | None = None, config_text: str | None = None,
                  figures: Sequence[str] = (), title: str = "ornet run", files: Sequence[str] = (),
                  figures_dir: str = "figures") -> str:
    """The report page as HTML text (pure: no file access).

    ``metrics``: the flat metrics.json; ``config``: the parsed config (for settings missing from
    metrics); ``config_text``: shown verbatim; ``figures``: PNG names inside ``figures_dir``;
    ``files``: other run files to link (relative names).
    """
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{_e(title)}</h1>"]
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    out.append(f'<p class="muted">Report written {_e(when)}. Metrics are percentages (0-100).</p>')

    out.append("<h2>Metrics</h2>")
    out += [f"<p><b>{_e(line)}</b></p>" for line in protocol_lines(metrics)]
    rows = [(label, metrics[key]) for key, label in METRICS if metrics.get(key) is not None]
    known = {k for k, _ in METRICS} | {k for k, _, _ in SETTINGS}
    rows += [(key, v) for key, v in metrics.items()
             if key not in known and isinstance(v, (int, float)) and not isinstance(v, bool)]
    if rows:
        out.append("<table><tr><th>metric</th><th>value</th></tr>")
        out += [f'<tr><td>{_e(label)}</td><td class="num">{_e(_format(v))}</td></tr>' for label, v in rows]
        out.append("</table>")
    else:
        out.append('<p class="muted">No metrics recorded.</p>')

    settings = [(label, _setting(key, metrics, config, path)) for key, label, path in SETTINGS]
    settings = [(label, v) for label, v in settings if v is not None]
    others = [(k, v) for k, v in metrics.items()
              if k not in known and isinstance(v, (str, bool, list, dict))]
    if settings or others:
        out.append("<h2>Settings behind the numbers</h2><table><tr><th>setting</th><th>value</th></tr>")
        out += [f"<tr><td>{_e(label)}</td><td>{_e(_format(v))}</td></tr>" for label, v in settings + others]
        out.append("</table>")

    out.append("<h2>Figures</h2>")
    if figures:
        for name, fig_title, text in figure_entries(figures):
            src = quote(f"{figures_dir}/{name}")
            out.append(f'<figure><img src="{_e(src)}" alt="{_e(fig_title)}" loading="lazy">'
                       f"<figcaption><b>{_e(fig_title)}</b>. {_e(text)}</figcaption></figure>")
    else:
        out.append('<p class="muted">No figures yet: run <code>ornet figures all RUN_DIR</code>.</p>')

    if files:
        out.append("<h2>Files</h2><ul>")
        out += [f'<li><a href="{_e(quote(f))}">{_e(f)}</a></li>' for f in files]
        out.append("</ul>")

    out.append("<h2>Configuration (resolved)</h2>")
    out.append(f"<pre>{_e(config_text)}</pre>" if config_text else '<p class="muted">No config.yaml.</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


_LINKED_FILES = ("metrics.json", "predictions.csv", "curves.json", "config.yaml", "model.json")


def write_report(run_dir: str | os.PathLike, title: str | None = None) -> Path:
    """Write ``run_dir/report.html`` from the run's files; returns its path.

    Missing pieces are left out (a run without figures gets a hint how to make them); a
    metrics.json or config.yaml that cannot be parsed is an OrnetError naming the file.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise OrnetError(f"{run}: run folder does not exist")
    mpath = run / "metrics.json"
    metrics = read_json_object(mpath) if mpath.is_file() else {}
    config, config_text = None, None
    cpath = run / "config.yaml"
    if cpath.is_file():
        import yaml

        config_text = cpath.read_text(encoding="utf-8")
        try:
            config = yaml.safe_load(config_text)
        except yaml.YAMLError as e:
            raise OrnetError(f"{cpath}: not valid YAML ({' '.join(str(e).split())})") from None
        if not isinstance(config, dict):
            config = None
    fig_dir = run / "figures"
    figures = sorted(p.name for p in fig_dir.glob("*.png") if p.is_file()) if fig_dir.is_dir() else []
    files = [name for name in _LINKED_FILES if (run / name).is_file()]
    text = render_report(metrics, config, config_text, figures, title or f"ornet run: {run.resolve().name}",
                         files)
    path = run / "report.html"
    write_text_atomic(path, text)
    return path
