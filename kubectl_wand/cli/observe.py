"""Rendering helpers shared by `trace` and `profile` (not a subcommand)."""

import re

from kubectl_wand.engine.fanout import UnitResult

# TODO(issue 13): replace with the shared sanitizer once it lands in kubectl_wand.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def safe(text, limit: int = 2000) -> str:
    """Target text made harmless for a terminal: control characters (ESC, BEL, CR…) shown
    as \\xNN, bounded length. Newlines too: one hit, one line."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + "…"
    s = s.replace("\n", "\\n").replace("\t", " ")
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 256
                        else "\\u%04x" % ord(m.group()), s)


def unit_label(r: UnitResult) -> str:
    return f"{r.target} pid {r.pid if r.pid is not None else '?'}"
