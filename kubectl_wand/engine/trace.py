"""`trace`: non-stopping logpoints run inside the target by payload/tracer.py (through the
agent), their hits streamed back until --for, --max-hits, Ctrl-C or the CLI's end."""

import re
import sys
import threading
from typing import Callable, List, Optional

from kubectl_wand import payload
from kubectl_wand.engine import live
from kubectl_wand.engine.fanout import UnitResult
from kubectl_wand.errors import UsageError, WandError

LOCATION = re.compile(r"^([^\s()\[\]{}'\"=,]+):(\d{1,7})$")
MAX_EXPRS = 10
MAX_EXPR_LEN = 2000


def split_args(args: List[str]):
    """FILE:LINE words (one or more) and expressions (any number, evaluated at each hit).
    ``x.py:12`` is never a valid Python expression, so the two cannot be confused."""
    locations, exprs = [], []
    for a in args:
        m = LOCATION.match(a)
        if m and m.group(1) != "lambda":
            locations.append({"file": m.group(1), "line": int(m.group(2))})
        else:
            exprs.append(a)
    if not locations:
        raise UsageError("give at least one FILE:LINE to trace",
                         "e.g. kubectl wand trace deploy/app app/views.py:42 'request.path'")
    if len(exprs) > MAX_EXPRS or any(len(e) > MAX_EXPR_LEN or not e.strip() for e in exprs):
        raise UsageError(f"at most {MAX_EXPRS} expressions of up to {MAX_EXPR_LEN} characters",
                         "trace fewer values at a time")
    for e in exprs if sys.version_info >= (3, 14) else ():  # the target's syntax, early
        try:
            compile(e, "<expression>", "eval")
        except SyntaxError as x:
            raise UsageError(f"{e!r} is not a Python expression: {x.msg}",
                             "quote each expression; a statement cannot be traced")
    return locations, exprs


def parse_rate(text: Optional[str]) -> float:
    """'10', '10/s', '100/m' → hits per second."""
    if text is None:
        return 10.0
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|m|min|h))?\s*$", text)
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"invalid --rate {text!r}", "e.g. --rate 10/s, --rate 100/m")
    per = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    rate = float(m.group(1)) / per
    if rate > 10000:
        raise UsageError("--rate above 10000/s would not protect the target",
                         "use --max-hits to bound the total instead")
    return rate


def trace_work(locations, exprs, where, rate, max_hits, for_seconds, ack_timeout,
               on_event: Callable[[UnitResult, dict], None]):
    tracer = payload.source("tracer").encode()

    def work(session, res: UnitResult, stop: threading.Event):
        msg = {"op": "trace", "ack_timeout": ack_timeout,
               "agent_source": payload.source("agent"), "blobs": [["tracer", len(tracer)]],
               "params": {"locations": locations, "exprs": exprs, "where": where,
                          "rate": rate, "max_hits": max_hits, "for_seconds": for_seconds}}
        if session.signal:
            msg["signal"] = session.signal
        session.chan.send(msg)
        session.chan.send_bytes(tracer)
        res.data.update({"hits": 0, "dropped": 0, "lost": 0, "errors": 0})
        for ev in live.events(session, stop):
            kind = ev.get("event")
            if kind == "tracing":
                res.data["locations"] = ev.get("locations") or []
                res.data["tool_id"] = ev.get("tool_id")
            elif kind in ("trace-stats", "trace-end"):
                for k in ("hits", "dropped", "lost", "errors"):
                    if isinstance(ev.get(k), int):
                        res.data[k] = ev[k]
                if kind == "trace-end":
                    res.data["ended"] = ev.get("reason")
            if kind in ("tracing", "hit", "trace-error", "trace-stats", "trace-end"):
                on_event(res, ev)
        if "ended" not in res.data:
            session.raise_if_gone()
            raise WandError("the trace ended without saying so", "see the target's stderr",
                            code="no-result")
        res.ok = True

    return work
