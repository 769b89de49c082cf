"""`trace` on real containers: non-stopping logpoints through sys.monitoring in unprepared
targets (uid 1000, --cap-drop ALL, --network none); afterwards nothing stays registered."""

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import WAND, breakpoint_line, poll, wand

APPS = Path(__file__).resolve().parent / "apps"
HTTP = ("python3", "/app/http_app.py")
LINE = breakpoint_line("http_app.py")  # in handle(): `body = f"{greeting} #{counter}\n"`
HOT = ("python3", "/wapps/hot.py")
MOUNT = ("-v", f"{APPS}:/wapps:ro")
# what the target holds of a trace: sys.monitoring tool names and kubectl-wand threads
LEFTOVERS = ("import sys, threading\n"
             "print(repr([sys.monitoring.get_tool(i) for i in range(6)]))\n"
             "names = sorted(t.name for t in threading.enumerate()\n"
             "               if t.name.startswith('kubectl-wand') and t is not "
             "threading.current_thread())\n"
             # the probe's own exec has one control reader: not a leftover
             "'kubectl-wand-exec-ctl' in names and names.remove('kubectl-wand-exec-ctl')\n"
             "print(repr(names))\n")


def hot_line():
    return next(n for n, line in enumerate((APPS / "hot.py").read_text().splitlines(), 1)
                if "HOT-LINE" in line)


def leftovers(c):
    cp = wand("exec", f"docker/{c.name}", "-q", "-c", LEFTOVERS)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    tools, threads = cp.stdout.splitlines()
    return eval(tools), eval(threads)


def assert_clean(c):
    tools, threads = leftovers(c)
    assert tools == [None] * 6, tools  # the tool id is free again
    assert threads == [], threads  # neither the sender nor the watcher is left


class Traced:
    """`kubectl-wand trace … -o json` in the background; every event it prints is kept."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([WAND, "trace", *args, "-o", "json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events, self.cond, self.taken = [], threading.Condition(), {}
        self.err = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self.cond:
                    self.events.append(json.loads(line))
                    self.cond.notify_all()
        with self.cond:
            self.events.append(None)
            self.cond.notify_all()

    def next(self, kind, timeout=60):
        """The next event of this kind not returned before."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                start = self.taken.get(kind, 0)
                for i, ev in enumerate(self.events[start:], start):
                    if ev is not None and ev["event"] == kind:
                        self.taken[kind] = i + 1
                        return ev
                if None in self.events or time.monotonic() > deadline:
                    raise AssertionError(f"no {kind} event; stderr: {''.join(self.err)}")
                self.cond.wait(0.2)

    def rest(self, timeout=60):
        self.proc.wait(timeout=timeout)
        with self.cond:
            while None not in self.events:
                self.cond.wait(0.2)
            return [e for e in self.events if e is not None], "".join(self.err)


def test_trace_request_handler_values_then_nothing_left(app):
    c = app(*HTTP)
    t = Traced(f"docker/{c.name}", f"apps/http_app.py:{LINE}", "path", "counter + 100",
               "--max-hits", "3")
    ev = t.next("tracing")
    assert ev["locations"][0]["file"] == "/app/http_app.py"
    assert ev["locations"][0]["functions"] == ["handle"]
    assert ev["tool_id"] in (3, 4, 5)
    for i in range(4):
        assert c.get(8000, f"/r{i}").stdout == f"hello /r{i} #{i + 1}\n"
    events, err = t.rest()
    assert t.proc.returncode == 0, err
    hits = [e for e in events if e["event"] == "hit"]
    assert [h["values"] for h in hits] == [
        [["path", f"'/r{i}'"], ["counter + 100", str(101 + i)]] for i in range(3)]
    assert all(h["pid"] == 1 and "process_request_thread" in h["thread"] and h["time"] > 0
               for h in hits)
    end = next(e for e in events if e["event"] == "trace-end")
    assert end["reason"] == "max-hits" and end["hits"] == 3
    assert_clean(c)
    assert c.get(8000, "/after").stdout == "hello /after #5\n"
    assert c.staged() == []


def test_trace_ctrl_c_and_kill_leave_nothing(app):
    c = app(*HTTP)
    t = Traced(f"docker/{c.name}", f"http_app.py:{LINE}", "path")
    t.next("tracing")
    c.get(8000, "/one")
    assert t.next("hit")["values"] == [["path", "'/one'"]]
    t.proc.send_signal(signal.SIGINT)
    events, err = t.rest()
    assert t.proc.returncode == 0, err
    assert next(e for e in events if e["event"] == "trace-end")["reason"] == "stopped"
    assert_clean(c)
    # killed outright: the injector sees its stdin end, the agent its socket's
    t = Traced(f"docker/{c.name}", f"http_app.py:{LINE}", "path")
    t.next("tracing")
    t.proc.kill()
    t.proc.wait()

    def gone():
        tools, threads = leftovers(c)
        return tools == [None] * 6 and threads == []

    poll(gone, timeout=30, what="the trace removed after the CLI was killed", every=0.2)
    assert c.get(8000, "/two").stdout.startswith("hello /two")


def test_failing_expression_reported_once(app):
    c = app(*HTTP)
    t = Traced(f"docker/{c.name}", f"http_app.py:{LINE}", "path", "nothing_here.x",
               "--max-hits", "4")
    t.next("tracing")
    for i in range(4):
        c.get(8000, f"/e{i}")
    events, err = t.rest()
    assert t.proc.returncode == 0, err
    errors = [e for e in events if e["event"] == "trace-error"]
    assert len(errors) == 1, errors
    assert "NameError" in errors[0]["error"] and errors[0]["expr"] == "nothing_here.x"
    hits = [e for e in events if e["event"] == "hit"]
    # the other value still comes with every hit
    assert [h["values"][0][1] for h in hits] == [f"'/e{i}'" for i in range(4)]
    assert all(h["values"][1] == ["nothing_here.x", None] for h in hits)
    assert next(e for e in events if e["event"] == "trace-end")["errors"] == 4
    assert_clean(c)


def test_rate_limit_drops_and_counts_and_where(app):
    c = app(*HOT, extra=MOUNT)
    started = time.monotonic()
    cp = wand("trace", f"docker/{c.name}", f"hot.py:{hot_line()}", "i", "--where",
              "i % 2 == 0", "--rate", "5/s", "--for", "3s", "-o", "json", timeout=90)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    events = [json.loads(s) for s in cp.stdout.splitlines()]
    hits = [e for e in events if e["event"] == "hit"]
    end = next(e for e in events if e["event"] == "trace-end")
    assert end["reason"] == "for"
    # a burst of 5, then 5 per second for 3 s; the hot line runs far more often
    assert 5 <= len(hits) <= 5 + 5 * 3 + 2, len(hits)
    assert end["dropped"] > 100 and end["hits"] == len(hits)
    assert all(int(h["values"][0][1]) % 2 == 0 for h in hits)  # --where held for each
    assert time.monotonic() - started < 60
    assert_clean(c)


def test_several_locations_and_usage_errors(app):
    c = app(*HTTP)
    first = breakpoint_line("http_app.py") - 2  # `counter += 1`
    t = Traced(f"docker/{c.name}", f"http_app.py:{first}", f"http_app.py:{LINE}", "counter",
               "--max-hits", "2")
    ev = t.next("tracing")
    assert [loc["line"] for loc in ev["locations"]] == [first, LINE]
    c.get(8000, "/a")
    events, err = t.rest()
    hits = [e for e in events if e["event"] == "hit"]
    assert [(h["at"].rsplit(":", 1)[1], h["values"][0][1]) for h in hits] == [
        (str(first), "0"), (str(LINE), "1")]
    # a line without code, a file not loaded: errors that say why, and nothing left
    cp = wand("trace", f"docker/{c.name}", f"http_app.py:{LINE + 2}", "x")  # blank line
    assert cp.returncode == 1 and "no loaded function" in cp.stderr, cp.stderr
    cp = wand("trace", f"docker/{c.name}", "nowhere/missing.py:3", "x")
    assert cp.returncode == 1 and "no loaded module's file matches" in cp.stderr, cp.stderr
    cp = wand("trace", f"docker/{c.name}", f"http_app.py:{LINE}", "x +")
    # compiled by the target's own Python (3.14 syntax), a usage error
    assert cp.returncode == 2 and "cannot compile 'x +'" in cp.stderr, cp.stderr
    assert_clean(c)


def test_trace_all_processes_of_a_server(app):
    c = app("sh", "-c", "cd /app && exec python3 -m gunicorn -w 2 -b 127.0.0.1:8002 "
            "wsgi_app:app", ready="Booting worker")
    line = breakpoint_line("wsgi_app.py")
    t = Traced(f"docker/{c.name}", "--all-processes", f"wsgi_app.py:{line}", "1",
               "--for", "60s")
    ready = [t.next("tracing"), t.next("tracing")]
    assert len({e["pid"] for e in ready}) == 2

    seen = []
    wait = time.monotonic() + 40
    while len({e["pid"] for e in seen}) < 2 and time.monotonic() < wait:
        c.get(8002, "/w")
        try:
            seen.append(t.next("hit", timeout=2))
        except AssertionError:
            pass
    assert len({e["pid"] for e in seen}) == 2, seen
    t.proc.send_signal(signal.SIGINT)
    events, err = t.rest()
    # the master never imported the app (no --preload): that process fails, saying why
    assert t.proc.returncode == 1, err
    summaries = {e["pid"]: e for e in events if e["event"] == "summary"}
    assert len(summaries) == 3 and not summaries[1]["ok"]
    assert "no loaded module's file matches" in summaries[1]["error"]["message"]
    assert all(s["ok"] and s["hits"] >= 1 for p, s in summaries.items() if p != 1)
    assert_clean(c)


def test_no_free_tool_id_is_an_error_that_names_the_holders(app):
    c = app(*HTTP)
    take = "import sys\nfor i in (3, 4, 5):\n    sys.monitoring.use_tool_id(i, f'other-tool-{i}')\n"
    assert wand("exec", f"docker/{c.name}", "-q", "-c", take).returncode == 0
    cp = wand("trace", f"docker/{c.name}", f"http_app.py:{LINE}", "path")
    assert cp.returncode == 1
    assert "no free sys.monitoring tool id for the trace (3: other-tool-3, 4: other-tool-4, " \
           "5: other-tool-5)" in cp.stderr, cp.stderr
    assert "end another trace" in cp.stderr
    # ids 0-2 were left alone, and nothing of the failed trace stays
    tools, threads = leftovers(c)
    assert tools == [None, None, None, "other-tool-3", "other-tool-4", "other-tool-5"]
    assert threads == []
    # one id back: the trace takes it and gives it back at the end
    free = "import sys\nsys.monitoring.free_tool_id(4)\n"
    assert wand("exec", f"docker/{c.name}", "-q", "-c", free).returncode == 0
    t = Traced(f"docker/{c.name}", f"http_app.py:{LINE}", "path", "--max-hits", "1")
    assert t.next("tracing")["tool_id"] == 4
    c.get(8000, "/x")
    events, err = t.rest()
    assert t.proc.returncode == 0, err
    assert leftovers(c)[0] == [None, None, None, "other-tool-3", None, "other-tool-5"]
