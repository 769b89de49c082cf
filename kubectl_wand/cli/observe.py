"""Rendering helpers shared by `trace` and `profile` (not a subcommand)."""

from kubectl_wand.engine.fanout import UnitResult
from kubectl_wand.safe_text import safe  # the one sanitizer (issue 13)

__all__ = ["safe", "unit_label"]


def unit_label(r: UnitResult) -> str:
    return f"{r.target} pid {r.pid if r.pid is not None else '?'}"
