"""The injector's /proc reader on canned trees (injector.PROC points at tmp_path)."""

import ast
import json
import os
import subprocess
import sys

import pytest

import kubectl_wand.payload as payload
import kubectl_wand.payload.injector as injector

TCK = injector.CLK_TCK
UPTIME = 50.0
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    proc.mkdir()
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text(PASSWD)
    (proc / "uptime").write_text("%.2f 123.00\n" % UPTIME)
    (proc / "self").mkdir()  # not a PID: skipped by scan
    monkeypatch.setattr(injector, "PROC", str(proc))
    monkeypatch.setattr(injector, "_passwd", {})

    def add(pid, argv, exe="/usr/local/bin/python3.14", env=(), ppid=1, uid=1000, state="S",
            comm="python3", rss="  20480 kB", utime=300, stime=100, start=1000, cwd="/srv",
            maps="", threads=3, root=str(rootfs)):
        d = proc / str(pid)
        d.mkdir()
        status = ["Name:\t%s" % comm, "State:\t%s" % {"S": "S (sleeping)", "Z": "Z (zombie)",
                                                      "R": "R (running)"}[state],
                  "Tgid:\t%d" % pid, "Pid:\t%d" % pid, "PPid:\t%d" % ppid,
                  "Uid:\t%d\t%d\t%d\t%d" % (uid, uid, uid, uid),
                  "Gid:\t%d\t%d\t%d\t%d" % (uid, uid, uid, uid)]
        if rss is not None:
            status.append("VmRSS:\t%s" % rss)
        status += ["Threads:\t%d" % threads, "SigCgt:\t0000000180004002"]
        (d / "status").write_text("\n".join(status) + "\n")
        stat = [state, ppid, pid, pid, 0, -1, 4194560, 1000, 0, 0, 0, utime, stime, 0, 0, 20, 0,
                threads, 0, start, 123456789, 5120]
        (d / "stat").write_text("%d (%s) %s\n" % (pid, comm, " ".join(map(str, stat))))
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (d / "maps").write_text(maps)
        if exe is not None:  # no links: as for a zombie, or without ptrace rights
            (d / "environ").write_bytes(b"".join(e.encode() + b"\0" for e in env))
            os.symlink(exe, d / "exe")
            os.symlink(cwd, d / "cwd")
            os.symlink(root, d / "root")
        return d

    add.proc, add.rootfs = proc, rootfs
    return add


def info(pid):
    return injector.proc_info(pid, UPTIME)


def test_import_does_not_run_main():
    # main() runs only as __main__/__wand__; a plain import leaves no SRC and writes nothing
    assert injector.__name__ == "kubectl_wand.payload.injector"
    assert not hasattr(injector, "SRC")
    assert injector.PROC == "/proc"


def test_python_314_process(fake):
    fake(10, ["/usr/local/bin/python3.14", "-m", "uvicorn", "app:app", "--port", "8000"],
         env=["PATH=/usr/bin", "TMPDIR=/scratch", "HOME=/home/app"], ppid=1)
    i = info(10)
    assert i["python"] == "3.14" and i["free_threaded"] is False
    assert i["remote_debug"] is True and i["remote_debug_off_by"] is None
    assert i["argv"] == ["/usr/local/bin/python3.14", "-m", "uvicorn", "app:app", "--port", "8000"]
    assert (i["pid"], i["ppid"], i["uid"], i["gid"]) == (10, 1, 1000, 1000)
    assert (i["state"], i["name"], i["threads"], i["rss_kb"]) == ("S", "python3", 3, 20480)
    assert i["sigcgt"] == "0000000180004002"
    assert i["exe"] == "/usr/local/bin/python3.14" and i["cwd"] == "/srv"
    assert i["readable"] is True
    assert i["tmpdir"] == "/scratch"
    assert i["user"] == "app"
    assert i["start_ticks"] == 1000
    assert "werkzeug_child" not in i


@pytest.mark.parametrize("utime, stime, start, uptime, pct", [
    (300, 100, 1000, 50.0, round(100.0 * 400 / TCK / (50.0 - 1000 / TCK), 1)),
    (0, 0, 1000, 50.0, 0.0),
    (TCK * 5, TCK * 5, 0, 20.0, 50.0),    # 10 s of CPU in 20 s of life
    (TCK, 0, int(50.0 * TCK), 50.0, 0.0),  # started this instant: no division by zero
])
def test_cpu_percent(fake, utime, stime, start, uptime, pct):
    fake(11, ["python3.14", "x.py"], utime=utime, stime=stime, start=start)
    assert injector.proc_info(11, uptime)["cpu_percent"] == pct


def test_cpu_percent_uses_kernel_clock(fake):
    assert injector.CLK_TCK == os.sysconf("SC_CLK_TCK")
    fake(11, ["python3.14", "x.py"], utime=3 * TCK, stime=TCK, start=10 * TCK)
    assert info(11)["cpu_percent"] == 10.0  # 4 s of CPU over 40 s of life


def test_comm_with_parens_and_spaces(fake):
    fake(12, ["python3.14", "x.py"], comm="my (odd) name", utime=7, stime=0, start=0)
    i = info(12)
    assert i["start_ticks"] == 0
    assert i["name"] == "my (odd) name"


def test_python_313(fake):
    fake(13, ["/usr/bin/python3.13", "app.py"], exe="/usr/bin/python3.13")
    i = info(13)
    assert i["python"] == "3.13" and i["free_threaded"] is False


def test_non_python_is_listed_with_why(fake):
    fake(14, ["nginx: master process /usr/sbin/nginx -g daemon off;"], exe="/usr/sbin/nginx",
         comm="nginx")
    i = info(14)
    assert i["python"] is None and i["not_python"] == "no CPython runtime in /usr/sbin/nginx"


@pytest.mark.parametrize("env", [
    ["PYTHON_DISABLE_REMOTE_DEBUG=1"],
    ["A=1", "PYTHON_DISABLE_REMOTE_DEBUG=yes", "B=2"],
])
def test_disabled_by_environment(fake, env):
    fake(15, ["python3.14", "app.py"], env=env)
    i = info(15)
    assert i["remote_debug"] is False
    assert i["remote_debug_off_by"] == "environment variable PYTHON_DISABLE_REMOTE_DEBUG"


def test_similar_variable_does_not_disable(fake):
    fake(15, ["python3.14", "app.py"], env=["XPYTHON_DISABLE_REMOTE_DEBUG=1",
                                            "PYTHON_DISABLE_REMOTE_DEBUGGER=1"])
    assert info(15)["remote_debug"] is True


@pytest.mark.parametrize("argv, off", [
    (["python3.14", "-X", "disable-remote-debug", "app.py"], True),
    (["python3.14", "-Xdisable-remote-debug", "app.py"], True),
    (["python3.14", "-X", "dev", "app.py"], False),
    (["python3.14", "-X"], False),
])
def test_disabled_by_option(fake, argv, off):
    fake(16, argv)
    i = info(16)
    assert i["remote_debug"] is (not off)
    assert i["remote_debug_off_by"] == ("interpreter option -X disable-remote-debug"
                                        if off else None)


@pytest.mark.parametrize("exe, maps, version, ft", [
    ("/usr/bin/python3.14t", "", "3.14", True),
    ("/usr/local/bin/python3.14-dbg", "", "3.14", False),
    ("/opt/venv/bin/python3.15", "", "3.15", False),
    ("/opt/app/bin/myserver",
     "7f1c2a000000-7f1c2a100000 r--p 00000000 08:01 1234 "
     "/usr/lib/x86_64-linux-gnu/libpython3.14.so.1.0\n", "3.14", False),
    ("/usr/bin/uwsgi",
     "55d0c0000000-55d0c0001000 r-xp 00000000 08:01 99 /usr/bin/uwsgi\n"
     "7f00-7f10 r--p 00000000 08:01 1235 /usr/local/lib/libpython3.14t.so.1.0\n", "3.14", True),
    ("/opt/app/bin/myserver", "7f00-7f10 r--p 0 08:01 1 /usr/lib/libc.so.6\n", None, False),
])
def test_version_from_exe_and_maps(fake, exe, maps, version, ft):
    fake(17, ["server"], exe=exe, maps=maps)
    i = info(17)
    if version is None:
        assert i["python"] is None
    else:
        assert (i["python"], i["free_threaded"]) == (version, ft)


def test_maps_not_read_when_exe_says_python(fake):
    # a python3.14 binary that also maps an old libpython keeps the version of its exe
    fake(18, ["python3.14"], exe="/usr/bin/python3.14",
         maps="7f00-7f10 r--p 0 08:01 1 /usr/lib/libpython3.9.so.1.0\n")
    assert info(18)["python"] == "3.14"


def test_zombie(fake):
    fake(19, [], exe=None, state="Z", rss=None, comm="python3", threads=1)
    i = info(19)
    assert (i["state"], i["argv"], i["rss_kb"]) == ("Z", [], 0)
    assert i["python"] is None  # listed (so --pid can say "zombie"), never as Python


def test_kernel_thread_is_not_listed(fake):
    fake(30, [], exe=None, comm="kworker/0:1")
    assert info(30) is None


def _refuse_links(monkeypatch, pid):
    """As root the fake tree cannot refuse a readlink; model ptrace's EACCES directly."""
    real = injector.os.readlink

    def readlink(path, *a, **kw):
        if "/%d/" % pid in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(injector.os, "readlink", readlink)


def test_unreadable_python_known_from_argv(fake, monkeypatch):
    # without ptrace rights the exe/cwd/environ links are refused; argv[0] still tells
    fake(20, ["/usr/local/bin/python3.14", "app.py"], exe=None, uid=0)
    _refuse_links(monkeypatch, 20)
    i = info(20)
    assert i["readable"] is False
    assert i["python"] == "3.14"
    assert i["exe"] is None and i["cwd"] is None
    assert i["remote_debug"] is True
    assert i["user"] is None  # the root link is refused too


def test_werkzeug_child(fake):
    fake(21, ["python3.14", "-m", "flask", "run"], env=["WERKZEUG_RUN_MAIN=true",
                                                         "WERKZEUG_SERVER_FD=3"])
    assert info(21)["werkzeug_child"] is True


def test_argv_with_invalid_utf8_and_empty_args(fake):
    d = fake(22, ["x"])
    (d / "cmdline").write_bytes(b"python3.14\0-c\0print('\xff')\0\0")
    assert info(22)["argv"] == ["python3.14", "-c", "print('\ufffd')", ""]


def test_user_unknown_uid(fake):
    fake(23, ["python3.14"], uid=4242)
    assert info(23)["user"] is None


def test_same_root_and_alive(fake, tmp_path):
    fake(24, ["python3.14"], root="/", start=777)
    fake(25, ["python3.14"])  # root: the fake rootfs
    assert injector.same_root(24) is True
    assert injector.same_root(25) is False
    assert injector.same_root(999) is False
    assert injector.alive(24, 777) is True
    assert injector.alive(24, 778) is False  # PID reused by another process
    assert injector.alive(999, 777) is False


def test_scan(fake, monkeypatch):
    fake(40, ["/usr/local/bin/python3.14", "-m", "uvicorn", "app:app"], ppid=0)
    fake(41, ["/usr/sbin/nginx"], exe="/usr/sbin/nginx")
    fake(5, ["/usr/bin/python3.13", "old.py"], exe="/usr/bin/python3.13")
    fake(42, ["python3.14", "-c", "import os", "kubectl-wand-stage2", "{}"])  # our helper
    fake(os.getpid(), ["python3.14", "me.py"])  # the scanner itself
    (fake.proc / "43").mkdir()  # exited while we looked: no files left
    d = fake(44, ["python3.14", "x.py"])
    (d / "stat").write_text("44 (python3) S 1\n")  # truncated: IndexError, skipped
    got = [p for p in injector.scan() if p["python"]]
    assert [p["pid"] for p in got] == [5, 40]
    assert got[0]["python"] == "3.13" and got[1]["python"] == "3.14"
    assert got[1]["cpu_percent"] == round(100.0 * 400 / TCK / (UPTIME - 1000 / TCK), 1)
    assert json.loads(json.dumps(got)) == got  # what stage 1 emits


def test_scan_empty(fake):
    assert injector.scan() == []


@pytest.mark.parametrize("name", ["injector", "idle", "forward"])
def test_helper_payload_is_python38_syntax(name):
    # stage 1 runs in whatever Python the target image has
    ast.parse(payload.source(name), feature_version=(3, 8))


def test_boot_runs_injector_as_wand(tmp_path):
    src = payload.source("injector").encode()
    req = json.dumps({"op": "ps", "probe": False}).encode()
    stdin = b"%d\n" % len(src) + src + b"%d\n" % len(req) + req
    out = subprocess.run([sys.executable, "-I", "-S", "-c", payload.BOOT], input=stdin,
                         capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(lines) == 1 and lines[0]["event"] == "procs"
    assert lines[0]["protocol"] == injector.PROTOCOL
    assert os.getpid() in [p["pid"] for p in lines[0]["procs"]]  # we are Python, it is not us


def test_boot_exits_3_on_short_input():
    out = subprocess.run([sys.executable, "-I", "-S", "-c", payload.BOOT], input=b"100\nabc",
                         capture_output=True, timeout=20)
    assert out.returncode == 3


def test_deleted_exe_of_shared_build_found_through_maps(fake):
    fake(27, ["python3", "app.py"], exe="/usr/local/bin/python3.14 (deleted)",
         maps="7f00-7f10 r--p 0 08:01 1 /usr/local/lib/libpython3.14.so.1.0\n")
    assert info(27)["python"] == "3.14"


def test_deleted_exe_of_static_build(fake):
    fake(28, ["python3", "app.py"], exe="/usr/bin/python3.14 (deleted)")
    assert info(28) is not None and info(28)["python"] == "3.14"
