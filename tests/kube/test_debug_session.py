"""A debug session through the real `kubectl port-forward` (against the test API) cannot
strand the pod: a client that drops while stopped, and the CLI killed while stopped,
leave it serving."""

import json
import signal
import socket
import subprocess
import time

from kubectl_wand.dap import DAPClient
from tests.conftest import WAND, breakpoint_line, poll, wait_for_line


def _get(c, pod, path):
    return subprocess.Popen(["docker", "exec", c.docker_name(pod), "python3", "-c",
                             "import urllib.request as u;print(u.urlopen("
                             f"'http://127.0.0.1:8000{path}', timeout=60).read().decode())"],
                            stdout=subprocess.PIPE, text=True)


def _drop(dap):
    dap.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    dap.sock.shutdown(socket.SHUT_RD)
    dap.sock.close()


def test_drop_while_stopped_then_cli_killed_while_stopped(checked):
    c = checked
    d = c.deployment("app", replicas=1, ready_line="READY")
    line = breakpoint_line("http_app.py")
    p = subprocess.Popen([WAND, "attach", "deploy/app", "--local-port", "0", "-o", "json"],
                         env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(wait_for_line(p.stdout, lambda s: s.startswith("{"), 90))
        # 1. the client vanishes while a request thread is stopped at a breakpoint
        dap = DAPClient("127.0.0.1", ready["port"])
        dap.attach(breakpoints={"/app/http_app.py": [line]})
        req = _get(c, d.pod, "/k1")
        dap.stopped_locals(timeout=30)
        t0 = time.monotonic()
        _drop(dap)
        assert req.communicate(timeout=30)[0].startswith("hello /k1")
        assert time.monotonic() - t0 <= 2.0
        # 2. the next client through the same attach stops again; then the CLI is killed
        dap = DAPClient("127.0.0.1", ready["port"])
        dap.attach(breakpoints={"/app/http_app.py": [line]})
        req = _get(c, d.pod, "/k2")
        dap.stopped_locals(timeout=30)
        t0 = time.monotonic()
        p.send_signal(signal.SIGKILL)
        assert req.communicate(timeout=30)[0].startswith("hello /k2")
        assert time.monotonic() - t0 <= 5.0
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        p.wait(timeout=60)

    def gone():
        tcp = subprocess.run(["docker", "exec", c.docker_name(d.pod), "cat", "/proc/net/tcp"],
                             capture_output=True, text=True).stdout
        return not any(ln.split()[3] == "0A" and ln.split()[1].endswith(":162F")
                       for ln in tcp.splitlines()[1:])

    poll(gone, 20, "the debug port to close after the CLI was killed")
    cp = subprocess.run(["docker", "exec", c.docker_name(d.pod), "python3", "-c",
                         "import urllib.request as u;print(u.urlopen("
                         "'http://127.0.0.1:8000/after', timeout=5).read().decode())"],
                        capture_output=True, text=True, timeout=30)
    assert cp.stdout.startswith("hello /after"), cp.stderr
