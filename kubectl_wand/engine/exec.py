"""`exec`: run code in one live process (or, with --all/--all-processes, in each replica or
process in parallel) and bring back its output and result.

The CLI builds an :class:`ExecOptions` and a view; :func:`run` resolves the target, opens a
session (engine/ops.py), runs the code (``runcode.run_code``) and returns what happened."""

from dataclasses import dataclass
from typing import Callable, ContextManager, List, Optional, Protocol

from kubectl_wand.engine import fanout, ops, runcode
from kubectl_wand.engine.procs import Proc
from kubectl_wand.errors import UsageError, WandError


@dataclass
class ExecOptions(fanout.FanOptions):
    """Where (fanout.FanOptions: target, flags, --all…) and what to run."""
    source: bytes = b""
    filename: str = "<kubectl-wand -c>"
    timeout: Optional[float] = 30.0
    detach: bool = False  # start in a background thread of the target and return
    ack_timeout: float = 5.0
    max_output: int = 8 << 20
    force: bool = False  # run code that would end the process

    def __post_init__(self):
        if self.detach and self.fanned:
            raise UsageError("--detach runs in one process only", "drop --all/--all-processes")
        runcode.refuse_fatal(self.source, self.force)


class ExecView(Protocol):
    """How the CLI shows an exec: a spinner for slow steps, an interactive process choice
    (None without a terminal), the code's output as it comes, and a line when it starts."""

    ask: Optional[Callable[[List[Proc]], Proc]]

    def step(self, text: str) -> ContextManager: ...

    def started(self, where: str, why: str) -> None: ...

    def output(self, stream: str, data: str) -> None: ...


@dataclass
class Done:
    """One process's run: where, which PID, and the result (runcode.ExecResult)."""
    display: str
    pid: int
    result: runcode.ExecResult


def run(opts: ExecOptions, view: ExecView) -> Done:
    """Run the code in the one process the target names; KeyboardInterrupt (Ctrl-C) stops
    it in the target and the result says so."""
    box, session = ops.reach(opts.target, opts.where, opts.pid, view.ask, view.step)
    view.started(box.display, session.choice.reason)
    try:
        res = runcode.run_code(session, opts.source, opts.filename, opts.timeout, view.output,
                           opts.max_output, opts.ack_timeout, detach=opts.detach)
    finally:
        session.close()
    if res.status is None and not (res.timed_out or res.interrupted or res.detached):
        session.raise_if_gone()
        raise WandError("the injected code reported no result", "see the target's stderr",
                        code="no-result")
    if (res.timed_out or res.interrupted) and res.stopped:
        res.traceback = None  # the stop's own exception in the user's code: said apart
    return Done(box.display, session.pid, res)


def run_all(opts: ExecOptions, on_plan: Callable[[int], None]) -> list:
    """--all / --all-processes: every unit in parallel; ``on_plan(n)`` hears how many."""
    return fanout.run_fanned(opts, fanout.exec_work(opts.source, opts.filename, opts.timeout,
                                                   opts.max_output, opts.ack_timeout), on_plan)
