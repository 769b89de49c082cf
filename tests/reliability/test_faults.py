"""Concurrency and faults on Docker targets: two attaches at once, exec under a debugger
stopped at a breakpoint in the main thread, `kill -9` of the CLI at each phase of an
injection, and the helper-side injector killed (an orphaned staging directory, collected by
the next injection). After each: the target alive and serving, nothing left behind.

The CLI kills itself at a named phase with WAND_TEST_KILL_AT (engine/session.py kill_point):
stage (the injector has staged its files), inject (sys.remote_exec called), ack (the agent
connected back), forward (attach: the port is forwarded).
"""

import os
import signal
import subprocess
import threading
import time

import pytest

from kubectl_wand.dap import DAPClient
from tests.conftest import WAND, Attached, host_processes, wand
from tests.reliability.conftest import APPS, MOUNT, TICKER, line_of, poll

PORT = 8010  # the ticker's HTTP server (a daemon thread; its main thread ticks every 20 ms)


@pytest.fixture(scope="module")
def ticker(app_module):
    return app_module(*TICKER, extra=MOUNT)


def host_pids(c, marker):
    """Host PIDs of processes in the target's PID namespace whose argv holds ``marker``."""
    ns = os.stat(f"/proc/{c.host_pid()}/ns/pid").st_ino
    out = []
    for p in os.listdir("/proc"):
        try:
            if not p.isdigit() or os.stat(f"/proc/{p}/ns/pid").st_ino != ns:
                continue
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if marker.encode() in f.read().split(b"\0"):
                    out.append(int(p))
        except OSError:
            continue
    return out


def still_works(c):
    cp = wand("exec", f"docker/{c.name}", "-q", "-c", "print(6 * 7)")
    assert cp.returncode == 0 and cp.stdout == "42\n", cp.stderr


# ---------------------------------------------------------------- concurrency

def test_two_attaches_at_once_one_starts_the_other_reuses(ticker):
    got, errors = {}, []

    def attach(key):
        try:
            got[key] = Attached(f"docker/{ticker.name}", "--local-port", "0")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=attach, args=(k,)) for k in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    a, b = got["a"], got["b"]
    try:
        poll(lambda: sum("reusing it" in "".join(x.err) for x in (a, b)) == 1,
             what="exactly one session saying it reuses the debugger")
        owner, reuser = (a, b) if "reusing it" in "".join(b.err) else (b, a)
        assert owner.port != reuser.port and owner.info["pid"] == reuser.info["pid"] == 1
        listening = ticker.listening()
        assert ("0100007F", 5679) in listening  # one debug server, on loopback
        # the owner leaves first: the debugger stays for the other session, which still works
        rc, err = owner.stop()
        assert rc == 0 and "keeps listening for the 1 other session(s)" in err, err
        assert ("0100007F", 5679) in ticker.listening()
        dap = DAPClient("127.0.0.1", reuser.port)
        dap.attach(breakpoints={"/srv/ticker.py": [line_of(APPS / "ticker.py", "MAIN-BREAKPOINT")]})
        stop = dap.stopped_locals(timeout=30)
        assert stop["reason"] == "breakpoint"
        dap.request("continue", threadId=stop["thread"])
        dap.close()
        rc, err = reuser.stop()
        assert rc == 0 and "its debug port is closed" in err, err
    finally:
        for x in (a, b):
            if x.proc.poll() is None:
                x.stop()
    ticker.assert_healthy(PORT)  # the owner's kept tree went with the last detach


def test_exec_while_stopped_at_a_breakpoint_in_the_main_thread(ticker):
    """debugpy's suspend loop runs Python in the stopped main thread, so the injection is
    picked up there and the code runs in its own thread: no deadlock, nothing blocked."""
    line = line_of(APPS / "ticker.py", "MAIN-BREAKPOINT")
    with Attached(f"docker/{ticker.name}", "--local-port", "0") as a:
        dap = DAPClient("127.0.0.1", a.port)
        dap.attach(breakpoints={"/srv/ticker.py": [line]})
        stop = dap.stopped_locals(timeout=30)
        threads = dap.request("threads")["body"]["threads"]
        assert next(t["name"] for t in threads if t["id"] == stop["thread"]) == "MainThread"
        t0 = time.monotonic()
        cp = wand("exec", f"docker/{ticker.name}", "--timeout", "20", "-c",
                  "import threading, __main__\n"
                  "print(threading.current_thread().name, __main__.ticks)", timeout=60)
        took = time.monotonic() - t0
        assert cp.returncode == 0, cp.stderr
        # before the breakpoint's line ran: the main thread is still stopped there
        assert cp.stdout == f"kubectl-wand-exec {int(stop['locals']['n']) - 1}\n"
        assert took < 15, took
        # the main thread is still at the breakpoint; let it go
        dap.request("continue", threadId=stop["thread"])
        dap.close()
        rc, err = a.stop()
    assert rc == 0, err
    ticker.assert_healthy(PORT)
    still_works(ticker)


# ---------------------------------------------------------------- kill -9 of the CLI

@pytest.mark.parametrize("op, phase", [
    ("exec", "stage"), ("exec", "inject"), ("exec", "ack"),
    ("attach", "stage"), ("attach", "inject"), ("attach", "ack"), ("attach", "forward"),
])
def test_kill_9_of_the_cli_at_each_phase(ticker, op, phase):
    args = (["exec", f"docker/{ticker.name}", "-c", "import time\ntime.sleep(0.5)\nprint(1)"]
            if op == "exec" else ["attach", f"docker/{ticker.name}", "--local-port", "0",
                                  "-o", "json"])
    cp = subprocess.run([WAND, *args], env=dict(os.environ, WAND_TEST_KILL_AT=phase),
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == -signal.SIGKILL, (cp.returncode, cp.stderr)
    if phase == "forward":
        assert cp.stdout.startswith('{"event": "ready"')
    # The injector in the helper sees its stdin end, finishes or detaches, and cleans up.
    ticker.assert_healthy(PORT)
    still_works(ticker)


def test_kill_9_of_the_cli_with_a_debugger_client_connected(ticker):
    a = Attached(f"docker/{ticker.name}", "--local-port", "0")
    dap = DAPClient("127.0.0.1", a.port)
    dap.request("initialize", adapterID="debugpy", clientID="wand-test")
    helper = ticker.helper_name()
    # the relay: a docker exec on this host, a forward process in the helper
    assert any("kubectl-wand-forward" in p[1:] for p in host_processes(helper))
    a.proc.kill()
    a.proc.wait(timeout=30)
    dap.close()
    ticker.assert_healthy(PORT)
    still_works(ticker)


def test_helper_side_injector_killed_leaves_an_orphan_the_next_injection_collects(ticker):
    audits = ticker.logs().count("op=exec")
    p = subprocess.Popen([WAND, "exec", f"docker/{ticker.name}", "-c",
                          "import time\ntime.sleep(4)\nprint('done')"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # stage 2 runs in the helper's injector process itself (its own interpreter can inject);
    # the code runs once the agent has logged its audit line: the staging directory is there
    poll(lambda: ticker.logs().count("op=exec") > audits, what="the agent's audit line")
    staged = poll(lambda: ticker.health()["staged"], what="the staging directory")
    for pid in host_pids(ticker, "kubectl-wand-injector"):
        os.kill(pid, signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "the injector stopped unexpectedly" in err, err
    assert "hint: " in err
    assert ticker.health()["staged"] == staged  # orphaned: nobody left to remove it
    still_works(ticker)  # its staging removes the orphan (unlocked, ours, not kept)
    ticker.assert_healthy(PORT, wait=0)
