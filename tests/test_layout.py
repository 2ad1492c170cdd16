"""The package's shape, checked statically (docs/architecture.md, "Layers").

Every import between top-level parts of ``src/ornet`` goes down the layer table below, so
no two parts import each other (directly or in a circle); data, models, localization and
viz import nothing above them; only ``cli.py`` imports the commands; no module is over 300
lines; no two modules share a file name (a name says one thing in the package).
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "ornet"

LAYERS = [
    ["errors", "__version__"],
    ["registry"],
    ["runtime"],        # run lock, atomic files, disk space, resume, preemption, peers, logs, progress
    ["models"],         # networks, weights specs and the normalisation they carry
    ["extractors"],     # map extractors (eval.maps): a trained classifier -> maps; torch-free registry
    ["config"],         # dataclasses, parsing, presets
    ["data"],           # readers, Sample, transforms, DataModule, synthetic
    ["localization", "viz"],  # maps -> boxes and metrics; pure drawing
    ["methods"],        # the methods registry: each method's stages, losses, augmentations
    ["training"],       # the stage runner (Lightning Trainer, checkpoints handed on)
    ["evaluation"],     # protocols registry, the evaluation pass, the class gate
    ["runs"],           # run folders, export / load of trained models
    ["inference"],      # Localizer: a trained model on new images
    ["release"],        # the authors' checkpoints -> a run
    ["reports"],        # report.html, comparison page, a run's figures (loads runs, draws with viz)
    ["api"],            # the public API's bodies
    ["commands"],       # one thin shell per subcommand
    ["cli"],
    ["__main__"],
    ["__init__"],       # the lazy public names
]
RANK = {part: i for i, names in enumerate(LAYERS) for part in names}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported ornet module, line) for every import in the file, relative ones resolved."""
    return imports_in(path.read_text(), _module(path), path.name == "__init__.py")


def imports_in(text: str, module: str, is_package: bool) -> list[tuple[str, int]]:
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "ornet" or target.startswith("ornet."):
                whole = node.module is None or target == "ornet"  # `from . import x`: x is the module
                found += [(f"{target}.{a.name}" if whole else target, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("ornet.")]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("ornet.")):
            found.append((node.args[0].value, node.lineno))
    return found


FILES = sorted(PKG.rglob("*.py"))


def test_every_part_has_a_layer():
    parts = {_part(_module(f)) for f in FILES} - {"__init__"}
    assert parts <= set(RANK), f"parts without a layer in LAYERS: {sorted(parts - set(RANK))}"


def test_imports_only_go_down_the_layers():
    wrong = []
    for f in FILES:
        src = _part(_module(f))
        for target, line in _imports(f):
            dst = _part(target)
            if dst != src and RANK.get(dst, -1) >= RANK.get(src, -1):
                wrong.append(f"{f.relative_to(PKG)}:{line} ({src}) imports {target} ({dst})")
    assert not wrong, "imports that go up or across the layers:\n" + "\n".join(wrong)


def test_only_cli_imports_the_commands():
    wrong = [f"{f.relative_to(PKG)}:{line}" for f in FILES if _part(_module(f)) not in ("commands", "cli")
             for target, line in _imports(f) if _part(target) == "commands"]
    assert not wrong, wrong


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_over_300_lines(path):
    assert len(path.read_text().splitlines()) <= 300


def test_no_two_modules_share_a_name():
    """A command's module may share its name with what it shells (commands/train.py and api/train.py)."""
    names = Counter(f.name for f in FILES if f.name not in ("__init__.py", "__main__.py")
                    and f.parent.name != "commands")
    assert not [n for n, c in names.items() if c > 1], sorted(n for n, c in names.items() if c > 1)


def test_the_import_reader_resolves_relative_imports():
    text = "from ...config.schema import RunConfig\nfrom .. import base\nimport ornet.errors\n" \
           "from ornet import viz\nimportlib.import_module('ornet.models.split')\n"
    found = [t for t, _ in imports_in(text, "ornet.methods.ornet.refine_stage", False)]
    assert found == ["ornet.config.schema", "ornet.methods.base", "ornet.errors", "ornet.viz", "ornet.models.split"]
    assert [_part(t) for t in found] == ["config", "methods", "errors", "viz", "models"]
