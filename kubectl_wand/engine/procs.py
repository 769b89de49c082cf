"""The process table: roles, attachability, and which process to pick. Pure functions."""

import os
import shlex
from dataclasses import dataclass, field
from typing import List, Optional

from kubectl_wand.errors import WandError

MIN_PYTHON = (3, 14)
SERVERS = ("uvicorn", "gunicorn", "hypercorn", "celery", "flask", "django", "manage.py", "daphne")


@dataclass
class Proc:
    """One process as the injector reported it (see payload/injector.py ``proc_info``)."""

    pid: int
    ppid: int
    uid: int
    argv: List[str]
    python: Optional[str] = None
    free_threaded: bool = False
    remote_debug: Optional[bool] = True
    remote_debug_off_by: Optional[str] = None
    readable: bool = True
    state: str = "S"
    user: Optional[str] = None
    cpu_percent: float = 0.0
    rss_kb: int = 0
    threads: int = 1
    cwd: Optional[str] = None
    exe: Optional[str] = None
    name: str = ""
    sigcgt: str = "0"
    role: str = "main"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, d):
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "extra"}
        p = cls(**known)
        p.extra = {k: v for k, v in d.items() if k not in cls.__dataclass_fields__}
        return p

    @property
    def command(self):
        return shlex.join(self.argv) if self.argv else f"[{self.name}]"

    @property
    def version_tuple(self):
        try:
            return tuple(int(x) for x in (self.python or "").split(".")[:2])
        except ValueError:
            return ()

    @property
    def blocker(self) -> Optional[str]:
        """Why this process cannot be attached, or None."""
        return self.blocker_for(remote_exec=True)

    def blocker_for(self, remote_exec: bool = True) -> Optional[str]:
        """Why this process cannot be worked on, or None. ``remote_exec=False``: only memory
        is read (stacks), which works with remote debugging disabled."""
        if self.state == "Z":
            return "zombie"
        if not self.readable:
            return "no ptrace permission"
        if self.python is None:
            why = self.extra.get("not_python")
            return f"not Python ({why})" if why else "not Python"
        if self.version_tuple < MIN_PYTHON:
            return f"Python {self.python} < 3.14"
        for key in ("inject_blocker", "helper_blocker"):
            if self.extra.get(key):
                return str(self.extra[key])
        if self.remote_debug is False and remote_exec:
            return f"remote debugging disabled ({self.remote_debug_off_by})"
        return None

    def to_json(self):
        return {
            "pid": self.pid, "ppid": self.ppid, "uid": self.uid, "user": self.user,
            "python": self.python, "free_threaded": self.free_threaded, "role": self.role,
            "cpu_percent": self.cpu_percent, "rss_kb": self.rss_kb, "threads": self.threads,
            "cwd": self.cwd, "exe": self.exe, "argv": self.argv,
            "attachable": self.blocker is None, "reason": self.blocker,
            **({"argv_cut": self.extra["argv_cut"]} if self.extra.get("argv_cut") else {}),
        }


def _tool(argv):
    """The program a Python process runs: 'uvicorn' for `python -m uvicorn` or bin/uvicorn."""
    args = list(argv[1:])
    while args:
        a = args.pop(0)
        if a == "-m" and args:
            return args[0].split(".")[0]
        if a in ("-c",):
            return "-c"
        if a.startswith("-m") and len(a) > 2:
            return a[2:].split(".")[0]
        if a in ("-X", "-W", "-Q"):
            args[:1] = []
            continue
        if a.startswith("-"):
            continue
        return os.path.basename(a)
    return os.path.basename(argv[0]) if argv else ""


def _is_mp_child(argv):
    text = " ".join(argv)
    return "multiprocessing.spawn" in text or "multiprocessing.forkserver" in text


def _is_mp_helper(argv):
    text = " ".join(argv)
    return "resource_tracker" in text or "semaphore_tracker" in text


def assign_roles(procs: List[Proc]) -> List[Proc]:
    """Label reloaders, masters and workers from the process tree and command lines."""
    by_pid = {p.pid: p for p in procs}
    kids = {}
    for p in procs:
        if p.python:
            kids.setdefault(p.ppid, []).append(p)
    for p in procs:
        tool = _tool(p.argv)
        parent = by_pid.get(p.ppid)
        forked = parent is not None and parent.python and (
            _is_mp_child(p.argv) or (_tool(parent.argv) == tool and tool in SERVERS))
        if _is_mp_helper(p.argv):
            p.role = "helper"
        elif p.extra.get("werkzeug_child") or forked:
            p.role = "worker"
        elif p.pid in kids and ("--reload" in p.argv or tool in ("flask", "manage.py")):
            p.role = "reloader"
        elif p.pid in kids and tool in SERVERS:
            p.role = "master"
        else:
            p.role = "main"
    return procs


def attachable(procs: List[Proc], remote_exec: bool = True) -> List[Proc]:
    return [p for p in procs if p.blocker_for(remote_exec) is None]


@dataclass
class Choice:
    proc: Optional[Proc]
    reason: str
    candidates: List[Proc]


def choose(procs: List[Proc], pid: Optional[int] = None, remote_exec: bool = True) -> Choice:
    """Pick the process to act on; ``proc`` is None when the choice is ambiguous."""
    if pid is not None:
        match = [p for p in procs if p.pid == pid]
        if not match:
            raise WandError(f"no Python process with PID {pid} in the target",
                            "`kubectl wand ps` lists the Python processes and their PIDs",
                            code="no-such-process")
        return Choice(match[0], f"PID {pid} as asked", match)
    pythons = [p for p in procs if p.python]
    if not pythons:
        raise WandError("no Python process found in the target",
                        "is the app running? `kubectl wand ps` shows what is there",
                        code="no-python")
    ok = attachable(pythons, remote_exec)
    if not ok:
        reasons = "; ".join(f"PID {p.pid}: {p.blocker_for(remote_exec)}" for p in pythons)
        raise WandError(f"no attachable Python process in the target ({reasons})",
                        hint_for(pythons[0], remote_exec), code="not-attachable")
    workers = [p for p in ok if p.role == "worker"]
    mains = [p for p in ok if p.role == "main"]
    if workers:
        pick = min(workers, key=lambda p: p.pid)
        others = len(workers) - 1
        why = f"a worker (PID {pick.pid})"
        parent = next((p for p in procs if p.pid == pick.ppid), None)
        if parent and parent.role in ("reloader", "master"):
            why += f", not the {parent.role} (PID {parent.pid})"
        if others:
            why += f"; {others} other worker(s): --pid chooses another"
        return Choice(pick, why, workers)
    if len(mains) == 1:
        return Choice(mains[0], f"the only application process (PID {mains[0].pid})", mains)
    if not mains:
        pick = min(ok, key=lambda p: p.pid)
        return Choice(pick, f"PID {pick.pid} ({pick.role})", ok)
    return Choice(None, "several Python processes", mains)


def hint_for(p: Proc, remote_exec: bool = True) -> Optional[str]:
    b = p.blocker_for(remote_exec) or ""
    if b.startswith("Python"):
        if not remote_exec:
            return ("stacks are read from memory with CPython 3.14's reader, which understands "
                    "only 3.14 processes; upgrade the app's interpreter")
        return ("sys.remote_exec needs CPython 3.14 or newer in the target; "
                "upgrade the app's interpreter to attach")
    if b.startswith("remote debugging disabled"):
        return ("restart the app without PYTHON_DISABLE_REMOTE_DEBUG / -X disable-remote-debug "
                "to allow attaching")
    if b == "no ptrace permission":
        return "the helper needs CAP_SYS_PTRACE over the target's user"
    if b == "zombie":
        return ("the process has exited and only waits for its parent to reap it; pick a live "
                "process (`kubectl wand ps` lists them)")
    if b.startswith("not Python"):
        return "`kubectl wand ps` lists the Python processes and their PIDs"
    if "helper" in b and "Python" in b:
        return ("pass --image with an image that has the target's Python version (the helper "
                "runs its own interpreter, never the target's)")
    return None
