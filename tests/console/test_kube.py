"""`shell` and `pdb` through Kubernetes: the real kubectl against the test API (pods are
containers; the helper is an ephemeral container reached with `kubectl exec -i`, over both
transports), driven at a terminal."""

import os
import subprocess

from tests.conftest import WAND, poll
from tests.console.common import APPS, pexpect
from tests.kube.conftest import bed_ready, cluster, wand  # noqa: F401 (fixtures)

PLAIN = (APPS / "plainapp.py").read_text()


# the pod's command writes the app to a file and becomes it (pdb needs source files)
BECOME = ("import os, sys\nopen('/tmp/plainapp.py', 'w').write(sys.argv[1])\n"
          "os.execv(sys.executable, [sys.executable, '-u', '/tmp/plainapp.py'])")


def deploy(cluster):
    return cluster.deployment("app", ready_line="app ready", containers=[
        {"name": "app", "command": ["python3", "-c", BECOME, PLAIN], "user": 1000}])


def spawn(cluster, *args, home):
    env = dict(cluster.env, HOME=str(home), TERM="dumb", LANG="C.UTF-8")
    env.setdefault("PATH", os.environ["PATH"])
    return pexpect.spawn(WAND, list(args), encoding="utf-8", timeout=90, env=env,
                         dimensions=(50, 200))


def test_shell_and_pdb_through_kubectl_exec(cluster, tmp_path):  # noqa: F811
    deploy(cluster)
    cp = subprocess.run([WAND, "shell", "deploy/app", "-q"], input="print(main.settings)\n",
                        env=cluster.env, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0 and cp.stdout == "{'mode': 'prod'}\n", cp
    c = spawn(cluster, "shell", "deploy/app", home=tmp_path)
    c.expect(">>> ")
    c.send("main.coun\t")
    c.expect("main.counter")
    c.send(" >= 0\r")
    c.expect("True")
    c.expect(">>> ")
    c.sendeof()
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0
    p = spawn(cluster, "pdb", "deploy/app", home=tmp_path)
    p.expect(r"\(Pdb\) ")
    p.sendline("w")
    p.expect(r"main\(\)")
    p.expect(r"\(Pdb\) ")
    p.sendline("q")
    p.expect("detached from PID")
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 0
    cp = wand(cluster, "exec", "deploy/app", "-q", "-c",
              "import sys, threading, bdb; print(sys.monitoring.get_tool(0), "
              "[b for b in bdb.Breakpoint.bpbynumber if b], "
              "[t.name for t in threading.enumerate() if 'shell' in t.name or 'pdb' in t.name])")
    assert cp.returncode == 0 and cp.stdout.strip() == "None [] []", cp


def test_pdb_client_killed_while_stopped_through_kubectl(cluster, tmp_path):  # noqa: F811
    deploy(cluster)
    line = next(n for n, text in enumerate(PLAIN.splitlines(), 1) if "y = x + 1" in text)
    p = spawn(cluster, "pdb", "deploy/app", home=tmp_path)
    p.expect(r"\(Pdb\) ")
    p.sendline(f"b /tmp/plainapp.py:{line}")
    p.expect("Breakpoint 1")
    p.expect(r"\(Pdb\) ")
    p.sendline("c")
    p.expect(r"work\(\)")
    p.expect(r"\(Pdb\) ")  # stopped: the app's main thread waits for us
    os.kill(p.pid, 9)
    p.expect(pexpect.EOF)
    p.close()
    probe = ("import sys, time, threading, bdb\nm = sys.modules['__main__']\na = m.counter\n"
             "time.sleep(0.3)\nprint(m.counter != a, sys.monitoring.get_tool(0), "
             "[b for b in bdb.Breakpoint.bpbynumber if b], "
             "[t.name for t in threading.enumerate() if 'pdb' in t.name])")

    def clean():
        cp = wand(cluster, "exec", "deploy/app", "-q", "-c", probe)
        return cp.returncode == 0 and cp.stdout.strip() == "True None [] []"

    poll(clean, timeout=30, what="the app running again with nothing of pdb left", every=0.5)
