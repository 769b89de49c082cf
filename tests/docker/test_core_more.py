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


def test_local_pid_of_a_containerised_process_is_refused(app):
    """pid/N of a process in a container: its interpreter and stdlib are the container's,
    which its processes can change; the host's root never runs them. Refused with the
    container's own form as the remedy, nothing staged, and `ps local` says why."""
    c = app(*HTTP)
    pid = host_pid(c)
    cp = wand("exec", f"pid/{pid}", "-c", "print(1)")
    assert cp.returncode == 1
    assert "runs in a container" in cp.stderr and c.id()[:12] in cp.stderr, cp.stderr
    assert "docker/" in cp.stderr
    assert c.staged() == []
    data = json.loads(wand("ps", "local", "-o", "json").stdout)
    row = {p["pid"]: p for p in data[0]["processes"]}[int(pid)]
    assert row["python"].startswith("3.14") and not row["attachable"]
    assert "runs in a container" in row["reason"]


# The host, simulated inside a container of the bed image so that its Python is 3.14: the CLI
# runs as root with SYS_PTRACE on its own filesystem; the app user owns a copy of the
# interpreter tree (uv/pyenv style) with code planted where the old design ran it as root.
PLANT = ("import os, sys\nif os.geteuid() == 0: "
         "open('/pwned-%d' % os.getpid(), 'w').write(repr(sys.argv))\n")
HOST_SETUP = r"""
set -e
mkdir -p /home/app/py/bin /home/app/py/lib
cp /usr/bin/python3.14 /home/app/py/bin/python3.14
cp -a /usr/lib/python3.14 /home/app/py/lib/python3.14
printf '%s' "$PLANT" >> /home/app/py/lib/python3.14/encodings/__init__.py
rm -f /home/app/py/lib/python3.14/sitecustomize.py  # Debian: a link to /etc/python3.14/
printf '%s' "$PLANT" > /home/app/py/lib/python3.14/sitecustomize.py
chown -R 1000:1000 /home/app
echo SETUP-DONE
"""


def test_local_pid_never_runs_a_user_owned_interpreter_as_root(docker, tmp_path):
    import sys
    import uuid

    from tests.conftest import IMAGE, ROOT, remove_container, wait_for_line

    site = [p for p in sys.path if p.endswith("site-packages")][0]
    name = "wand-host-" + uuid.uuid4().hex[:8]
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "none",
                    "--cap-add", "SYS_PTRACE", "-v", f"{ROOT}:/src:ro", "-v", f"{site}:/deps:ro",
                    "-e", "PYTHONPATH=/src:/deps", "-e", "PYTHONDONTWRITEBYTECODE=1",
                    "-e", "PLANT=" + PLANT, IMAGE, "sleep", "600"], check=True,
                   capture_output=True)
    try:
        def sh(cmd, user="0", timeout=60):
            return subprocess.run(["docker", "exec", "-u", user, name, "sh", "-c", cmd],
                                  capture_output=True, text=True, timeout=timeout)

        assert "SETUP-DONE" in sh(HOST_SETUP).stdout
        app = subprocess.Popen(["docker", "exec", "-u", "1000", name, "/home/app/py/bin/python3.14",
                                "-u", "-c", "import time\nprint('READY', flush=True)\n"
                                "while True: time.sleep(0.05)"],
                               stdout=subprocess.PIPE, text=True)
        wait_for_line(app.stdout, lambda line: "READY" in line, 30)
        pid = sh("pgrep -u 1000 -f home/app/py || for p in /proc/[0-9]*; do "
                 "case $(readlink $p/exe) in /home/app/py/*) echo ${p#/proc/};; esac; done"
                 ).stdout.split()[0]
        cli = "python3 -m kubectl_wand "
        ps = sh(cli + "ps local -o json")
        row = {p["pid"]: p for p in json.loads(ps.stdout)[0]["processes"]}[int(pid)]
        assert row["python"].startswith("3.14") and row["attachable"], ps.stderr
        out = sh(cli + f"exec pid/{pid} -c 'import sys; print(sys.executable, sys.prefix)'")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["/home/app/py/bin/python3.14", "/home/app/py"]
        assert sh(cli + f"stacks pid/{pid}").returncode == 0
        # the planted code ran only as the app itself (uid 1000), never as root
        assert sh("cat /pwned-* 2>/dev/null").stdout.strip() == ""
        app.kill()
    finally:
        remove_container(name)


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
        helper = c.helper_name()
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
