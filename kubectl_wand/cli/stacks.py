"""`kubectl wand stacks TARGET`: every thread's Python stack and the asyncio task tree, read
from the process's memory without running code in it."""

import json
from typing import List

import click

from kubectl_wand.cli.common import ask_process, is_tty, kube_options, status, target_options
from kubectl_wand.engine import stacks
from kubectl_wand.safe_text import safe


def short(path: str) -> str:
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    if "/lib/python3" in path:
        return path.split("/lib/", 1)[1]
    return path


def frame_lines(frames: List[list], indent: str = "    ") -> List[str]:
    """Frames come innermost first; shown as a traceback is (most recent call last)."""
    return [f'{indent}File "{safe(f, 300)}", line {safe(ln, 12)}, in {safe(fn, 200)}'
            for f, ln, fn in reversed(frames)]


def where(frames: List[list]) -> str:
    if not frames:
        return "(no Python frame)"
    path = [f"{safe(fn, 200)} ({safe(short(f), 300)}:{safe(ln, 12)})"
            for f, ln, fn in reversed(frames)]
    return " -> ".join(path[-3:]) if len(path) <= 3 else "… -> " + " -> ".join(path[-3:])


def render(snap: dict, display: str, command: str) -> str:
    threads = snap.get("threads") or []
    # every name, path and command below comes from the target's memory: shown escaped
    out = [f"PID {snap['pid']} in {safe(display)}: {safe(command, 300)}",
           f"{len(threads)} thread{'s' if len(threads) != 1 else ''} (most recent call last)"]
    for t in threads:
        bits = []
        if t.get("main"):
            bits.append("main thread")
        if t.get("state"):
            bits.append(f"state {safe(t['state'], 16)}")
        if t.get("wchan"):
            bits.append(f"waiting in the kernel: {safe(t['wchan'], 64)}")
        name = f' "{safe(t["name"], 100)}"' if t.get("name") else ""
        out.append("")
        out.append(f"Thread {safe(t['tid'], 20)}{name}" + (f" ({', '.join(bits)})" if bits else ""))
        if t.get("frames") and not t.get("complete", True):
            out.append("    … (outer frames not shown: the stack reader stops at a call "
                       "from C code)")
        out += frame_lines(t.get("frames") or []) or ["    (no Python frame)"]
    tasks = snap.get("tasks")
    out.append("")
    if tasks:
        out.append(f"asyncio tasks ({len(tasks)}):")

        def walk(node, prefix, last):
            t = node["task"]
            out.append(f"{prefix}{'└── ' if last else '├── '}{safe(t['name'], 100)}: "
                       f"{where(t.get('frames') or [])}"
                       + (" (shown above)" if node["again"] else ""))
            kids = node["children"]
            for i, k in enumerate(kids):
                walk(k, prefix + ("    " if last else "│   "), i == len(kids) - 1)

        roots = stacks.task_tree(tasks)
        for i, r in enumerate(roots):
            walk(r, "  ", i == len(roots) - 1)
    elif tasks == []:
        out.append("asyncio tasks: none")
    else:
        out.append(f"asyncio tasks: {safe(snap.get('tasks_note') or 'unavailable', 300)}")
    return "\n".join(out)


@click.command("stacks")
@click.argument("target")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@click.option("--no-tasks", is_flag=True, help="Threads only; skip the asyncio task tree.")
@target_options
@kube_options
def command(target, output, no_tasks, pid, topts):
    """Every thread's Python stack and the asyncio task tree of a live process, read from its
    memory: no code runs in it, so it works on a wedged process and with remote debugging
    disabled. Thread names are the OS's (Python 3.14 sets them from threading's names)."""
    got = stacks.run(stacks.StacksOptions(target, topts, pid, tasks=not no_tasks),
                     ask=ask_process if is_tty() else None)
    proc = got.proc
    if output == "json":
        click.echo(json.dumps({"target": got.display, "python": proc.python,
                               "command": proc.argv, **got.snap, "pid": proc.pid}, indent=2))
        return
    if got.several:
        status(f"{got.display}: {got.reason}")
    click.echo(render(dict(got.snap, pid=proc.pid), got.display, proc.command))
