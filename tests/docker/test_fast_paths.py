"""What makes repeat attaches fast, checked for what it must not do: the compiled debugpy tree
lives in the helper's own filesystem (never the target's), later attaches ship no archive and
import the helper's pycs, and the target keeps nothing after detach. Timings: bench/ only."""

import json
import signal
import subprocess

from kubectl_wand.backends.docker import DockerBackend
from kubectl_wand.dap import DAPClient
from kubectl_wand.engine import attach, ops
from tests.conftest import WAND, wait_for_line, wand

TICKING = ("python3", "-c", "import time\nprint('READY 0', flush=True)\n"
           "while True:\n    time.sleep(0.005)\n")
BUSY = ("python3", "/app/busy.py")


def attach_and_detach(name, check=None):
    p = subprocess.Popen([WAND, "attach", f"docker/{name}", "--local-port", "0", "-o", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(wait_for_line(p.stdout, lambda s: s.startswith("{"), 60))
        dap = DAPClient("127.0.0.1", info["port"], timeout=30)
        dap.request("initialize", clientID="t", adapterID="debugpy")
        if check:
            check()
        dap.close()
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
    assert rc == 0, p.stderr.read()


class Target:
    name = None


def helper_ls(c, path):
    return subprocess.run(["docker", "exec", c.helper_name(), "ls", "-la", path],
                          capture_output=True, text=True).stdout


def test_second_attach_uses_the_helpers_compiled_tree(app):
    c = app(*TICKING)

    def staged_on_shm():
        staged = c.staged()
        assert staged and all(s.startswith("/dev/shm/.kubectl-wand-") for s in staged), staged

    attach_and_detach(c.name, staged_on_shm)
    listing = helper_ls(c, "/tmp/kubectl-wand-cache")
    assert "debugpy-cpython-314-" in listing and ".tar" in listing, listing
    assert listing.splitlines()[1].startswith("drwx------")  # ".": root's alone
    # never in the target
    assert "kubectl-wand-cache" not in c.sh("ls", "-a", "/tmp", "/var/tmp", "/dev/shm").stdout
    assert_nothing_left(c)

    backend = DockerBackend()
    Target.name = c.name
    box = backend.resolve(Target)[0]
    s = ops.open_session(backend, box, debugpy=True)
    try:
        assert s.stage2.get("cached") is True and s.stage2["python"].startswith("3.14.")
        assert "blobs" not in attach.Attachment(s)._debugpy()  # nothing to ship
        att = attach.Attachment(s, port=5679)
        ev = att.start()
        assert ev.get("event") == "listening" and not ev.get("reused")
        res = wand_exec_in(c, "import debugpy, debugpy.server.api as a\n"
                              "for m in (debugpy, a):\n"
                              "    print(open(m.__cached__, 'rb').read(8)[4:].hex())")
        assert res.split() == ["01000000", "01000000"], res  # our unchecked-hash pycs
        assert att.detach().get("was_attached")
    finally:
        s.chan.close(timeout=5)
    assert_nothing_left(c)


def wand_exec_in(c, code):
    cp = wand("exec", f"docker/{c.name}", "-q", "-c", code)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def assert_nothing_left(c):
    assert c.staged() == []
    assert 5679 not in {port for _, port in c.listening()}


def test_attach_to_a_cpu_bound_target_and_its_switch_interval_comes_back(app):
    c = app(*BUSY)
    attach_and_detach(c.name)
    attach_and_detach(c.name)  # the second one from the helper's cache
    out = wand_exec_in(c, "import sys; print(sys.getswitchinterval())")
    assert float(out) == 0.005
    assert_nothing_left(c)
