"""`ornet methods`: the WSOL methods a config can name (``wsol_method``), one line each (torch-free)."""

from __future__ import annotations

from .args import UsageParser


def build_parser(prog: str) -> UsageParser:
    return UsageParser(prog=prog, description=(
        "List the WSOL methods (the methods registry, ornet.methods): each one's name, to use as "
        "wsol_method in a config or --wsol_method on `ornet train`, with its stages and a description."))


def lines() -> list[str]:
    """One line per method: name, stages in order, description."""
    from ..methods import METHODS

    entries = [METHODS.get(name) for name in METHODS]
    width = max(len(m.name) for m in entries)
    stage_width = max(len(", ".join(m.stage_names())) for m in entries) + 2
    return [f"{m.name:<{width}}  {'[' + ', '.join(m.stage_names()) + ']':<{stage_width}}  {m.description}"
            for m in entries]


def main(argv: list[str], prog: str = "ornet methods") -> int:
    build_parser(prog).parse_args(argv)
    print("\n".join(lines()))
    return 0
