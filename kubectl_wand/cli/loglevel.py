"""`kubectl wand loglevel TARGET LEVEL`: set loggers' levels in the live process, see the
previous ones, and optionally have them reverted inside the process after a while."""

import re
from typing import Optional

import click

from kubectl_wand.cli.common import kube_options, status, target_options
from kubectl_wand.cli.fanout import fanout_options
from kubectl_wand.errors import UsageError
from kubectl_wand.names import LEVELS
from kubectl_wand.safe_text import safe

MAX_SECONDS = 7 * 24 * 3600
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
UNIT = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def parse_level(text: str) -> int:
    """DEBUG/INFO/WARNING/ERROR/CRITICAL (any case) or a non-negative integer."""
    t = (text or "").strip()
    if t.upper() in LEVELS:
        return LEVELS[t.upper()]
    if t.isascii() and t.isdigit() and len(t) <= 4:
        return int(t)
    raise UsageError(f"invalid log level {text!r}",
                     "use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number such as 15")


def parse_duration(text: Optional[str]) -> Optional[float]:
    """'10m', '2s', '1h30m', '500ms', '90' (seconds) → seconds."""
    if text is None:
        return None
    t = text.strip().lower()
    pos, total = 0, 0.0
    for m in DURATION.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * UNIT[m.group(2)]
        pos = m.end()
    if not t or pos != len(t) or total <= 0:
        raise UsageError(f"invalid duration {text!r} for --for",
                         "e.g. --for 10m, --for 30s, --for 1h30m")
    if total > MAX_SECONDS:
        raise UsageError(f"--for {text} is longer than 7 days", "set the level without --for")
    return total


def check_logger(name: str) -> str:
    if not name or len(name) > 200 or not name.isprintable():
        raise UsageError(f"invalid logger name {name!r}",
                         "logger names are dotted module paths such as uvicorn.access")
    return name


def fmt_seconds(s: float) -> str:
    if s >= 3600 and s % 3600 == 0:
        return f"{s / 3600:g}h"
    if s >= 60 and s % 60 == 0:
        return f"{s / 60:g}m"
    return f"{s:g}s"


def describe(r) -> str:
    lines = []
    for item in r.data.get("loggers") or []:
        if not isinstance(item, dict) or not isinstance(item.get("reverts_in") or 0,
                                                        (int, float)):
            continue  # not what the agent sends: the target made it up
        # level names and handler descriptions come from the target's logging: escaped
        prev = safe(item.get("previous"), 100)
        if item.get("previous") != item.get("previous_effective"):
            prev += f" (effective {safe(item.get('previous_effective'), 100)})"
        line = f"  {safe(item.get('logger'), 200)}: {prev} -> {safe(item.get('level'), 100)}"
        if item.get("reverts_in"):
            line += (f" (reverts to {safe(item.get('reverts_to'), 100)} in "
                     f"{safe(fmt_seconds(item.get('reverts_in')), 40)})")
        if item.get("replaced_revert"):
            line += (f"; replaced a pending revert to {safe(item.get('replaced_revert'), 100)}"
                     if item.get("reverts_in") else
                     f"; cancelled a pending revert to {safe(item.get('replaced_revert'), 100)}")
        lines.append(line)
        if not item.get("existed"):
            lines.append(f"    note: logger {safe(repr(item.get('logger')), 200)} did not exist "
                         "yet (created)")
        notes = item.get("filtered_by")
        for why in (notes if isinstance(notes, list) else [])[:20]:
            lines.append(f"    note: {safe(why, 500)}")
    return "\n".join(lines) + "\n"


@click.command("loglevel")
@click.argument("target")
@click.argument("level")
@click.option("--logger", "loggers", multiple=True,
              help="Logger to change (repeatable; default: the root logger).")
@click.option("--for", "for_", metavar="DURATION",
              help="Revert to the previous level after this long (e.g. 10m), inside the process.")
@click.option("--ack-timeout", type=float, default=5.0, show_default=True,
              help="Seconds for the target's main thread to pick up the injection.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@fanout_options
@target_options(short_container=False)
@kube_options
def command(target, level, loggers, for_, ack_timeout, output, quiet, pid, all_ready,
            all_processes, max_parallel, topts):
    """Set LEVEL (DEBUG, INFO, WARNING, ERROR, CRITICAL or a number) on loggers in a live
    process; prints the previous levels. --for reverts them automatically, inside the process
    (a later loglevel call cancels or replaces a pending revert)."""
    from kubectl_wand.cli import fanout as render
    from kubectl_wand.engine import fanout

    fan = fanout.FanOptions(target, topts, pid, all_ready, all_processes, max_parallel)
    work = fanout.loglevel_work(parse_level(level), [check_logger(n) for n in loggers] or
                                ["root"], parse_duration(for_), ack_timeout)

    def on_plan(n):
        if not quiet and output == "text" and n > 1:
            what = "process(es)" if all_processes else "target(s)"
            status(f"Setting log levels in {n} {what}, at most {max_parallel} at a time")

    render.finish(fanout.run_fanned(fan, work, on_plan), output, body=describe)
