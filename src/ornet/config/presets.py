"""Where the YAML presets live, and `--config NAME` shorthand for them."""

from __future__ import annotations

from pathlib import Path

from ..errors import OrnetError


def presets_dir() -> Path:
    """The `configs/` folder: inside the package when installed, else the checkout's."""
    package = Path(__file__).resolve().parents[1]  # src/ornet
    for candidate in (package / "configs", package.parents[1] / "configs"):
        if candidate.is_dir():
            return candidate
    raise OrnetError("cannot find the configs/ presets folder next to the ornet package")


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def preset_path(name: str) -> Path:
    """`demo` -> .../configs/demo.yaml; an unknown name lists the known ones."""
    path = presets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise OrnetError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    return path
