"""What each evaluation protocol fixes among the settings, known where the config is resolved.

The config is parsed, resolved and saved below `ornet.evaluation`, so the two facts that the
config layer applies (`schema.apply_protocol`) and checks (`parse.validate`) live here, one row
per protocol; the protocol's entry in `ornet.evaluation.protocols.PROTOCOLS` owns everything
else (thresholds, box rule, IoU, model.json, metrics.json) and reads its row here. A test checks
that the rows, the registry and `EvalConfig.protocol`'s values name the same protocols.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class ProtocolSettings:
    """One protocol's row."""

    threshold_split: str | None = None
    """The split that chooses the threshold when the protocol fixes it (None: eval.threshold_split's)."""
    cam_gate: bool = True
    """Whether eval.cam_gate may choose ORNet's class gate under the protocol."""
    title: str = ""
    """How messages name the protocol."""


PROTOCOL_SETTINGS: dict[str, ProtocolSettings] = {
    "wsolevaluation": ProtocolSettings(title="the wsolevaluation protocol"),
    # the release's test_multi_threshold chooses the threshold on test and has no class gate
    "release": ProtocolSettings(threshold_split="test", cam_gate=False, title="the release's protocol"),
}


def protocol_settings(name: str) -> ProtocolSettings:
    """`name`'s row; an unknown name is a one-line error that lists the known ones."""
    if name not in PROTOCOL_SETTINGS:
        raise ConfigError(f"unknown eval.protocol {name!r}; known: {', '.join(sorted(PROTOCOL_SETTINGS))}")
    return PROTOCOL_SETTINGS[name]
