"""The CLI side of `shell` and `pdb`: a long-running agent op spoken to over control frames.

The op is injected like any other; while it runs, each frame the CLI sends reaches the agent
as one JSON line (payload/injector.py relay()), and stdin EOF (the CLI gone) stops it.
"""

import itertools
import queue
import signal
import time
from typing import Callable, List, Optional

from kubectl_wand import payload
from kubectl_wand.engine.session import CLOSED, Session, raise_for
from kubectl_wand.errors import WandError

LEAVE_AFTER = 5  # Ctrl-Cs during one statement after which the console is left
MAX_OUTPUT = 1 << 20  # characters of one statement's output brought back
OutputFn = Callable[[str, str], None]


class Remote:
    """One shipped op (``shell`` or ``pdb``) running in the target."""

    def __init__(self, session: Session, op: str):
        self.session, self.op = session, op
        self.ids = itertools.count(1)
        self.ended: Optional[dict] = None

    def start(self, module: str, params: dict, first: str, ack_timeout: float = 5.0) -> dict:
        """Inject the op; returns its first event (``first``) once it serves."""
        blob = payload.source(module).encode()
        msg = {"op": self.op, "params": params, "agent_source": payload.source("agent"),
               "blobs": [["module", len(blob)]], "ack_timeout": ack_timeout}
        if self.session.signal:
            msg["signal"] = self.session.signal
        self.session.chan.send(msg)
        self.session.chan.send_bytes(blob)
        seen = self.session._until(first, self.session.timeout + ack_timeout)
        ev = seen[-1]
        if ev.get("event") != first:
            raise WandError(f"the {self.op} did not start in the target",
                            "retry with -v", code="no-start")
        return ev

    def send(self, obj: dict):
        """A control frame for the running op. Once it ended, stage 2 would read a frame as
        a new request: nothing is sent then."""
        if self.ended is not None:
            raise Ended(self.ended)
        self.session.send_control(obj)

    def next(self, timeout: float):
        """The next event, None on timeout; the op's end raises (with what it said)."""
        try:
            ev = self.session.chan.events.get(timeout=timeout)
        except queue.Empty:
            return None
        if ev is CLOSED:
            self.session.raise_if_gone()
            err = self.session.chan.stderr_text()
            raise WandError(f"the {self.op} session ended unexpectedly" +
                            (f": {err}" if err else ""),
                            "the target or its container may have stopped; check it",
                            code="injector-exited")
        if ev.get("event") == "error":
            raise_for(ev)
        if ev.get("event") in ("result", "ready", "done") and ev.get("id") is None:
            self.ended = self.ended or ev
            raise Ended(ev)
        return ev

    def stop(self, why: str = "bye", grace: float = 10.0) -> Optional[dict]:
        """Ask the op to end and undo itself; waits for its final word (bounded)."""
        if self.ended is None:
            self.send({"op": "stop", "why": why})
        deadline = time.monotonic() + grace
        while self.ended is None and time.monotonic() < deadline:
            try:
                self.next(0.1)
            except Ended:
                break
            except WandError:
                break
        return self.ended


class Ended(Exception):
    """The op ended (its final event is the argument)."""


class Shell(Remote):
    def __init__(self, session: Session):
        super().__init__(session, "shell")
        self.max_output = MAX_OUTPUT

    def open(self, max_output: int = MAX_OUTPUT, ack_timeout: float = 5.0,
             use_loop: bool = True) -> dict:
        self.max_output = max_output
        return self.start("console", {"max_output": max_output, "asyncio": use_loop}, "shell",
                          ack_timeout)

    def run(self, source: str, on_output: OutputFn, final: bool = False,
            on_interrupt: Optional[Callable[[int], None]] = None) -> dict:
        """Run one statement; its ``done`` event (status ok/more/error, traceback). Ctrl-C
        meanwhile interrupts the statement in the target, not this process."""
        sid = next(self.ids)
        self.send({"op": "run", "id": sid, "source": source, "final": final})
        hits: List[int] = []
        old = signal.signal(signal.SIGINT, lambda *a: hits.append(1))
        room, cut = [self.max_output], []  # enforced here too: a target may send more
        try:
            sent = 0
            while True:
                while sent < len(hits):
                    sent += 1
                    if sent >= LEAVE_AFTER:  # the statement will not stop: leave the console
                        raise KeyboardInterrupt
                    self.send({"op": "interrupt", "id": sid})
                    if on_interrupt:
                        on_interrupt(sent)
                ev = self.next(0.1)
                if ev is None:
                    continue
                kind = ev.get("event")
                if kind == "output":
                    stream = ev.get("stream")
                    data = str(ev.get("data", ""))
                    if len(data) > room[0]:
                        data = data[:room[0]]
                        cut.append(1)
                    room[0] -= len(data)
                    if data:
                        on_output(stream if stream in ("stdout", "stderr") else "stdout", data)
                elif kind == "done" and ev.get("id") == sid:
                    if cut:
                        ev["truncated"] = True
                    return ev
        finally:
            signal.signal(signal.SIGINT, old)

    def complete(self, text: str, timeout: float = 3.0) -> List[str]:
        sid = next(self.ids)
        self.send({"op": "complete", "id": sid, "text": text})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self.next(0.05)
            if ev is not None and ev.get("event") == "matches" and ev.get("id") == sid:
                out = ev.get("matches") or []
                # inserted into the command line: printable text only, bounded
                return [m for m in out[:500] if isinstance(m, str) and m.isprintable()
                        and len(m) < 1000]
        return []
