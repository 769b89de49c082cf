"""A debug session through the real `kubectl port-forward` (against the test API) cannot
strand the pod: a client that drops while stopped, and the CLI killed while stopped,
leave it serving."""

import signal
import socket
import subprocess
import time

from kubectl_wand.dap import DAPClient
from tests.conftest import breakpoint_line, poll
from tests.kube.conftest import attach_json, request_in_pod


def _drop(dap):
    dap.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    dap.sock.shutdown(socket.SHUT_RD)
    dap.sock.close()


def test_drop_while_stopped_then_cli_killed_while_stopped(checked):
    c = checked
    d = c.deployment("app", replicas=1, ready_line="READY")
    line = breakpoint_line("http_app.py")
    p, ready = attach_json(c)
    try:
        # 1. the client vanishes while a request thread is stopped at a breakpoint
        dap = DAPClient("127.0.0.1", ready["port"])
        dap.attach(breakpoints={"/app/http_app.py": [line]})
        req = request_in_pod(c, d.pod, "/k1")
        dap.stopped_locals(timeout=30)
        t0 = time.monotonic()
        _drop(dap)
        assert req.communicate(timeout=30)[0].startswith("hello /k1")
        assert time.monotonic() - t0 <= 2.0
        # 2. the next client through the same attach stops again; then the CLI is killed
        dap = DAPClient("127.0.0.1", ready["port"])
        dap.attach(breakpoints={"/app/http_app.py": [line]})
        req = request_in_pod(c, d.pod, "/k2")
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
