"""`kubectl wand shell`: a console inside the live process, driven like a person at a
terminal (pexpect), against real 3.14 containers (uid 1000, no capabilities, no network)."""

import subprocess

import pytest

from tests.conftest import WAND, poll
from tests.console.common import MOUNT, assert_clean, counter_moves, kill_hard, pexpect, spawn

PROMPT = ">>> "
MORE = r"\.\.\. "


@pytest.fixture
def aio(app):
    return app("python3", "-u", "/wapps/asyncapp.py", extra=MOUNT, ready="app ready")


def test_multiline_completion_interrupt_history(plain, tmp_path):
    c = spawn("shell", f"docker/{plain.name}", home=tmp_path)
    c.expect("no running asyncio loop")
    c.expect(PROMPT)
    # TAB completion computed in the target, from the app's module
    c.send("main.sett\t")
    c.expect("main.settings")
    c.send("\r")
    c.expect(r"\{'mode': 'prod'\}")
    c.expect(PROMPT)
    # a multi-line function definition, as in the REPL: a blank line ends it
    c.sendline("def triple(n):")
    c.expect(MORE)
    c.sendline("    return n * 3")
    c.expect(MORE)
    c.sendline("")
    c.expect(PROMPT)
    c.sendline("triple(main.work(1))")  # 12: the app's own function, then ours
    c.expect("12\r\n")
    c.expect(PROMPT)
    c.sendline("_ + 1")
    c.expect("13\r\n")
    c.expect(PROMPT)
    # an exec coming and going meanwhile leaves the console's output where it belongs
    assert subprocess.run([WAND, "exec", f"docker/{plain.name}", "-q", "-c", "print(1)"],
                          capture_output=True, text=True, timeout=60).stdout == "1\n"
    c.sendline("print('still', 'routed')")
    c.expect("still routed\r\n")
    c.expect(PROMPT)
    # a traceback like the REPL's
    c.sendline("1/0")
    c.expect(r'File "<shell#\d+>", line 1')
    c.expect("ZeroDivisionError: division by zero")
    c.expect(PROMPT)
    # Ctrl-C interrupts a long loop in the target; the session and the target survive
    c.sendline("n = 0")
    c.expect(PROMPT)
    c.sendline("while True: n += 1")
    c.expect(MORE)
    c.sendline("")
    poll(lambda: counter_moves(plain), what="the app serving during the loop")
    c.sendintr()
    c.expect("KeyboardInterrupt")
    c.expect(PROMPT)
    c.sendline("n > 0, main.counter >= 0")
    c.expect(r"\(True, True\)")
    c.expect(PROMPT)
    c.sendeof()
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0
    assert counter_moves(plain)
    assert_clean(plain)
    hist = (tmp_path / ".cache/kubectl-wand/shell_history").read_text()
    assert "def triple(n):" in hist and "while True: n += 1" in hist
    assert "op=shell" in plain.logs()  # the audit line in the target's log


def test_await_on_the_apps_loop(aio, tmp_path):
    c = spawn("shell", f"docker/{aio.name}", home=tmp_path)
    c.expect("top-level await runs on the app's loop")
    c.expect(PROMPT)
    c.sendline("await main.fetch(21)")
    c.expect("42\r\n")
    c.expect(PROMPT)
    # output printed by our task on the loop thread comes back; the app's tasks go on
    c.sendline("import asyncio; h = main.hits; await asyncio.sleep(0.3); "
               "print('marker', main.hits > h)")
    c.expect("marker True")
    c.expect(PROMPT)
    c.sendline("async def twice(n):")
    c.expect(MORE)
    c.sendline("    return await main.fetch(n) * 2")
    c.expect(MORE)
    c.sendline("")
    c.expect(PROMPT)
    c.sendline("await twice(5)")
    c.expect("20\r\n")
    c.expect(PROMPT)
    # Ctrl-C during an await cancels it; the loop keeps running
    c.sendline("await asyncio.sleep(1000)")
    poll(lambda: counter_moves(aio, "main.hits"), what="the app's loop running")
    c.sendintr()
    c.expect("KeyboardInterrupt")
    c.expect(PROMPT)
    c.sendeof()
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0
    assert counter_moves(aio, "main.hits")
    # the app's own output untouched: its line and the audit lines only, none of ours
    assert all(line == "app ready" or line.startswith("[kubectl-wand] ")
               for line in aio.logs().splitlines()), aio.logs()
    assert_clean(aio)


def test_no_tty_pipe_and_no_color(plain):
    text = ("print(1)\n"
            "def f(x):\n    return x + 1\n\n"
            "f(41)\n"
            "print('\\x1b[31mred\\x1b[0m')\n"
            "raise ValueError('boom')\n"
            "main.settings['mode']\n"
            "help(main.work)\n"
            "exit()\n"
            "print('not run')\n")
    cp = subprocess.run([WAND, "shell", f"docker/{plain.name}", "-q"], input=text,
                        capture_output=True, text=True, timeout=60,
                        env={"PATH": subprocess.os.environ["PATH"], "NO_COLOR": "1"})
    out = cp.stdout.splitlines()
    assert out[:4] == ["1", "42", "\x1b[31mred\x1b[0m", "'prod'"], cp
    assert "work(x)" in cp.stdout and "not run" not in cp.stdout  # help as text; exit() left
    probe = subprocess.run([WAND, "exec", f"docker/{plain.name}", "-q", "-c",
                            "import sys; print(sys.stdin is None or not sys.stdin.closed)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout == "True\n", probe  # the app's stdin is left alone by exit()
    assert "ValueError: boom" in cp.stderr
    assert cp.returncode == 1  # a statement raised
    assert_clean(plain)


def test_target_text_is_made_safe_on_a_terminal(plain, tmp_path):
    c = spawn("shell", f"docker/{plain.name}", "-q", home=tmp_path, env={"NO_COLOR": "1"})
    c.expect(PROMPT)
    c.sendline("print('\\x1b]0;pwned\\x07' + '\\x1b[31mred\\x1b[0m' + 'end')")
    c.expect("end\r\n")
    out = c.before
    assert "\x1b]0;" not in out and "\x07" not in out  # no title change, no bell
    assert "\x1b[31m" not in out  # NO_COLOR: no colours either
    c.expect(PROMPT)
    c.sendeof()
    c.expect(pexpect.EOF)


def test_client_killed_mid_statement(plain, tmp_path):
    c = spawn("shell", f"docker/{plain.name}", "-q", home=tmp_path)
    c.expect(PROMPT)
    c.sendline("import time")
    c.expect(PROMPT)
    c.sendline("while True: time.sleep(0.001)")
    c.expect(MORE)
    c.sendline("")
    # the loop runs in the target (its thread is there) when the client vanishes
    poll(lambda: "kubectl-wand-shell-run" in subprocess.run(
        [WAND, "exec", f"docker/{plain.name}", "-q", "-c",
         "import threading; print([t.name for t in threading.enumerate()])"],
        capture_output=True, text=True).stdout, what="the statement running")
    kill_hard(c)
    assert_clean(plain)
    assert counter_moves(plain)


def test_client_killed_at_the_prompt(aio, tmp_path):
    c = spawn("shell", f"docker/{aio.name}", "-q", home=tmp_path)
    c.expect(PROMPT)
    c.sendline("await main.fetch(1)")
    c.expect("2\r\n")
    c.expect(PROMPT)
    kill_hard(c)
    assert_clean(aio)
    assert counter_moves(aio, "main.hits")


def test_output_is_bounded_per_statement(plain):
    text = "print('x' * 100000)\nprint('after')\n"
    cp = subprocess.run([WAND, "shell", f"docker/{plain.name}", "--max-output", "1000"],
                        input=text, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp
    first, second = cp.stdout.split("after")[0], cp.stdout.split("after")[1]
    assert first.count("x") == 1000 and second == "\n"  # the next statement is whole again
    assert "output cut at --max-output" in cp.stderr


def test_a_statement_blocked_in_c_lets_the_user_leave(plain, tmp_path):
    c = spawn("shell", f"docker/{plain.name}", "-q", home=tmp_path)
    c.expect(PROMPT)
    c.sendline("import time; time.sleep(20)")  # C code: the interrupt waits for its return
    poll(lambda: "kubectl-wand-shell-run" in subprocess.run(
        [WAND, "exec", f"docker/{plain.name}", "-q", "-c",
         "import threading; print([t.name for t in threading.enumerate()])"],
        capture_output=True, text=True).stdout, what="the statement running")
    for _ in range(12):  # one Ctrl-C at a time (signals sent together may merge into one)
        c.sendintr()
        if c.expect(["still runs in thread 'kubectl-wand-shell-run'", r"\d more Ctrl-C",
                     pexpect.TIMEOUT], timeout=3) == 0:
            break
    else:
        raise AssertionError("the console was not left: " + c.before)
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus != 0
    assert_clean(plain, timeout=40)  # once the sleep returns, the interrupt ends the thread
    assert counter_moves(plain)
