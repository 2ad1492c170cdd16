"""`ornet methods`: the WSOL methods a config can name (``wsol_method``) and the map extractors
(``--eval.maps``), one line each (torch-free)."""

from __future__ import annotations

from .args import UsageParser


def build_parser(prog: str) -> UsageParser:
    return UsageParser(prog=prog, description=(
        "List the WSOL methods (the methods registry, ornet.methods): each one's name, to use as "
        "wsol_method in a config or --wsol_method on `ornet train`, with its stages and a description; "
        "then the map extractors (ornet.extractors), to use as --eval.maps on `ornet evaluate` and `ornet localize`."))


def lines() -> list[str]:
    """One line per method: name, stages in order, description."""
    from ..methods import METHODS

    entries = [METHODS.get(name) for name in METHODS]
    width = max(len(m.name) for m in entries)
    stage_width = max(len(", ".join(m.stage_names())) for m in entries) + 2
    return [f"{m.name:<{width}}  {'[' + ', '.join(m.stage_names()) + ']':<{stage_width}}  {m.description}"
            for m in entries]


MAPS_HEADING = "map extractors (--eval.maps NAME on ornet evaluate / ornet localize; docs/maps.md):"


def map_lines() -> list[str]:
    """One line per map extractor: name, description."""
    from ..extractors import EXTRACTORS

    entries = [EXTRACTORS.get(name) for name in EXTRACTORS]
    width = max(len(e.name) for e in entries)
    return [f"{e.name:<{width}}  {e.description}" for e in entries]


def main(argv: list[str], prog: str = "ornet methods") -> int:
    build_parser(prog).parse_args(argv)
    print("\n".join([*lines(), "", MAPS_HEADING, *map_lines()]))
    return 0
