"""The operations behind the subcommands: open a target, pick a process, exec, attach."""

import os
import posixpath
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from kubectl_wand.engine import bundle
from kubectl_wand.engine.procs import Choice, Proc, choose
from kubectl_wand.engine.session import CLOSED, Session
from kubectl_wand.errors import WandError

MAX_SCRIPT_BYTES = 4 * 1024 * 1024


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
    listing = "\n".join(f"  PID {p.pid}: {p.command[:100]}" for p in c.candidates)
    raise WandError(f"several Python processes could be meant:\n{listing}",
                    "pick one with --pid", code="ambiguous", exit_code=2)


SIGNALS = ("USR1", "USR2", "WINCH", "HUP", "URG", "PWR")


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
        raise WandError(f"--signal {choice} is not allowed",
                        f"choose one of auto, none, {', '.join(SIGNALS)}", code="usage",
                        exit_code=2)
    return "SIG" + choice


def open_session(backend, box, pid=None, ask=None, timeout=60.0, signal="auto",
                 remote_exec=True):
    """A session with a process chosen and the injector switched to its interpreter.

    ``remote_exec=False`` (stacks: memory reads only) also accepts a process whose remote
    debugging is disabled."""
    if pid is None:
        pid = box.extra.get("pid")  # pid/N names the process itself
    backend.prepare_inject(box)
    s = Session(backend, box, timeout=timeout)
    procs = s.open("inject")
    try:
        choice = pick_process(procs, pid, ask, remote_exec)
        if choice.proc.blocker_for(remote_exec):
            from kubectl_wand.engine.procs import hint_for

            raise WandError(f"cannot attach to PID {choice.proc.pid}: "
                            f"{choice.proc.blocker_for(remote_exec)}",
                            hint_for(choice.proc), code="not-attachable")
        s.signal = nudge_signal(choice.proc, signal)
        s.select(choice.proc.pid)
    except BaseException:
        s.chan.close(timeout=2)
        raise
    s.choice = choice
    return s


def read_script(path: str) -> bytes:
    """A user script for exec -f, refused early when it cannot work."""
    if path == "-":
        import sys

        data = sys.stdin.buffer.read(MAX_SCRIPT_BYTES + 1)
    else:
        if os.path.isdir(path):
            raise WandError(f"{path} is a directory, not a script", code="bad-script",
                            exit_code=2)
        try:
            size = os.path.getsize(path)
            if size > MAX_SCRIPT_BYTES:
                raise WandError(f"{path} is {size} bytes; scripts are limited to "
                                f"{MAX_SCRIPT_BYTES // 1024 // 1024} MiB",
                                "ship data separately and load it from the script",
                                code="too-large", exit_code=2)
            with open(path, "rb") as f:
                data = f.read(MAX_SCRIPT_BYTES + 1)  # /dev/zero or a FIFO reports size 0
        except OSError as e:
            raise WandError(f"cannot read {path}: {e.strerror}", code="bad-script", exit_code=2)
    if len(data) > MAX_SCRIPT_BYTES:
        raise WandError("script too large", code="too-large", exit_code=2)
    if b"\0" in data:
        raise WandError(f"{path} looks binary (it contains NUL bytes), not Python source",
                        code="bad-script", exit_code=2)
    return data


@dataclass
class ExecResult:
    status: Optional[int]
    traceback: Optional[str] = None
    truncated: bool = False
    timed_out: bool = False
    seconds: float = 0.0
    events: List[dict] = field(default_factory=list)


def run_code(session: Session, source: bytes, filename: str, timeout: Optional[float],
             on_output: Callable[[str, str], None], max_output: int = 8 << 20,
             ack_timeout: float = 5.0) -> ExecResult:
    def on_event(ev):
        if ev.get("event") == "output":
            on_output(ev.get("stream", "stdout"), ev.get("data", ""))

    events = session.request("exec", {"filename": filename, "max_output": max_output},
                             blobs=[("code", source)], timeout=timeout, on_event=on_event,
                             ack_timeout=ack_timeout)
    res = ExecResult(status=None, events=events)
    for ev in events:
        if ev.get("event") == "result":
            res.status, res.traceback = ev.get("status"), ev.get("traceback")
            res.truncated, res.seconds = ev.get("truncated", False), ev.get("seconds", 0.0)
        elif ev.get("event") == "timeout":
            res.timed_out = True
    return res


def remote_root(proc: Proc) -> str:
    """Where the app's source lives in the target, for the editor's pathMappings."""
    cwd = proc.cwd or "/"
    args = proc.argv[1:]
    while args:
        a = args.pop(0)
        if a in ("-m", "-c"):
            break
        if a in ("-X", "-W"):
            args[:1] = []
            continue
        if a.startswith("-"):
            continue
        if a.endswith(".py"):
            return posixpath.dirname(posixpath.normpath(posixpath.join(cwd, a)))
        break
    for i, a in enumerate(proc.argv):
        if a == "--chdir" and i + 1 < len(proc.argv):
            return posixpath.normpath(posixpath.join(cwd, proc.argv[i + 1]))
    return cwd


class Attachment:
    """debugpy listening inside the target, for as long as this object lives."""

    def __init__(self, session: Session, port: int = 5679, keep: bool = False,
                 wait_for_client: bool = False, ack_timeout: float = 5.0):
        self.session, self.port, self.keep = session, port, keep
        self.wait_for_client, self.ack_timeout = wait_for_client, ack_timeout
        self.listening: Optional[dict] = None

    def start(self) -> dict:
        events = self.session.request(
            "attach", {"port": self.port, "wait_for_client": self.wait_for_client},
            blobs=[("debugpy.tgz", bundle.debugpy_tgz())], keep=self.keep,
            ack_timeout=self.ack_timeout)
        for ev in events:
            if ev.get("event") == "listening":
                self.listening = ev
                return ev
            if ev.get("event") == "error":
                raise WandError(ev.get("message"), ev.get("hint"), code=ev.get("code"))
        raise WandError("the debugger did not report that it is listening",
                        "see the target's stderr for a traceback", code="listen-failed")

    def wait(self, poll: float = 0.5) -> dict:
        """The injector's next unsolicited event (target exit, closed), or idle after ``poll``."""
        import queue

        try:
            ev = self.session.chan.events.get(timeout=poll)
        except queue.Empty:
            return {"event": "idle"}
        return ev if ev is not CLOSED else {"event": "closed"}

    def detach(self) -> Optional[dict]:
        if self.keep:
            self.session.chan.send({"op": "leave"})
            self.session.chan.close()
            return None
        # Bounded: a user pressing Ctrl-C wants out, even if the pod is unreachable.
        self.session.timeout = min(self.session.timeout, 15.0)
        events = self.session.request("detach", {}, final=True)
        self.session.chan.close()
        return next((e for e in events if e.get("event") == "detached"), None)
