"""Reaching a process: resolve the target, open a session with the injector beside it, pick
the process (asking on a terminal when several could be meant), choose the signal that wakes
a blocked main thread."""

from typing import Callable, List, Optional

from kubectl_wand.engine import bundle
from kubectl_wand.engine.procs import Choice, Proc, choose
from kubectl_wand.engine.session import Session
from kubectl_wand.errors import UsageError, WandError
from kubectl_wand.names import SIGNALS
from kubectl_wand.safe_text import safe



def pick_process(procs: List[Proc], pid: Optional[int],
                 ask: Optional[Callable[[List[Proc]], Proc]] = None,
                 remote_exec: bool = True) -> Choice:
    """choose() plus the interactive fallback; without ``ask`` ambiguity is an error."""
    c = choose(procs, pid, remote_exec)
    if c.proc is not None:
        return c
    if ask is not None:
        p = ask(c.candidates)
        return Choice(p, f"PID {p.pid} as chosen", c.candidates)
    listing = "\n".join(f"  PID {p.pid}: {safe(p.command, 100)}" for p in c.candidates[:50])
    if len(c.candidates) > 50:
        listing += f"\n  … and {len(c.candidates) - 50} more"
    raise UsageError(f"several Python processes could be meant:\n{listing}",
                     "pick one with --pid", code="ambiguous")


def nudge_signal(proc: Proc, choice: str) -> Optional[str]:
    """The signal to wake a blocked main thread: auto = SIGWINCH when the process handles it.

    SIGWINCH is ignored by default, so a process that catches it chose to; gunicorn's workers
    treat it as a no-op. A master (which may act on it) is never nudged automatically.
    """
    choice = (choice or "auto").upper().removeprefix("SIG")
    if choice == "NONE":
        return None
    if choice == "AUTO":
        try:
            caught = int(proc.sigcgt or "0", 16) & (1 << (28 - 1))
        except ValueError:
            caught = 0
        return "SIGWINCH" if caught and proc.role not in ("master", "reloader") else None
    if choice not in SIGNALS:
        raise UsageError(f"--signal {choice} is not allowed",
                         f"choose one of auto, none, {', '.join(SIGNALS)}", code="usage")
    if choice in TERMINATING and not _catches(proc, SIGNUM[choice]):
        raise UsageError(f"PID {proc.pid} does not handle SIG{choice}: its default action "
                         "would terminate the process",
                         "send only a signal the process handles in Python (the blocked-thread "
                         "message lists them), or --signal none", code="would-kill")
    return "SIG" + choice


# Linux numbers; the default action of these ends the process, of WINCH and URG it is nothing
SIGNUM = {"USR1": 10, "USR2": 12, "WINCH": 28, "HUP": 1, "URG": 23, "PWR": 30}
TERMINATING = ("USR1", "USR2", "HUP", "PWR")


def _catches(proc: Proc, signum: int) -> bool:
    try:
        return bool(int(proc.sigcgt or "0", 16) & (1 << (signum - 1)))
    except ValueError:
        return False


def open_session(backend, box, pid=None, ask=None, timeout=60.0, signal="auto",
                 remote_exec=True, debugpy=False, reached=None):
    """A session with a process chosen and the injector switched to its interpreter.

    ``remote_exec=False`` (stacks: memory reads only) also accepts a process whose remote
    debugging is disabled. ``debugpy=True`` (attach) gives stage 1 the helper's cache of
    compiled debugpy trees, so stage 2 can say whether the archive needs shipping.
    ``reached`` (an Event) is set once the injector runs beside the target."""
    if pid is None:
        pid = box.pid  # pid/N names the process itself
    backend.prepare_inject(box)
    s = Session(backend, box, timeout=timeout)
    procs = s.open("inject")
    if reached is not None:
        reached.set()
    try:
        choice = pick_process(procs, pid, ask, remote_exec)
        if choice.proc.blocker_for(remote_exec):
            from kubectl_wand.engine.procs import hint_for

            verb = "attach to" if remote_exec else "read"
            raise WandError(f"cannot {verb} PID {choice.proc.pid}: "
                            f"{choice.proc.blocker_for(remote_exec)}",
                            hint_for(choice.proc, remote_exec), code="not-attachable")
        s.signal = nudge_signal(choice.proc, signal)
        where = backend.cache_dir(box) if debugpy else None
        s.select(choice.proc.pid, **({"cache": where, "cache_key": bundle.archive_key()}
                                     if where else {}))
        if s.stage2.get("python"):
            choice.proc.python = s.stage2["python"]
    except BaseException:
        s.chan.close(timeout=2)
        raise
    s.choice = choice
    return s


def reach(target_text: str, where, pid: Optional[int] = None, ask=None, step=None,
          **session_kw):
    """(box, session): the first box the target names, and a session to its chosen process
    (``open_session``); ``step(text)``, a context manager, shows the slow part."""
    from contextlib import nullcontext

    from kubectl_wand.backends import backend_for
    from kubectl_wand.targets import parse_target

    target = parse_target(target_text)
    backend = backend_for(target, where)
    box = backend.resolve(target)[0]
    with step(f"reaching {box.display}") if step else nullcontext():
        session = open_session(backend, box, pid=pid, ask=ask,
                               **dict({"signal": where.nudge}, **session_kw))
    return box, session
