"""Rendering helpers shared by `trace` and `profile` (not a subcommand)."""

from kubectl_wand.engine.fanout import UnitResult
from kubectl_wand.safe_text import safe  # the one sanitizer (issue 13)

__all__ = ["safe", "unit_label", "report_unit"]


def unit_label(r: UnitResult) -> str:
    return f"{r.target} pid {r.pid if r.pid is not None else '?'}"


def report_unit(r: UnitResult, status, quiet: bool, counts, done):
    """One unit's line after a fan-out: skipped, its error (escaped), or ``done(name, notes)``
    where notes lists the non-zero ``counts`` ((key, words) pairs of r.data)."""
    name = unit_label(r)
    if r.skipped:
        status(f"{name}: skipped ({r.skipped})")
    elif r.error is not None:
        status(f"{name}: error: {safe(r.error.message, 4000)}" +
               (f"\nhint: {safe(r.error.hint, 2000)}" if r.error.hint else ""))
    elif not quiet:
        d = r.data
        done(name, "".join(f", {d[k]} {w}" for k, w in counts if d.get(k)))
