"""exec never leaves runaway code in the target: --timeout, Ctrl-C and a killed CLI stop it
(an asynchronous exception in its thread), or say exactly which C call it is blocked in;
--detach leaves it running on purpose, and says so. Real containers."""

import json
import signal
import subprocess

import pytest

from tests.conftest import WAND, poll, wait_for_line, wand

HTTP = ("python3", "/app/http_app.py")
THREADS = ("import os\nfor t in os.listdir('/proc/1/task'):\n"
           "    print(open('/proc/1/task/%s/comm' % t).read().strip())")


def wand_threads(c):
    """OS names (15 bytes) of kubectl-wand's threads in PID 1, read from inside the target."""
    cp = c.sh("python3", "-c", THREADS)
    return [n for n in cp.stdout.split() if n.startswith("kubectl-wand")]


@pytest.fixture(scope="module")
def target(app_module):
    return app_module(*HTTP)


def test_timeout_stops_a_busy_loop(target):
    c = target
    cp = wand("exec", f"docker/{c.name}", "--timeout", "1", "-c", "while True: pass")
    assert cp.returncode == 124, cp.stderr
    assert "the code was stopped in PID 1" in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr
    poll(lambda: wand_threads(c) == [], 10, "no kubectl-wand thread left")
    assert c.get(8000).stdout.startswith("hello")


def test_timeout_names_the_c_call_it_is_blocked_in(target):
    c = target
    cp = wand("exec", f"docker/{c.name}", "--timeout", "1", "-o", "json", "-c",
              "import time\ntime.sleep(4)\nprint('never')")
    assert cp.returncode == 124, cp.stderr
    out = json.loads(cp.stdout)
    assert out["timed_out"] and not out["stopped"] and out["blocked_in"] == "time.sleep"
    cp = wand("exec", f"docker/{c.name}", "--timeout", "1", "-c",
              "import socket\na, b = socket.socketpair()\nb.settimeout(4)\n"
              "try:\n    b.recv(1)\nexcept OSError:\n    pass\nwhile True:\n    pass")
    assert cp.returncode == 124
    assert "blocked inside socket.recv" in cp.stderr and "returns to Python" in cp.stderr, \
        cp.stderr
    # once the call returns, the stop lands: the loop after it never spins
    poll(lambda: wand_threads(c) == [], 15, "the blocked code to be stopped")
    poll(lambda: "stopped after" in c.logs() and "was blocked in socket.recv" in c.logs(), 10,
         "the late stop logged in the target")


def spinning(c):
    """`exec` of a loop that never returns, once it runs in the target."""
    p = subprocess.Popen([WAND, "exec", f"docker/{c.name}", "-c",
                          "print('running', flush=True)\nwhile True: pass"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_line(p.stdout, lambda s: "running" in s, 60)
    return p


def test_ctrl_c_stops_the_code(target):
    c = target
    p = spinning(c)
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=30)
    err = p.stderr.read()
    assert rc == 130, err
    assert "interrupted; the code was stopped in PID 1" in err, err
    poll(lambda: wand_threads(c) == [], 10, "no kubectl-wand thread left")


def test_killed_cli_stops_the_code(target):
    c = target
    p = spinning(c)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    poll(lambda: wand_threads(c) == [], 15, "the code stopped after its CLI was killed")
    assert c.get(8000).stdout.startswith("hello")


def test_detach_leaves_it_running_and_says_so(target):
    c = target
    cp = wand("exec", f"docker/{c.name}", "--detach", "-c",
              "import time\nt = time.time()\nwhile time.time() - t < 3:\n    time.sleep(0.05)")
    assert cp.returncode == 0, cp.stderr
    assert "keeps running after this command" in cp.stderr, cp.stderr
    assert "kubectl-wand-bg" in wand_threads(c)
    cp = wand("ps", f"docker/{c.name}", "-o", "wide")
    assert "exec --detach" in cp.stdout, cp.stdout
    poll(lambda: wand_threads(c) == [], 15, "the background code to end by itself")
    poll(lambda: "exec --detach" in c.logs() and "finished after" in c.logs(), 10,
         "its end logged")
