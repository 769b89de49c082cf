"""Rendering shared by the fan-out commands (`exec --all`, `loglevel`): one group per target
and process, then a summary line. Not a subcommand."""

import functools
import json
import sys
from typing import Callable, List

import click

from kubectl_wand.engine import fanout
from kubectl_wand.engine.fanout import UnitResult
from kubectl_wand.safe_text import StreamFilter, safe, safe_lines


def fanout_options(f):
    @click.option("--all", "all_ready", is_flag=True,
                  help="Every ready replica (Kubernetes: every ready pod of the target).")
    @click.option("--all-processes", is_flag=True,
                  help="Every attachable Python process in each pod/container.")
    @click.option("--max-parallel", type=click.IntRange(1, 64),
                  default=fanout.DEFAULT_MAX_PARALLEL, show_default=True,
                  help="How many targets to work on at once.")
    @functools.wraps(f)
    def wrapper(*args, **kw):
        return f(*args, **kw)

    return wrapper


def label(r: UnitResult) -> str:
    return f"{safe(r.target, 253)} pid {r.pid if r.pid is not None else '?'}"


def headline(r: UnitResult) -> str:
    if r.skipped:
        return f"=== {label(r)}: skipped ({safe(r.skipped, 300)})"
    if r.error is not None and r.status is None:
        return f"=== {label(r)}: ✗ error ({r.seconds:.2f}s)"
    if r.timed_out:
        return f"=== {label(r)}: ✗ timed out, {r.stop or 'still running'} ({r.seconds:.2f}s)"
    mark = "✓" if r.ok else "✗"
    word = f"status {r.status}" if r.status is not None else ("ok" if r.ok else "failed")
    return f"=== {label(r)}: {mark} {word} ({r.seconds:.2f}s)"


def _block(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def _terminal(out) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def render_text(results: List[UnitResult], body: Callable[[UnitResult], str] = None,
                out=None, raw: bool = False):
    """Groups in unit order, then the summary; everything on stdout (one stream, in order).
    On a terminal the code's output keeps its colours but no other control sequence (unless
    ``raw``): it must not retitle, clear or overwrite what the operator reads."""
    out = out or sys.stdout
    tty = _terminal(out) and not raw

    def shown(text):
        if not tty or not text:
            return text
        f = StreamFilter()
        return f.feed(text) + f.flush()

    for r in results:
        out.write(headline(r) + "\n")
        if r.error is not None:
            out.write(f"error: {safe_lines(r.error.message)}\n")
            if r.error.hint:
                out.write(f"hint: {safe_lines(r.error.hint)}\n")
        if body is not None and r.ok:
            out.write(_block(body(r)))
        out.write(_block(shown(r.stdout)))
        if r.stderr:
            out.write("--- stderr\n" + _block(shown(r.stderr)))
        if r.traceback:
            out.write(_block(shown(r.traceback)))
        if r.truncated:
            out.write("[kubectl-wand] output truncated (--max-output)\n")
    out.write(summary_line(results) + "\n")
    out.flush()


def summary_line(results: List[UnitResult]) -> str:
    s = fanout.summary(results)
    boxes = len({r.box.id for r in results})
    what = (f"{s['total']} target{'s' if s['total'] != 1 else ''}" if boxes == s["total"] else
            f"{s['total']} processes in {boxes} target{'s' if boxes != 1 else ''}")
    line = f"{what}: {s['succeeded']} succeeded, {s['failed']} failed"
    if s["skipped"]:
        line += f", {s['skipped']} skipped"
    failed = [label(r) for r in results if not r.ok and not r.skipped]
    if failed:
        line += " (" + ", ".join(failed[:5]) + (", …" if len(failed) > 5 else "") + ")"
    return line


def render_json(results: List[UnitResult]):
    click.echo(json.dumps({"results": [r.to_json() for r in results],
                           "summary": fanout.summary(results)}, indent=2))


def exit_status(results: List[UnitResult]) -> int:
    s = fanout.summary(results)
    return 1 if s["failed"] or not s["succeeded"] else 0


def finish(results: List[UnitResult], output: str, **text):
    """Shows the results (``-o json``, or text with ``render_text``'s options ``text``) and
    exits with their status."""
    if output == "json":
        render_json(results)
    else:
        render_text(results, **text)
    raise SystemExit(exit_status(results))
