"""A debug session cannot strand the target, and only the operator's session gets in.

Real containers, real debugpy (in-process, behind the gate of payload/dapgate.py), the
project's DAP client. After each scenario the target serves requests at its normal rate,
measured by polling (tests/reliability/conftest.py: rate_ok), not by a sleep.
"""

import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from kubectl_wand.dap import DAPClient, DAPError
from tests.conftest import IMAGE, Attached, breakpoint_line, poll, wand

HTTP = ("python3", "/app/http_app.py")
APP = "/app/http_app.py"

RATE = r"""
import sys, time, urllib.request as u
n, port = int(sys.argv[1]), int(sys.argv[2])
t = time.monotonic()
for i in range(n):
    u.urlopen("http://127.0.0.1:%d/rate" % port, timeout=5).read()
print(n / (time.monotonic() - t))
"""


def rate(c, port=8000, n=30):
    cp = c.sh("python3", "-c", RATE, str(n), str(port), timeout=60)
    return float(cp.stdout) if cp.returncode == 0 else 0.0


def serves_normally(c, baseline, port=8000, timeout=20.0):
    """Poll until the target serves at >= 1/2 of its measured baseline rate."""
    got = []

    def ok():
        got.append(rate(c, port))
        return got[-1] >= baseline / 2

    try:
        poll(ok, timeout, "normal request rate", every=0.1)
    except AssertionError:
        raise AssertionError(f"rate {got[-3:]} req/s vs baseline {baseline:.0f}")
    return got[-1]


def request_in_background(c, path="/bp", port=8000):
    return subprocess.Popen(["docker", "exec", c.name, "python3", "-c",
                             "import urllib.request as u;print(u.urlopen("
                             f"'http://127.0.0.1:{port}{path}', timeout=60).read().decode())"],
                            stdout=subprocess.PIPE, text=True)


def stop_at_breakpoint(port, c, line):
    dap = DAPClient("127.0.0.1", port)
    dap.attach(breakpoints={APP: [line]})
    req = request_in_background(c)
    stop = dap.stopped_locals(timeout=30)
    assert stop["reason"] == "breakpoint", stop
    return dap, req, stop


def drop(dap):
    """The client vanishes: no disconnect, the connection is reset (as when its process
    dies). SHUT_RD wakes the client's own reader thread so that close() really closes."""
    dap.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    dap.sock.shutdown(socket.SHUT_RD)
    dap.sock.close()


@pytest.fixture
def target(app):
    c = app(*HTTP)
    c.baseline = max(rate(c), rate(c))
    return c


def test_client_dropped_while_stopped_resumes_within_2s_and_next_client_works(target):
    c = target
    line = breakpoint_line("http_app.py")
    with Attached(f"docker/{c.name}", "--local-port", "0") as a:
        dap, req, stop = stop_at_breakpoint(a.port, c, line)
        t0 = time.monotonic()
        drop(dap)
        out = req.communicate(timeout=30)[0]
        resumed = time.monotonic() - t0
        assert out.startswith("hello /bp"), out
        assert resumed <= 2.0, f"the stopped request resumed after {resumed:.2f}s"
        serves_normally(c, c.baseline)
        # breakpoints are gone with the client: a request does not stop anywhere
        assert c.get(8000, "/bp2").stdout.startswith("hello /bp2")
        # the next client, through the same attach, hits a breakpoint again
        dap2, req2, stop2 = stop_at_breakpoint(a.port, c, line)
        dap2.request("continue", threadId=stop2["thread"])
        assert req2.communicate(timeout=30)[0].startswith("hello /bp")
        dap2.close()
        rc, err = a.stop()
    assert rc == 0, err
    assert "went away without detaching" in err, err
    c.assert_healthy(8000)


def test_client_dropped_while_stepping_and_while_running(target):
    c = target
    line = breakpoint_line("http_app.py")
    with Attached(f"docker/{c.name}", "--local-port", "0") as a:
        # running: connected with a breakpoint set, nothing stopped
        dap = DAPClient("127.0.0.1", a.port)
        dap.attach(breakpoints={APP: [line]})
        drop(dap)
        serves_normally(c, c.baseline)
        # stepping: stopped, a `next` sent, gone before the step completes
        dap, req, stop = stop_at_breakpoint(a.port, c, line)
        dap.send("next", threadId=stop["thread"])
        drop(dap)
        assert req.communicate(timeout=30)[0].startswith("hello /bp")
        serves_normally(c, c.baseline)
        rc, err = a.stop()
    assert rc == 0, err
    c.assert_healthy(8000)


def test_second_client_is_refused_and_the_first_is_undisturbed(target):
    c = target
    line = breakpoint_line("http_app.py")
    with Attached(f"docker/{c.name}", "--local-port", "0") as a:
        dap, req, stop = stop_at_breakpoint(a.port, c, line)
        second = DAPClient("127.0.0.1", a.port)
        with pytest.raises(DAPError) as e:
            second.request("initialize", adapterID="debugpy", clientID="second")
        assert "another debugger client is already connected" in str(e.value)
        # the first still works: read a variable, continue
        frames = dap.request("stackTrace", threadId=stop["thread"], levels=1)
        assert frames["body"]["stackFrames"][0]["line"] == line
        dap.request("continue", threadId=stop["thread"])
        assert req.communicate(timeout=30)[0].startswith("hello /bp")
        dap.close()
        serves_normally(c, c.baseline)
        rc, err = a.stop()
    assert rc == 0, err


def test_twenty_connect_disconnect_cycles(target):
    c = target
    with Attached(f"docker/{c.name}", "--local-port", "0") as a:
        t0 = time.monotonic()
        for i in range(20):
            dap = DAPClient("127.0.0.1", a.port)
            dap.attach()
            dap.request("threads")
            if i % 2:
                dap.close()
            else:
                drop(dap)
        per = (time.monotonic() - t0) / 20
        serves_normally(c, c.baseline)
        rc, err = a.stop()
    assert rc == 0, err
    assert per < 2.0, per


# ---------------------------------------------------------------- the gate (issue 13.1)

SIDECAR = r"""
import json, socket, sys
port = int(sys.argv[1])
def frame(obj):
    b = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(b) + b
results = {}
attempts = {
    "plain DAP": frame({"seq": 1, "type": "request", "command": "initialize",
                        "arguments": {"adapterID": "debugpy"}}),
    "guessed secret": b"kubectl-wand-dap " + b"0" * 48 + b"\n" + frame(
        {"seq": 1, "type": "request", "command": "initialize", "arguments": {}}),
    "empty secret": b"kubectl-wand-dap \n" + frame(
        {"seq": 1, "type": "request", "command": "initialize", "arguments": {}}),
}
for name, data in attempts.items():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(data)
        got = s.recv(65536)
        results[name] = got.decode("utf-8", "replace")
    except OSError as e:
        results[name] = "error: %s" % e
# every other listening TCP port in the namespace, too: pydevd must have none
ports = set()
for path in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(path).read().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A":
            ports.add(int(f[1].split(":")[1], 16))
results["ports"] = sorted(ports)
print(json.dumps(results))
"""


def test_a_sidecar_in_the_pod_cannot_drive_the_debugger(target):
    """Another uid without capabilities in the target's network namespace (a sidecar) gets
    nothing from the debug port, while the operator's session works."""
    c = target
    line = breakpoint_line("http_app.py")
    with Attached(f"docker/{c.name}", "--local-port", "0") as a:
        dap, req, stop = stop_at_breakpoint(a.port, c, line)
        cp = subprocess.run(["docker", "run", "--rm", "-i", "--network", f"container:{c.name}",
                             "--user", "4242:4242", "--cap-drop", "ALL", IMAGE, "python3",
                             "-c", SIDECAR, "5679"], capture_output=True, text=True,
                            timeout=60)
        assert cp.returncode == 0, cp.stderr
        got = json.loads(cp.stdout)
        for name in ("plain DAP", "guessed secret", "empty secret"):
            assert got[name] in ("", ) or got[name].startswith("error"), (name, got[name])
        assert set(got["ports"]) == {8000, 5679}, got["ports"]  # no port of pydevd's own
        # the operator's session was not disturbed
        ev = dap.request("evaluate", expression="greeting", frameId=dap.request(
            "stackTrace", threadId=stop["thread"], levels=1)["body"]["stackFrames"][0]["id"],
            context="repl")
        assert "hello /bp" in ev["body"]["result"]
        dap.request("continue", threadId=stop["thread"])
        assert req.communicate(timeout=30)[0].startswith("hello /bp")
        dap.close()
        rc, err = a.stop()
    assert rc == 0, err


def test_the_editor_port_refuses_other_local_users(target):
    c = target
    with Attached(f"docker/{c.name}", "--local-port", "0") as a:
        cp = subprocess.run(
            ["setpriv", "--reuid", "4243", "--regid", "4243", "--clear-groups",
             "/usr/bin/python3", "-c",
             "import socket,sys\n"
             "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])),timeout=5)\n"
             "s.sendall(b'Content-Length: 2\\r\\n\\r\\n{}')\n"
             "print(repr(s.recv(100)))", str(a.port)],
            capture_output=True, text=True, timeout=30)
        assert cp.stdout.strip() in ("b''",) or "Connection reset" in cp.stderr, (cp.stdout,
                                                                                   cp.stderr)
        dap = DAPClient("127.0.0.1", a.port)  # the operator's own user still gets in
        dap.attach()
        dap.close()
        rc, err = a.stop()
    assert rc == 0, err
    assert "refused a connection" in err and "uid 4243" in err, err


# ---------------------------------------------------------------- the CLI's end

def test_attach_ctrl_c_while_stopped_resumes_then_detaches(target):
    c = target
    line = breakpoint_line("http_app.py")
    a = Attached(f"docker/{c.name}", "--local-port", "0")
    dap, req, stop = stop_at_breakpoint(a.port, c, line)
    rc, err = a.stop(signal.SIGINT)
    assert rc == 0, err
    assert req.communicate(timeout=30)[0].startswith("hello /bp")
    assert "Detached from pid 1" in err, err
    serves_normally(c, c.baseline)
    c.assert_healthy(8000)


def test_attach_killed_while_stopped_the_injector_resumes_and_detaches(target):
    c = target
    line = breakpoint_line("http_app.py")
    a = Attached(f"docker/{c.name}", "--local-port", "0")
    dap, req, stop = stop_at_breakpoint(a.port, c, line)
    t0 = time.monotonic()
    a.stop(signal.SIGKILL)
    assert req.communicate(timeout=30)[0].startswith("hello /bp")
    assert time.monotonic() - t0 < 5.0
    serves_normally(c, c.baseline)
    c.assert_healthy(8000)
    assert "debugger stopped" in c.logs()


def test_keep_takes_a_lifetime_and_says_how_to_end_it(target):
    c = target
    with Attached(f"docker/{c.name}", "--local-port", "0", "--keep=3s") as a:
        rc, err = a.stop()
    assert rc == 0, err
    assert "stops by itself" in err and "then Ctrl-C" in err, err
    # listening until the lifetime runs out, then gone by itself
    poll(lambda: 5679 not in {p for _, p in c.listening()}, 20, "the kept debugger to stop")
    poll(lambda: "its --keep lifetime ran out" in c.logs(), 10, "the stop logged")
    # its debugpy tree (in a root-owned staging directory the target cannot remove) goes with
    # the next attach's sweep of the staging base
    with Attached(f"docker/{c.name}", "--local-port", "0") as b:
        rc, err = b.stop()
    assert rc == 0 and "already listening" not in err, err
    c.assert_healthy(8000)
