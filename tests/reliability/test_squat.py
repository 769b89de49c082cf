"""What a hostile target can do to the helper's locks and staging paths (issue 13, item 5):
take the per-process lock's name first, hold a lock on its own /tmp forever, point TMPDIR
through a symlink. Each attack fails and the legitimate use still works, promptly."""

import subprocess
import time

from tests.conftest import wand
from tests.reliability.conftest import HTTP

# App + an attacker thread in the same process (uid 1000): what it does is set by argv
HOSTILE = r"""
import fcntl, os, socket, sys, threading, time
sys.argv = ['/app/http_app.py']
what = os.environ['ATTACK']
held = []
if what == 'squat-lock':
    # bind every name the per-process lock of PID 1 could have (start time from /proc)
    start = int(open('/proc/1/stat').read().rsplit(')', 1)[1].split()[19])
    s = socket.socket(socket.AF_UNIX)
    s.bind(('\0kubectl-wand-lock-%d-%d' % (1, start)).encode())
    held.append(s)
elif what == 'flock-tmp':
    fd = os.open('/tmp', os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held.append(fd)
elif what == 'tmpdir-link':
    os.makedirs('/tmp/real', exist_ok=True)
    os.symlink('/tmp/real', '/tmp/link')
exec(open('/app/http_app.py').read())
"""


def start(app, attack, env=()):
    return app("python3", "-c", HOSTILE, env=["ATTACK=" + attack, *env])


def timed_exec(c):
    t0 = time.monotonic()
    cp = wand("exec", f"docker/{c.name}", "-c", "print('ok')", timeout=60)
    return cp, time.monotonic() - t0


def test_a_squatted_lock_name_is_ignored(app):
    c = start(app, "squat-lock")
    cp, took = timed_exec(c)
    assert cp.returncode == 0 and cp.stdout == "ok\n", cp.stderr
    assert took < 15, took  # never the 30 s lock wait
    c.assert_healthy(8000)


def test_a_held_flock_on_tmp_does_not_stall_the_helper(app):
    c = start(app, "flock-tmp")
    cp, took = timed_exec(c)
    assert cp.returncode == 0 and cp.stdout == "ok\n", cp.stderr
    assert took < 15, took
    assert not subprocess.run(["docker", "exec", c.name, "sh", "-c",
                               "ls -d /tmp/.kubectl-wand-* 2>/dev/null"],
                              capture_output=True, text=True).stdout.strip()
    c.assert_healthy(8000)


def test_tmpdir_through_a_symlink_is_not_followed(app):
    c = start(app, "tmpdir-link", env=["TMPDIR=/tmp/link"])
    cp = wand("exec", f"docker/{c.name}", "-c",
              "import glob; print(glob.glob('/tmp/real/.kubectl-wand-*'))")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "[]"  # staged in /tmp itself, not through the link
    c.assert_healthy(8000)
