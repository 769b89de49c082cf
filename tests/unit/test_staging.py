"""Private staging in the target: the directory, file writes, hand-over, removal, the stub."""

import json
import os
import stat

import pytest

import kubectl_wand.payload.injector as injector
from kubectl_wand.payload.injector import STUB, Fail, Stage, make_stage_dir

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="staging runs as root in the helper")


@pytest.fixture
def base(tmp_path):
    b = tmp_path / "base"
    b.mkdir()
    os.chmod(b, 0o755)  # like /tmp: the target user must be able to reach its files
    assert injector.SAFE_PATH.match(str(b)), "tmp_path too long/odd for SAFE_PATH"
    return b


def _stage_dirs(d):
    return sorted(n for n in os.listdir(d) if n.startswith(".kubectl-wand-"))


def test_make_stage_dir_first_usable_base(base):
    a, b = base / "a", base / "b"
    a.mkdir()
    b.mkdir()
    path = make_stage_dir([str(a), str(b)], 1000, 1000)
    assert os.path.dirname(path) == str(a)
    assert os.path.basename(path).startswith(".kubectl-wand-")
    assert len(os.path.basename(path)) == len(".kubectl-wand-") + 16
    st = os.lstat(path)
    # root-owned for good, enterable by the target's user, not listable or writable by it
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o711
    assert st.st_uid == 0
    assert _stage_dirs(b) == []


def test_make_stage_dir_fresh_each_time(base):
    p1 = make_stage_dir([str(base)], 0, 0)
    p2 = make_stage_dir([str(base)], 0, 0)
    assert p1 != p2 and len(_stage_dirs(base)) == 2


def test_make_stage_dir_skips_bad_bases(base, tmp_path):
    good = base / "good"
    good.mkdir()
    real = base / "real"
    real.mkdir()
    link = base / "link"
    os.symlink(real, link)
    afile = base / "file"
    afile.write_text("")
    bases = [None, "", str(base / "missing"), str(link), str(afile), "/tmp/a b", "/tmp/x;y",
             "relative/dir", str(base) + "/../" + base.name, "/tmp/$(id)", str(good)]
    path = make_stage_dir(bases, 1000, 1000)
    assert os.path.dirname(path) == str(good)
    assert _stage_dirs(real) == []  # nothing created through the symlink


def test_make_stage_dir_skips_base_not_searchable_by_target_user(base):
    locked = base / "locked"
    locked.mkdir(mode=0o700)
    os.chmod(locked, 0o700)
    other = base / "other"
    other.mkdir()
    os.chmod(other, 0o755)
    path = make_stage_dir([str(locked), str(other)], 1000, 1000)
    assert os.path.dirname(path) == str(other)
    # root itself may use it
    assert os.path.dirname(make_stage_dir([str(locked)], 0, 0)) == str(locked)


def test_make_stage_dir_nothing_usable(base):
    link = base / "link"
    os.symlink(base, link)
    with pytest.raises(Fail) as ei:
        make_stage_dir([str(base / "missing"), str(link), "/tmp/a b"], 1000, 1000)
    e = ei.value
    assert e.code == "no-staging"
    assert "%s (No such file or directory)" % (base / "missing") in e.message
    assert "%s (a symlink on the way: not followed)" % link in e.message
    assert "/tmp/a b" not in e.message  # unsafe names are dropped silently
    assert "TMPDIR" in e.hint


@pytest.fixture
def stage(base):
    s = Stage(make_stage_dir([str(base)], 1000, 1000), 1000, 1000)
    yield s
    s.remove()


def test_write_creates_private_file_owned_by_target(stage):
    p = stage.write("a.json", b'{"x": 1}')
    assert p == stage.path + "/a.json"
    st = os.lstat(p)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    with open(p, "rb") as f:
        assert f.read() == b'{"x": 1}'


def test_write_large_blob_completely(stage):
    data = os.urandom(3 << 20)
    with open(stage.write("blob", data), "rb") as f:
        assert f.read() == data


def test_write_refuses_planted_symlink(stage, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"original")
    os.symlink(victim, stage.path + "/x.py")
    with pytest.raises(OSError):
        stage.write("x.py", b"evil")
    assert victim.read_bytes() == b"original"
    assert os.lstat(victim).st_uid == 0
    dangling = tmp_path / "created-through-link"
    os.symlink(dangling, stage.path + "/y.py")
    with pytest.raises(OSError):
        stage.write("y.py", b"evil")
    assert not dangling.exists()


def test_write_refuses_existing_file(stage):
    stage.write("a", b"1")
    with pytest.raises(FileExistsError):
        stage.write("a", b"2")
    with open(stage.path + "/a", "rb") as f:
        assert f.read() == b"1"


def test_writes_follow_the_opened_directory_not_the_path(stage, tmp_path):
    # the directory is swapped for a symlink after opening: writes still land in the original
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = stage.path + ".moved"
    os.rename(stage.path, moved)
    os.symlink(elsewhere, stage.path)
    try:
        stage.write("z", b"ok")
        assert os.listdir(elsewhere) == []
        assert os.path.exists(moved + "/z")
    finally:
        os.unlink(stage.path)
        os.rename(moved, stage.path)


def test_directory_is_never_handed_over(stage):
    """Files belong to the target's user; the directory stays root's, so it cannot be
    swapped for a symlink under later root writes (a detach after an attach)."""
    stage.write("a", b"1")
    st = os.stat(stage.path)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o711)
    assert os.stat(stage.path + "/a").st_uid == 1000
    assert not hasattr(stage, "hand_over")


def test_unlink_and_remove(stage):
    stage.write("a", b"1")
    stage.unlink("a")
    stage.unlink("never-there")  # silent
    assert os.listdir(stage.path) == []
    stage.write("b", b"2")
    os.mkdir(stage.path + "/sub")
    stage.remove()
    assert not os.path.exists(stage.path)
    stage.remove()  # twice is harmless


def test_extract_owned_by_target(stage):
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tf:
        data = b"x = 1\n"
        info = tarfile.TarInfo("pkg/mod.py")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    dest = stage.extract("debugpy", raw.getvalue())
    assert dest == stage.path + "/debugpy"
    with open(dest + "/pkg/mod.py", "rb") as f:
        assert f.read() == b"x = 1\n"
    for p in (dest, dest + "/pkg", dest + "/pkg/mod.py"):
        assert os.lstat(p).st_uid == 1000


@pytest.mark.parametrize("path, ident", [
    ("/tmp/.kubectl-wand-0123456789abcdef", "a1b2c3d4e5f6"),
    ("/var/tmp/.kubectl-wand-ffffffffffffffff", "000000000000"),
])
def test_stub_compiles_and_carries_only_path_and_id(path, ident):
    src = STUB % (json.dumps(path), json.dumps(ident))
    compile(src, "stub", "exec")
    assert src.count(path) == 1 and src.count(ident) == 1
    assert STUB.count("%s") == 2 and "%" not in STUB.replace("%s", "")
    # all the rest is fixed text: no params, code or user data travels in the source
    assert src.replace(json.dumps(path), "P").replace(json.dumps(ident), "I") == STUB % ("P", "I")


def test_stub_runs_agent_from_json_and_deletes_its_files(tmp_path):
    d, ident = str(tmp_path), "abc123"
    params = {"agent_source": "def run(p):\n    p['ran'] = True\n    RESULT.append(p)\n",
              "x": 1}
    (tmp_path / (ident + ".json")).write_text(json.dumps(params))
    (tmp_path / (ident + ".py")).write_text("")
    got = []
    import builtins

    builtins.RESULT = got
    try:
        exec(compile(STUB % (json.dumps(d), json.dumps(ident)), "stub", "exec"), {})
    finally:
        del builtins.RESULT
    assert got == [{"x": 1, "ran": True}]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("exc, code", [
    (PermissionError(1, "Operation not permitted"), "permission"),
    (RuntimeError("Remote debugging is not enabled in the remote process"),
     "remote-debug-disabled"),
    (RuntimeError("Can't send commands from a Python 3.14 to 3.13"), "version"),
    (OSError("something odd"), "inject-failed"),
])
def test_classify(exc, code):
    got = injector.classify(exc)
    assert got[0] == code
    assert str(exc) in got[1]
