"""One operation over many targets: every ready replica (`--all`) and/or every attachable
process in each (`--all-processes`), in parallel with bounded concurrency.

Each unit (a box and a process) gets its own session; a failure is recorded in its result and
never stops or hides the others. Results come back in a stable order (target, then PID). The
processes of one box share one injector (one `kubectl exec`/`docker exec`, see Group).
"""

import contextlib
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from kubectl_wand.backends.base import Box
from kubectl_wand.engine import ops, runcode
from kubectl_wand.engine.procs import Choice
from kubectl_wand.engine.session import Session
from kubectl_wand.errors import UsageError, WandError
from kubectl_wand.options import Scope, TargetOptions

DEFAULT_MAX_PARALLEL = 8


class Group:
    """The processes of one box (--all-processes) over the injector that listed them: it
    forks a stage 2 per process, so a box costs one connection whatever its process count."""

    def __init__(self, session: Session, pids: List[int]):
        self.session, self.pids = session, pids
        self.lock = threading.Lock()
        self.sessions: Optional[dict] = None

    @staticmethod
    def open_session(backend, box) -> Session:
        """The box's injector, listing its processes, started from a thread of its own that
        lives as long as the injector does: the parent-death signal that ends it with the
        CLI is tied to the thread that started it, and the planner's threads end first."""
        started: "queue.Queue" = queue.Queue(1)

        def keeper():
            try:
                s = Session(backend, box, timeout=60)
                s.open("inject")
            except BaseException as e:
                started.put(e)
                return
            started.put(s)
            s.chan.proc.wait()

        threading.Thread(target=keeper, daemon=True, name="wand-group").start()
        got = started.get()
        if isinstance(got, BaseException):
            raise got
        return got

    def session_for(self, pid: int, signal: str) -> Session:
        with self.lock:
            if self.sessions is None:
                self.sessions = self.session.fan_out(self.pids)
                for p, s in self.sessions.items():
                    proc = next(x for x in self.session.procs if x.pid == p)
                    s.signal = ops.nudge_signal(proc, signal)
                    s.choice = Choice(proc, "every process (--all-processes)", [proc])
        s = self.sessions[pid]
        try:
            s.wait_ready()
        except BaseException:
            s.chan.close(timeout=2)
            raise
        if s.stage2.get("python"):
            s.choice.proc.python = s.stage2["python"]
        return s


@dataclass
class Unit:
    box: Box
    pid: Optional[int] = None  # None: the automatic choice, as for a single target
    skipped: Optional[str] = None  # listed but not attachable: reported, never run
    error: Optional[WandError] = None  # the box could not even be listed
    group: Optional[Group] = None


@dataclass
class UnitResult:
    box: Box
    pid: Optional[int] = None
    ok: bool = False
    skipped: Optional[str] = None
    reason: str = ""
    status: Optional[int] = None
    stdout: str = ""
    stderr: str = ""
    traceback: Optional[str] = None
    timed_out: bool = False
    stop: Optional[str] = None  # after a timeout: "stopped", or the C call it is blocked in
    truncated: bool = False
    seconds: float = 0.0
    error: Optional[WandError] = None
    data: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.box.display

    def to_json(self) -> dict:
        out = {"target": self.target, "pid": self.pid, "ok": self.ok,
               "skipped": self.skipped, "status": self.status, "stdout": self.stdout,
               "stderr": self.stderr, "traceback": self.traceback, "timed_out": self.timed_out,
               "truncated": self.truncated, "seconds": round(self.seconds, 3),
               "error": None if self.error is None else {
                   "message": self.error.message, "hint": self.error.hint,
                   "code": self.error.code}}
        sm = self.box.summary
        if sm is not None:
            out.update(pod=sm.pod, namespace=sm.namespace, container=sm.container)
        out.update(self.data)
        return out


def _pool(n_units: int, max_parallel: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(max_parallel, n_units)))


def plan(backend, boxes: List[Box], pid: Optional[int], all_processes: bool,
         max_parallel: int = DEFAULT_MAX_PARALLEL, remote_exec: bool = True) -> List[Unit]:
    """The units to run: one per box, or one per attachable Python process of each box."""
    if not all_processes:
        return [Unit(b, pid) for b in boxes]

    def list_box(box):
        try:
            # the helper first, once per box, so that units of one box never race to add one
            backend.prepare_inject(box)
            session = Group.open_session(backend, box)
            procs = session.procs
        except WandError as e:
            return [Unit(box, error=e)]
        units = []
        for p in sorted(procs, key=lambda p: p.pid):
            if not p.python or p.role == "helper" or (pid is not None and p.pid != pid):
                continue
            units.append(Unit(box, p.pid, skipped=p.blocker_for(remote_exec)))
        group = Group(session, [u.pid for u in units if not u.skipped])
        for u in units:
            u.group = None if u.skipped else group
        if not group.pids:
            session.chan.close(timeout=2)
        if not units:
            units.append(Unit(box, error=WandError(
                f"no Python process{' with PID %d' % pid if pid is not None else ''} in "
                f"{box.display}", "`kubectl wand ps` shows what is there", code="no-python")))
        return units

    with _pool(len(boxes), max_parallel) as pool:
        return [u for units in pool.map(list_box, boxes) for u in units]


Work = Callable[[object, UnitResult], None]


def run_unit(backend, unit: Unit, work: Work, signal: str = "auto",
             remote_exec: bool = True) -> UnitResult:
    res = UnitResult(unit.box, unit.pid, skipped=unit.skipped, error=unit.error)
    if unit.skipped or unit.error:
        return res
    t0 = time.monotonic()
    with failure_kept(res):
        session = unit_session(backend, unit, res, signal, remote_exec)
        try:
            work(session, res)
        finally:
            session.close()
    res.seconds = time.monotonic() - t0
    return res


def unit_session(backend, unit: Unit, res: UnitResult, signal: str, remote_exec: bool,
                 ask=None) -> Session:
    """The unit's session (a stage 2 of its group's injector, or one of its own); the process
    it reached is noted in ``res``."""
    if unit.group is not None:
        session = unit.group.session_for(unit.pid, signal)
    else:
        session = ops.open_session(backend, unit.box, pid=unit.pid, ask=ask, signal=signal,
                                   remote_exec=remote_exec)
    res.pid, res.reason = session.choice.proc.pid, session.choice.reason
    return session


@contextlib.contextmanager
def failure_kept(res: UnitResult):
    """A failure inside becomes the unit's error, in ``res``: one unit's surprise must not sink
    the others."""
    try:
        yield
    except WandError as e:
        res.ok, res.error = False, e
    except Exception as e:
        res.ok, res.error = False, WandError(f"{type(e).__name__}: {e}", code="internal")


def run_all(backend, units: List[Unit], work: Work, max_parallel: int = DEFAULT_MAX_PARALLEL,
            signal: str = "auto", remote_exec: bool = True,
            on_result: Optional[Callable[[UnitResult], None]] = None) -> List[UnitResult]:
    """Run ``work`` in every unit, at most ``max_parallel`` at a time; results in unit order."""
    if max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1", code="usage")

    def one(unit):
        r = run_unit(backend, unit, work, signal, remote_exec)
        if on_result:
            on_result(r)
        return r

    with _pool(len(units), max_parallel) as pool:
        return list(pool.map(one, units))


@dataclass
class FanOptions:
    """Where a fanned-out command runs: the target, its flags, and how wide."""
    target: str
    where: TargetOptions = field(default_factory=TargetOptions)
    pid: Optional[int] = None
    all_ready: bool = False  # every ready replica (else the one the target names)
    all_processes: bool = False  # every Python process of each
    max_parallel: int = DEFAULT_MAX_PARALLEL  # run_all refuses less than 1

    @property
    def fanned(self) -> bool:
        return self.all_ready or self.all_processes


def planned(opts: FanOptions, remote_exec: bool = True):
    """(backend, units) for a fanned-out command: the target resolved, its units planned."""
    from kubectl_wand.backends import backend_for
    from kubectl_wand.targets import parse_target

    opts.where.scope = Scope.EVERY_READY if opts.all_ready else Scope.ONE
    target = parse_target(opts.target)
    backend = backend_for(target, opts.where)
    boxes = backend.resolve(target)
    if not opts.all_ready:
        boxes = boxes[:1]
    return backend, plan(backend, boxes, opts.pid, opts.all_processes, opts.max_parallel,
                         remote_exec=remote_exec)


def run_fanned(opts: FanOptions, work: Work, on_plan: Callable[[int], None] = lambda n: None
               ) -> List[UnitResult]:
    """Resolve, plan and run ``work`` on every unit; ``on_plan(n)`` hears how many first."""
    backend, units = planned(opts)
    on_plan(len(units))
    return run_all(backend, units, work, opts.max_parallel, signal=opts.where.nudge)


def summary(results: List[UnitResult]) -> dict:
    ok = sum(1 for r in results if r.ok)
    skipped = sum(1 for r in results if r.skipped)
    return {"total": len(results), "succeeded": ok, "failed": len(results) - ok - skipped,
            "skipped": skipped}


# ---------------------------------------------------------------- the operations

def exec_work(source: bytes, filename: str, timeout: Optional[float], max_output: int,
              ack_timeout: float) -> Work:
    def work(session, res: UnitResult):
        out = {"stdout": [], "stderr": []}
        r = runcode.run_code(session, source, filename, timeout,
                         lambda stream, data: out[stream].append(data), max_output, ack_timeout)
        res.stdout, res.stderr = "".join(out["stdout"]), "".join(out["stderr"])
        res.status, res.traceback = r.status, r.traceback
        res.timed_out, res.truncated = r.timed_out, r.truncated
        if r.timed_out:
            res.stop = ("stopped" if r.stopped else
                        f"still blocked in {(r.blocked or {}).get('call') or 'C code'}")
            if r.stopped:
                res.traceback = None  # the stop's own exception: the headline says it
        res.ok = r.status == 0 and not r.timed_out
        if r.status is None and not r.timed_out:
            res.error = WandError("the injected code reported no result",
                                  "see the target's stderr", code="no-result")

    return work


def loglevel_work(level: int, loggers: List[str], for_seconds: Optional[float],
                  ack_timeout: float = 5.0) -> Work:
    def work(session, res: UnitResult):
        events = session.request("loglevel", {"level": level, "loggers": list(loggers),
                                              "for_seconds": for_seconds},
                                 ack_timeout=ack_timeout)
        ev = next((e for e in events if e.get("event") == "loglevel"), None)
        if ev is None:
            raise WandError("the target did not report the log levels",
                            "see the target's stderr", code="no-result")
        res.data["loggers"] = ev["loggers"]
        res.ok = True

    return work
