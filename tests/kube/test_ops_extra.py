"""exec --all, loglevel, stacks and validate on Kubernetes targets, through the real kubectl
against the test API server (pods = containers)."""

import json
import re
from tests.conftest import LOG_TICKER, poll
from tests.kube.conftest import api_calls, helpers_of, wand

TICKER = LOG_TICKER


def test_exec_all_replicas_one_failing(checked):
    c = checked
    d = c.deployment("app", replicas=3, ready_line="READY")
    bad = d.pods[1]
    code = ("import socket\nname = socket.gethostname()\nprint('hello from', name)\n"
            f"if name == {bad!r}:\n    raise RuntimeError('only ' + name + ' fails')\n")
    cp = wand(c, "exec", "deploy/app", "--all", "-c", code)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    groups = {g.split(" ", 1)[0]: g for g in re.split(r"^=== ", cp.stdout, flags=re.M)[1:]}
    assert set(groups) == {f"pod/{p}" for p in d.pods}
    for p in d.pods:
        g = groups[f"pod/{p}"]
        assert f"hello from {p}\n" in g  # partial failure hides no success (nor output)
        if p == bad:
            assert "✗ status 1" in g and f"RuntimeError: only {bad} fails" in g
        else:
            assert "✓ status 0" in g and "Traceback" not in g
    assert cp.stdout.rstrip().splitlines()[-1] == \
        f"3 targets: 2 succeeded, 1 failed (pod/{bad} pid 1)"
    out = json.loads(wand(c, "exec", "deploy/app", "--all", "--max-parallel", "2", "-c", code,
                          "-o", "json").stdout)
    assert out["summary"] == {"total": 3, "succeeded": 2, "failed": 1, "skipped": 0}
    assert {r["pod"]: r["status"] for r in out["results"]} == {p: int(p == bad) for p in d.pods}
    # one ephemeral helper per pod, reused by the second fan-out
    assert all(len(helpers_of(c, p)) == 1 for p in d.pods)


# a Python process with two Python children, all ticking; READY once the children run
TRIO = ["python3", "-c",
        "import subprocess, sys, time\n"
        "kids = [subprocess.Popen([sys.executable, '-c', 'import time\\nprint(1, flush=True)\\n"
        "while True: time.sleep(0.005)'], stdout=subprocess.PIPE) for _ in range(2)]\n"
        "[k.stdout.readline() for k in kids]\n"
        "print('READY', flush=True)\n"
        "while True: time.sleep(0.005)\n"]


def test_exec_all_replicas_all_processes_one_kubectl_exec_per_pod(checked):
    c = checked
    d = c.deployment("trio", replicas=2, ready_line="READY",
                     containers=[{"name": "app", "command": TRIO, "user": 1000}])
    argv = ["exec", "deploy/trio", "--all", "--all-processes", "-o", "json", "-c",
            "import os\nprint(os.getpid(), os.getppid())"]
    assert wand(c, *argv).returncode == 0  # adds the helpers
    c.clear_requests()
    cp = wand(c, *argv)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out = json.loads(cp.stdout)
    assert out["summary"] == {"total": 6, "succeeded": 6, "failed": 0, "skipped": 0}
    for p in d.pods:
        res = [r for r in out["results"] if r["pod"] == p]
        # each process ran the code itself: its own PID, and the children's parent is the first
        assert sorted(int(r["stdout"].split()[0]) for r in res) == sorted(r["pid"] for r in res)
        parents = {int(r["stdout"].split()[1]) for r in res if r["pid"] != min(x["pid"] for x in res)}
        assert parents == {min(r["pid"] for r in res)}
        # the three processes of a pod shared one `kubectl exec` into its helper
        execs = api_calls(c, "exec", p)
        assert len(execs) == 1, execs


def test_loglevel_all_replicas_then_reverted(checked):
    c = checked
    d = c.deployment("tick", replicas=2, ready_line="READY",
                     containers=[{"name": "app", "command": TICKER, "user": 1000}])
    cp = wand(c, "loglevel", "deploy/tick", "DEBUG", "--all", "--for", "2s")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert cp.stdout.count("root: INFO -> DEBUG (reverts to INFO in 2s)") == 2
    assert "2 targets: 2 succeeded, 0 failed" in cp.stdout
    for pod in d.pods:
        poll(lambda: "DEBUG tick" in c.logs(pod), what=f"DEBUG lines in {pod}")
    for pod in d.pods:
        logs = poll(lambda: (lambda t: t if "loglevel reverted: root -> INFO" in t else None)(
            c.logs(pod)), timeout=30, what=f"the revert in {pod}")
        last_debug = max(int(n) for n in re.findall(r"DEBUG tick (\d+)", logs))
        after = poll(lambda: (lambda t: t if int(re.findall(r"INFO tick (\d+)", t)[-1])
                              > last_debug + 10 else None)(c.logs(pod)), what="INFO after it")
        assert "DEBUG tick" not in after[after.index("loglevel reverted"):]


def test_stacks_without_remote_debugging_and_asyncio_in_a_sidecar(checked):
    c = checked
    d = c.deployment("two", ready_line=None, containers=[
        {"name": "blocked", "command": ["python3", "/app/blocked.py"], "user": 1000,
         "env": {"PYTHON_DISABLE_REMOTE_DEBUG": "1"}},
        {"name": "web", "command": ["sh", "-c", "cd /app && exec python3 -m uvicorn asgi_app:app "
                                    "--host 127.0.0.1 --port 8001"], "user": 1000}])
    c.wait_pod_ready(d.pod, ready_line="READY", container="blocked")
    # uvicorn logs "Uvicorn running" at the end of its startup and enters main_loop right
    # after, with no await between ("Application startup complete" comes before: too early)
    c.wait_pod_ready(d.pod, ready_line="Uvicorn running", container="web")
    cp = wand(c, "stacks", "deploy/two", "-c", "blocked", "-o", "json")
    assert cp.returncode == 0, cp.stderr
    snap = json.loads(cp.stdout)
    main = next(t for t in snap["threads"] if t["main"])
    assert [f[2] for f in main["frames"]] == ["main", "<module>"] and main["wchan"]
    assert snap["target"] == f"pod/{d.pod} -c blocked"
    cp = wand(c, "stacks", "deploy/two", "-c", "web")
    assert cp.returncode == 0, cp.stderr
    assert "asyncio tasks (" in cp.stdout and "Server.main_loop" in cp.stdout
    assert "kubectl-wand" not in c.logs(d.pod, "blocked")  # nothing ran in the target


def test_validate_healthy_and_each_blocking_condition(checked):
    c = checked
    ok = c.deployment("ok", ready_line="READY")
    cp = wand(c, "validate", "deploy/ok")
    assert cp.returncode == 0, cp.stdout
    assert "✗" not in cp.stdout and "✓ attach would work (PID 1)" in cp.stdout
    for line in ("✓ kubectl client: v1.32", "✓ cluster: reachable, server v1.32",
                 "✓ ephemeral containers", "✓ patch pods/ephemeralcontainers: allowed",
                 "✓ create pods/portforward: allowed", "✓ Pod Security", "✓ helper image",
                 "✓ python: CPython 3.14", "✓ remote debugging: enabled", "✓ ptrace:",
                 "✓ staging directory: /tmp", "✓ debugpy: shipped"):
        assert line in cp.stdout, (line, cp.stdout)
    c.deployment("old", ready_line="READY", containers=[
        {"name": "app", "command": ["python3", "/app/http_app.py"], "user": 1000,
         "image": "wand-bed/py313:latest"}])
    c.deployment("nodebug", ready_line="READY", containers=[
        {"name": "app", "command": ["python3", "/app/http_app.py"], "user": 1000,
         "env": {"PYTHON_DISABLE_REMOTE_DEBUG": "1"}}])
    ns = c.namespace("locked", labels={"pod-security.kubernetes.io/enforce": "baseline"})
    c.deployment("app", ns=ns, ready_line="READY")
    cases = [(["deploy/old"], ["✗ python: Python 3.13"]),
             (["deploy/nodebug"], ["✗ remote debugging: disabled by environment variable "
                                   "PYTHON_DISABLE_REMOTE_DEBUG"]),
             (["deploy/app", "-n", ns], ["✗ Pod Security: namespace locked enforces 'baseline'",
                                         "pod-security.kubernetes.io/enforce=privileged",
                                         "✗ ptrace"])]
    for args, lines in cases:
        cp = wand(c, "validate", *args)
        assert cp.returncode == 1, cp.stdout
        assert "✗ attach would fail" in cp.stdout and "remedy:" in cp.stdout
        for line in lines:
            assert line in cp.stdout, (line, cp.stdout)
    c.forbid("pods/ephemeralcontainers")
    cp = wand(c, "validate", "deploy/ok", "-o", "json")
    assert cp.returncode == 1
    data = json.loads(cp.stdout)
    rbac = next(x for x in data["checks"] if x["name"] == "patch pods/ephemeralcontainers")
    assert rbac["ok"] is False
    assert "kubectl auth can-i patch pods --subresource=ephemeralcontainers" in rbac["remedy"]
    assert data["attach_would_work"] is False
    # validating never adds an ephemeral container
    assert helpers_of(c, ok.pod) == []
    cp = wand(c, "validate", "deploy/missing")
    assert cp.returncode == 1 and 'deployments.apps "missing" not found' in cp.stdout
