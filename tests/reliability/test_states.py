"""Targets in awkward states: blocked main threads and the signal that may wake them, a
process that dies during the injection, a container that stops under an attached debugger,
several processes with the same command line.

Python 3.13, remote debugging disabled (env, -X), read-only roots and no writable /tmp are
covered by tests/docker/test_core*.py (see docs/reliability.md), with the same health checks.
"""

import socket
import subprocess

import pytest

from tests.conftest import WAND, Attached, host_processes, wand
from tests.reliability.conftest import MOUNT, assert_message, find_pid, poll, procs_in

# PID 1 is sh; http_app serves 8000; two blocked mains (8004 without, 8005 with a Python
# SIGUSR1 handler); two tickers with the very same command line.
MANY = ("sh", "-c", "python3 /app/http_app.py & python3 /app/blocked.py 8004 & "
        "python3 /app/blocked.py --handler 8005 & python3 /srv/ticker.py 0 & "
        "python3 /srv/ticker.py 0 & wait")


@pytest.fixture(scope="module")
def many(app_module):
    c = app_module(*MANY, extra=MOUNT, ready=None)
    pids = {}
    for key, argv in (("http", ["python3", "/app/http_app.py"]),
                      ("blocked", ["python3", "/app/blocked.py", "8004"]),
                      ("handler", ["python3", "/app/blocked.py", "--handler", "8005"])):
        pids[key] = find_pid(c, lambda p, a=argv: p["argv"] == a, what=" ".join(argv))
    poll(lambda: all(c.get(port).stdout.startswith("hello") for port in (8000, 8004, 8005)),
         what="the three servers answering")
    c.pids = pids
    return c


def exec_(c, *args, **kw):
    return wand("exec", f"docker/{c.name}", *args, **kw)


def test_same_command_line_is_ambiguous_and_pid_picks_one(many):
    tickers = []
    poll(lambda: tickers.extend(
        p["pid"] for p in procs_in(many) if p["argv"] == ["python3", "/srv/ticker.py", "0"])
        or len(tickers) == 2, what="two tickers")
    cp = exec_(many, "-c", "print(1)")
    assert_message(cp, "several Python processes could be meant", "--pid", rc=2)
    for pid in tickers:  # both listed, each with its PID and the same command line
        assert f"PID {pid}: python3 /srv/ticker.py 0" in cp.stderr, cp.stderr
    cp = exec_(many, "--pid", str(tickers[1]), "-c", "import os; print(os.getpid())")
    assert cp.returncode == 0 and cp.stdout == f"{tickers[1]}\n", cp.stderr
    assert f"PID {tickers[1]} as asked" in cp.stderr
    many.assert_healthy(8000)


def test_blocked_main_thread_without_a_python_handler(many):
    pid = many.pids["blocked"]
    cp = exec_(many, "--pid", str(pid), "--ack-timeout", "1", "-c", "print(1)")
    assert_message(cp, "did not pick up the injection", "blocked.py", "main thread")
    assert "--signal" not in cp.stderr  # nothing it handles: no signal offered
    # a signal it does not handle would kill it: refused, not sent
    cp = exec_(many, "--pid", str(pid), "--signal", "USR1", "-c", "print(1)")
    assert_message(cp, f"PID {pid} does not handle SIGUSR1", "--signal none", rc=2)
    assert many.get(8004).stdout.startswith("hello")  # its server thread still answers
    many.assert_healthy(8000)


def test_blocked_main_thread_with_a_python_handler(many):
    pid = many.pids["handler"]
    cp = exec_(many, "--pid", str(pid), "--ack-timeout", "1", "-c", "print(1)")
    assert_message(cp, "did not pick up the injection", "--signal USR1")
    cp = exec_(many, "--pid", str(pid), "--signal", "USR1", "-c", "print('woken')")
    assert cp.returncode == 0 and cp.stdout == "woken\n", cp.stderr
    assert many.get(8005).stdout.startswith("hello")
    many.assert_healthy(8000)


def test_process_exits_during_injection(many):
    subprocess.run(["docker", "exec", "-d", many.name, "python3", "/app/blocked.py", "8006"],
                   check=True)
    victim = find_pid(many, lambda p: p["argv"] == ["python3", "/app/blocked.py", "8006"])
    p = subprocess.Popen([WAND, "exec", f"docker/{many.name}", "--pid", str(victim),
                          "--ack-timeout", "60", "--signal", "none", "-c", "print(1)"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # staged and injected, waiting for a main thread that never comes: then it dies
    poll(lambda: many.health()["staged"], what="the staging directory")
    assert many.py(f"import os; os.kill({victim}, 9)").returncode == 0
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, (out, err)
    assert f"process {victim} exited during the injection" in err and "hint: " in err, err
    many.assert_healthy(8000)


def test_container_stops_during_attach(app):
    c = app("python3", "/app/http_app.py")
    helper, cid = c.helper_name(), c.id()
    a = Attached(f"docker/{c.name}", "--local-port", "0")
    assert host_processes(helper) != []  # the injector's docker exec, held by the session
    subprocess.run(["docker", "kill", c.name], check=True, capture_output=True)
    rc = a.proc.wait(timeout=60)
    _, err = a.stop()
    assert rc == 1, err
    assert "is gone, and nothing replaces a single pod or container" in err, err
    assert "hint: attach again when it is back" in err
    # nothing left: the helper (in the target's PID namespace) went with it, no relay, the
    # local port is free again
    poll(lambda: not subprocess.run(["docker", "ps", "-aq", "--filter",
                                     f"label=kubectl-wand.helper-for={cid}"],
                                    capture_output=True, text=True).stdout.strip(),
         what="the helper container gone")
    poll(lambda: host_processes(helper) == [], what="no docker exec to the helper")
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", a.port))
    finally:
        s.close()
