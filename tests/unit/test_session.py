"""Session and Channel against a fake backend: a real subprocess that speaks the injector's
protocol from a script (frames in, JSON lines out), so framing, stray lines, errors, recovery
and fan-out tagging are tested without a container."""

import json
import sys

import pytest

from kubectl_wand.backends.base import Backend, Box
from kubectl_wand.engine.session import CLOSED, Channel, Session, raise_for
from kubectl_wand.errors import WandError

# A fake injector: reads the source frame and the request, then plays SCRIPT (a JSON list of
# actions from argv): ["out", line] writes a raw stdout line, ["err", text] a stderr line,
# ["read"] reads one frame and echoes it back as an event, ["exit", code] exits.
FAKE = r"""
import json, os, sys
def frame():
    h = b""
    while not h.endswith(b"\n"):
        c = os.read(0, 1)
        if not c:
            raise SystemExit(0)
        h += c
    n, rest = int(h.split()[0]), h.split()[1:]
    b = b""
    while len(b) < n:
        b += os.read(0, n - len(b))
    return rest, b
frame()  # the injector's source, with its cache header
for act in json.loads(sys.argv[1]):
    if act[0] == "out":
        os.write(1, act[1].encode() + b"\n")
    elif act[0] == "err":
        os.write(2, act[1].encode() + b"\n")
    elif act[0] == "read":
        rest, b = frame()
        os.write(1, json.dumps({"event": "echo", "header": [r.decode() for r in rest],
                                "frame": json.loads(b)}).encode() + b"\n")
    elif act[0] == "exit":
        raise SystemExit(act[1])
"""

PROCS = json.dumps({"event": "procs", "procs": [
    {"pid": 7, "ppid": 1, "uid": 1000, "argv": ["python3", "app.py"], "python": "3.14.10",
     "readable": True, "state": "S"}], "protocol": 1})


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, *scripts, recover_times=0):
        self.scripts = list(scripts)
        self.recovered = 0
        self.recover_times = recover_times

    def injector_argv(self, box):
        script = self.scripts.pop(0) if len(self.scripts) > 1 else self.scripts[0]
        return [sys.executable, "-c", FAKE, json.dumps(script)]

    def trust(self, box):
        return "image"

    def recover(self, box, stderr):
        if "exec: python3: executable file not found" in stderr and \
                self.recovered < self.recover_times:
            self.recovered += 1
            return True
        return False


BOX = Box(id="b", display="fake/b")


def test_open_sends_the_backend_trust_and_reads_the_process_table():
    s = Session(FakeBackend([["read"], ["out", PROCS]]), BOX, timeout=10)
    with pytest.raises(WandError):  # the echo comes first: not a process table
        s.open("ps")
    chan = Channel([sys.executable, "-c", FAKE, json.dumps([["read"]])])
    chan.send_bytes(b"src")
    chan.send({"op": "ps", "trust": FakeBackend([]).trust(BOX)})
    assert chan.next(10)["frame"] == {"op": "ps", "trust": "image"}
    s = Session(FakeBackend([["out", PROCS]]), BOX, timeout=10)
    procs = s.open("ps")
    assert [(p.pid, p.python, p.role) for p in procs] == [(7, "3.14.10", "main")]
    assert s.meta["protocol"] == 1


def test_stray_lines_go_to_stderr_text_not_events():
    chan = Channel([sys.executable, "-c", FAKE, json.dumps([
        ["out", "some banner"], ["out", "[1, 2]"], ["out", '{"event": "ready"}'],
        ["err", "a warning"]])])
    chan.send_bytes(b"src")
    assert chan.next(10) == {"event": "ready"}
    assert chan.next(10) is CLOSED
    text = chan.stderr_text()
    assert "some banner" in text and "[1, 2]" in text and "a warning" in text


def test_frames_carry_the_unit_header_in_a_fan_out():
    chan = Channel([sys.executable, "-c", FAKE, json.dumps([["read"], ["read"]])])
    chan.send_bytes(b"src")
    units = chan.fan_out([11, 12])
    assert chan.next(10)["frame"] == {"pids": [11, 12]}
    units[12].send({"op": "x"})
    ev = chan.next(10)
    assert ev["header"] == ["12"] and ev["frame"] == {"op": "x"}
    chan.close()


def test_events_tagged_with_a_unit_reach_that_unit_only():
    tagged = [["out", json.dumps({"unit": 5, "event": "ready"})],
              ["out", json.dumps({"unit": 6, "event": "result", "status": 0})],
              ["out", json.dumps({"unit": 5, "event": "exit", "status": 0})]]
    chan = Channel([sys.executable, "-c", FAKE, json.dumps(tagged)])
    chan.send_bytes(b"src")
    u = chan.fan_out([5, 6])
    assert u[5].next(10) == {"event": "ready"}
    assert u[6].next(10) == {"event": "result", "status": 0}
    assert u[5].next(10) is CLOSED  # its exit event
    chan.close()


def test_an_error_event_becomes_a_wand_error_with_code_and_hint():
    with pytest.raises(WandError) as ei:
        raise_for({"event": "error", "code": "no-matching-python", "message": "no Python 3.14",
                   "hint": "pass --image"})
    assert (ei.value.code, ei.value.message, ei.value.hint) == (
        "no-matching-python", "no Python 3.14", "pass --image")
    raise_for({"event": "ready"})  # anything else is no error


def test_blocked_error_shows_the_main_thread_stack_and_signals():
    with pytest.raises(WandError) as ei:
        raise_for({"event": "error", "code": "blocked", "message": "did not pick up",
                   "hint": "h", "where": {"frames": [["/app/a.py", 3, "f"]],
                                          "wchan": "do_select", "caught": ["SIGHUP"]}})
    assert "/app/a.py:3 in f" in ei.value.message and "do_select" in ei.value.message
    assert "--signal HUP" in ei.value.hint


def test_open_recovers_through_the_backend_then_explains():
    missing = [["err", "exec: python3: executable file not found in $PATH"], ["exit", 1]]
    b = FakeBackend(missing, [["out", PROCS]], recover_times=1)
    assert Session(b, BOX, timeout=10).open("ps")[0].pid == 7 and b.recovered == 1
    b = FakeBackend(missing, recover_times=0)
    with pytest.raises(WandError) as ei:
        Session(b, BOX, timeout=10).open("ps")
    assert ei.value.code == "injector-failed" and "executable file not found" in ei.value.message


def test_an_injector_that_dies_mid_request_is_a_message():
    s = Session(FakeBackend([["out", PROCS], ["read"], ["out", '{"event": "ready"}'],
                             ["exit", 3]]), BOX, timeout=10)
    s.open("inject")
    with pytest.raises(WandError) as ei:
        s.select(7)
        s.request("exec", {"code": "print(1)"})
    assert ei.value.code == "injector-exited"
