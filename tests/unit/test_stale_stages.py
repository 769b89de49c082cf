"""Orphaned staging directories (their injector was killed) are collected by the next one;
nothing else is: live injectors' directories, kept ones, other users' entries, symlinks."""

import json
import os
import subprocess
import sys

import pytest

import kubectl_wand.payload.injector as injector
from kubectl_wand.payload.injector import collect_stale, make_stage_dir, release_kept

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="staging runs as root in the helper")


@pytest.fixture
def base(tmp_path):
    b = tmp_path / "base"
    b.mkdir()
    os.chmod(b, 0o1777)
    return b


def names(d):
    return sorted(os.listdir(d))


def orphan(base):
    """A staging directory whose injector died: made and locked by a process that exited."""
    code = ("import sys; sys.path.insert(0, sys.argv[2]);"
            "from kubectl_wand.payload.injector import make_stage_dir;"
            "p = make_stage_dir([sys.argv[1]], 1000, 1000); open(p + '/x.py', 'w').close();"
            "print(p)")
    root = os.path.dirname(os.path.dirname(os.path.dirname(injector.__file__)))
    return subprocess.run([sys.executable, "-c", code, str(base), root], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_orphan_collected_by_the_next_stage(base):
    dead = orphan(base)
    assert os.path.isdir(dead)
    mine = make_stage_dir([str(base)], 1000, 1000)
    assert names(base) == [os.path.basename(mine)]


def test_live_injectors_directory_is_left_alone(base):
    live = make_stage_dir([str(base)], 1000, 1000)  # this process holds its lock
    assert collect_stale(str(base)) == 0 and os.path.isdir(live)


def test_other_entries_are_left_alone(base, tmp_path):
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / "precious").write_text("x")
    os.symlink(trap, base / ".kubectl-wand-0000000000000000")  # a planted link
    theirs = base / ".kubectl-wand-1111111111111111"  # a directory of the target's user
    theirs.mkdir()
    os.chown(theirs, 1000, 1000)
    (base / ".kubectl-wand-2222222222222222").write_text("")  # a file
    (base / ".kubectl-wand-check").mkdir()  # not our name pattern
    before = names(base)
    assert collect_stale(str(base)) == 0
    assert names(base) == before and (trap / "precious").exists()


def test_kept_while_its_process_lives_then_released(base):
    dead = orphan(base)
    me = injector.proc_info(os.getpid(), float(open("/proc/uptime").read().split()[0]))
    fd = os.open(dead + "/keep", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, json.dumps([os.getpid(), me["start_ticks"]]).encode())
    os.close(fd)
    assert collect_stale(str(base)) == 0 and os.path.isdir(dead)  # this process lives
    os.makedirs(dead + "/debugpy-abcd1234/debugpy")
    release_kept(dead + "/debugpy-abcd1234", "/elsewhere")  # the last detach lets it go
    assert not os.path.exists(dead)


def test_kept_for_a_process_that_is_gone_is_collected(base):
    dead = orphan(base)
    with open(dead + "/keep", "w") as f:
        json.dump([2 ** 22 + 7, 1], f)  # no such process
    assert collect_stale(str(base)) == 1 and not os.path.exists(dead)
