"""The code `exec` runs: read from a file or stdin (bounded), refused when it would end the
target process, run in a session's process with its output streamed back, and its result
(stopped on --timeout or Ctrl-C in the target, or blocked in a named C call)."""

import ast
import os
import re
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from kubectl_wand.engine.session import Channel, Session
from kubectl_wand.errors import UsageError, WandError

MAX_SCRIPT_BYTES = 4 * 1024 * 1024
FLOOD_SLACK = 1 << 20  # output characters past --max-output tolerated before giving up


def read_script(path: str) -> bytes:
    """A user script for exec -f, refused early when it cannot work."""
    if path == "-":
        import sys

        data = sys.stdin.buffer.read(MAX_SCRIPT_BYTES + 1)
    else:
        if os.path.isdir(path):
            raise UsageError(f"{path} is a directory, not a script",
                             "give the path of a Python file (-f FILE), or '-' to read stdin",
                             code="bad-script")
        try:
            size = os.path.getsize(path)
            if size > MAX_SCRIPT_BYTES:
                raise UsageError(f"{path} is {size} bytes; scripts are limited to "
                                 f"{MAX_SCRIPT_BYTES // 1024 // 1024} MiB",
                                 "ship data separately and load it from the script",
                                 code="too-large")
            with open(path, "rb") as f:
                data = f.read(MAX_SCRIPT_BYTES + 1)  # /dev/zero or a FIFO reports size 0
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror}",
                             "the script is read on this machine, not in the target; check "
                             "the path and its permissions", code="bad-script")
    if len(data) > MAX_SCRIPT_BYTES:
        raise UsageError(f"the script is over {MAX_SCRIPT_BYTES // 1024 // 1024} MiB",
                         "ship data separately and load it from the script",
                         code="too-large")
    if b"\0" in data:
        raise UsageError(f"{path} looks binary (it contains NUL bytes), not Python source",
                         "exec runs Python source; give a .py file", code="bad-script")
    return data


# ---------------------------------------------------------------- code that would end the target

_EXEC_FUNCS = {"execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe"}
_SELF = "a signal to this process"


def _dotted(node):
    """'os._exit' for os._exit, '_exit' for a bare name; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class _Fatal(ast.NodeVisitor):
    """Finds calls that end the whole process, following `import os as o` and
    `from os import _exit as quit` aliases."""

    def __init__(self):
        self.modules = {"os": "os", "posix": "os", "signal": "signal"}
        self.names = {}  # local name -> "os._exit", …
        self.found = []

    def visit_Import(self, node):
        for a in node.names:
            if a.name in ("os", "posix", "signal"):
                self.modules[a.asname or a.name] = "signal" if a.name == "signal" else "os"

    def visit_ImportFrom(self, node):
        if node.module in ("os", "posix", "signal"):
            mod = "signal" if node.module == "signal" else "os"
            for a in node.names:
                self.names[a.asname or a.name] = f"{mod}.{a.name}"

    def _canon(self, func):
        name = _dotted(func)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if not rest:
            return self.names.get(head)
        if head in self.modules and "." not in rest:
            return f"{self.modules[head]}.{rest}"
        return None

    def _is_self(self, node):
        """os.getpid(), 0 (the whole process group) or -os.getpid()."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            node = node.operand
        if isinstance(node, ast.Constant):
            return node.value == 0
        return isinstance(node, ast.Call) and self._canon(node.func) in (
            "os.getpid", "os.getpgrp", "os.getpgid")

    def visit_Call(self, node):
        self.generic_visit(node)
        name = self._canon(node.func)
        if name is None:
            return
        fn = name.split(".", 1)[1]
        why = None
        if name == "os._exit":
            why = "os._exit() ends the process at once"
        elif name == "os.abort":
            why = "os.abort() kills the process (SIGABRT)"
        elif name.startswith("os.") and fn in _EXEC_FUNCS:
            why = f"os.{fn}() replaces the process with another program"
        elif name in ("os.kill", "os.killpg") and node.args and self._is_self(node.args[0]):
            sig = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(sig, ast.Constant) and sig.value == 0):  # 0 only checks
                why = f"{name}() sends {_SELF}"
        elif name in ("signal.raise_signal", "signal.pthread_kill"):
            why = f"{name}() sends {_SELF}"
        if why:
            self.found.append(f"line {node.lineno}: {why}")


_ROUGH = re.compile(rb"\b(_exit|abort|killpg|raise_signal|pthread_kill|exec[lv]p?e?)\s*\(")


def fatal_calls(source: bytes) -> List[str]:
    """Calls in ``source`` that would end the target process itself (not just the thread the
    code runs in): os._exit, os.abort, os.exec*, os.kill/killpg of its own PID or group,
    signal.raise_signal/pthread_kill. Source this Python cannot parse (newer syntax) is
    checked by name only."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        out = []
        for m in _ROUGH.finditer(source):
            line = source.count(b"\n", 0, m.start()) + 1
            out.append(f"line {line}: {m.group(1).decode()}() may end the process (checked by "
                       "name only: this Python could not parse the code)")
        return out
    v = _Fatal()
    v.visit(tree)
    return v.found


def refuse_fatal(source: bytes, force: bool):
    """Code that would kill the target is refused unless the user says --force."""
    if force:
        return
    found = fatal_calls(source)
    if found:
        raise UsageError("this code would end the target process, not just the injected "
                         "thread:\n  " + "\n  ".join(found),
                         "sys.exit() ends only the injected code; pass --force if you really "
                         "mean to stop the process (its container or pod restarts per its "
                         "restart policy)", code="would-kill")


@dataclass
class ExecResult:
    status: Optional[int]
    traceback: Optional[str] = None
    truncated: bool = False
    timed_out: bool = False
    seconds: float = 0.0
    events: List[dict] = field(default_factory=list)
    phase: str = "run"  # "compile": the code did not compile, nothing ran
    interrupted: bool = False  # Ctrl-C: the CLI asked the target to stop the code
    stopped: Optional[str] = None  # why the code was stopped in the target (timeout…)
    blocked: Optional[dict] = None  # not stopped in time: the C call it is blocked in…
    detached: Optional[dict] = None  # --detach: the thread it runs on in the background


_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(s: str) -> str:
    """Text safe to print as UTF-8: bytes the target could not decode become U+FFFD."""
    return _SURROGATES.sub("\ufffd", s)


STOP_GRACE = 10.0  # seconds to wait for the target's answer after asking it to stop


def run_code(session: Session, source: bytes, filename: str, timeout: Optional[float],
             on_output: Callable[[str, str], None], max_output: int = 8 << 20,
             ack_timeout: float = 5.0, detach: bool = False) -> ExecResult:
    """Run code in the target; --timeout or Ctrl-C (KeyboardInterrupt here) stop it there
    (the agent raises an exception in its thread) and the result says how that went.

    --max-output is enforced here too, not only by the agent in the target: a target that
    floods output events costs the operator at most max_output characters of output, and
    since the agent itself never sends more, a flood past it is cut short."""
    events: List[dict] = []  # all but output, which goes straight to on_output
    sent = [0, False, 0]  # characters passed on, cut?, characters received

    def on_event(ev):
        if ev.get("event") != "output":
            events.append(ev)
            return
        data = ev.get("data", "")
        if not isinstance(data, str):
            data = str(data)
        sent[2] += len(data)
        if sent[2] > max_output + FLOOD_SLACK:
            if isinstance(session.chan, Channel):  # not a shared (fanned-out) injector
                session.chan.close(timeout=0.5)  # blocked writing the flood: ended now
            raise WandError(f"the target sent over {sent[2] - max_output} characters of output "
                            f"past --max-output ({max_output}), which kubectl-wand's agent "
                            "never does; stopped listening (output shown up to the limit)",
                            "the process may be compromised or patched; the code may still "
                            "be running in it", code="output-flood")
        room = max_output - sent[0]
        if len(data) > room:
            data, sent[1] = data[:max(room, 0)], True
        if data:
            sent[0] += len(data)
            stream = ev.get("stream")
            on_output(stream if stream in ("stdout", "stderr") else "stdout", clean_text(data))

    res = ExecResult(status=None, events=events)
    params = {"filename": filename, "max_output": max_output}
    if detach:
        params["detach"] = True
    try:
        session.request("exec", params, blobs=[("code", source)],
                        timeout=None if detach else timeout, on_event=on_event,
                        ack_timeout=ack_timeout)
    except KeyboardInterrupt:
        if not any(e.get("event") == "ack" for e in events):
            raise  # not running yet: nothing to stop
        res.interrupted = True
        session.send_control({"op": "stop", "why": "interrupt"})
        session._until("ready", STOP_GRACE, on_event)
    for ev in events:
        if ev.get("event") == "result":
            # the agent ran in the target: every field is checked for its type (a string
            # status would reach the terminal raw through SystemExit)
            res.status = _int_or_none(ev.get("status"))
            tb = ev.get("traceback")
            res.traceback = clean_text(tb) if isinstance(tb, str) and tb else None
            res.truncated = ev.get("truncated") is True
            seconds = ev.get("seconds")
            res.seconds = float(seconds) if isinstance(seconds, (int, float)) else 0.0
            if res.traceback and len(res.traceback) > max_output:
                res.traceback = res.traceback[:max_output] + "\n[kubectl-wand] traceback cut\n"
            res.phase = "compile" if ev.get("phase") == "compile" else "run"
            stopped = ev.get("stopped")  # why it was stopped ("timeout", "interrupt"…)
            res.stopped = str(stopped)[:40] if isinstance(stopped, str) and stopped else None
            if ev.get("detached"):
                res.detached = ev
        elif ev.get("event") == "stopping":
            res.blocked = ev
        elif ev.get("event") == "timeout":
            res.timed_out = True
    res.truncated = bool(res.truncated) or sent[1]
    return res


def _int_or_none(v) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def describe_stop(res: ExecResult, pid: int) -> str:
    """What became of code the user stopped: stopped, or still blocked in a named C call."""
    if res.blocked:
        b = res.blocked
        call = b.get("call") or "a call into C code"
        where = f" at {b['where']}" if b.get("where") else ""
        kernel = f"; the kernel shows it waiting in {b['kernel']}" if b.get("kernel") else ""
        return (f"the code could not be stopped yet: thread {b.get('thread', '?')!r} of PID "
                f"{pid} is blocked inside {call}{where}{kernel}. It will be stopped as soon as "
                f"that call returns to Python (its end is logged to the target's stderr)")
    if res.stopped:
        return f"the code was stopped in PID {pid} (after {res.seconds:g}s); the process carries on"
    return (f"the code's end was not confirmed by PID {pid}; it may still be running in "
            "thread 'kubectl-wand-exec' (see `kubectl wand stacks`)")
