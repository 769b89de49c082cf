"""Hostile and odd inputs: each is refused or reported with a message and a hint, a failure
exits non-zero, and the target stays alive and serving with nothing of kubectl-wand left in it.

The cases that never reach a target (bad target strings) and those that inject harmless code
share one module-scoped target (http_app as PID 1, plus a non-Python process and a zombie);
after every test it is checked: alive, an HTTP GET from inside its network namespace answers,
no staged file, no injector or relay process (kubectl-wand's own in its PID namespace, or a
docker exec to its helper on this host), no debug server. Cases that end a process get a
throwaway target of their own.
"""

import json
import subprocess
import time

import pytest

from tests.conftest import WAND, host_processes, wand
from tests.reliability.conftest import HTTP, assert_message, find_pid, poll


@pytest.fixture(scope="module")
def shared(app_module):
    c = app_module(*HTTP)
    # a non-Python process, and a zombie: `sleep 0` exits, and its parent (sh exec'd into a
    # sleep) never reaps it
    for cmd in (["sleep", "100000"], ["sh", "-c", "sleep 0 & exec sleep 100001"]):
        subprocess.run(["docker", "exec", "-d", c.name, *cmd], check=True, capture_output=True)
    c.sleep_pid = find_pid(c, lambda p: p["argv"] == ["sleep", "100000"], what="sleep")
    c.zombie_pid = find_pid(c, lambda p: p["state"] == "Z", what="zombie")
    return c


@pytest.fixture(autouse=True)
def healthy_after(request, shared):
    yield
    shared.assert_healthy(8000)


def exec_(c, *args, **kw):
    return wand("exec", f"docker/{c.name}", *args, **kw)


# ---------------------------------------------------------------- target strings

def test_malformed_target_strings(shared):
    for target, text in [
        ("", "no target given"),
        ("   ", "no target given"),
        ("docker/", "invalid container name"),
        ("docker//x", "invalid container name"),
        ("docker/a/b", "invalid container name"),
        ("pid/abc", "invalid PID"),
        ("pid/0", "invalid PID"),
        ("pid/-3", "invalid PID"),
        ("pid/١٢", "invalid PID"),  # Arabic-Indic digits: isdigit(), not a PID
        ("deploy/", "invalid Kubernetes name"),
        ("pod/UPPER", "invalid Kubernetes name"),
        ("/web", "unsupported target kind"),
    ]:
        cp = wand("exec", target, "-c", "print(1)")
        assert_message(cp, text, rc=2)


def test_unknown_target_kinds(shared):
    for target in ("cronjob/app", "ingress/web", "foo/bar", "k8s:pod/x", "dockr/web"):
        cp = wand("exec", target, "-c", "print(1)")
        assert_message(cp, "unsupported target kind", "supported: pod, deploy", rc=2)
    cp = wand("attach", "configmap/x")
    assert_message(cp, "unsupported target kind", rc=2)


def test_names_with_shell_metacharacters_newlines_and_unicode(shared, tmp_path):
    pwned = tmp_path / "pwned"
    for target in (f"docker/web;touch {pwned}", f"docker/$(touch {pwned})",
                   f"deploy/a`touch {pwned}`", "docker/we\nb", "pod/a\nb", "docker/wëb",
                   "deploy/ünïcode", "docker/web\u202e", "pod/a b", "docker/-v",
                   "deploy/a'b", 'pod/a"b', "docker/a|b", "svc/a&b"):
        for cmd in (["exec", target, "-c", "print(1)"], ["ps", target], ["attach", target]):
            cp = wand(*cmd)
            assert_message(cp, "invalid", rc=2)
            if "\n" in target:  # shown escaped, on one line
                assert repr(target) in cp.stderr, cp.stderr
    assert not pwned.exists()
    # a well-formed name that does not exist: exit 1, with where to look
    assert_message(wand("exec", "docker/wand-rel-no-such-container", "-c", "1"),
                   "no docker container named", "`docker ps`")


# ---------------------------------------------------------------- --pid

def test_pid_of_a_non_python_process(shared):
    assert_message(exec_(shared, "--pid", str(shared.sleep_pid), "-c", "print(1)"),
                   f"PID {shared.sleep_pid}: not Python (no CPython runtime in", "kubectl wand ps")
    assert_message(exec_(shared, "--pid", "99999", "-c", "print(1)"),
                   "no Python process with PID 99999")
    # the same process by its host PID (the local backend: the host's process table)
    host = subprocess.run(["docker", "top", shared.name, "-eo", "pid,args"],
                          capture_output=True, text=True).stdout
    sleep_host = next(int(ln.split()[0]) for ln in host.splitlines() if "sleep 100000" in ln)
    assert_message(wand("exec", f"pid/{sleep_host}", "-c", "print(1)"),
                   f"PID {sleep_host}: not Python (no CPython runtime in")


def test_pid_1_of_a_non_python_container(app_module):
    c = app_module("sleep", "100000", ready=None)
    assert_message(exec_(c, "--pid", "1", "-c", "print(1)"),
                   "PID 1: not Python (no CPython runtime in /usr/bin/sleep)", "kubectl wand ps")
    assert_message(exec_(c, "-c", "print(1)"), "no Python process found")
    c.assert_healthy(None)


def test_pid_of_a_zombie(shared):
    cp = exec_(shared, "--pid", str(shared.zombie_pid), "-c", "print(1)")
    assert_message(cp, f"cannot attach to PID {shared.zombie_pid}: zombie", "reap")


# ---------------------------------------------------------------- -f FILE

def test_script_file_refused_early(shared, tmp_path):
    missing = tmp_path / "missing.py"
    assert_message(exec_(shared, "-f", str(missing)), "cannot read", "No such file", rc=2)
    assert_message(exec_(shared, "-f", str(tmp_path)), "is a directory", "-f FILE", rc=2)
    binary = tmp_path / "tool.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    assert_message(exec_(shared, "-f", str(binary)), "looks binary", "Python source", rc=2)
    big = tmp_path / "big.py"
    with open(big, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # 50 MB (sparse): refused by its size, never read
    assert_message(exec_(shared, "-f", str(big)), "52428800 bytes", "limited to 4 MiB",
                   "load it from the script", rc=2)
    big_stdin = exec_(shared, "-f", "-", input="#" * (5 * 1024 * 1024))
    assert_message(big_stdin, "over 4 MiB", rc=2)


def test_script_with_a_syntax_error(shared, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("print('fine')\ndef broken(:\n    pass\n")
    cp = exec_(shared, "-f", str(bad))
    assert_message(cp, "does not compile in the target's Python", "nothing ran")
    assert "SyntaxError" in cp.stderr and f'File "{bad}", line 2' in cp.stderr
    assert "fine" not in cp.stdout and "kubectl-wand agent" not in cp.stderr


def test_non_utf8_source(shared, tmp_path):
    declared = tmp_path / "latin1.py"
    declared.write_bytes("# -*- coding: latin-1 -*-\nprint('caf\xe9', len('caf\xe9'))\n"
                         .encode("latin-1"))
    cp = exec_(shared, "-f", str(declared))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "café 4\n"
    undeclared = tmp_path / "undeclared.py"
    undeclared.write_bytes(b"print('caf\xe9')\n")
    cp = exec_(shared, "-f", str(undeclared))
    assert_message(cp, "does not compile", "coding declaration")
    assert "SyntaxError" in cp.stderr and "Non-UTF-8" in cp.stderr
    # the same bytes typed in -c (argv bytes that are not UTF-8)
    cp = subprocess.run([WAND, "exec", f"docker/{shared.name}", "-c",
                         b"print('caf\xe9')"], capture_output=True)
    assert cp.returncode == 1 and b"Non-UTF-8" in cp.stderr and b"kubectl_wand/" not in cp.stderr


# ---------------------------------------------------------------- -c CODE

def test_code_that_raises_or_exits(shared):
    cp = exec_(shared, "-c", "def f():\n    {}['missing']\nf()")
    assert_message(cp, "the code raised KeyError", "PID 1 carries on")
    assert "Traceback (most recent call last)" in cp.stderr
    assert 'File "<kubectl-wand -c>", line 2, in f' in cp.stderr
    assert "kubectl-wand agent" not in cp.stderr  # only the user's frames
    cp = exec_(shared, "-c", "import sys\nprint('bye')\nsys.exit(3)")
    assert cp.returncode == 3 and cp.stdout == "bye\n" and "error:" not in cp.stderr
    cp = exec_(shared, "-c", "raise SystemExit('told to stop')")
    assert cp.returncode == 1 and "told to stop" in cp.stderr
    cp = exec_(shared, "-q", "-c", "1/0")
    assert cp.returncode == 1 and "ZeroDivisionError" in cp.stderr and "error:" not in cp.stderr


@pytest.mark.parametrize("code, what", [
    ("import os\nos._exit(0)", "os._exit()"),
    ("import os as o\no._exit(1)", "os._exit()"),
    ("from os import _exit as bye\nbye(2)", "os._exit()"),
    ("import posix\nposix._exit(0)", "os._exit()"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", "os.kill()"),
    ("import os\nos.killpg(0, 9)", "os.killpg()"),
    ("import signal\nsignal.raise_signal(signal.SIGINT)", "signal.raise_signal()"),
    ("import os\nos.abort()", "os.abort()"),
    ("import os\nos.execv('/bin/true', ['true'])", "os.execv()"),
])
def test_code_that_would_kill_the_target_is_refused(shared, code, what):
    cp = exec_(shared, "-c", code)
    assert_message(cp, "would end the target process", what, "--force", rc=2)
    assert "line 2" in cp.stderr


def test_os_exit_with_force_ends_the_process_and_says_so(app):
    c = app(*HTTP)
    helper, cid = c.helper_name(), c.id()
    cp = exec_(c, "--force", "-c", "import os\nos._exit(7)")
    assert_message(cp, "logs")
    # the injector sees the process die, or (PID 1 of its namespace gone) dies with it first:
    # then the CLI asks the engine about the container (stopped, or already removed: --rm)
    assert ("process 1 exited while running the injected code" in cp.stderr
            or "the target went away during the injection: container" in cp.stderr), cp.stderr
    assert not c.alive()
    # the helper shared the target's PID namespace: it went with it; nothing left on the host
    poll(lambda: not subprocess.run(["docker", "ps", "-aq", "--filter",
                                     f"label=kubectl-wand.helper-for={cid}"],
                                    capture_output=True, text=True).stdout.strip(),
         what="the helper container gone")
    assert host_processes(helper) == []


def test_code_that_loops_forever_times_out(shared):
    # bounded to 20 s so that the shared target is quiet again later
    cp = exec_(shared, "--timeout", "1", "-c",
               "import time\nt = time.time()\nwhile time.time() - t < 20:\n    time.sleep(0.05)")
    assert_message(cp, "did not finish within 1s; the code was stopped in PID 1",
                   "--timeout", rc=124)


def test_hundred_megabytes_of_output_is_capped(shared):
    t0 = time.monotonic()
    cp = exec_(shared, "-c", "import sys\nsys.stdout.write('x' * (100 << 20))\n"
               "for i in range(100_000):\n    print('y' * 1000)", timeout=120)
    assert cp.returncode == 0, cp.stderr[-500:]
    assert len(cp.stdout) == 8 << 20 and set(cp.stdout) == {"x"}
    assert "output truncated at 8388608 characters (--max-output)" in cp.stderr
    assert time.monotonic() - t0 < 60
    cp = exec_(shared, "--max-output", "10", "-o", "json", "-c", "print('z' * 100)")
    out = json.loads(cp.stdout)
    assert out["stdout"] == "z" * 10 and out["truncated"] is True


def test_non_utf8_output_survives_as_replacement_characters(shared):
    code = ("import os, sys\n"
            "print('name:', os.fsdecode(b'caf\\xe9'))\n"  # undecodable: a surrogate escape
            "sys.stdout.buffer.write(b'raw \\xff\\xfe ok\\n')\n"
            "sys.stdout.buffer.write(b'split \\xe2\\x82')\n"  # a UTF-8 char cut in two
            "sys.stdout.buffer.write(b'\\xac\\n')\n"
            "print('err \\udcff', file=sys.stderr)")
    cp = subprocess.run([WAND, "exec", f"docker/{shared.name}", "-c", code],
                        capture_output=True)
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout.decode("utf-8")  # strict: valid UTF-8
    assert out == "name: caf\ufffd\nraw \ufffd\ufffd ok\nsplit €\n"
    assert "err \ufffd" in cp.stderr.decode("utf-8")
    cp = exec_(shared, "-o", "json", "-c", code)
    data = json.loads(cp.stdout)
    assert data["stdout"] == out and "\\udc" not in cp.stdout
