"""kubectl-wand injector: stdlib only, Python >= 3.8 for stage 1.

Stage 1 runs in the helper's own Python, beside the target (its PID namespace): it lists
processes and checks the chosen one, reading binaries and /proc, never running anything of the
target. Stage 2 is this same interpreter when it can inject into the target (the usual case: a
helper of the app's image), else another interpreter of the helper's own filesystem of the
target's version; it never chroots, stages files below the target's root through directory fds
(no symlink followed), injects with ``sys.remote_exec``, waits for the agent's connect-back and
relays its events. payload/binaries.py is shipped in front of this file.

Protocol: the CLI writes frames ``<length>\\n<bytes>`` on stdin; this writes one JSON object per
line on stdout. Any failure is an ``error`` event with a code, a message and a hint.
"""

import errno
import json
import os
import re
import select
import socket
import stat
import sys
import time


class secrets:  # os.urandom is all we need; the module would import random, hashlib, base64
    @staticmethod
    def token_hex(n):
        return os.urandom(n).hex()


PROTOCOL = 1
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]{0,80}$")
PROC = "/proc"  # the proc filesystem; tests point it at a fake tree
# Bounds on what the target can make the helper and the CLI hold (issue 13): bytes of one
# process's command line read, bytes of JSON of the process list sent, bytes of one line
# from the agent.
MAX_ARGV = 4096
PROCS_BUDGET = 2 << 20
MAX_LINE = 4 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Fail(Exception):
    def __init__(self, code, message, hint=None, **extra):
        Exception.__init__(self, message)
        self.code, self.message, self.hint, self.extra = code, message, hint, extra


def emit(event, **fields):
    fields["event"] = event
    write_all(1, (json.dumps(fields) + "\n").encode())


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_frame(unit=False):
    """One frame from stdin, unbuffered so an exec'd successor can read the rest; with
    ``unit``, (the unit its header names or None, frame)."""
    header = b""
    while not header.endswith(b"\n"):
        c = os.read(0, 1)
        if not c:
            raise EOFError
        header += c
    parts = header.split()
    data = read_exact(int(parts[0]))
    if not unit:
        return data
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None), data


def read_json():
    return json.loads(read_frame().decode())


def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()
