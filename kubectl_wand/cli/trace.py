"""`kubectl wand trace TARGET FILE:LINE [FILE:LINE…] [EXPR…]`: non-stopping logpoints."""

import json
import sys
import threading
import time

import click

from kubectl_wand.cli.common import ask_process, is_tty, kube_options, status, target_options
from kubectl_wand.cli.fanout import fanout_options
from kubectl_wand.cli.loglevel import parse_duration
from kubectl_wand.cli.observe import report_unit, safe, unit_label
from kubectl_wand.engine import live, trace
from kubectl_wand.engine.fanout import FanOptions
from kubectl_wand.errors import UsageError


def hit_line(label: str, ev: dict) -> str:
    t = time.strftime("%H:%M:%S", time.localtime(ev.get("time") or 0))
    ms = int(((ev.get("time") or 0) % 1) * 1000)
    at = safe(ev.get("at", "?"), 300).rsplit("/", 1)[-1]
    vals = " ".join(f"{safe(k, 200)}={safe(v, 1000) if v is not None else '<error>'}"
                    for k, v in ev.get("values") or [])
    who = f"{label} " if label else ""
    return f"{t}.{ms:03d} {who}[{safe(ev.get('thread', '?'), 100)}] {at}" + (
        f" {vals}" if vals else "")


@click.command("trace")
@click.argument("target")
@click.argument("args", nargs=-1, required=True, metavar="FILE:LINE... [EXPR]...")
@click.option("--where", "where", metavar="COND",
              help="Report a hit only when this expression is true in the frame.")
@click.option("--for", "for_", metavar="DURATION", default="10m", show_default=True,
              help="Remove the trace after this long (e.g. 30s, 5m, 1h; 0 = until Ctrl-C).")
@click.option("--max-hits", type=click.IntRange(1, 10_000_000),
              help="Remove the trace after this many reported hits.")
@click.option("--rate", "rate", metavar="N/s", default="10/s", show_default=True,
              help="Most hits reported per second per process; more are dropped and counted.")
@click.option("--ack-timeout", type=float, default=5.0, show_default=True,
              help="Seconds for the target's main thread to pick up the injection.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              help="json: one JSON object per line (hits, errors, the end of each trace).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@fanout_options
@target_options(short_container=False)
@kube_options
def command(target, args, where, for_, max_hits, rate, ack_timeout, output, quiet, pid,
            all_ready, all_processes, max_parallel, topts):
    """Non-stopping logpoints: each time FILE:LINE runs, evaluate the expressions (EXPR…) in
    that frame and print their values, with time, process and thread; nothing stops.

    \b
    e.g. kubectl wand trace deploy/app app/views.py:42 'request.path' 'user.id'
         kubectl wand trace deploy/app shop/cart.py:88 'total' --where 'total > 1000' --all

    FILE is matched by its end against the files the process has loaded (like pathMappings);
    several FILE:LINE may be given. The trace lives in sys.monitoring (its own tool id, LINE
    events on the traced functions only) until --for, --max-hits or Ctrl-C, then nothing of
    it stays registered. An expression that fails is reported once, not per hit.
    """
    locations, exprs = trace.split_args(list(args))
    seconds = None if (for_ or "").strip() in ("0", "") else parse_duration(for_)
    per_second = trace.parse_rate(rate)
    if where is not None:
        trace.split_args(["x.py:1", where])  # checks that it compiles
    fan = FanOptions(target, topts, pid, all_ready, all_processes, max_parallel)
    many = False
    lock = threading.Lock()
    out = sys.stdout

    def on_plan(n):
        nonlocal many
        many = n > 1

    def on_event(res, ev):
        kind = ev.get("event")
        label = unit_label(res) if many else ""
        with lock:
            if output == "json":
                rec = {"target": res.target, "pid": res.pid, **ev}
                out.write(json.dumps(rec) + "\n")
                out.flush()
                return
            if kind == "hit":
                out.write(hit_line(label, ev) + "\n")
                out.flush()
            elif kind == "tracing" and not quiet:
                where_ = ", ".join(f"{safe(loc['file'], 300)}:{loc['line']} in "
                                   f"{safe(', '.join(loc.get('functions') or []), 300)}"
                                   for loc in ev.get("locations") or [])
                status(f"{label + ': ' if label else ''}tracing {where_} "
                       f"(sys.monitoring tool id {ev.get('tool_id')}); Ctrl-C to stop")
            elif kind == "trace-error":
                status(f"{label + ': ' if label else ''}error at {safe(ev.get('at'), 300)}: "
                       f"{safe(ev.get('expr'), 300)} raised {safe(ev.get('error'), 500)} "
                       "(reported once; counted afterwards)")

    results = live.run_fanned(fan, trace.trace_work(locations, exprs, where, per_second,
                                                    max_hits, seconds, ack_timeout, on_event),
                              on_plan, ask=ask_process if is_tty() else None)
    failed = [r for r in results if not r.ok and not r.skipped]
    if output == "json":
        for r in results:
            out.write(json.dumps({"event": "summary", **r.to_json()}) + "\n")
    else:
        for r in results:
            report_unit(r, status, quiet, (
                ("dropped", "dropped by --rate"), ("lost", "lost (queue full)"),
                ("errors", "expression errors")),
                lambda name, extra, d=r.data: status(
                    f"{name + ': ' if many else ''}trace removed ({_why(d.get('ended'))}): "
                    f"{d.get('hits', 0)} hit(s){extra}"))
    if failed:  # an expression the target's Python cannot compile is a usage error
        raise SystemExit(2 if all(r.error is not None and r.error.code == "bad-expression"
                                  for r in failed) else 1)
    if not results:
        raise UsageError("nothing to trace", "`kubectl wand ps` shows what is there")


def _why(reason):
    return {"for": "--for elapsed", "max-hits": "--max-hits reached",
            "stopped": "stopped"}.get(reason, reason or "ended")
