"""Seeds that depend on position, not history (docs/training.md, "Resuming gives the uninterrupted result")."""

from __future__ import annotations

import hashlib

SEED_MASK = (1 << 63) - 1


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any mix of ints and strings (stable across processes and platforms)."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & SEED_MASK
