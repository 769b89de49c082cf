"""`kubectl wand pdb`: CPython 3.14's remote pdb inside a live container process, driven like
a person at a terminal (pexpect). Afterwards the target runs on with nothing of pdb left."""

import json
import subprocess

import pytest

from tests.conftest import IMAGE
from tests.console.common import APPS, MOUNT, assert_clean, counter_moves, kill_hard, pexpect, \
    spawn

PDB = r"\(Pdb\) "


def line_of(text, path="plainapp.py"):
    return next(n for n, line in enumerate((APPS / path).read_text().splitlines(), 1)
                if text in line)


def attach(c, tmp_path):
    p = spawn("pdb", f"docker/{c.name}", home=tmp_path)
    p.expect("pdb attached to thread MainThread")
    p.expect(PDB)
    return p


def test_break_step_continue_detach(plain, tmp_path):
    y_line, z_line = line_of("y = x + 1"), line_of("z = y * 2")
    p = attach(plain, tmp_path)
    p.sendline("w")
    p.expect(r"plainapp.py\(\d+\)main\(\)")
    p.expect(PDB)
    p.sendline("p type(counter).__name__")
    p.expect("'int'")
    p.expect(PDB)
    p.sendline(f"b /wapps/plainapp.py:{y_line}")
    p.expect(f"Breakpoint 1 at /wapps/plainapp.py:{y_line}")
    p.expect(PDB)
    p.sendline("c")
    p.expect(rf"plainapp.py\({y_line}\)work\(\)")
    p.expect(PDB)
    p.sendline("n")
    p.expect(rf"plainapp.py\({z_line}\)work\(\)")
    p.expect(PDB)
    p.sendline("p y == x + 1")
    p.expect("True")
    p.expect(PDB)
    p.sendline("s")  # steps to the return of work()
    p.expect("work()")
    p.expect(PDB)
    p.sendline("interact")
    p.expect(">>> ")
    p.sendline("z - 2 * y")
    p.expect("\r\n0\r\n")
    p.expect(">>> ")
    p.sendeof()
    p.expect("exit from pdb interact")
    p.expect(PDB)
    # the breakpoint holds: continue stops there again
    p.sendline("c")
    p.expect(rf"plainapp.py\({y_line}\)work\(\)")
    p.expect(PDB)
    # a continue without breakpoints, then Ctrl-C breaks in again
    p.sendline("cl 1")
    p.expect("Deleted breakpoint 1")
    p.expect(PDB)
    p.sendline("c")
    assert counter_moves(plain)
    p.sendintr()
    p.expect(PDB)
    p.sendline("q")
    p.expect("detached from PID")
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 0
    assert counter_moves(plain)
    assert_clean(plain)
    assert "op=pdb" in plain.logs()


def test_detach_leaves_no_breakpoints(plain, tmp_path):
    never = line_of("def main")  # a line never reached again
    p = attach(plain, tmp_path)
    p.sendline(f"b /wapps/plainapp.py:{never + 1}")
    p.expect("Breakpoint 1")
    p.expect(PDB)
    p.sendeof()  # Ctrl-D at the prompt detaches
    p.expect("detached from PID")
    p.expect(pexpect.EOF)
    assert_clean(plain)
    # a second session starts afresh: breakpoint numbers from 1, nothing listed
    p = attach(plain, tmp_path)
    p.sendline("b")
    p.expect(PDB)
    assert "Breakpoint" not in p.before and "breakpoint" not in p.before
    p.sendline("q")
    p.expect(pexpect.EOF)
    assert_clean(plain)


def test_client_killed_while_stopped(plain, tmp_path):
    p = attach(plain, tmp_path)
    p.sendline(f"b /wapps/plainapp.py:{line_of('y = x + 1')}")
    p.expect(PDB)
    p.sendline("c")
    p.expect(PDB)  # stopped at the breakpoint: the app's main thread waits for us
    kill_hard(p)
    assert_clean(plain)
    assert counter_moves(plain)


def test_client_killed_while_running_with_a_breakpoint(plain, tmp_path):
    p = attach(plain, tmp_path)
    p.sendline(f"b /wapps/plainapp.py:{line_of('def main') + 1}")  # never hit
    p.expect(PDB)
    p.sendline("c")
    assert counter_moves(plain)
    kill_hard(p)
    assert_clean(plain)
    assert counter_moves(plain)


@pytest.fixture
def threads(app):
    return app("python3", "-u", "/wapps/threadsapp.py", extra=MOUNT, ready="app ready")


def test_thread_and_a_main_loop_without_calls(threads, tmp_path):
    # --thread: the worker stops where it is; the main thread runs on
    p = spawn("pdb", f"docker/{threads.name}", "--thread", "worker", home=tmp_path)
    p.expect("pdb attached to thread worker")
    p.expect(r"worker\(\)")
    p.expect(PDB)
    p.sendline("p ticks > 0")
    p.expect("True")
    p.expect(PDB)
    assert counter_moves(threads, "main.spins")
    p.sendline("q")
    p.expect(pexpect.EOF)
    assert_clean(threads)
    # the main thread in a loop that calls nothing still stops, and breaks in again
    spin = line_of("SPIN-LINE", "threadsapp.py")
    p = spawn("pdb", f"docker/{threads.name}", home=tmp_path)
    p.expect(rf"threadsapp.py\((?:{spin - 1}|{spin})\)<module>\(\)")
    p.expect(PDB)
    p.sendline("c")
    assert counter_moves(threads, "main.spins")
    p.sendintr()
    p.expect(r"<module>\(\)")
    p.expect(PDB)
    p.sendline("q")
    p.expect(pexpect.EOF)
    assert_clean(threads)
    assert counter_moves(threads, "main.spins")


def test_completion_then_client_killed_in_interact(plain, tmp_path):
    p = attach(plain, tmp_path)
    p.sendline("up")  # to main(), whose globals hold `counter` and `settings`
    p.expect(PDB)
    p.send("p sett\t")  # completed by the server in the target
    p.expect("settings")
    p.send("\r")
    p.expect(r"\{'mode': 'prod'\}")
    p.expect(PDB)
    p.sendline("interact")
    p.expect(">>> ")
    p.sendline("settings['mode']")
    p.expect("'prod'")
    p.expect(">>> ")
    kill_hard(p)
    assert_clean(plain)
    assert counter_moves(plain)


PAYLOAD = APPS.parent.parent.parent / "kubectl_wand" / "payload"


@pytest.mark.parametrize("where", ["prompt", "interact", "busy"])
def test_session_ended_under_a_stopped_thread_never_raises_in_it(docker, where):
    """The bridge alone, many times: a session ends (the client died) while the debugged
    thread waits at the prompt or in `interact`. Once, closing the server's file under it
    raised ValueError in the app's thread and killed the app. `busy`: the thread still runs
    the user's command in `interact`; it is told, and the thread detaches when it returns."""
    rounds = 1 if where == "busy" else 30
    cp = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--user", "1000:1000",
         "-v", f"{PAYLOAD}:/wpayload:ro", "-v", f"{APPS}:/wapps:ro", IMAGE,
         "python3", "/wapps/bridge_stress.py", "/wpayload", str(rounds), where],
        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr[-3000:]
    got = json.loads(cp.stdout.strip().splitlines()[-1])
    assert got == {"notices": [True] if where == "busy" else [], "stopped": rounds, "errors": [], "alive": True, "moving": True,
                   "tool": None, "pdb": False, "breaks": [], "threads": []}, cp.stderr[-3000:]
