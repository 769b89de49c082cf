"""Roles and the choice of process, from realistic process tables."""

import pytest

from kubectl_wand.engine.procs import Proc, assign_roles, choose, hint_for
from kubectl_wand.errors import WandError

PY = "/usr/local/bin/python3.14"
TRACKER = [PY, "-c", "from multiprocessing.resource_tracker import main;main(4)"]
SPAWN = [PY, "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, "
         "pipe_handle=7)", "--multiprocessing-fork"]
GUNICORN = [PY, "/usr/local/bin/gunicorn", "-w", "2", "-b", "0.0.0.0:8000", "app:app"]
FLASK = [PY, "-m", "flask", "--app", "app", "run", "--debug"]


def proc(pid, ppid, argv, python="3.14.0", **kw):
    return Proc(pid=pid, ppid=ppid, uid=1000, argv=argv, python=python, **kw)


def uvicorn_reload():
    return [
        proc(1, 0, ["/usr/bin/python3", "-m", "uvicorn", "asgi_app:app", "--reload"]),
        proc(8, 1, ["python3", "-c", "from multiprocessing.resource_tracker import main;main(4)"]),
        proc(9, 1, ["python3", "-c", "from multiprocessing.spawn import spawn_main; "
                    "spawn_main(tracker_fd=5, pipe_handle=7)", "--multiprocessing-fork"]),
    ]


TABLES = {
    "uvicorn-reload": (uvicorn_reload, {1: "reloader", 8: "helper", 9: "worker"}),
    "uvicorn": (lambda: [proc(1, 0, [PY, "-m", "uvicorn", "app:app", "--host", "0.0.0.0"])],
                {1: "main"}),
    "uvicorn-bin": (lambda: [proc(1, 0, [PY, "/usr/local/bin/uvicorn", "app:app"])], {1: "main"}),
    "gunicorn": (lambda: [proc(1, 0, GUNICORN), proc(7, 1, GUNICORN), proc(8, 1, GUNICORN)],
                 {1: "master", 7: "worker", 8: "worker"}),
    "uvicorn-workers": (
        lambda: [proc(1, 0, [PY, "-m", "uvicorn", "app:app", "--workers", "2"]),
                 proc(6, 1, TRACKER), proc(7, 1, SPAWN), proc(8, 1, SPAWN)],
        {1: "master", 6: "helper", 7: "worker", 8: "worker"}),
    "flask-reloader": (
        lambda: [proc(1, 0, FLASK), proc(12, 1, FLASK, extra={"werkzeug_child": True})],
        {1: "reloader", 12: "worker"}),
    "flask-reloader-via-env-only": (
        # the child runs a different command line; only the environment marks it
        lambda: [proc(1, 0, [PY, "app.py"]), proc(12, 1, [PY, "app.py"],
                                                     extra={"werkzeug_child": True})],
        {1: "main", 12: "worker"}),
    "plain-script": (lambda: [proc(1, 0, ["python3", "-u", "/app/main.py"])], {1: "main"}),
    "shell-wrapper": (
        lambda: [proc(1, 0, ["/bin/sh", "-c", "python3 /app/main.py"], python=None),
                 proc(7, 1, ["python3", "/app/main.py"])],
        {1: "main", 7: "main"}),
    "mp-child-of-non-python": (
        # a spawn-looking child whose parent is not Python is not a worker of anything
        lambda: [proc(1, 0, ["/sbin/tini", "--"], python=None), proc(5, 1, SPAWN)],
        {1: "main", 5: "main"}),
}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_roles(table):
    make, roles = TABLES[table]
    procs = assign_roles(make())
    assert {p.pid: p.role for p in procs} == roles


@pytest.mark.parametrize("table, pid, words", [
    ("uvicorn-reload", 9, ["a worker (PID 9)", "not the reloader (PID 1)"]),
    ("uvicorn-workers", 7, ["a worker (PID 7)", "1 other worker(s)", "--pid",
                            "not the master (PID 1)"]),
    ("gunicorn", 7, ["a worker (PID 7)", "1 other worker(s)", "not the master (PID 1)"]),
    ("flask-reloader", 12, ["a worker (PID 12)", "not the reloader (PID 1)"]),
    ("uvicorn", 1, ["the only application process (PID 1)"]),
    ("plain-script", 1, ["the only application process (PID 1)"]),
    ("shell-wrapper", 7, ["the only application process (PID 7)"]),
])
def test_choose_picks(table, pid, words):
    procs = assign_roles(TABLES[table][0]())
    c = choose(procs)
    assert c.proc is not None and c.proc.pid == pid
    for w in words:
        assert w in c.reason
    if "worker" in c.reason:
        assert "other worker" in c.reason or len(c.candidates) == 1
        assert all(p.role == "worker" for p in c.candidates)


def test_choose_worker_reason_single_worker_exact():
    c = choose(assign_roles(uvicorn_reload()))
    assert c.reason == "a worker (PID 9), not the reloader (PID 1)"
    assert [p.pid for p in c.candidates] == [9]


def test_choose_lowest_worker_regardless_of_order():
    procs = assign_roles([proc(1, 0, GUNICORN), proc(30, 1, GUNICORN), proc(21, 1, GUNICORN)])
    c = choose(procs)
    assert c.proc.pid == 21
    assert sorted(p.pid for p in c.candidates) == [21, 30]


def test_choose_skips_blocked_worker():
    procs = assign_roles([proc(1, 0, GUNICORN), proc(7, 1, GUNICORN, state="Z"),
                          proc(8, 1, GUNICORN)])
    c = choose(procs)
    assert c.proc.pid == 8
    assert c.reason == "a worker (PID 8), not the master (PID 1)"


def test_choose_pid_as_asked():
    procs = assign_roles(uvicorn_reload())
    c = choose(procs, pid=1)
    assert c.proc.pid == 1 and c.proc.role == "reloader"
    assert c.reason == "PID 1 as asked"


def test_choose_pid_not_found():
    with pytest.raises(WandError) as ei:
        choose(assign_roles(uvicorn_reload()), pid=4242)
    assert ei.value.code == "no-such-process"
    assert "4242" in ei.value.message
    assert "kubectl wand ps" in ei.value.hint


def test_ambiguous_two_mains():
    procs = assign_roles([proc(1, 0, ["python3", "/app/a.py"]),
                          proc(2, 0, ["python3", "/app/b.py"])])
    c = choose(procs)
    assert c.proc is None
    assert c.reason == "several Python processes"
    assert [p.pid for p in c.candidates] == [1, 2]


def test_only_helpers_picks_lowest_pid():
    procs = assign_roles([proc(1, 0, ["/bin/sh"], python=None), proc(4, 1, TRACKER),
                          proc(3, 1, TRACKER)])
    c = choose(procs)
    assert c.proc.pid == 3
    assert c.reason == "PID 3 (helper)"


@pytest.mark.parametrize("procs", [
    [],
    [proc(1, 0, ["/usr/sbin/nginx", "-g", "daemon off;"], python=None)],
])
def test_no_python(procs):
    with pytest.raises(WandError) as ei:
        choose(procs)
    assert ei.value.code == "no-python"
    assert ei.value.message == "no Python process found in the target"


def test_all_blocked_lists_every_reason():
    procs = assign_roles([
        proc(1, 0, ["python3.13", "/app/a.py"], python="3.13.2"),
        proc(2, 0, ["python3", "/app/b.py"], remote_debug=False,
             remote_debug_off_by="environment variable PYTHON_DISABLE_REMOTE_DEBUG"),
        proc(3, 0, ["python3.14", "/app/c.py"], readable=False),
    ])
    with pytest.raises(WandError) as ei:
        choose(procs)
    e = ei.value
    assert e.code == "not-attachable"
    assert e.exit_code == 1
    assert e.message == (
        "no attachable Python process in the target (PID 1: Python 3.13.2 < 3.14; "
        "PID 2: remote debugging disabled (environment variable PYTHON_DISABLE_REMOTE_DEBUG); "
        "PID 3: no ptrace permission)")
    assert "3.14" in e.hint  # hint of the first process


@pytest.mark.parametrize("kw, blocker, hint_word", [
    ({}, None, None),
    ({"python": "3.14.0rc2"}, None, None),
    ({"python": "3.15.0a1"}, None, None),
    ({"state": "Z"}, "zombie", "reap"),
    ({"state": "Z", "readable": False}, "zombie", "reap"),
    ({"readable": False}, "no ptrace permission", "CAP_SYS_PTRACE"),
    ({"python": None}, "not Python", "kubectl wand ps"),
    ({"python": "3.13.7"}, "Python 3.13.7 < 3.14", "3.14"),
    ({"python": "2.7.18"}, "Python 2.7.18 < 3.14", "3.14"),
    ({"python": "garbage"}, "Python garbage < 3.14", "3.14"),
    ({"remote_debug": False, "remote_debug_off_by": "interpreter option -X disable-remote-debug"},
     "remote debugging disabled (interpreter option -X disable-remote-debug)",
     "PYTHON_DISABLE_REMOTE_DEBUG"),
    ({"remote_debug": None}, None, None),
])
def test_blocker_and_hint(kw, blocker, hint_word):
    p = proc(5, 1, ["python3", "x.py"], **kw)
    assert p.blocker == blocker
    h = hint_for(p)
    if hint_word is None:
        assert h is None
    else:
        assert hint_word in h


def test_to_json():
    p = proc(9, 1, ["python3", "-m", "uvicorn", "app:app"], python="3.14.0", free_threaded=True,
             user="app", cpu_percent=1.5, rss_kb=20480, threads=4, cwd="/srv",
             exe="/usr/local/bin/python3.14t", role="worker")
    assert p.to_json() == {
        "pid": 9, "ppid": 1, "uid": 1000, "user": "app", "python": "3.14.0",
        "free_threaded": True, "role": "worker", "cpu_percent": 1.5, "rss_kb": 20480,
        "threads": 4, "cwd": "/srv", "exe": "/usr/local/bin/python3.14t",
        "argv": ["python3", "-m", "uvicorn", "app:app"], "attachable": True, "reason": None,
    }
    q = proc(3, 1, ["python3.13"], python="3.13.1")
    assert q.to_json()["attachable"] is False
    assert q.to_json()["reason"] == "Python 3.13.1 < 3.14"


def test_from_json_keeps_unknown_keys_in_extra():
    p = Proc.from_json({"pid": 4, "ppid": 1, "uid": 0, "argv": ["python3"], "python": "3.14",
                        "gid": 0, "werkzeug_child": True, "tmpdir": "/scratch"})
    assert (p.pid, p.ppid, p.python) == (4, 1, "3.14")
    assert p.extra == {"gid": 0, "werkzeug_child": True, "tmpdir": "/scratch"}


@pytest.mark.parametrize("argv, command", [
    (["python3", "-c", "print('a b')"], "python3 -c 'print('\"'\"'a b'\"'\"')'"),
    ([], "[kworker]"),
])
def test_command(argv, command):
    assert Proc(1, 0, 0, argv, name="kworker").command == command
