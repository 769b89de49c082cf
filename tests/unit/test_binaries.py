"""Reading binaries instead of running them (payload/binaries.py, and the injector's use of it
on canned /proc trees whose exe links point at tiny ELF files)."""

import os

import pytest

import kubectl_wand.payload.injector as injector
from kubectl_wand.payload import binaries as b
from tests.unit.elf_maker import PY_314, make_elf
from tests.unit.test_proc_reader import UPTIME, fake  # noqa: F401  (fixture)


def facts_of(tmp_path, data, name="python3.14"):
    p = tmp_path / name
    p.write_bytes(data)
    return b.read_facts(str(p))


def test_runtime_section_gives_exact_version_and_flavour(tmp_path):
    f = facts_of(tmp_path, make_elf())
    assert f["runtime"] == (PY_314, False)
    assert b.version_text(f["runtime"][0]) == "3.14.10"
    assert f["layout"] == 0x1000 and f["build_id"] == "12345678"
    ft = facts_of(tmp_path, make_elf(runtime=(PY_314, True)), "python3.14t")
    assert ft["runtime"] == (PY_314, True)


@pytest.mark.parametrize("data", [
    b"#!/bin/sh\necho pwned\n",                  # a script is not run, only not ELF
    b"\x7fELF\x01\x01" + b"\0" * 100,            # 32-bit
    make_elf()[:100],                            # truncated
    make_elf(cookie=b"notpython"[:8]),           # a section of that name without the cookie
])
def test_not_a_runtime(tmp_path, data):
    f = facts_of(tmp_path, data)
    assert f is None or f["runtime"] is None


def test_shared_build_names_its_libpython(tmp_path):
    f = facts_of(tmp_path, make_elf(runtime=None, needed=["libc.so.6", "libpython3.14.so.1.0"]))
    assert f["runtime"] is None and f["needed"] == ["libc.so.6", "libpython3.14.so.1.0"]


@pytest.mark.parametrize("hexv,text", [(0x030E0AF0, "3.14.10"), (0x030F00A2, "3.15.0a2"),
                                       (0x030E00C1, "3.14.0rc1"), (0x030D05F0, "3.13.5")])
def test_version_text(hexv, text):
    assert b.version_text(hexv) == text


@pytest.mark.parametrize("a,t,ok", [("3.14.10", "3.14.0", True), ("3.14.0", "3.13.5", False),
                                    ("3.15.0a2", "3.15.0a2", True), ("3.15.0a2", "3.15.0a3", False),
                                    ("3.14.1", "3.14.0rc1", False)])
def test_compatible(a, t, ok):
    assert b.compatible(a, t) is ok


@pytest.mark.parametrize("argv,env,off", [
    (["python3", "app.py"], [b"PYTHON_DISABLE_REMOTE_DEBUG=1"], "environment"),
    (["python3", "-E", "app.py"], [b"PYTHON_DISABLE_REMOTE_DEBUG=1"], None),
    (["python3", "-I", "app.py"], [b"PYTHON_DISABLE_REMOTE_DEBUG=1"], None),
    (["python3", "-uIB", "app.py"], [b"PYTHON_DISABLE_REMOTE_DEBUG=1"], None),
    (["python3", "app.py", "-E"], [b"PYTHON_DISABLE_REMOTE_DEBUG=1"], "environment"),  # app's
    (["python3", "-c", "x", "-E"], [b"PYTHON_DISABLE_REMOTE_DEBUG=1"], "environment"),
    (["python3", "-X", "disable-remote-debug", "app.py"], [], "-X"),
    (["python3", "-Xdisable-remote-debug", "app.py"], [], "-X"),
    (["python3", "-X", "disable_remote_debug", "app.py"], [], None),  # underscores: ignored
    (["python3", "-W", "ignore", "-E", "app.py"], [b"PYTHON_DISABLE_REMOTE_DEBUG="], None),
    (["gunicorn: worker [app]"], [b"PYTHON_DISABLE_REMOTE_DEBUG=1"], "environment"),
])
def test_remote_debug_off_by(argv, env, off):
    got = b.remote_debug_off_by(argv, env)
    assert (got is None) if off is None else (off in got)


def test_open_in_never_follows_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    root = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(b.open_in(root, "/real/f"))
        for bad in ("/link/f", "/real/../real/f"):
            with pytest.raises(OSError):
                b.open_in(root, bad)
    finally:
        os.close(root)


@pytest.fixture
def private_dir():
    """A directory only root can change (tmp_path lives under the world-writable /tmp)."""
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to make root- and user-owned trees")
    d = tempfile.mkdtemp(prefix="wand-trust-", dir="/root")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def test_trusted_tree(private_dir):
    # a user-owned interpreter tree (uv, pyenv, venv --copies) is not trusted for root
    prefix = os.path.join(private_dir, "py")
    os.makedirs(prefix + "/bin")
    os.makedirs(prefix + "/lib/python3.14/encodings")
    exe = prefix + "/bin/python3.14"
    with open(exe, "wb") as f:
        f.write(make_elf())
    planted = prefix + "/lib/python3.14/encodings/__init__.py"
    open(planted, "w").close()
    assert b.trusted_tree(exe, me=0) is None
    os.chown(planted, 1000, 1000)
    why = b.trusted_tree(exe, me=0)
    assert why and "uid 1000" in why and "encodings" in why
    assert b.trusted_tree(exe, me=1000) is None  # that user's own tree, for that user
    os.chown(planted, 0, 0)
    os.chmod(prefix + "/bin", 0o777)
    assert "/bin can be changed" in b.trusted_tree(exe, me=0)
    assert "/tmp can be changed" in b.trusted_tree("/tmp/python3.14", me=0) or \
        "No such file" in b.trusted_tree("/tmp/python3.14", me=0)


def test_process_recognised_by_its_binary_not_its_name(fake, tmp_path):  # noqa: F811
    # a venv --copies interpreter named "python" and a renamed server binary: found by ELF
    venv = fake.rootfs / "app" / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_bytes(make_elf())
    fake(30, ["/app/.venv/bin/python", "app.py"], exe=str(venv / "python"))
    i = injector.proc_info(30, UPTIME)
    assert (i["python"], i["free_threaded"], i["inject_blocker"]) == ("3.14.10", False, None)
    # the same runtime in a binary whose name lacks "python": CPython cannot find it
    (venv / "myserver").write_bytes(make_elf())
    fake(31, ["myserver"], exe=str(venv / "myserver"))
    i = injector.proc_info(31, UPTIME)
    assert i["python"] == "3.14.10" and "lacks \"python\"" in i["inject_blocker"]


def test_decoy_named_python_is_not_python(fake):  # noqa: F811
    # a file named python3.13 that is a shell script: not a Python, and never run
    d = fake.rootfs / "tmp"
    d.mkdir()
    (d / "python3.13").write_text("#!/bin/sh\ntouch /tmp/pwned\n")
    fake(32, ["/tmp/python3.13"], exe=str(d / "python3.13"))
    i = injector.proc_info(32, UPTIME)
    assert i["python"] == "3.13"  # by name only: refused as too old, never executed
    assert not (d / "pwned").exists()


def test_deleted_exe_is_reported_not_reopened(fake):  # noqa: F811
    p = fake.rootfs / "python3.14 (deleted)"
    p.write_bytes(make_elf())
    fake(33, ["python3.14", "app.py"], exe=str(p))
    i = injector.proc_info(33, UPTIME)
    assert i["python"] == "3.14.10" and "deleted or replaced" in i["inject_blocker"]
