"""`kubectl wand profile TARGET`: sampling profile read from the process's memory."""

import json
import os
import sys
import threading

import click
from tabulate import tabulate

from kubectl_wand.cli.common import ask_process, is_tty, kube_options, status, target_options
from kubectl_wand.cli.fanout import fanout_options
from kubectl_wand.cli.loglevel import parse_duration
from kubectl_wand.cli.observe import report_unit, safe, unit_label
from kubectl_wand.engine import flame, live, profile
from kubectl_wand.engine.fanout import FanOptions
from kubectl_wand.errors import UsageError, WandError


def top_table(stacks, n: int) -> str:
    rows = [[f"{r['self_pct']:.1f}%", r["self"], f"{r['total_pct']:.1f}%", r["total"],
             safe(r["function"], 80), safe(r["file"], 120)] for r in profile.top(stacks, n)]
    return tabulate(rows, headers=["SELF%", "SELF", "TOTAL%", "TOTAL", "FUNCTION", "FILE"],
                    tablefmt="plain", disable_numparse=True)


def write_output(path: str, text: str):
    if path == "-":
        if sys.stdout.isatty():  # names from the target, on a terminal: escaped
            text = "".join(safe(line, 100000) + "\n" for line in text.splitlines())
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise WandError(f"cannot write {path}: {e.strerror}", "check the path",
                        code="write-failed")


@click.command("profile")
@click.argument("target")
@click.option("--duration", default="10s", show_default=True, metavar="DURATION",
              help="How long to sample (e.g. 10s, 1m); Ctrl-C ends it early, keeping the "
                   "samples so far.")
@click.option("--rate", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Samples per second.")
@click.option("--threads", type=click.Choice(["all", "main"]), default="all",
              show_default=True, help="Sample every thread or the main thread only.")
@click.option("--async", "tasks", is_flag=True,
              help="Also sample asyncio tasks' coroutine stacks (under [asyncio tasks]).")
@click.option("--on-cpu", is_flag=True,
              help="Count only threads running on a CPU at the sample (default: wall clock, "
                   "waiting threads too).")
@click.option("--lines", is_flag=True, help="Tell frames apart by line, not only function.")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False),
              help="Write the profile here: .svg = flame graph, .json = speedscope, "
                   "anything else = collapsed stacks; '-' = stdout.")
@click.option("--format", "fmt", type=click.Choice(["svg", "speedscope", "collapsed"]),
              help="Format of -o, whatever its extension.")
@click.option("--split", is_flag=True,
              help="With --all/--all-processes: one root per pod/process instead of merged.")
@click.option("--top", "top_n", type=click.IntRange(0, 1000), default=15, show_default=True,
              help="Rows of the table of functions printed (0: none).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@fanout_options
@target_options
@kube_options
def command(target, duration, rate, threads, tasks, on_cpu, lines, output_path, fmt, split,
            top_n, quiet, pid, all_ready, all_processes, max_parallel, topts):
    """Sample the stacks of a live process for a while, read from its memory by the helper:
    no code runs in it, so it works on a wedged process and with remote debugging disabled.
    Prints the functions seen most (SELF: innermost frame) and writes a flame graph
    (interactive SVG: hover, click to zoom, search), speedscope JSON or collapsed stacks."""
    seconds = parse_duration(duration)
    if seconds > 3600:
        raise UsageError("--duration is limited to 1h", "profile in several runs")
    kind = profile.format_for(output_path, fmt)
    if fmt and not output_path:
        raise UsageError("--format needs -o PATH", "e.g. -o flame.svg")
    fan = FanOptions(target, topts, pid, all_ready, all_processes, max_parallel)
    many = False

    def on_plan(n):
        nonlocal many
        many = n > 1
        if not quiet:
            status(f"Sampling {n} process{'es' if many else ''} at {rate} Hz for "
                   f"{seconds:g}s (from memory; nothing runs in the target); Ctrl-C ends early")

    lock = threading.Lock()
    begun = set()

    def on_progress(res, ev):  # the helper's first report: sampling has begun there
        with lock:
            first = (res.box.id, res.pid) not in begun
            begun.add((res.box.id, res.pid))
        if first and not quiet:
            status(f"{unit_label(res)}: sampling")

    results = live.run_fanned(
        fan, profile.profile_work(seconds, rate, threads, tasks, lines, on_cpu, on_progress),
        on_plan, ask=ask_process if is_tty() else None, remote_exec=False, signal="none")
    with lock:
        for r in results:
            report_unit(r, status, quiet, (
                ("missed", "ticks missed (reader slower than --rate)"),
                ("errors", "unreadable samples")),
                lambda name, note, d=r.data: status(
                    f"{name}: {d.get('samples', 0)} samples{note}"
                    + (" (stopped early)" if d.get("stopped") else "")))
    merged = profile.merge(results, split=split)
    title = (f"{target}: {sum(r.data.get('samples', 0) for r in results if r.ok)} samples at "
             f"{rate} Hz" + (f", {len([r for r in results if r.ok])} processes" if many else ""))
    if output_path and merged:
        if kind == "svg":
            text = flame.svg(merged, title)
        elif kind == "speedscope":
            profiles = [("all processes" if many else target, merged)]
            if many and not split:
                profiles += [(unit_label(r), r.data["profile"]) for r in results
                             if r.ok and r.data.get("profile")]
            text = json.dumps(profile.speedscope(profiles, rate, title))
        else:
            text = profile.collapsed(merged)
        write_output(output_path, text)
        if output_path != "-" and not quiet:
            status(f"wrote {output_path} ({kind})")
    if top_n and merged:
        table = top_table(merged, top_n)
        if output_path == "-":
            status(table)
        else:
            click.echo(table)
    elif not merged and not [r for r in results if not r.ok and not r.skipped]:
        status("no samples (a thread with no Python frame, or --on-cpu with idle threads)")
    if [r for r in results if not r.ok and not r.skipped] or not any(r.ok for r in results):
        raise SystemExit(1)
