"""Shared pieces of the reliability suite: test apps mounted into targets, finding processes
inside a target, and kubectl's forward processes."""

import json
import time
from pathlib import Path

from tests.conftest import poll as shared_poll

APPS = Path(__file__).resolve().parent / "apps"
MOUNT = ["-v", f"{APPS}:/srv:ro"]  # tests/reliability/apps -> /srv in the target
HTTP = ("python3", "/app/http_app.py")
TICKER = ("python3", "/srv/ticker.py")

PS = r"""
import json, os
out = []
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        argv = open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")[:-1]
        st = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    out.append({"pid": int(p), "ppid": int(st[1]), "state": st[0],
                "argv": [a.decode("utf-8", "replace") for a in argv]})
print(json.dumps(out))
"""


def procs_in(c):
    """The processes of a target's PID namespace, seen from inside it."""
    cp = c.sh("python3", "-c", PS)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def find_pid(c, pred, timeout=20.0, what="process"):
    """PID (in the target's namespace) of the first process for which pred(proc) holds."""
    deadline = time.monotonic() + timeout
    while True:
        for p in procs_in(c):
            if pred(p):
                return p["pid"]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in {c.name}: {procs_in(c)}")
        time.sleep(0.1)


def line_of(path, marker):
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if marker in line:
            return n
    raise AssertionError(f"no {marker!r} in {path}")


def poll(fn, timeout=20.0, what="condition", every=0.1):
    return shared_poll(fn, timeout, what, every)


def assert_message(cp, *texts, rc=1):
    """A failure that reads well: the exit status, an `error:` line with ``texts`` and a
    `hint:` line, and never a Python traceback of the CLI itself."""
    assert cp.returncode == rc, (cp.returncode, cp.stdout, cp.stderr)
    assert "error: " in cp.stderr and "hint: " in cp.stderr, cp.stderr
    for t in texts:
        assert t in cp.stderr, (t, cp.stderr)
    assert "kubectl_wand/" not in cp.stderr, cp.stderr  # no traceback of the CLI itself
