"""Talk to the injector running beside the target: frames out, JSON events back."""

import collections
import json
import os
import queue
import signal
import subprocess
import threading
import time
from typing import Callable, Dict, List, Optional

from kubectl_wand import payload
from kubectl_wand.children import die_with_parent
from kubectl_wand.engine.procs import Proc, assign_roles
from kubectl_wand.errors import WandError
from kubectl_wand.log import trace
from kubectl_wand.safe_text import safe

CLOSED = {"event": "closed"}
SILENCE = 2.0  # seconds without a word from the injector before checking on the target

# Bounds on what the injector (relaying the target's agent) can make this process hold: a
# line longer than MAX_LINE is refused, at most MAX_QUEUED bytes of events wait unread (the
# reader then stops reading: the pipe, the injector and the agent wait in turn), at most
# MAX_STDERR bytes of the injector's stderr are kept, at most MAX_EVENTS kept per request.
MAX_LINE = 4 << 20
MAX_QUEUED = 4 << 20
MAX_STDERR = 64 << 10
MAX_EVENTS = 10000


class EventQueue:
    """A queue of events bounded in bytes, not in count: put() blocks while full."""

    def __init__(self, limit: Optional[int] = None):
        self.limit, self.size = limit or MAX_QUEUED, 0
        self.items: "collections.deque" = collections.deque()
        self.cond = threading.Condition()

    def put(self, ev, size: int = 0):
        with self.cond:
            # one event larger than the whole budget still passes, alone
            while self.size and self.size + size > self.limit:
                self.cond.wait()
            self.items.append((ev, size))
            self.size += size
            self.cond.notify_all()

    def get(self, timeout: Optional[float] = None):
        with self.cond:
            if not self.cond.wait_for(lambda: self.items, timeout):
                raise queue.Empty
            ev, size = self.items.popleft()
            self.size -= size
            self.cond.notify_all()
            return ev

    def qsize(self) -> int:
        return len(self.items)


class TextTail:
    """The last ``limit`` bytes of lines (a flood of stray output keeps only its end)."""

    def __init__(self, limit: Optional[int] = None):
        self.limit, self.size, self.dropped = limit or MAX_STDERR, 0, 0
        self.lines: "collections.deque[str]" = collections.deque()
        self.lock = threading.Lock()

    def append(self, line: str):
        line = line[:self.limit]
        with self.lock:
            self.lines.append(line)
            self.size += len(line) + 1
            while self.size > self.limit and len(self.lines) > 1:
                self.size -= len(self.lines.popleft()) + 1
                self.dropped += 1

    def __iter__(self):
        with self.lock:
            items = list(self.lines)
        if self.dropped:
            items.insert(0, f"[kubectl-wand: {self.dropped} earlier line(s) not kept]")
        return iter(items)

# Test hook: WAND_TEST_KILL_AT=stage|inject|ack|forward makes this process SIGKILL itself at
# that point of an injection (the injector has staged its files / called sys.remote_exec /
# seen the agent connect back; attach: the port is forwarded), so the fault tests can check
# what a crashed CLI leaves behind. Unset, it costs one dict lookup.
KILL_AT_EVENT = {"staged": "stage", "injected": "inject", "ack": "ack"}


def kill_point(phase: str):
    if os.environ.get("WAND_TEST_KILL_AT") == phase:
        os.kill(os.getpid(), signal.SIGKILL)


class Channel:
    """A running injector process. Reads happen on threads so every wait has a timeout."""

    def __init__(self, argv: List[str]):
        trace(argv)
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C is ours to handle: detach first, then stop
                preexec_fn=die_with_parent())
        except FileNotFoundError:
            raise WandError(f"{argv[0]} not found on PATH",
                            f"install {argv[0]} or put it on PATH", code="no-tool")
        except OSError as e:
            raise WandError(f"cannot run {argv[0]}: {e.strerror}", code="no-tool")
        self.events = EventQueue()
        self.units: Dict[int, "UnitChannel"] = {}  # fan_out(): events tagged with a unit
        self.stderr = TextTail()
        threading.Thread(target=self._read_out, daemon=True).start()
        self._err_thread = threading.Thread(target=self._read_err, daemon=True)
        self._err_thread.start()
        self._wlock = threading.Lock()

    def _lines(self):
        """The injector's stdout lines, each at most MAX_LINE bytes: a longer one is
        skipped to its end and replaced by an error event (the target made it up)."""
        while True:
            line = self.proc.stdout.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) > MAX_LINE and not line.endswith(b"\n"):
                skipped = len(line)
                while line and not line.endswith(b"\n"):
                    line = self.proc.stdout.readline(MAX_LINE + 1)
                    skipped += len(line)
                yield len(line), {"event": "error", "code": "too-large", "message": (
                    f"the injector relayed an event of {skipped} bytes (over "
                    f"{MAX_LINE >> 20} MiB) from the target; it was dropped"),
                    "hint": "the target's process sent more than kubectl-wand accepts; "
                            "this is not something the agent does: check the target"}
                continue
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                ev = None
            if not isinstance(ev, dict):  # not one of the injector's events
                self.stderr.append(line.decode("utf-8", "replace"))
                continue
            yield len(line), ev

    def _read_out(self):
        for size, ev in self._lines():
            unit = self.units.get(ev.pop("unit", None))
            if unit is None:
                self.events.put(ev, size)
                if ev.get("event") == "error":  # the fanned-out injector failed as a whole
                    for u in list(self.units.values()):
                        u.events.put(ev)
            else:
                unit.events.put(CLOSED if ev.get("event") == "exit" else ev, size)
        self.events.put(CLOSED)
        for unit in list(self.units.values()):
            unit.events.put(CLOSED)

    def _read_err(self):
        while True:
            line = self.proc.stderr.readline(MAX_STDERR)  # bounded, even without newlines
            if not line:
                return
            self.stderr.append(line.decode("utf-8", "replace").rstrip())

    def send_bytes(self, data: bytes, header: str = ""):
        with self._wlock:
            try:
                self.proc.stdin.write(b"%d%s\n" % (len(data), header.encode()) + data)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the injector exited (or was ended); its last events say why

    def send(self, obj):
        self.send_bytes(json.dumps(obj).encode())

    def next(self, timeout: float) -> dict:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise WandError(f"no answer from the injector within {timeout:.0f}s",
                            "retry with -v to see each call", code="timeout")

    def fan_out(self, pids: List[int]) -> Dict[int, "UnitChannel"]:
        """One stage 2 per process behind this one injector (payload: fan_out)."""
        for pid in pids:
            self.units[pid] = UnitChannel(self, pid)
        self.send({"pids": list(pids)})
        return dict(self.units)

    def stderr_text(self) -> str:
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        self._err_thread.join(timeout=2)  # all of it, not what happened to be read so far
        return "\n".join(s for s in self.stderr if s).strip()

    def close(self, timeout=5.0):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class UnitChannel:
    """One process's share of a fanned-out injector: a Channel to the Session using it."""

    def __init__(self, parent: Channel, unit: int):
        self.parent, self.unit = parent, unit
        self.events = EventQueue()
        self.done = False

    next = Channel.next

    def send_bytes(self, data: bytes, header: str = ""):
        self.parent.send_bytes(data, header=f" {self.unit}")

    def send(self, obj):
        self.send_bytes(json.dumps(obj).encode())

    def stderr_text(self) -> str:
        return "\n".join(s for s in self.parent.stderr if s).strip()

    def close(self, timeout=5.0):
        """Wait for this unit's stage 2 to end; the last unit closed closes the injector."""
        deadline = time.monotonic() + timeout
        while not self.done:
            try:
                self.done = self.events.get(timeout=max(0.01, deadline - time.monotonic())) \
                    is CLOSED
            except queue.Empty:
                break
        self.done = True
        if all(u.done for u in self.parent.units.values()):
            self.parent.close(timeout)


def raise_for(event: dict):
    if event.get("event") == "error":
        message, hint = event.get("message", "injection failed"), event.get("hint")
        where = event.get("where")
        if event.get("code") == "blocked" and where:
            message += "\n" + describe_blocked(where)
            caught = [s for s in where.get("caught", []) if s != "SIGWINCH"]
            if caught:
                hint = (f"the process handles {', '.join(caught)} in Python; if that handler "
                        f"is harmless, --signal {caught[0][3:]} wakes the main thread. ") + hint
        raise WandError(message, hint, code=event.get("code"), detail=event)


def describe_blocked(where: dict) -> str:
    """The main thread's stack, read from memory, innermost call last."""
    frames = where.get("frames") or []
    lines = ["main thread stack (most recent call last):"]
    for filename, lineno, func in reversed(frames[:12]):
        lines.append(f"  {safe(filename, 300)}:{safe(lineno, 12)} in {safe(func, 200)}")
    if not frames:
        lines.append("  (unreadable)")
    if where.get("wchan"):
        lines.append(f"  … waiting in the kernel ({safe(where['wchan'], 64)})")
    return "\n".join(lines)


class Session:
    """One injector run against one target: list processes, pick one, then inject requests."""

    def __init__(self, backend, box, timeout: float = 60.0):
        self.backend, self.box, self.timeout = backend, box, timeout
        self.chan: Optional[Channel] = None
        self.procs: List[Proc] = []
        self.meta: dict = {}
        self.pid: Optional[int] = None
        self.signal: Optional[str] = None  # sent if the main thread does not pick up at once
        self.stage2: dict = {}  # stage 2's first event: exact version, cached debugpy…

    def open(self, op: str = "inject") -> List[Proc]:
        for attempt in range(1, 9):
            self.chan = Channel(self.backend.injector_argv(self.box))
            # a helper's own cache directory keeps the injector compiled (payload.LOADER)
            where = self.backend.cache_dir(self.box)
            self.chan.send_bytes(payload.source("injector").encode(), header=(
                f" {where} {payload.source_key('injector')}"
                if where and len(where.split()) == 1 else ""))
            self.chan.send({"op": op, "trust": self.backend.trust(self.box)})
            ev = self.chan.next(self.timeout)
            if ev.get("event") == "procs":
                break
            raise_for(ev)
            err = self.chan.stderr_text()
            if attempt < 8 and self.backend.recover(self.box, err):
                continue
            raise self.backend.explain_failure(self.box, err)
        self.meta = ev
        self.procs = assign_roles([Proc.from_json(p) for p in ev["procs"]])
        if op == "ps":
            self.chan.close()
        return self.procs

    def select(self, pid: int, **extra):
        """Pick the process; ``extra`` (e.g. the helper's cache directory) goes to stage 1."""
        self.pid = pid
        self.chan.send({"pid": pid, **extra})
        self.wait_ready()

    def wait_ready(self):
        """Until stage 2 runs in the chosen process's interpreter and waits for requests."""
        seen = self._until("ready", self.timeout)
        self.stage2 = next((e for e in seen if e.get("event") == "stage2"), {})

    def fan_out(self, pids: List[int]) -> Dict[int, "Session"]:
        """A session per process, all over this one injector (opened with op "inject");
        each still has to wait_ready()."""
        out = {}
        for pid, chan in self.chan.fan_out(pids).items():
            s = Session(self.backend, self.box, self.timeout)
            s.chan, s.procs, s.meta, s.pid = chan, self.procs, self.meta, pid
            out[pid] = s
        return out

    def _until(self, name, timeout, on_event: Optional[Callable[[dict], None]] = None):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left > SILENCE:
                try:
                    ev = self.chan.events.get(timeout=SILENCE)
                except queue.Empty:
                    # A long silence: is the target still there? (A `docker exec` into a
                    # container that was killed may never end by itself.)
                    self.raise_if_gone()
                    continue
            else:
                ev = self.chan.next(max(0.1, left))
            if ev is CLOSED:
                err = self.chan.stderr_text()
                if seen and seen[-1].get("event") == "error":
                    raise_for(seen[-1])
                self.raise_if_gone()
                raise WandError("the injector stopped unexpectedly" + (f": {err}" if err else ""),
                                "the target or its container may have stopped; check it and "
                                "retry with -v", code="injector-exited")
            if ev.get("event") != "output":  # output is for on_event only: never piled up
                seen.append(ev)
                if len(seen) > MAX_EVENTS:
                    raise WandError(f"the target sent over {MAX_EVENTS} events for one "
                                    "request; stopped listening to it",
                                    "the agent never does this: check the target",
                                    code="too-many-events")
            if ev.get("event") in KILL_AT_EVENT:
                kill_point(KILL_AT_EVENT[ev["event"]])
            if on_event:
                on_event(ev)
            if ev.get("event") == "error" and ev.get("code") not in ("port-busy", "listen-failed",
                                                                     "bad-op"):
                raise_for(ev)
            if ev.get("event") in (name, "done"):
                return seen

    def request(self, op: str, params: dict, blobs=(), timeout: Optional[float] = None,
                on_event=None, **extra) -> List[dict]:
        """Inject one operation; returns its events (up to the injector's next 'ready')."""
        blobs = list(blobs)
        msg = {"op": op, "params": params, "agent_source": payload.source("agent"),
               "blobs": [[name, len(data)] for name, data in blobs], **extra}
        if timeout is not None:
            msg["timeout"] = timeout
        if self.signal:
            msg["signal"] = self.signal
        self.chan.send(msg)
        for _, data in blobs:
            self.chan.send_bytes(data)
        wait = self.timeout + (timeout or 0) + extra.get("ack_timeout", 5.0)
        events = self._until("ready", wait, on_event)
        for ev in events:
            if ev.get("event") == "error":
                raise_for(ev)
        return events

    def send_control(self, obj: dict):
        """A frame for the operation running now: stage 2 forwards it to the agent as one
        JSON line (e.g. {"op": "stop", "why": "detach"})."""
        self.chan.send(obj)

    def raise_if_gone(self):
        """The target itself went away (its container stopped…): say that, plainly."""
        try:
            gone = self.backend.target_gone(self.box)
        except WandError:
            gone = None
        if gone:
            raise WandError(f"the target went away during the injection: {gone}",
                            "check its logs and whether it was restarted; nothing of "
                            "kubectl-wand is left in it", code="target-exited")

    def close(self):
        if self.chan:
            self.chan.send({"op": "close"})
            self.chan.close()
