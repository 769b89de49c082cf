"""Pure parts of loglevel, stacks, fan-out and validate, on canned data."""

import pytest

from kubectl_wand.backends.base import Box
from kubectl_wand.cli.loglevel import parse_duration, parse_level
from kubectl_wand.cli.stacks import render
from kubectl_wand.engine import fanout, stacks
from kubectl_wand.engine.procs import Proc, choose
from kubectl_wand.engine.validate import Check, Report, _finish, ptrace_check
from kubectl_wand.errors import UsageError, WandError


@pytest.mark.parametrize("text,value", [("DEBUG", 10), ("info", 20), ("Warning", 30),
                                        ("ERROR", 40), ("critical", 50), ("15", 15), ("0", 0)])
def test_parse_level(text, value):
    assert parse_level(text) == value


@pytest.mark.parametrize("text", ["", "LOUD", "-1", "1.5", "WARN", "١٠", "99999", "DEBUG;x"])
def test_parse_level_refuses(text):
    with pytest.raises(UsageError):
        parse_level(text)


@pytest.mark.parametrize("text,seconds", [("10m", 600), ("2s", 2), ("90", 90), ("1h30m", 5400),
                                          ("500ms", 0.5), ("1.5s", 1.5), ("1d", 86400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "10x", "m10", "0s", "8d", "-1s", "1h 30m"])
def test_parse_duration_refuses(text):
    with pytest.raises(UsageError):
        parse_duration(text)


def _task(i, name, awaited_by=(), frames=(("f.py", 1, "coro"),)):
    return {"id": i, "name": name, "frames": [list(f) for f in frames],
            "awaited_by": [{"task": a, "frames": []} for a in awaited_by]}


def test_task_tree_nests_by_awaiter_and_survives_cycles():
    tasks = [_task(1, "main"), _task(2, "mid", [1]), _task(3, "leaf-a", [2]),
             _task(4, "leaf-b", [2]), _task(5, "orphan", [999])]
    roots = stacks.task_tree(tasks)
    assert [r["task"]["name"] for r in roots] == ["main", "orphan"]
    mid = roots[0]["children"][0]
    assert mid["task"]["name"] == "mid"
    assert [k["task"]["name"] for k in mid["children"]] == ["leaf-a", "leaf-b"]
    cyclic = stacks.task_tree([_task(1, "a", [2]), _task(2, "b", [1])])
    assert cyclic and cyclic[0]["task"]["name"] == "a"


def test_stack_completeness_and_rendering():
    main = {"tid": 1, "main": True, "name": "python3", "state": "S", "wchan": "hrtimer_nanosleep",
            "frames": [["/app/x.py", 5, "main"], ["/app/x.py", 9, "<module>"]]}
    cut = {"tid": 7, "main": False, "name": "http", "state": "S", "wchan": None,
           "frames": [["/usr/lib/python3.14/selectors.py", 398, "select"]]}
    assert stacks.complete(main) and not stacks.complete(cut)
    for t in (main, cut):
        t["complete"] = stacks.complete(t)
    text = render({"pid": 1, "threads": [cut, main], "tasks": [_task(1, "Task-1")]},
                  "docker/x", "python3 /app/x.py")
    lines = text.splitlines()
    i = lines.index('Thread 1 "python3" (main thread, state S, waiting in the kernel: '
                    'hrtimer_nanosleep)')
    # most recent call last, like a traceback
    assert lines[i + 1:i + 3] == ['    File "/app/x.py", line 9, in <module>',
                                  '    File "/app/x.py", line 5, in main']
    assert "outer frames not shown" in text and "asyncio tasks (1):" in text
    assert "  └── Task-1: coro (f.py:1)" in text


def _result(box_id, ok, skipped=None, status=None):
    r = fanout.UnitResult(Box(box_id, "pod/" + box_id), 1, ok=ok, skipped=skipped, status=status)
    return r


def test_fanout_summary_and_exit_status():
    from kubectl_wand.cli import fanout as render_fanout

    rs = [_result("a", True, status=0), _result("b", False, status=1),
          _result("c", False, skipped="Python 3.13.1 < 3.14")]
    assert fanout.summary(rs) == {"total": 3, "succeeded": 1, "failed": 1, "skipped": 1}
    assert render_fanout.exit_status(rs) == 1
    assert render_fanout.exit_status(rs[:1]) == 0
    assert render_fanout.exit_status(rs[2:]) == 1  # nothing ran at all: not a success
    assert render_fanout.summary_line(rs) == \
        "3 targets: 1 succeeded, 1 failed, 1 skipped (pod/b pid 1)"


def test_fanout_runs_every_unit_and_keeps_failures_apart(monkeypatch):
    class S:
        def __init__(self, pid):
            self.choice = type("C", (), {"proc": Proc(pid, 0, 0, ["python3"]), "reason": "r"})

        def close(self):
            pass

    def fake_open(backend, box, pid=None, **kw):
        if box.id == "bad":
            raise WandError("cannot reach it", "try later", code="x")
        return S(int(box.id[-1]))

    monkeypatch.setattr(fanout.ops, "open_session", fake_open)

    def work(session, res):
        res.ok, res.status, res.stdout = True, 0, f"hi {session.choice.proc.pid}\n"

    units = [fanout.Unit(Box(i, "pod/" + i)) for i in ("p1", "bad", "p3")]
    rs = fanout.run_all(None, units, work, max_parallel=2)
    assert [r.ok for r in rs] == [True, False, True]
    assert rs[0].stdout == "hi 1\n" and rs[2].pid == 3
    assert rs[1].error.message == "cannot reach it" and rs[1].to_json()["error"]["hint"] == \
        "try later"
    with pytest.raises(WandError):
        fanout.run_all(None, units, work, max_parallel=0)


def test_choose_for_memory_reads_accepts_remote_debug_disabled():
    p = Proc(1, 0, 1000, ["python3", "app.py"], python="3.14.1", remote_debug=False,
             remote_debug_off_by="environment variable PYTHON_DISABLE_REMOTE_DEBUG")
    with pytest.raises(WandError):
        choose([p])
    assert choose([p], remote_exec=False).proc is p
    assert p.blocker_for(remote_exec=False) is None and p.blocker.startswith("remote debugging")


@pytest.mark.parametrize("facts,kind,psa,readable,ok", [
    ({"cap_sys_ptrace": True, "ptrace_scope": 1, "uid": 0}, "docker", None, True, True),
    ({"cap_sys_ptrace": False, "ptrace_scope": 0, "uid": 1000}, "local", None, True, True),
    ({"cap_sys_ptrace": False, "ptrace_scope": 1, "uid": 1000}, "local", None, True, False),
    ({"cap_sys_ptrace": True, "ptrace_scope": 3, "uid": 0}, "docker", None, True, False),
    ({"cap_sys_ptrace": True, "ptrace_scope": 1, "uid": 0}, "local", None, False, False),
    ({"cap_sys_ptrace": False, "ptrace_scope": 1, "uid": 1000}, "kubernetes", True, True, True),
    ({"cap_sys_ptrace": False, "ptrace_scope": 1, "uid": 1000}, "kubernetes", False, True, False),
])
def test_ptrace_check(facts, kind, psa, readable, ok):
    p = Proc(1, 0, 1000, ["python3"], python="3.14.1", readable=readable)
    c = ptrace_check("s", p, facts, kind, psa)
    assert c.ok is ok
    assert (c.remedy is not None) == (not ok)


def test_verdict_needs_the_picked_process_clean_and_nothing_global_failed():
    good = [Check("k", "a", True, ""), Check("p", "x", True, "", pid=1),
            Check("q", "x", False, "other process", pid=2), Check("k", "skip", None, "")]
    assert _finish(Report("t", list(good), pid=1)).verdict is True
    assert _finish(Report("t", good + [Check("k", "b", False, "")], pid=1)).verdict is False
    assert _finish(Report("t", good + [Check("p", "y", False, "", pid=1)], pid=1)).verdict is False
    rep = _finish(Report("t", list(good), pid=None), "several processes")
    assert rep.verdict is False and "several processes" in rep.why


def test_staging_check_finds_the_first_usable_base(tmp_path, monkeypatch):
    import os

    import kubectl_wand.payload.injector as injector

    proc = tmp_path / "proc"
    root = tmp_path / "rootfs"
    (proc / "5").mkdir(parents=True)
    (root / "tmp").mkdir(parents=True)
    (root / "var" / "tmp").mkdir(parents=True)
    os.symlink(root, proc / "5" / "root")
    monkeypatch.setattr(injector, "PROC", str(proc))
    info = {"pid": 5, "uid": os.getuid(), "gid": os.getgid(), "readable": True,
            "tmpdir": "/nope", "python": "3.14.1", "state": "S"}
    got = injector.staging_check(info)
    assert got["ok"] is True and got["dir"] == "/tmp"
    assert got["tried"] == ["/nope (No such file or directory)"]
    assert os.listdir(root / "tmp") == []  # the probe directory is gone again
    (root / "tmp").chmod(0o700)
    other = dict(info, uid=os.getuid() + 4242, gid=os.getgid() + 4242)
    got = injector.staging_check(other)
    assert got["dir"] == "/var/tmp" and "/tmp (not a usable directory)" in got["tried"]
    assert injector.staging_check(dict(info, readable=False))["ok"] is None
