"""The compiled-debugpy cache (kept in a helper's own filesystem), the fast tree extraction,
the marshalled agent and the version probe a chosen process skips."""

import gzip
import io
import json
import marshal
import os
import stat
import sys
import tarfile

import pytest

from kubectl_wand.engine import bundle
from kubectl_wand.payload import injector
from kubectl_wand.payload.injector import STUB


@pytest.fixture(scope="module")
def tgz():
    return bundle.debugpy_tgz()


class FakeStage:
    def __init__(self, path, uid=None, gid=None):
        self.path = str(path)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid


def cache_dir(tmp_path):
    d = tmp_path / "cache"
    return {"cache": str(d), "cache_key": "0123456789abcdef0123456789abcdef"}


def test_tar_reader_matches_tarfile_including_long_names(tgz):
    raw = gzip.decompress(tgz)
    ours = injector._tar_members(raw)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        theirs = [(m.name, tf.extractfile(m).read()) for m in tf.getmembers() if m.isfile()]
    assert ours == theirs


@pytest.mark.parametrize("bad", ["../x.py", "/etc/x", "a//b", "a/../../b"])
def test_tar_reader_refuses_unsafe_paths(bad):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo(bad)
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        injector._tar_members(raw.getvalue())


def test_extract_files_private_tree_handed_over(tmp_path, tgz):
    members = injector._tar_members(gzip.decompress(tgz))
    uid = 1000 if os.getuid() == 0 else os.getuid()
    st = FakeStage(tmp_path, uid, uid)
    path = injector.extract_files(st, "debugpy-x", members)
    assert path == str(tmp_path / "debugpy-x")
    top = os.stat(path)
    assert stat.S_IMODE(top.st_mode) == 0o700 and top.st_uid == uid
    for name, data in members:
        p = os.path.join(path, name)
        s = os.lstat(p)
        assert stat.S_ISREG(s.st_mode) and stat.S_IMODE(s.st_mode) == 0o600 and s.st_uid == uid
        with open(p, "rb") as f:
            assert f.read() == data
    with pytest.raises(FileExistsError):  # never into an existing directory
        injector.extract_files(st, "debugpy-x", members)


def test_cache_round_trip_compiles_for_this_interpreter(tmp_path, tgz):
    spec = injector.open_cache(cache_dir(tmp_path))
    assert spec and stat.S_IMODE(os.fstat(spec["fd"]).st_mode) == 0o700
    c = injector.Cache(spec)
    assert c.load() is False
    c.remember(tgz)
    c.store_pending()
    again = injector.Cache(spec)
    assert again.load() is True
    names = dict(again.members)
    tag = sys.implementation.cache_tag
    pyc = names[f"debugpy/__pycache__/__init__.{tag}.pyc"]
    assert pyc[4:8] == b"\x01\x00\x00\x00"  # PEP 552: hash-based, unchecked
    assert names["debugpy/__init__.py"]


def test_cached_tree_is_importable_from_pycs(tmp_path, tgz):
    spec = injector.open_cache(cache_dir(tmp_path))
    c = injector.Cache(spec)
    c.remember(tgz)
    c.store_pending()
    c = injector.Cache(spec)
    assert c.load()
    (tmp_path / "stage").mkdir()
    lib = c.extract(FakeStage(tmp_path / "stage"))
    code = ("import sys; sys.path.append(%r); import debugpy, debugpy.common.json as j;"
            "print(debugpy.__spec__.cached); print(j.__cached__)" % lib)
    import subprocess

    out = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], capture_output=True,
                         text=True, check=True).stdout.split()
    for cached in out:
        with open(cached, "rb") as f:
            assert f.read(8)[4:] == b"\x01\x00\x00\x00"


def test_damaged_cache_is_dropped(tmp_path, tgz):
    spec = injector.open_cache(cache_dir(tmp_path))
    c = injector.Cache(spec)
    c.remember(tgz)
    c.store_pending()
    path = os.path.join(cache_dir(tmp_path)["cache"], c.name)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    again = injector.Cache(spec)
    assert again.load() is False and not os.path.exists(path)


def test_open_cache_trusts_only_a_private_directory_of_ours(tmp_path):
    spec = cache_dir(tmp_path)
    os.mkdir(spec["cache"], 0o777)
    os.chmod(spec["cache"], 0o777)
    assert injector.open_cache(spec) is None  # others may write into it
    os.chmod(spec["cache"], 0o700)
    assert injector.open_cache(spec)
    assert injector.open_cache(dict(spec, cache_key="../../etc")) is None
    assert injector.open_cache(dict(spec, cache="relative/dir")) is None
    os.rmdir(spec["cache"])
    os.symlink(str(tmp_path), spec["cache"])
    assert injector.open_cache(spec) is None  # never through a symlink


def test_fast_bases_prefers_a_roomy_tmpfs_shm(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    (proc / "7").mkdir(parents=True)
    mounts = ("22 21 0:50 / / rw - overlay overlay rw\n"
              "30 22 0:52 / /dev/shm rw,nosuid - tmpfs shm rw,size=65536k\n")
    (proc / "7" / "mountinfo").write_text(mounts)
    monkeypatch.setattr(injector, "PROC", str(proc))

    class Vfs:
        f_bavail, f_frsize, f_flag = 16384, 4096, 0

    monkeypatch.setattr(injector.os, "fstatvfs", lambda fd: Vfs)
    bases = [None, "/tmp", "/var/tmp", "/dev/shm"]
    assert injector.fast_bases(bases, 7) == ["/dev/shm", None, "/tmp", "/var/tmp"]
    Vfs.f_bavail = 1024  # 4 MB free: not enough room
    assert injector.fast_bases(bases, 7) == bases
    Vfs.f_bavail = 16384
    (proc / "7" / "mountinfo").write_text(mounts.replace("- tmpfs", "- ext4"))
    assert injector.fast_bases(bases, 7) == bases  # on the overlay root: nothing gained


def test_stub_loads_the_marshalled_agent(tmp_path):
    d, ident = str(tmp_path), "abc123"
    code = tmp_path / "agent_code-1"
    code.write_bytes(injector.agent_code("def run(p):\n    RESULT.append(p)\n"))
    (tmp_path / (ident + ".json")).write_text(json.dumps({"agent_code_path": str(code),
                                                          "x": 1}))
    (tmp_path / (ident + ".py")).write_text("")
    got = []
    import builtins

    builtins.RESULT = got
    try:
        exec(compile(STUB % (json.dumps(d), json.dumps(ident)), "stub", "exec"), {})
    finally:
        del builtins.RESULT
    assert got == [{"x": 1}]
    assert os.listdir(tmp_path) == ["agent_code-1"]  # stage 2 removes it after the injection
    assert marshal.loads(code.read_bytes()).co_filename == "<kubectl-wand agent>"


def fake_proc(tmp_path, pid, exe, maps=""):
    d = tmp_path / "proc" / str(pid)
    d.mkdir(parents=True)
    (tmp_path / "proc" / "uptime").write_text("50.00 1.00\n")
    (d / "status").write_text("Name:\tpython3\nState:\tS (sleeping)\nPPid:\t1\n"
                              "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n")
    stat = ["S", 1, pid, pid, 0, -1, 0, 0, 0, 0, 0, 30, 10, 0, 0, 20, 0, 1, 0, 1000, 1, 1]
    (d / "stat").write_text("%d (python3) %s\n" % (pid, " ".join(map(str, stat))))
    (d / "cmdline").write_bytes(exe.encode() + b"\0app.py\0")
    (d / "environ").write_bytes(b"")
    (d / "maps").write_text(maps)
    for link, to in (("exe", exe), ("cwd", "/"), ("root", "/")):
        os.symlink(to, d / link)


