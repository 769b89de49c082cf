"""Operations beyond the debugger on real containers: exec fan-out, loglevel, stacks (read
from memory, no code run) and validate. Targets are unprepared (uid 1000, --cap-drop ALL,
--network none)."""

import json
import re

from tests.conftest import IMAGE_313, LOG_TICKER, host_pid, poll, wand

HTTP = ("python3", "/app/http_app.py")
UVICORN = ("sh", "-c", "cd /app && exec python3 -m uvicorn asgi_app:app --host 127.0.0.1 "
           "--port 8001")
TICKER = tuple(LOG_TICKER)


# a Python parent, a child of the same binary and one of a copy of it, all ticking
MIXED = ("python3", "-c",
         "import shutil, subprocess, sys, time\n"
         "import os\n"
         "os.mkdir('/tmp/alt')\n"
         "shutil.copy2(sys.executable, '/tmp/alt/python3.14')\n"
         "tick = 'import time\\nprint(1, flush=True)\\nwhile True: time.sleep(0.005)'\n"
         "kids = [subprocess.Popen([exe, '-c', tick], stdout=subprocess.PIPE)\n"
         "        for exe in (sys.executable, '/tmp/alt/python3.14')]\n"
         "[k.stdout.readline() for k in kids]\n"
         "print('READY', flush=True)\n"
         "while True: time.sleep(0.005)\n")


def test_exec_all_processes_of_two_interpreter_binaries(app):
    # two binaries cannot share one stage 2: each process gets its own, still one injector
    c = app(*MIXED)
    cp = wand("exec", f"docker/{c.name}", "--all-processes", "-v", "-o", "json",
              "-c", "import os, sys\nprint(os.getpid(), sys.executable)")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert cp.stderr.count("' kubectl-wand-injector\n") <= 2, cp.stderr  # 2: helper started
    data = json.loads(cp.stdout)
    assert data["summary"] == {"total": 3, "succeeded": 3, "failed": 0, "skipped": 0}
    ran = {int(r["stdout"].split()[0]): r["stdout"].split()[1] for r in data["results"]}
    assert sorted(ran) == sorted(r["pid"] for r in data["results"])
    assert "/tmp/alt/python3.14" in ran.values() and len(set(ran.values())) == 2
    assert c.staged() == []


def test_exec_all_processes_partial_failure_and_json(app):
    c = app("sh", "-c", "cd /app && exec python3 -m gunicorn -w 2 -b 127.0.0.1:8002 "
            "wsgi_app:app", ready="Booting worker")
    code = ("import os, sys\nprint('pid', os.getpid())\nprint('err', os.getpid(), file=sys.stderr)"
            "\nif os.getpid() == 1:\n    raise RuntimeError('master refuses')\n")
    cp = wand("exec", f"docker/{c.name}", "--all-processes", "-c", code)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    # grouped per process: the master failed with its traceback, both workers succeeded
    groups = re.split(r"^=== ", cp.stdout, flags=re.M)[1:]
    assert len(groups) == 3, cp.stdout
    master = next(g for g in groups if g.startswith(f"docker/{c.name} pid 1:"))
    assert "✗ status 1" in master and "RuntimeError: master refuses" in master
    assert "pid 1\n" in master and "--- stderr\nerr 1\n" in master
    workers = [g for g in groups if g is not master]
    assert all("✓ status 0" in g for g in workers)
    assert cp.stdout.rstrip().splitlines()[-1].startswith(
        "3 processes in 1 target: 2 succeeded, 1 failed")
    cp = wand("exec", f"docker/{c.name}", "--all-processes", "--max-parallel", "1", "-v",
              "-c", code, "-o", "json")
    # the three processes share one injector (one `docker exec`), which forks their stage 2s
    assert cp.stderr.count("' kubectl-wand-injector\n") == 1, cp.stderr
    data = json.loads(cp.stdout)
    by_pid = {r["pid"]: r for r in data["results"]}
    assert data["summary"] == {"total": 3, "succeeded": 2, "failed": 1, "skipped": 0}
    assert by_pid[1]["status"] == 1 and "master refuses" in by_pid[1]["traceback"]
    assert all(r["status"] == 0 and r["stdout"] == f"pid {p}\n"
               for p, r in by_pid.items() if p != 1)
    # --all on a container is that one container: the usual automatic choice (a worker)
    cp = wand("exec", f"docker/{c.name}", "--all", "-c", "import os; print(os.getppid())")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "1 target: 1 succeeded, 0 failed" in cp.stdout and "\n1\n" in cp.stdout
    assert c.staged() == []


def test_loglevel_change_visible_and_reverted(app):
    c = app(*TICKER)
    assert "DEBUG tick" not in c.logs()
    # a long temporary change, then a short one: the short one replaces the pending revert,
    # and still restores the level from before both (INFO), not the intermediate WARNING
    cp = wand("loglevel", f"docker/{c.name}", "warning", "--for", "1h")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "root: INFO -> WARNING (reverts to INFO in 1h)" in cp.stdout
    cp = wand("loglevel", f"docker/{c.name}", "DEBUG", "--for", "2s")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "root: WARNING -> DEBUG (reverts to INFO in 2s)" in cp.stdout
    assert "replaced a pending revert to INFO" in cp.stdout
    poll(lambda: "DEBUG tick" in c.logs(), what="DEBUG lines in the app's log")
    logs = poll(lambda: (lambda t: t if "loglevel reverted: root -> INFO" in t else None)(
        c.logs()), timeout=30, what="the revert")
    revert_at = logs.index("loglevel reverted: root -> INFO")
    last_debug = max(int(n) for n in re.findall(r"DEBUG tick (\d+)", logs))
    # after the revert, INFO lines go on and no DEBUG line comes any more
    after = poll(lambda: (lambda t: t if int(re.findall(r"INFO tick (\d+)", t)[-1])
                          > last_debug + 10 else None)(c.logs()), what="INFO lines after it")
    assert "DEBUG tick" not in after[revert_at:]
    # JSON, several loggers, a logger that did not exist, an integer level
    out = json.loads(wand("loglevel", f"docker/{c.name}", "15", "--logger", "app",
                          "--logger", "no.such.thing", "-o", "json").stdout)
    items = {i["logger"]: i for i in out["results"][0]["loggers"]}
    assert items["app"]["previous"] == "NOTSET" and items["app"]["previous_effective"] == "INFO"
    assert items["no.such.thing"]["existed"] is False and items["app"]["level"] == "15"


def test_loglevel_refuses_bad_input_locally(docker):
    for args, text in ((["docker/x", "LOUD"], "invalid log level"),
                       (["docker/x", "INFO", "--for", "soon"], "invalid duration"),
                       (["docker/x", "INFO", "--logger", "a\nb"], "invalid logger name")):
        cp = wand("loglevel", *args)
        assert cp.returncode == 2 and text in cp.stderr, cp.stderr


def test_stacks_of_blocked_main_thread_without_running_code(app):
    c = app("python3", "/app/blocked.py")
    cp = wand("stacks", f"docker/{c.name}", "-o", "json")
    assert cp.returncode == 0, cp.stderr
    snap = json.loads(cp.stdout)
    main = next(t for t in snap["threads"] if t["main"])
    assert main["tid"] == 1 and main["name"] == "python3"
    assert [f[2] for f in main["frames"]] == ["main", "<module>"]
    assert main["frames"][0][0] == "/app/blocked.py" and main["wchan"]  # in the kernel
    http = next(t for t in snap["threads"] if not t["main"])
    assert http["name"] == "http" and any("serve_forever" in f[2] for f in http["frames"])
    assert snap["tasks"] is None and "asyncio" in snap["tasks_note"]
    text = wand("stacks", f"docker/{c.name}").stdout
    assert 'Thread 1 "python3" (main thread' in text and "waiting in the kernel" in text
    assert 'File "/app/blocked.py", line' in text and 'Thread ' in text and '"http"' in text
    # nothing ran in the target: no audit line, nothing staged
    assert "kubectl-wand" not in c.logs() and c.staged() == []


def test_stacks_of_uvicorn_with_remote_debugging_disabled(app):
    c = app(*UVICORN, env=["PYTHON_DISABLE_REMOTE_DEBUG=1"], ready="Application startup complete")
    cp = wand("stacks", f"docker/{c.name}", "-o", "json")
    assert cp.returncode == 0, cp.stderr
    snap = json.loads(cp.stdout)
    funcs = {f[2] for t in snap["tasks"] for f in t["frames"]}
    assert "Server.main_loop" in funcs or "Server.serve" in funcs, snap["tasks"]
    assert any(f[0].endswith("uvicorn/server.py") for t in snap["threads"] for f in t["frames"])
    text = wand("stacks", f"docker/{c.name}").stdout
    assert "asyncio tasks (" in text and "Task-1" in text
    # remote execution stays refused; reading memory did not need it
    assert wand("exec", f"docker/{c.name}", "-c", "1").returncode == 1
    assert "kubectl-wand" not in c.logs()


def test_validate_healthy_and_each_blocking_condition(app):
    ok = app(*HTTP)
    cp = wand("validate", f"docker/{ok.name}")
    assert cp.returncode == 0, cp.stdout
    assert "✗" not in cp.stdout and "✓ attach would work (PID 1)" in cp.stdout
    for line in ("✓ remote debugging: enabled", "✓ ptrace:", "✓ staging directory: /tmp",
                 "✓ debugpy: shipped", "✓ python: CPython 3.14"):
        assert line in cp.stdout, cp.stdout
    data = json.loads(wand("validate", f"docker/{ok.name}", "-o", "json").stdout)
    assert data["attach_would_work"] is True and data["pid"] == 1
    cases = [(app(*HTTP, image=IMAGE_313), "✗ python: Python 3.13", "upgrade"),
             (app(*HTTP, env=["PYTHON_DISABLE_REMOTE_DEBUG=1"]),
              "✗ remote debugging: disabled by environment variable PYTHON_DISABLE_REMOTE_DEBUG",
              "restart the app without"),
             (app(*HTTP, extra=["--read-only", "--ipc", "none"]),
              "✗ staging directory: no writable directory", "emptyDir")]
    for c, line, remedy in cases:
        cp = wand("validate", f"docker/{c.name}")
        assert cp.returncode == 1, cp.stdout
        assert line in cp.stdout and "remedy: " in cp.stdout and remedy in cp.stdout, cp.stdout
        assert "✗ attach would fail" in cp.stdout
    cp = wand("validate", "docker/wand-test-does-not-exist")
    assert cp.returncode == 1 and "✗ docker/wand-test-does-not-exist" in cp.stdout
    # by host PID: a containerised process is the container's to serve, and validate says so
    cp = wand("validate", f"pid/{host_pid(ok)}")
    assert cp.returncode == 1 and "✓ ptrace: CAP_SYS_PTRACE" in cp.stdout, cp.stdout
    assert "✗ helper interpreter: runs in a container" in cp.stdout and "docker/" in cp.stdout
