"""Soak: sequential `exec -c` injections into one busy HTTP target while a bounded load loop
hits it on loopback inside its network namespace. Zero failed injections, zero failed
requests, target RSS growth < 5 MB, an audit line per injection; the figures are printed.

Injections go through the engine in-process (kubectl_wand.engine.ops: open_session +
run_code, one Session per injection, as `kubectl wand exec` does, without a new CLI process
each time). 100 always; 1000 behind the `soak` marker (`pytest -m soak tests/reliability`).
"""

import json
import re
import subprocess
import time

import pytest

from kubectl_wand.backends.docker import DockerBackend
from kubectl_wand.engine import ops, runcode
from kubectl_wand.errors import WandError
from kubectl_wand.targets import parse_target
from tests.reliability.conftest import HTTP

# Runs inside the target: GET / on loopback as fast as a 2 ms pause allows, until its stdin
# closes; prints {"ok": N, "failed": N, "errors": [...]}.
LOAD = r"""
import json, sys, threading, time, urllib.request
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
ok = failed = 0
errors = []
while not stop.is_set():
    try:
        body = urllib.request.urlopen("http://127.0.0.1:8000/load", timeout=10).read()
        if body.startswith(b"hello /load"):
            ok += 1
        else:
            failed += 1
            errors.append(repr(body[:80]))
    except Exception as e:
        failed += 1
        errors.append(repr(e))
    time.sleep(0.002)
print(json.dumps({"ok": ok, "failed": failed, "errors": errors[:5]}))
"""


def rss_kb(c):
    return int(c.py("print(open('/proc/1/status').read().split('VmRSS:')[1].split()[0])")
               .stdout)


def audit_count(c):
    return len(re.findall(r"^\[kubectl-wand\] \S+ pid=1 injected op=exec ", c.logs(), re.M))


@pytest.mark.parametrize("n", [100, pytest.param(1000, marks=pytest.mark.soak)])
def test_soak_sequential_injections_under_load(app, n, capsys):
    c = app(*HTTP)
    backend = DockerBackend("docker")
    box = backend.resolve(parse_target(f"docker/{c.name}"))[0]

    def inject(i):
        out = []
        s = ops.open_session(backend, box, pid=1)  # the load loop is a Python process too
        try:
            res = runcode.run_code(s, f"print({i})".encode(), "<soak>", 30,
                               lambda stream, data: out.append(data))
        finally:
            s.close()
        return res.status == 0 and "".join(out) == f"{i}\n"

    load = subprocess.Popen(["docker", "exec", "-i", c.name, "python3", "-c", LOAD],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for i in range(5):  # warm-up: the agent's imports (json, socket…) arrive once
            assert inject(-1 - i)
        rss0 = rss_kb(c)
        failed, errors = 0, []
        t0 = time.monotonic()
        for i in range(n):
            try:
                ok = inject(i)
            except WandError as e:
                ok = False
                errors.append(e.message)
            if not ok:
                failed += 1
        took = time.monotonic() - t0
        rss1 = rss_kb(c)
    finally:
        out, _ = load.communicate("", timeout=60)
    requests = json.loads(out)
    audits = audit_count(c)
    line = (f"soak: {n} injections in {took:.1f} s ({took / n * 1000:.0f} ms each), "
            f"{failed} failed; {requests['ok']} requests meanwhile, {requests['failed']} "
            f"failed; target RSS {rss0} -> {rss1} kB ({(rss1 - rss0) / 1024:+.2f} MB); "
            f"{audits} audit lines")
    with capsys.disabled():  # shown in the run's output
        print("\n" + line)
    assert failed == 0, errors[:5]
    assert requests["failed"] == 0 and requests["ok"] > n, requests
    assert rss1 - rss0 < 5 * 1024, line
    assert audits == n + 5, line  # one per injection, the warm-up's included
    c.assert_healthy(8000)
