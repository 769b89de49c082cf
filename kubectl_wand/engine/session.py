"""Talk to the injector running beside the target: frames out, JSON events back."""

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

CLOSED = {"event": "closed"}
SILENCE = 2.0  # seconds without a word from the injector before checking on the target

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
        self.events: "queue.Queue[dict]" = queue.Queue()
        self.units: Dict[int, "UnitChannel"] = {}  # fan_out(): events tagged with a unit
        self.stderr: List[str] = []
        threading.Thread(target=self._read_out, daemon=True).start()
        self._err_thread = threading.Thread(target=self._read_err, daemon=True)
        self._err_thread.start()
        self._wlock = threading.Lock()

    def _read_out(self):
        for line in self.proc.stdout:
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
            unit = self.units.get(ev.pop("unit", None))
            if unit is None:
                self.events.put(ev)
                if ev.get("event") == "error":  # the fanned-out injector failed as a whole
                    for u in list(self.units.values()):
                        u.events.put(ev)
            else:
                unit.events.put(CLOSED if ev.get("event") == "exit" else ev)
        self.events.put(CLOSED)
        for unit in list(self.units.values()):
            unit.events.put(CLOSED)

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace").rstrip())

    def send_bytes(self, data: bytes, header: str = ""):
        with self._wlock:
            try:
                self.proc.stdin.write(b"%d%s\n" % (len(data), header.encode()) + data)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # the injector exited; its last events say why

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
        self.events: "queue.Queue[dict]" = queue.Queue()
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
        lines.append(f"  {filename}:{lineno} in {func}")
    if not frames:
        lines.append("  (unreadable)")
    if where.get("wchan"):
        lines.append(f"  … waiting in the kernel ({where['wchan']})")
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

    def open(self, op: str = "inject", probe: bool = True) -> List[Proc]:
        for attempt in (1, 2):
            self.chan = Channel(self.backend.injector_argv(self.box))
            # a helper's own cache directory keeps the injector compiled (payload.LOADER)
            where = self.backend.cache_dir(self.box)
            self.chan.send_bytes(payload.source("injector").encode(), header=(
                f" {where} {payload.source_key('injector')}"
                if where and len(where.split()) == 1 else ""))
            self.chan.send({"op": op, "probe": probe})
            ev = self.chan.next(self.timeout)
            if ev.get("event") == "procs":
                break
            raise_for(ev)
            err = self.chan.stderr_text()
            if attempt == 1 and self.backend.recover(self.box, err):
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
            seen.append(ev)
            if ev.get("event") in KILL_AT_EVENT:
                kill_point(KILL_AT_EVENT[ev["event"]])
            if on_event:
                on_event(ev)
            if ev.get("event") == "error" and ev.get("code") not in ("port-busy", "listen-failed",
                                                                     "bad-op"):
                raise_for(ev)
            if ev.get("event") in ((name, "done") if isinstance(name, str) else (*name, "done")):
                return seen

    def request(self, op: str, params: dict, blobs=(), timeout: Optional[float] = None,
                on_event=None, until="ready", **extra) -> List[dict]:
        """Inject one operation; returns its events (up to the injector's next 'ready', or
        ``until``: an event name or a tuple of them)."""
        blobs = list(blobs)
        msg = {"op": op, "params": params, "agent_source": payload.agent_source(),
               "blobs": [[name, len(data)] for name, data in blobs], **extra}
        if timeout is not None:
            msg["timeout"] = timeout
        if self.signal:
            msg["signal"] = self.signal
        self.chan.send(msg)
        for _, data in blobs:
            self.chan.send_bytes(data)
        wait = self.timeout + (timeout or 0) + extra.get("ack_timeout", 5.0)
        events = self._until(until, wait, on_event)
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
