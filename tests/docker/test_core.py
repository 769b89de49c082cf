"""The core journeys against real, unprepared Python 3.14 containers.

Targets run as uid 1000 with --network none and --cap-drop ALL: no SYS_PTRACE, no debugpy, no
published port. Everything the CLI does goes through a helper container, like a pod's
ephemeral debug container.
"""

import json
import signal

import pytest

from kubectl_wand.dap import DAPClient
from tests.conftest import IMAGE_313, Attached, breakpoint_line, wand

HTTP = ("python3", "/app/http_app.py")


def test_ps_lists_python_process_with_version_and_attachability(app):
    c = app(*HTTP)
    cp = wand("ps", f"docker/{c.name}")
    assert cp.returncode == 0, cp.stderr
    row = next(line.split() for line in cp.stdout.splitlines() if line.split()[:1] == ["1"])
    # PID PPID USER PYTHON ROLE CPU% RSS ATTACH COMMAND
    assert row[2] == "app" and row[3].startswith("3.14.") and row[4] == "main"
    assert row[7] == "yes" and "/app/http_app.py" in cp.stdout
    data = json.loads(wand("ps", f"docker/{c.name}", "-o", "json").stdout)
    procs = data[0]["processes"]
    assert [p["pid"] for p in procs] == [1]
    assert procs[0]["uid"] == 1000 and procs[0]["attachable"] is True
    assert procs[0]["cwd"] == "/app" or procs[0]["cwd"] == "/"


def test_ps_roles_for_uvicorn_reload(app):
    c = app("sh", "-c", "cd /app && exec python3 -m uvicorn asgi_app:app --host 127.0.0.1 "
            "--port 8001 --reload", ready="Application startup complete")
    procs = json.loads(wand("ps", f"docker/{c.name}", "-o", "json").stdout)[0]["processes"]
    roles = {p["role"] for p in procs}
    assert {"reloader", "worker"} <= roles, procs
    reloader = next(p for p in procs if p["role"] == "reloader")
    worker = next(p for p in procs if p["role"] == "worker")
    assert worker["ppid"] == reloader["pid"]


def test_exec_brings_back_stdout_stderr_and_status(app):
    c = app(*HTTP)
    cp = wand("exec", f"docker/{c.name}", "-c",
              "import sys, threading\n"
              "print('main file', sys.modules['__main__'].__file__)\n"
              "print('to stderr', file=sys.stderr)\n"
              "print('thread', threading.current_thread().name)")
    assert cp.returncode == 0, cp.stderr
    assert "main file /app/http_app.py" in cp.stdout
    assert "thread kubectl-wand-exec" in cp.stdout  # not the target's main thread
    assert "to stderr" in cp.stderr and "to stderr" not in cp.stdout
    # The app's own output is not captured, and it keeps serving.
    assert c.get(8000).stdout.startswith("hello /x")
    assert c.staged() == []
    assert "injected op=exec" in c.logs()


def test_exec_exception_exit_code_and_file(app, tmp_path):
    c = app(*HTTP)
    cp = wand("exec", f"docker/{c.name}", "-c", "def f():\n    1/0\nf()")
    assert cp.returncode == 1
    assert "ZeroDivisionError: division by zero" in cp.stderr
    assert 'File "<kubectl-wand -c>", line 2, in f' in cp.stderr
    assert wand("exec", f"docker/{c.name}", "-c", "raise SystemExit(3)").returncode == 3
    script = tmp_path / "patch.py"
    script.write_text("import http_app\nhttp_app.counter = 41\nprint('patched', http_app.counter)\n")
    cp = wand("exec", f"docker/{c.name}", "-f", str(script))
    # The app runs as __main__, so `import http_app` imports a second copy: visible, harmless.
    assert cp.returncode == 0 and "patched 41" in cp.stdout
    cp = wand("exec", f"docker/{c.name}", "-f", str(script), "-o", "json")
    out = json.loads(cp.stdout)
    assert out["status"] == 0 and out["stdout"] == "patched 41\n" and out["pid"] == 1
    assert c.alive()


def test_exec_timeout_stops_the_code(app):
    c = app(*HTTP)
    cp = wand("exec", f"docker/{c.name}", "--timeout", "1", "-c",
              "import time\nwhile True: time.sleep(0.05)")
    assert cp.returncode == 124
    assert "the code was stopped in PID 1" in cp.stderr, cp.stderr
    assert "hint: raise --timeout" in cp.stderr
    c.assert_healthy(8000)  # still serves, nothing staged or left running of ours


def test_attach_breakpoint_locals_detach(app):
    c = app(*HTTP)
    line = breakpoint_line("http_app.py")
    with Attached(f"docker/{c.name}", "--local-port", "0") as a:
        assert a.info["pid"] == 1
        assert a.info["launch"]["pathMappings"][0]["remoteRoot"] == "/app"
        assert a.info["launch"]["connect"]["port"] == a.port
        # Listening on loopback only, inside the target.
        assert ("0100007F", 5679) in c.listening()
        assert not any(p == 5679 and addr != "0100007F" for addr, p in c.listening())
        dap = DAPClient("127.0.0.1", a.port)
        dap.attach(breakpoints={"/app/http_app.py": [line]})
        import subprocess

        req = subprocess.Popen(["docker", "exec", c.name, "python3", "-c",
                                "import urllib.request as u;print(u.urlopen("
                                "'http://127.0.0.1:8000/bp').read().decode())"],
                               stdout=subprocess.PIPE, text=True)
        stop = dap.stopped_locals(timeout=30)
        assert stop["reason"] == "breakpoint" and stop["frame"]["line"] == line
        assert stop["locals"]["greeting"] == "'hello /bp'"
        dap.request("continue", threadId=stop["thread"])
        assert req.communicate(timeout=30)[0].startswith("hello /bp")
        dap.close()
        rc, err = a.stop(signal.SIGINT)
    assert rc == 0, err
    assert "Detached from pid 1" in err
    assert 5679 not in {p for _, p in c.listening()}
    assert c.staged() == []
    assert c.alive() and c.get(8000).stdout.startswith("hello")
    # the session ends over its own connection (no second injection needed)
    assert "injected op=attach" in c.logs() and "debugger stopped: session ended" in c.logs()


def test_attach_twice_reuses_and_keep_leaves_debugger(app):
    c = app(*HTTP)
    with Attached(f"docker/{c.name}", "--local-port", "0", "--keep") as a:
        rc, err = a.stop()
        assert rc == 0 and "--keep" in err
    assert ("0100007F", 5679) in c.listening()
    with Attached(f"docker/{c.name}", "--local-port", "0") as b:
        rc, err = b.stop()
    assert rc == 0 and "already listening" in err
    assert 5679 not in {p for _, p in c.listening()}


def test_attach_busy_local_port(app):
    import socket

    c = app(*HTTP)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    try:
        cp = wand("attach", f"docker/{c.name}", "--local-port", str(busy), "-o", "json")
    finally:
        s.close()
    assert cp.returncode == 1
    assert f"local port {busy} is already in use" in cp.stderr and "hint:" in cp.stderr
    # The failed attach detached again: nothing listens, nothing is staged.
    assert 5679 not in {p for _, p in c.listening()}
    assert c.staged() == []


def test_gunicorn_picks_a_worker_and_says_so(app):
    c = app("sh", "-c", "cd /app && exec python3 -m gunicorn -w 2 -b 127.0.0.1:8002 "
            "wsgi_app:app", ready="Booting worker")
    cp = wand("exec", f"docker/{c.name}", "-c", "import os; print(os.getpid(), os.getppid())")
    assert cp.returncode == 0, cp.stderr
    pid, ppid = map(int, cp.stdout.split())
    assert ppid == 1 and pid != 1
    assert "a worker" in cp.stderr and "not the master (PID 1)" in cp.stderr


@pytest.mark.parametrize("case", ["no-container", "not-python", "py313", "env-disabled",
                                  "x-disabled"])
def test_clear_errors(app, case):
    if case == "no-container":
        cp = wand("exec", "docker/wand-test-does-not-exist", "-c", "1")
        assert cp.returncode == 1
        assert "no docker container named 'wand-test-does-not-exist'" in cp.stderr
        assert "hint: `docker ps`" in cp.stderr
        return
    if case == "not-python":
        c = app("sleep", "3600", ready=None)
        expect = "no Python process found"
    elif case == "py313":
        c = app(*HTTP, image=IMAGE_313)
        expect = "Python 3.13."
    elif case == "env-disabled":
        c = app(*HTTP, env=["PYTHON_DISABLE_REMOTE_DEBUG=1"])
        expect = "PYTHON_DISABLE_REMOTE_DEBUG"
    else:
        c = app("python3", "-X", "disable-remote-debug", "/app/http_app.py")
        expect = "-X disable-remote-debug"
    cp = wand("exec", f"docker/{c.name}", "-c", "print(1)")
    assert cp.returncode == 1, cp.stdout
    assert expect in cp.stderr and "hint:" in cp.stderr
    c.assert_healthy(None if case == "not-python" else 8000)
    if case == "py313":
        assert "3.14" in cp.stderr


def test_blocked_main_thread_says_where(app):
    c = app("python3", "/app/blocked.py")
    cp = wand("exec", f"docker/{c.name}", "--ack-timeout", "1", "-c", "print(1)")
    assert cp.returncode == 1
    assert "did not pick up the injection" in cp.stderr
    assert "blocked.py" in cp.stderr and "main" in cp.stderr and "hint:" in cp.stderr
    c.assert_healthy(8004)


def test_blocked_main_thread_with_python_signal_handler(app):
    c = app("python3", "/app/blocked.py", "--handler")
    cp = wand("exec", f"docker/{c.name}", "--ack-timeout", "1", "-c", "print(1)")
    assert cp.returncode == 1
    assert "SIGUSR1" in cp.stderr  # the hint names the signal the app handles in Python
    c.assert_healthy(8004)


def test_attach_follows_a_reloaded_worker(app):
    from tests.conftest import wait_for_line

    c = app("sh", "-c", "cd /app && exec python3 -m uvicorn asgi_app:app --host 127.0.0.1 "
            "--port 8001 --reload", ready="Application startup complete")
    with Attached(f"docker/{c.name}", "--local-port", "0") as a:
        first = a.info["pid"]
        assert first != 1  # the worker, not the reloader
        # A code change: the reloader replaces its worker; the session follows it.
        assert c.sh("touch", "/app/asgi_app.py", user="0").returncode == 0
        again = json.loads(wait_for_line(a.proc.stdout, lambda s: s.startswith("{"), 90))
        assert again["reattach"] is True and again["pid"] != first
        assert again["port"] == a.port
        rc, err = a.stop()
    assert rc == 0, err
    assert "went away; waiting for its replacement" in err
