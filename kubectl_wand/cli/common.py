"""Options and helpers shared by the subcommands (rendering lives here, logic in engine)."""

import functools
import os
import sys

import click

from kubectl_wand import log, progress
from kubectl_wand.engine.procs import Proc
from kubectl_wand.options import TargetOptions
from kubectl_wand.safe_text import safe, safe_lines


def kube_options(f):
    """kubectl's own flags, accepted after `wand` (kubectl refuses them before it). With
    target_options above it, the command gets one ``topts: TargetOptions``."""
    @click.option("-n", "--namespace", help="Kubernetes namespace (default: the context's).")
    @click.option("--context", help="kubeconfig context to use.")
    @click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Path to a kubeconfig.")
    @click.option("-v", "--verbose", is_flag=True, help="Print every kubectl/docker call.")
    @functools.wraps(f)
    def wrapper(*args, verbose=False, namespace=None, context=None, kubeconfig=None,
                _target=None, **kw):
        log.VERBOSE = log.VERBOSE or verbose
        kw["topts"] = TargetOptions(namespace=namespace, context=context,
                                    kubeconfig=kubeconfig, **(_target or {}))
        return f(*args, **kw)

    return wrapper


def target_options(f=None, *, short_container=True):
    """Target-selection flags; `exec` keeps -c for code (as python -c), so --container only."""
    if f is None:
        return lambda g: target_options(g, short_container=short_container)
    names = ("-c", "--container") if short_container else ("--container",)

    @click.option(*names, "container", help="Container in the pod (default: the pod's default).")
    @click.option("-l", "--selector", help="Label selector for pods (kubectl -l syntax).")
    @click.option("--pod", help="Use this pod of the workload.")
    @click.option("--pid", type=int, help="PID of the process inside the target.")
    @click.option("--image", help="Helper image (default: the target container's own image).")
    @click.option("--signal", "nudge", default="auto", show_default=True,
                  help="Signal that wakes a main thread blocked in a system call: auto "
                       "(SIGWINCH if the process handles it), none, or USR1/USR2/WINCH/HUP…")
    @functools.wraps(f)
    def wrapper(*args, **kw):
        kw["_target"] = {k: kw.pop(k) for k in ("container", "selector", "pod", "image",
                                                "nudge")}
        return f(*args, **kw)

    return wrapper


def is_tty():
    return sys.stdin.isatty() and sys.stdout.isatty()


def color_ok(stream=None):
    stream = stream or sys.stdout
    return stream.isatty() and not os.environ.get("NO_COLOR")


def ask_process(candidates):
    """Interactive choice among ambiguous processes (only ever called on a TTY)."""
    with progress.suspended():
        return _ask_process(candidates)


def _ask_process(candidates):
    click.echo("Several Python processes could be meant:", err=True)
    for i, p in enumerate(candidates, 1):
        click.echo(f"  [{i}] PID {p.pid:<7} {safe(p.command, 100)}", err=True)
    n = click.prompt("Which one", type=click.IntRange(1, len(candidates)), err=True)
    return candidates[n - 1]


def status(msg):
    """Progress for humans, on stderr, so stdout stays clean for results. Messages quote
    target text (commands, reasons): shown escaped, never as terminal controls."""
    with progress.suspended():  # a spinner line, if any, is cleared first
        click.echo(safe_lines(msg), err=True)


def fmt_rss(kb):
    return f"{kb / 1024:.0f}Mi" if kb >= 1024 else f"{kb}Ki"


def proc_row(p: Proc, wide=False):
    """One table row; every cell that comes from the target is made safe for a terminal."""
    row = [p.pid, p.ppid, safe(p.user or p.uid, 64),
           safe((p.python or "-") + ("t" if p.free_threaded else ""), 32),
           p.role, f"{p.cpu_percent:.1f}", fmt_rss(p.rss_kb),
           "yes" if p.blocker is None else safe(f"no: {p.blocker}", 200)]
    cmd = p.command
    left = wand_threads(p) if wide else None
    if left:
        cmd += "  [left by kubectl-wand: " + ", ".join(left) + "]"
    row.append(safe(cmd, WIDE_COMMAND) if wide else
               (safe(cmd[:60]) + "…" if len(cmd) > 61 else safe(cmd)))
    return row


WIDE_COMMAND = 4096  # characters of a command line in -o wide (the helper sends at most 4 KiB)
# OS thread names are cut at 15 bytes: what each of the agent's threads is
WAND_THREADS = {"kubectl-wand-bg": "exec --detach", "kubectl-wand-ex": "exec",
                "kubectl-wand-lo": "loglevel --for timer", "kubectl-wand-ke": "--keep timer",
                "kubectl-wand-ga": "debugger", "kubectl-wand-at": "attach session"}


def wand_threads(p: Proc):
    """What kubectl-wand runs in the process now, from its threads' names (ps -o wide)."""
    names = (p.extra or {}).get("wand_threads") or []
    out = []
    for n in names:
        what = WAND_THREADS.get(n[:15])
        if what and what not in out:
            out.append(what)
    return out


PROC_HEADERS = ["PID", "PPID", "USER", "PYTHON", "ROLE", "CPU%", "RSS", "ATTACH", "COMMAND"]


def reach(target_text, where: TargetOptions, pid, quiet):
    """The first box TARGET names and a session to its process (on a terminal the user picks
    among several), behind a spinner unless ``quiet``: for the one-process commands."""
    from kubectl_wand.engine import ops  # here: ps, validate and demo load this module too

    return ops.reach(target_text, where, pid, ask_process if is_tty() else None,
                     lambda text: progress.spinner(text, force=False if quiet else None))
