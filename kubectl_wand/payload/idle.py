"""Keeps a reusable helper alive until no session has used it for IDLE seconds (stdlib only).

Sessions hold a shared flock on LOCK and touch it; this loop only checks now and then, so an
unused helper goes away by itself and a busy one never does.
"""

import fcntl
import os
import sys
import time

LOCK = "/tmp/kubectl-wand-helper.lock"
PYTHON = "/tmp/kubectl-wand-python"  # this helper's own interpreter, for later `exec`s


def main():
    idle = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
    tmp = "%s.%d" % (PYTHON, os.getpid())
    try:
        os.symlink(sys.executable, tmp)
        os.rename(tmp, PYTHON)
    except OSError:
        pass
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    last = time.time()
    while True:
        time.sleep(min(5.0, idle))  # a periodic check, not a readiness guess
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            last = time.time()  # a session is running
            continue
        fcntl.flock(fd, fcntl.LOCK_UN)
        if time.time() - max(last, os.stat(LOCK).st_mtime) > idle:
            return


main()
