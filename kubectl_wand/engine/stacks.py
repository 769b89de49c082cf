"""Thread stacks and asyncio tasks of a live process, read from its memory by the injector in
the target's own interpreter (``_remote_debugging``): nothing runs in the target, nothing is
staged, and remote debugging may be disabled."""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from kubectl_wand.engine.procs import Proc
from kubectl_wand.engine.session import Session, raise_for
from kubectl_wand.errors import WandError
from kubectl_wand.options import TargetOptions


@dataclass
class StacksOptions:
    target: str
    where: TargetOptions = field(default_factory=TargetOptions)
    pid: Optional[int] = None
    tasks: bool = True  # the asyncio task tree too


@dataclass
class Snapshot:
    display: str
    proc: Proc
    reason: str  # why this process (engine/procs.py choose)
    several: bool  # the target holds more than one Python process
    snap: dict  # threads, tasks… as read()


def run(opts: StacksOptions, ask: Optional[Callable[[List[Proc]], Proc]] = None) -> Snapshot:
    """The stacks of the one process the target names; nothing runs in it (no nudge)."""
    from kubectl_wand.engine.ops import reach

    box, session = reach(opts.target, opts.where, opts.pid, ask, signal="none",
                         remote_exec=False)
    try:
        snap = read(session, tasks=opts.tasks)
    finally:
        session.close()
    return Snapshot(box.display, session.choice.proc, session.choice.reason,
                    len([p for p in session.procs if p.python]) > 1, snap)


def read(session: Session, timeout: float = 30.0, tasks: bool = True) -> dict:
    """Ask the injector (already in stage 2 for the chosen process) for a snapshot."""
    session.chan.send({"op": "stacks", "tasks": tasks})
    for ev in session._until("ready", timeout):
        if ev.get("event") == "error":
            raise_for(ev)
        if ev.get("event") == "stacks":
            ev = dict(ev)
            ev.pop("event", None)
            for t in ev.get("threads") or []:
                t["complete"] = complete(t)
            return ev
    raise WandError("the injector did not report the stacks", "retry with -v",
                    code="no-result")


OUTERMOST = ("<module>", "Thread._bootstrap", "_bootstrap", "_run_module_as_main")


def complete(thread: dict) -> bool:
    """Whether the stack reaches the thread's first frame. CPython 3.14's RemoteUnwinder stops
    at the first Python function called from C code (a callback run by a C function, uvloop,
    ``Context.run``…), so the outer part of a stack may be missing: say so, never guess."""
    frames = thread.get("frames") or []
    return bool(frames) and frames[-1][2] in OUTERMOST


def task_tree(tasks: List[dict]) -> List[dict]:
    """Roots of the await graph, each {task, children: [...]}; a task awaited by several
    others appears under each of them (marked ``again`` after the first)."""
    by_id = {t["id"]: t for t in tasks}
    children: Dict[int, List[dict]] = {}
    for t in tasks:
        for w in t.get("awaited_by") or []:
            if w.get("task") in by_id:
                children.setdefault(w["task"], []).append(t)
    roots = [t for t in tasks
             if not any(w.get("task") in by_id for w in t.get("awaited_by") or [])]
    if not roots and tasks:  # only cycles: start anywhere rather than show nothing
        roots = [tasks[0]]
    shown = set()

    def node(t, path):
        again = t["id"] in shown
        shown.add(t["id"])
        kids = [] if (again or t["id"] in path) else [
            node(c, path | {t["id"]}) for c in children.get(t["id"], [])]
        return {"task": t, "children": kids, "again": again}

    return [node(r, frozenset()) for r in roots]


def main_thread(snapshot: dict) -> Optional[dict]:
    return next((t for t in snapshot.get("threads", []) if t.get("main")), None)
