"""More of the core's promises on real containers: pid/N from the host, read-only roots,
serialised concurrent injections, no ptrace permission, --wait-for-client."""

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from kubectl_wand.dap import DAPClient
from tests.conftest import WAND, Attached, breakpoint_line, host_pid, wand

HTTP = ("python3", "/app/http_app.py")


def test_local_pid_exec_and_attach_into_another_mount_and_net_namespace(app):
    """pid/N: the CLI's own Python (3.11 here) runs the injector, which chroots into the
    target's root and becomes its 3.14 interpreter; the port is relayed via nsenter."""
    c = app(*HTTP)
    pid = host_pid(c)
    cp = wand("exec", f"pid/{pid}", "-c", "import sys; print(sys.version_info[:2])")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "(3, 14)"
    assert c.staged() == []
    line = breakpoint_line("http_app.py")
    with Attached(f"pid/{pid}", "--local-port", "0") as a:
        dap = DAPClient("127.0.0.1", a.port)
        dap.attach(breakpoints={"/app/http_app.py": [line]})
        req = subprocess.Popen(["docker", "exec", c.name, "python3", "-c",
                                "import urllib.request as u;u.urlopen('http://127.0.0.1:8000/p')"])
        stop = dap.stopped_locals(timeout=30)
        assert stop["locals"]["greeting"] == "'hello /p'"
        dap.request("continue", threadId=stop["thread"])
        req.wait(timeout=30)
        dap.close()
        rc, err = a.stop()
    assert rc == 0, err
    assert 5679 not in {p for _, p in c.listening()}


def test_ps_local_lists_container_pythons_from_the_host(app):
    c = app(*HTTP)
    pid = int(host_pid(c))
    data = json.loads(wand("ps", "local", "-o", "json").stdout)
    procs = {p["pid"]: p for p in data[0]["processes"]}
    assert procs[pid]["python"].startswith("3.14") and procs[pid]["attachable"]


def test_read_only_root_filesystem_stages_in_dev_shm(app):
    c = app(*HTTP, extra=["--read-only"])
    assert c.sh("touch", "/tmp/x").returncode != 0  # really read-only
    cp = wand("exec", f"docker/{c.name}", "-c", "print('ok')")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "ok\n"
    c.assert_healthy(8000)


def test_no_writable_staging_place_is_a_clear_error(app):
    c = app(*HTTP, extra=["--read-only", "--shm-size", "0", "--tmpfs", "/dev/shm:ro"])
    cp = wand("exec", f"docker/{c.name}", "-c", "print('ok')")
    assert cp.returncode == 1
    assert "no writable directory" in cp.stderr and "hint:" in cp.stderr
    c.assert_healthy(8000)


def test_concurrent_injections_are_serialised_and_all_succeed(app):
    c = app("python3", "/app/busy.py")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(
            lambda i: wand("exec", f"docker/{c.name}", "-q", "-c", f"print({i})"), range(6)))
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    assert sorted(int(r.stdout) for r in results) == list(range(6))
    assert c.logs().count("injected op=exec") == 6


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to drop CAP_SYS_PTRACE")
def test_no_ptrace_permission_is_a_clear_error(app):
    """Root without CAP_SYS_PTRACE cannot inspect another user's process."""
    c = app(*HTTP)
    pid = host_pid(c)
    cp = subprocess.run(["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace",
                         WAND, "exec", f"pid/{pid}", "-c", "print(1)"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1, cp.stdout
    assert "no ptrace permission" in cp.stderr, cp.stderr
    assert "CAP_SYS_PTRACE" in cp.stderr and "Traceback" not in cp.stderr
    assert c.alive() and c.staged() == []


def test_wait_for_client_holds_the_main_thread_until_an_editor_connects(app):
    c = app("python3", "/app/busy.py")
    with Attached(f"docker/{c.name}", "--local-port", "0", "--wait-for-client") as a:
        # The main thread waits: its stack shows debugpy's wait, read without running code.
        helper = "kubectl-wand-helper-" + subprocess.run(
            ["docker", "inspect", "-f", "{{.Id}}", c.name], capture_output=True,
            text=True).stdout.strip()[:12]
        where = subprocess.run(["docker", "exec", helper, "python3", "-c",
                                "import _remote_debugging as r\n"
                                "for t in r.RemoteUnwinder(1, all_threads=True).get_stack_trace():\n"
                                "    if t.thread_id == 1: print([f.funcname for f in t.frame_info])"],
                               capture_output=True, text=True).stdout
        assert "wait_for_client" in where
        dap = DAPClient("127.0.0.1", a.port)
        dap.attach()
        dap.close()
        rc, err = a.stop()
    assert rc == 0, err
