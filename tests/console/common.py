"""Helpers for the shell/pdb tests: a person at a terminal (pexpect) against real containers."""

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import WAND, poll, wand

pexpect = pytest.importorskip("pexpect")

APPS = Path(__file__).resolve().parent / "apps"
MOUNT = ("-v", f"{APPS}:/wapps:ro")

# What a session could leave in the target: threads, monitoring tools, breakpoints, the pdb
# instance, linecache entries, the routers on sys.stdout/err (besides the probe's own).
LEFTOVERS = r"""
import sys, threading, linecache, json
pdb = sys.modules.get("pdb")
bdb = sys.modules.get("bdb")
me = threading.current_thread()
main = sys._current_frames()[threading.main_thread().ident]
traced = []
f = main
while f is not None:
    if f.f_trace is not None:
        traced.append(f.f_code.co_name)
    f = f.f_back
names = sorted(t.name for t in threading.enumerate()
               if t.name.startswith("kubectl-wand") and t is not me)
if "kubectl-wand-exec-ctl" in names:
    names.remove("kubectl-wand-exec-ctl")
print(json.dumps({
    # the probe's own exec thread (me) and its control reader (one) are not counted
    "threads": names,
    "tools": [sys.monitoring.get_tool(i) for i in range(6)],
    "breakpoints": [str(b) for b in (bdb.Breakpoint.bpbynumber if bdb else []) if b],
    "pdb": bool(pdb and pdb.Pdb._last_pdb_instance),
    "lines": [k for k in linecache.cache if k.startswith("<shell#")],
    "sinks": sorted(len(r._sinks) for r in sys.modules["_kubectl_wand_state"].routers.values()),
    "traced": traced,
}))
"""
CLEAN = {"threads": [], "tools": [None] * 6, "breakpoints": [], "pdb": False, "lines": [],
         "sinks": [1, 1], "traced": []}  # one sink each: the probe's own


def leftovers(c):
    cp = wand("exec", f"docker/{c.name}", "-q", "-c", LEFTOVERS)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return json.loads(cp.stdout.strip().splitlines()[-1])


def assert_clean(c, timeout=15.0):
    got = {}

    def clean():
        got.update(leftovers(c))
        got["staged"] = c.staged()  # after the probe's own exec: nothing of ours on disk
        return got == dict(CLEAN, staged=[])

    try:
        poll(clean, timeout=timeout, what="a target with nothing of the session left",
             every=0.3)
    except AssertionError:
        raise AssertionError(f"left in the target: {got}")


def counter_moves(c, expr="main.counter"):
    """The app keeps serving: a value of its main loop changes between two reads."""
    code = ("import sys, time\nmain = sys.modules['__main__']\na = %s\n"
            "for _ in range(100):\n    time.sleep(0.05)\n    if %s != a:\n"
            "        print('moving'); break\n" % (expr, expr))
    cp = wand("exec", f"docker/{c.name}", "-q", "-c", code)
    return cp.returncode == 0 and "moving" in cp.stdout


def spawn(*args, home, env=None):
    e = {"HOME": str(home), "PATH": os.environ["PATH"], "TERM": "dumb", "LANG": "C.UTF-8"}
    e.update(env or {})
    return pexpect.spawn(WAND, list(args), encoding="utf-8", timeout=40, env=e,
                         dimensions=(50, 200))


def kill_hard(child):
    """The client vanishes: SIGKILL, no chance to say goodbye."""
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    child.close()
