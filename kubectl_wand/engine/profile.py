"""`profile`: stack samples read from the target's memory by the helper (payload/injector.py,
``sample_profile``: no code runs in the target), merged here and turned into a top-N table,
collapsed stacks, speedscope JSON and (engine/flame.py) a flame graph."""

import threading
from typing import Dict, List, Optional, Tuple

from kubectl_wand import __version__
from kubectl_wand.engine import live
from kubectl_wand.engine.fanout import UnitResult
from kubectl_wand.errors import WandError

Frame = Tuple[str, str, int]  # function, file, line (0: lines not kept)
Stacks = Dict[Tuple[Frame, ...], int]  # root first -> samples
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
MAX_FRAMES, MAX_STACKS, MAX_DEPTH = 50000, 20000, 257  # what a helper may send at most


def profile_work(duration: float, rate: float, threads: str, tasks: bool, lines: bool,
                 on_cpu: bool, on_progress=None):
    def work(session, res: UnitResult, stop: threading.Event):
        session.chan.send({"op": "profile", "duration": duration, "rate": rate,
                           "threads": threads, "async": tasks, "lines": lines,
                           "on_cpu": on_cpu})
        for ev in live.events(session, stop, limit=duration + 60):
            if ev.get("event") == "profile-progress" and on_progress:
                on_progress(res, ev)
            elif ev.get("event") == "profile":
                res.data["profile"] = decode(ev)
                res.data["samples"] = ev.get("samples", 0)
                res.data["errors"] = ev.get("errors", 0)
                res.data["missed"] = ev.get("missed", 0)
                res.data["stopped"] = bool(ev.get("stopped"))
        if "profile" not in res.data:
            raise WandError("the helper sent no profile", "retry with -v", code="no-result")
        res.ok = True

    return work


def decode(ev: dict) -> Stacks:
    """The helper's interned frames and stacks, checked and bounded (it is not trusted)."""
    raw = ev.get("frames") or []
    if not isinstance(raw, list) or len(raw) > MAX_FRAMES:
        raise WandError("malformed profile from the helper", code="bad-profile")
    frames = []
    for f in raw:
        if not (isinstance(f, list) and len(f) == 3):
            raise WandError("malformed profile frame", code="bad-profile")
        frames.append((str(f[0])[:500], str(f[1])[:1000], f[2] if isinstance(f[2], int) else 0))
    out: Stacks = {}
    stacks = ev.get("stacks") or []
    if not isinstance(stacks, list) or len(stacks) > MAX_STACKS + 1:
        raise WandError("malformed profile from the helper", code="bad-profile")
    for item in stacks:
        try:
            idx, count = item
            key = tuple(frames[i] for i in idx[:MAX_DEPTH])
            count = int(count)
        except (TypeError, ValueError, IndexError):
            raise WandError("malformed profile stack", code="bad-profile")
        if key and count > 0:
            out[key] = out.get(key, 0) + count
    return out


def merge(results: List[UnitResult], split: bool = False) -> Stacks:
    """Every unit's stacks in one profile; ``split`` puts each unit's under a root frame of
    its own (pod/container and PID)."""
    out: Stacks = {}
    for r in results:
        prof = r.data.get("profile") if r.ok else None
        if not prof:
            continue
        root = ((f"{r.target} pid {r.pid}", "", 0),) if split else ()
        for k, c in prof.items():
            out[root + k] = out.get(root + k, 0) + c
    return out


def frame_name(f: Frame) -> str:
    func, file, line = f
    if not file:
        return func
    return f"{func} ({file}:{line})" if line else f"{func} ({file})"


def top(stacks: Stacks, n: int = 15) -> List[dict]:
    """Functions by self samples (innermost frame), with total samples (anywhere on the
    stack, once per stack); frames told apart by function and file."""
    self_, total = {}, {}
    grand = sum(stacks.values()) or 1
    for k, c in stacks.items():
        fk = [(f[0], f[1]) for f in k]
        self_[fk[-1]] = self_.get(fk[-1], 0) + c
        for f in set(fk):
            total[f] = total.get(f, 0) + c
    rows = sorted(total, key=lambda f: (-self_.get(f, 0), -total[f], f))[:n]
    return [{"function": f[0], "file": f[1], "self": self_.get(f, 0), "total": total[f],
             "self_pct": 100.0 * self_.get(f, 0) / grand, "total_pct": 100.0 * total[f] / grand}
            for f in rows]


def _collapsed_part(s: str) -> str:
    return s.replace(";", ":").replace("\n", " ").replace("\r", " ")


def collapsed(stacks: Stacks) -> str:
    """Brendan Gregg's folded format (flamegraph.pl, speedscope, inferno): root first."""
    lines = [";".join(_collapsed_part(frame_name(f)) for f in k) + f" {c}"
             for k, c in sorted(stacks.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join(lines) + ("\n" if lines else "")


def speedscope(profiles: List[Tuple[str, Stacks]], rate: float, name: str) -> dict:
    """Speedscope's file format, 'sampled' profiles sharing one frame table; weights in
    seconds of sampling (samples / rate)."""
    frames: List[dict] = []
    index: Dict[Frame, int] = {}
    out = []
    for pname, stacks in profiles:
        samples, weights = [], []
        for k, c in sorted(stacks.items(), key=lambda kv: -kv[1]):
            ids = []
            for f in k:
                i = index.get(f)
                if i is None:
                    i = index[f] = len(frames)
                    d = {"name": f[0]}
                    if f[1]:
                        d["file"] = f[1]
                    if f[2]:
                        d["line"] = f[2]
                    frames.append(d)
                ids.append(i)
            samples.append(ids)
            weights.append(c / rate)
        end = sum(weights)
        out.append({"type": "sampled", "name": pname, "unit": "seconds", "startValue": 0,
                    "endValue": end, "samples": samples, "weights": weights})
    return {"$schema": SPEEDSCOPE_SCHEMA, "version": "0.0.1", "exporter":
            f"kubectl-wand {__version__}", "name": name, "activeProfileIndex": 0,
            "shared": {"frames": frames}, "profiles": out}


def format_for(path: Optional[str], fmt: Optional[str]) -> Optional[str]:
    if fmt:
        return fmt
    if not path:
        return None
    low = path.lower()
    if low.endswith(".svg"):
        return "svg"
    if low.endswith(".json"):
        return "speedscope"
    return "collapsed"
