"""Work that lasts (trace, profile) in one or many units at the same time.

Unlike `exec --all`, whose units may run one after another, a trace or a profile must cover
the same window in every replica: sessions open at most ``max_parallel`` at a time, then all
units run together until they end by themselves or ``stop`` is set (Ctrl-C). Results come back
in unit order, one failure never hiding the others.
"""

import queue
import threading
import time
from typing import Callable, List, Optional

from kubectl_wand.engine import fanout
from kubectl_wand.engine.fanout import Unit, UnitResult
from kubectl_wand.engine.session import CLOSED, raise_for
from kubectl_wand.errors import UsageError, WandError

MAX_UNITS = 100
STOP_GRACE = 10.0  # seconds for a unit to confirm its end once asked to stop

LiveWork = Callable[[object, UnitResult, threading.Event], None]


def run_live(backend, units: List[Unit], work: LiveWork, max_parallel: int,
             signal: str = "auto", remote_exec: bool = True, ask=None,
             stop: Optional[threading.Event] = None) -> List[UnitResult]:
    if len(units) > MAX_UNITS:
        raise UsageError(f"{len(units)} processes is more than {MAX_UNITS} at once",
                         "narrow the target (-l, --pod, --pid)", code="usage")
    stop = stop or threading.Event()
    gate = threading.Semaphore(max(1, max_parallel))
    results: List[UnitResult] = [UnitResult(u.box, u.pid, skipped=u.skipped, error=u.error)
                                 for u in units]

    def one(unit: Unit, res: UnitResult, done: threading.Event):
        t0 = time.monotonic()
        try:
            with fanout.failure_kept(res):
                with gate:
                    if stop.is_set():
                        raise WandError("stopped before it started", code="stopped")
                    session = fanout.unit_session(backend, unit, res, signal, remote_exec, ask)
                try:
                    work(session, res, stop)
                finally:
                    session.close()
        finally:
            res.seconds = time.monotonic() - t0
            done.set()

    dones = []
    for u, r in zip(units, results):
        if not (u.skipped or u.error):
            dones.append(threading.Event())
            threading.Thread(target=one, args=(u, r, dones[-1]), daemon=True,
                             name="wand-live").start()
    try:
        _wait(dones)
    except KeyboardInterrupt:
        stop.set()  # each unit asks its target to end and waits for the confirmation
        _wait(dones)  # a second Ctrl-C leaves at once (the injectors die with us)
    return results


def _wait(dones):
    """Events, not Thread.join: a join interrupted by Ctrl-C may report a live thread ended."""
    for d in dones:
        while not d.wait(0.2):
            pass


def run_fanned(opts: fanout.FanOptions, work: LiveWork,
               on_plan: Callable[[int], None] = lambda n: None, ask=None,
               remote_exec: bool = True, signal: Optional[str] = None) -> List[UnitResult]:
    """trace/profile's entry: resolve, plan (``on_plan(n)`` hears how many units), run all
    together. ``ask`` (an interactive process choice) serves a single unit only."""
    backend, units = fanout.planned(opts, remote_exec)
    on_plan(len(units))
    return run_live(backend, units, work, opts.max_parallel,
                    signal=opts.where.nudge if signal is None else signal,
                    remote_exec=remote_exec, ask=ask if len(units) == 1 else None)


def events(session, stop: threading.Event, limit: Optional[float] = None):
    """The session's events until stage 2 is ready again; on ``stop`` sends one
    ``{"op": "stop"}`` (the injector ends the work) and waits at most STOP_GRACE more.
    ``limit``: seconds after which a silent unit is an error."""
    chan = session.chan
    asked = None
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        if stop.is_set() and asked is None:
            chan.send({"op": "stop"})
            asked = time.monotonic()
        if asked is not None and time.monotonic() - asked > STOP_GRACE:
            raise WandError("the target did not confirm the end within "
                            f"{STOP_GRACE:.0f}s", "check it with `kubectl wand stacks`",
                            code="no-end")
        if deadline is not None and time.monotonic() > deadline:
            raise WandError("no result from the target in time", "retry with -v",
                            code="timeout")
        try:
            ev = chan.events.get(timeout=0.2)
        except queue.Empty:
            continue
        if ev is CLOSED:
            session.raise_if_gone()
            err = chan.stderr_text()
            raise WandError("the injector stopped unexpectedly" + (f": {err}" if err else ""),
                            "the target or its container may have stopped; retry with -v",
                            code="injector-exited")
        if ev.get("event") == "error":
            raise_for(ev)
        if ev.get("event") in ("ready", "done"):
            return
        yield ev
