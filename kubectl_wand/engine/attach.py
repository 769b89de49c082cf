"""`attach`: debugpy in the live process behind its gate, a local port forwarded to it, and the
follow policy (re-attach to a replacement pod or worker on the same local port).

The CLI builds an :class:`AttachOptions` and a view (how to show progress and events); this
module does the rest and tells the view what happened with the typed events below."""

import posixpath
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, ContextManager, List, Optional, Protocol

from kubectl_wand import editors
from kubectl_wand.backends.forward import Early, Front
from kubectl_wand.engine import bundle
from kubectl_wand.engine.launch import vscode_config
from kubectl_wand.engine.ops import open_session
from kubectl_wand.engine.procs import Proc
from kubectl_wand.engine.session import CLOSED, Session, kill_point
from kubectl_wand.errors import UsageError, WandError
from kubectl_wand.options import TargetOptions
from kubectl_wand.targets import parse_target

FOLLOW_TIMEOUT = 180.0  # seconds a replacement pod or process may take to appear
QUIET_CHECKS = 4  # polls of quiet (0.5 s each) between two looks at the target itself


@dataclass
class AttachOptions:
    target: str
    where: TargetOptions = field(default_factory=TargetOptions)
    pid: Optional[int] = None
    port: int = 5679  # debugpy's port inside the target (127.0.0.1)
    local_port: int = 5679  # 0: a free one
    keep_seconds: Optional[float] = None  # --keep: the debugger outlives the session
    wait_for_client: bool = False
    ack_timeout: float = 5.0
    follow: bool = True  # re-attach to the replacement of a pod or worker that went away
    editor_name: Optional[str] = None  # the launch configuration's name

    def __post_init__(self):
        if not (0 < self.port < 65536) or not (0 <= self.local_port < 65536):
            raise UsageError("ports must be between 1 and 65535 (--local-port may be 0)",
                             code="usage")


# What the view is told, in order: Attaching, (Reused), Ready, then any of Client, Refused,
# PortForwardRestarted, Replacing… until Detaching, Detached, or an error.
@dataclass
class Attaching:
    display: str
    pid: int
    reason: str
    command: str
    first: bool


@dataclass
class Reused:
    """debugpy already listened in the process (another session, or --keep)."""


@dataclass
class Ready:
    display: str
    pid: int
    remote_port: Optional[int]
    local_port: int
    first: bool
    launch: dict  # the VS Code configuration, made safe (editors.safe_config)
    warnings: List[str]
    keep_until: Optional[float]
    keep: bool


@dataclass
class Client:
    """An editor connected, left, or dropped its session (the gate resumed the threads)."""
    state: str
    why: Optional[str] = None
    resumed_ms: Optional[int] = None


@dataclass
class Refused:
    """A local connection from another uid was turned away from the forwarded port."""
    uid: int
    local_port: int


@dataclass
class PortForwardRestarted:
    count: int


@dataclass
class Replacing:
    what: str  # the process or pod that went away


@dataclass
class Detaching:
    """Ctrl-C: the debugger is being taken out (or left, with --keep)."""
    keep: bool


@dataclass
class Detached:
    pid: int
    keep: bool
    result: Optional[dict]  # the agent's answer: was_attached, stopped, users


class AttachView(Protocol):
    """How the CLI shows an attach: a spinner for slow steps, an interactive process choice
    (None without a terminal), and the events above."""

    ask: Optional[Callable[[List[Proc]], Proc]]

    def step(self, text: str) -> ContextManager: ...

    def event(self, ev) -> None: ...


def run(opts: AttachOptions, view: AttachView) -> None:
    """Attach, and while ``opts.follow`` re-attach to each replacement, until the user ends
    it (Ctrl-C: KeyboardInterrupt) or the target is gone for good (a WandError)."""
    from kubectl_wand.backends import backend_for

    bundle.prefetch()  # the debugpy archive and its key, read while the target is reached
    target = parse_target(opts.target)
    backend = backend_for(target, opts.where)
    boxes = backend.resolve(target)
    local_port, first = opts.local_port, True
    while True:
        box = boxes[0]
        gone = attach_once(backend, box, opts, local_port, first, view)
        if gone is None:
            return
        local_port = gone["local_port"]
        if not opts.follow or not backend.followable:
            raise WandError(f"{gone['what']} went away; the session is over",
                            "attach again when it is back", code="target-exited")
        view.event(Replacing(gone["what"]))
        boxes = wait_replacement(backend, target, box, gone)
        first = False


def attach_once(backend, box, opts: AttachOptions, local_port: int, first: bool,
                view: AttachView) -> Optional[dict]:
    """One attach; returns None when the user ended it, or what went away."""
    # a slow forward (kubectl port-forward) starts now: its start-up overlaps the injection
    reached = threading.Event()  # the injector listed the target's processes
    front = backend.front_forward
    inner_port = 0 if front else local_port
    early = (Early(lambda remote: backend.forward(box, remote, inner_port), opts.port,
                   after=reached if backend.forward_after_reach else None)
             if backend.slow_forward else None)
    try:
        with view.step(f"reaching {box.display}"):
            session = open_session(backend, box, pid=opts.pid, ask=view.ask,
                                   signal=opts.where.nudge, debugpy=True, reached=reached)
    except BaseException:
        reached.set()
        if early:
            early.close()
        raise
    reached.set()
    proc = session.choice.proc
    backend.attached(box, proc.pid)
    view.event(Attaching(box.display, proc.pid, session.choice.reason, proc.command, first))
    keep = opts.keep_seconds is not None
    att = Attachment(session, port=backend.debug_port(box, opts.port, local_port), keep=keep,
                     wait_for_client=opts.wait_for_client, ack_timeout=opts.ack_timeout,
                     keep_seconds=opts.keep_seconds)
    fwd = None
    gone = None
    try:
        with view.step(f"starting debugpy in pid {proc.pid}, waiting for its acknowledgement"):
            ev = att.start()
        if ev.get("reused"):
            view.event(Reused())
        remote = ev.get("port") or opts.port
        fwd = early.result(remote) if early else backend.forward(box, remote, inner_port)
        if front and att.preamble:
            fwd = Front(fwd, local_port)
        fwd.preamble = att.preamble
        fwd.on_restart = lambda n: view.event(PortForwardRestarted(n))  # a dropped kubectl
        cfg, warnings = editors.safe_config(
            vscode_config(opts.editor_name or f"kubectl-wand: {box.display}", "127.0.0.1",
                          fwd.local_port, remote_root(proc)), fallbacks=[proc.cwd or "/"])
        view.event(Ready(box.display, proc.pid, ev.get("port"), fwd.local_port, first, cfg,
                         warnings, ev.get("keep_until"), keep))
        kill_point("forward")
        idle = 0
        while True:
            ev = att.wait()
            idle = idle + 1 if ev.get("event") == "idle" else 0
            if ev.get("event") == "client":
                view.event(Client(ev.get("state") or "", ev.get("why"), ev.get("resumed_ms")))
            while fwd.refused:
                view.event(Refused(fwd.refused.pop(0), fwd.local_port))
            if ev.get("event") == "detached":
                raise WandError("the debugger in the target ended this session "
                                f"({ev.get('why')})", "attach again", code="detached")
            # every 2 s of quiet, look at the target itself: a `docker exec` into a container
            # that was killed may never end, so its end is not always an event
            gone = _gone(backend, box) if idle % QUIET_CHECKS == QUIET_CHECKS - 1 else None
            if ev.get("event") in ("target-exited", "closed") or fwd.dead or gone:
                return {"what": f"process {proc.pid} in {box.display}",
                        "local_port": fwd.local_port, "pid": proc.pid}
    except KeyboardInterrupt:
        view.event(Detaching(keep))
        try:
            res = att.detach() if att.listening else session.close()
        except WandError as e:
            raise WandError(f"detach failed: {e.message}", e.hint, code="detach-failed")
        view.event(Detached(proc.pid, keep, res))
        return None
    except WandError as e:
        if e.code == "target-exited":
            gone = e.message
        raise
    finally:
        if fwd:
            fwd.close()
        if early:
            early.close()
        session.chan.close(timeout=1 if gone else 10)


def _gone(backend, box):
    try:
        return backend.target_gone(box)
    except WandError:
        return None


def wait_replacement(backend, target, old_box, gone, timeout=FOLLOW_TIMEOUT):
    """Poll until the target has a live replacement: a new ready pod or a new process."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    last = None
    while time.monotonic() < deadline:
        try:
            boxes = backend.resolve(target)
            if boxes[0].id != old_box.id:
                return boxes
            procs = Session(backend, boxes[0], timeout=30).open("ps")
            if any(p.pid != gone["pid"] and p.blocker is None and p.role in ("main", "worker")
                   for p in procs):
                return boxes
        except WandError as e:
            if e.code in ("not-found", "not-running") and target.kind in (None, "pod"):
                raise WandError(f"{old_box.display} is gone, and nothing replaces a single "
                                "pod or container", "attach again when it is back",
                                code="target-exited")
            last = e
        time.sleep(delay)  # polling the cluster/engine for a replacement (a real signal)
        delay = min(delay * 1.5, 2.0)
    raise WandError(f"no replacement appeared within {timeout:.0f}s"
                    + (f" ({last.message})" if last else ""), "attach again later",
                    code="target-exited")


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
    """debugpy listening inside the target, behind its gate, for as long as this object lives.

    The session's secret (``preamble``) must open every connection to the gate; the
    forwarders add it. Without --keep, the agent's connection stays open as the session's
    lifeline: ``detach()`` sends it a stop; if this process dies, its end does the same."""

    def __init__(self, session: Session, port: int = 5679, keep: bool = False,
                 wait_for_client: bool = False, ack_timeout: float = 5.0,
                 keep_seconds: Optional[float] = None):
        self.session, self.port, self.keep = session, port, keep
        self.keep_seconds = keep_seconds
        self.wait_for_client, self.ack_timeout = wait_for_client, ack_timeout
        self.listening: Optional[dict] = None
        self.secret = secrets.token_hex(24)
        self.detached: Optional[dict] = None

    @property
    def preamble(self) -> Optional[bytes]:
        """First bytes of each connection to the gate (None: the app's own debugpy, no gate)."""
        if self.listening and self.listening.get("gated"):
            return b"kubectl-wand-dap " + self.secret.encode() + b"\n"
        return None

    def start(self) -> dict:
        events = self.session.request(
            "attach", {"port": self.port, "wait_for_client": self.wait_for_client,
                       "keep": self.keep, "keep_seconds": self.keep_seconds,
                       "secret": self.secret},
            keep=self.keep, **self._debugpy(),
            ack_timeout=self.ack_timeout, until=("listening", "ready"))
        for ev in events:
            if ev.get("event") == "listening":
                port = ev.get("port")
                if port is not None and not (isinstance(port, int) and 0 < port < 65536):
                    raise WandError("the target reported an invalid debug port",
                                    "check the target process", code="listen-failed")
                self.listening = ev
                return ev
            if ev.get("event") == "error":
                raise WandError(ev.get("message"), ev.get("hint"), code=ev.get("code"))
        raise WandError("the debugger did not report that it is listening",
                        "see the target's stderr for a traceback", code="listen-failed")

    def _debugpy(self) -> dict:
        """What the attach request carries of debugpy: a word when the helper's cache holds
        the tree compiled for this interpreter (stage 2 said so), else the archive itself."""
        if self.session.stage2.get("cached"):
            return {"debugpy": "cached"}
        return {"blobs": [("debugpy.tgz", bundle.archive())]}

    def wait(self, poll: float = 0.5) -> dict:
        """The injector's next unsolicited event (a client came or went, target exit,
        closed), or idle after ``poll``."""
        try:
            ev = self.session.chan.events.get(timeout=poll)
        except queue.Empty:
            return {"event": "idle"}
        if ev is CLOSED:
            return {"event": "closed"}
        if ev.get("event") == "detached":
            self.detached = ev
        return ev

    def detach(self) -> Optional[dict]:
        if self.keep:
            self.session.chan.send({"op": "leave",
                                    "until": (self.listening or {}).get("keep_until")})
            self.session.chan.close()
            return None
        # Bounded: a user pressing Ctrl-C wants out, even if the pod is unreachable.
        self.session.timeout = min(self.session.timeout, 15.0)
        if self.detached is None and self.listening and not self.listening.get("foreign"):
            self.session.send_control({"op": "stop", "why": "detach"})
            events = self.session._until("ready", self.session.timeout)
            self.detached = next((e for e in events if e.get("event") == "detached"), None)
        self.session.close()
        return self.detached
