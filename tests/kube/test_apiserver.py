"""The test API server through the real kubectl: the wire behaviours the plugin depends on
(exec streams and exit codes, port-forward and its failures, the ephemeral container's life,
access reviews, Pod Security texts, discovery and listing). Waits poll real signals."""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import poll
from tests.kube.conftest import bed_ready  # noqa: F401 (fixture)

IMAGE = "wand-bed/py314:latest"


def out(cp):
    return cp.stdout.decode(), cp.stderr.decode()


@pytest.fixture(scope="module")
def world(cluster_module):
    c = cluster_module
    c.deployment("web", replicas=2, ready_line="READY")
    c.statefulset("db", containers=[{"name": "main", "command": ["sleep", "infinity"]}], wait=False)
    c.knative_service("hello", wait=False)
    c.deployment("other", ns="team-b", wait=False)
    c.service("web", {"app": "web"})
    return c


def test_discovery_get_and_list(world):
    c = world
    names = out(c.run("get", "deploy,sts,svc,ksvc,rs", "-o", "name"))[0].split()
    assert {"deployment.apps/web", "statefulset.apps/db", "service/web",
            "service.serving.knative.dev/hello"} <= set(names)
    pods = json.loads(c.run("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(pods) == 2 and all(p["spec"]["securityContext"] == {} for p in pods)  # API defaults
    everywhere = out(c.run("get", "pods", "-A", "-o", "name"))[0]
    assert "pod/other-" in everywhere
    cp = c.run("get", "deploy", "nope")
    assert cp.returncode == 1
    assert out(cp)[1].strip() == 'Error from server (NotFound): deployments.apps "nope" not found'
    version = json.loads(c.run("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.32.4"


def test_exec_streams_stdin_eof_and_exit_code(cluster):
    c = cluster
    d = c.deployment("app", ready_line="READY")
    data = os.urandom(300_000)
    cp = c.run("exec", "-i", d.pod, "--", "python3", "-c",
               "import sys, hashlib; b = sys.stdin.buffer.read(); print(hashlib.sha256(b).hexdigest());"
               "print('to stderr', file=sys.stderr)", input=data)
    assert cp.returncode == 0, out(cp)
    assert out(cp) == (hashlib.sha256(data).hexdigest() + "\n", "to stderr\n")
    cp = c.run("exec", d.pod, "--", "python3", "-c", "raise SystemExit(3)")
    assert cp.returncode == 3
    assert out(cp)[1] == "command terminated with exit code 3\n"
    paths = [r for r in c.requests() if r["path"].endswith("/exec")]
    want = "websocket" if c.transport == "websocket" else "spdy/3.1"
    assert paths and all(r["upgrade"].lower() == want for r in paths)


def forward(c, pod, remote):
    p = subprocess.Popen([c.kubectl, "port-forward", "pod/" + pod, ":%d" % remote, "--address", "127.0.0.1"],
                         env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> %d" % remote, line)
    assert m, (line, p.stderr.read() if p.poll() is not None else "")
    return p, int(m.group(1))


def test_port_forward_relays_then_refused_port_ends_it(cluster):
    c = cluster
    d = c.deployment("app", ready_line="READY")
    p, port = forward(c, d.pod, 8000)
    try:
        for i in range(3):
            assert urllib.request.urlopen("http://127.0.0.1:%d/pf%d" % (port, i), timeout=20).read() \
                .decode().startswith("hello /pf%d" % i)
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()
    p, port = forward(c, d.pod, 5999)  # nothing listens there in the pod
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.settimeout(20)
        assert s.recv(10) == b""
    assert p.wait(timeout=30) == 1
    err = p.stderr.read()
    assert "an error occurred forwarding %d -> 5999" % port in err and "connection refused" in err
    assert err.rstrip().endswith("error: lost connection to pod")


def test_port_forward_outlives_its_pod_until_the_next_connection(cluster):
    c = cluster
    d = c.deployment("app", ready_line="READY")
    p, port = forward(c, d.pod, 8000)
    try:
        c.delete_pod(d.pod)
        assert p.poll() is None  # kubectl notices nothing yet
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.settimeout(20)
            assert s.recv(10) == b""
        assert p.wait(timeout=30) == 1
        assert "lost connection to pod" in p.stderr.read()
    finally:
        p.kill()
        p.wait()


def test_debug_returns_before_the_container_runs_and_pull_errors(cluster_module):
    c = cluster_module
    d = c.deployment("dbg", ready_line="READY")
    cp = c.run("debug", d.pod, "--target=app", "--profile=general", "--image=" + IMAGE,
               "--container=helper", "-q", "--", "sleep", "300")
    assert cp.returncode == 0, out(cp)
    s = c.wait_ephemeral(d.pod, "helper", "running")
    assert s["image"] == IMAGE
    spec = c.get_pod(d.pod)["spec"]["ephemeralContainers"][0]
    assert spec["targetContainerName"] == "app"
    assert spec["securityContext"]["capabilities"]["add"] == ["SYS_PTRACE"]
    # the helper sees the target's processes (its PID namespace)
    cp = c.run("exec", d.pod, "-c", "helper", "--", "cat", "/proc/1/cmdline")
    assert b"http_app.py" in cp.stdout
    cp = c.run("debug", d.pod, "--profile=general", "--image=registry.invalid/nope:1",
               "--container=bad", "-q")
    assert cp.returncode == 0  # kubectl returns after the PATCH
    s = c.wait_ephemeral(d.pod, "bad", "waiting")
    assert s["state"]["waiting"]["reason"] in ("ErrImagePull", "ImagePullBackOff")


def test_access_review_rbac_and_pod_security(cluster_module):
    c = cluster_module
    assert out(c.run("auth", "can-i", "patch", "pods", "--subresource=ephemeralcontainers")) == ("yes\n", "")
    c.forbid("create pods/exec")
    try:
        cp = c.run("auth", "can-i", "create", "pods", "--subresource=exec")
        assert cp.returncode == 1 and out(cp)[0] == "no\n"
        d = c.deployment("rbac", ready_line="READY")
        cp = c.run("exec", d.pod, "--", "true")
        assert cp.returncode == 1
        assert 'User "wand-user" cannot create resource "pods/exec" in API group "" in the namespace ' \
               '"default"' in out(cp)[1]
    finally:
        c.allow("create pods/exec")
    ns = c.namespace("locked", labels={"pod-security.kubernetes.io/enforce": "baseline"})
    d = c.deployment("psa", ns=ns, ready_line="READY")
    cp = c.run("debug", d.pod, "-n", ns, "--profile=general", "--image=" + IMAGE, "--container=x", "-q")
    assert cp.returncode == 1
    assert out(cp)[1].strip() == (
        'Error from server (Forbidden): pods "%s" is forbidden: violates PodSecurity "baseline:latest": '
        'non-default capabilities (container "x" must not include "SYS_PTRACE" in '
        'securityContext.capabilities.add)' % d.pod)


def test_standalone_command_writes_a_kubeconfig(tmp_path, bed_ready):
    kc = tmp_path / "kubeconfig"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.Popen([sys.executable, "-m", "tests.kube.apiserver", "--kubeconfig", str(kc)],
                         cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("READY ")
        from tests.kube.apiserver.cluster import kubectl_binary
        cp = subprocess.run([kubectl_binary(), "get", "ns", "-o", "name"], capture_output=True, text=True,
                            env=dict(os.environ, KUBECONFIG=str(kc)), timeout=30)
        assert cp.returncode == 0, cp.stderr
        assert "namespace/default" in cp.stdout.split()
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0


MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata: {name: made}
spec:
  replicas: 2
  selector: {matchLabels: {app: made}}
  template:
    metadata: {labels: {app: made}}
    spec:
      containers:
      - {name: app, image: wand-bed/py314:latest, command: [python3, /app/http_app.py],
         securityContext: {runAsUser: 1000}}
"""


def test_create_from_manifest_controller_replaces_a_deleted_pod(cluster_module, tmp_path):
    c = cluster_module
    (tmp_path / "d.yaml").write_text(MANIFEST)
    assert out(c.run("create", "-f", tmp_path / "d.yaml")) == ("deployment.apps/made created\n", "")
    cp = c.run("rollout", "status", "deploy/made", "--timeout=60s", timeout=90)
    assert cp.returncode == 0, out(cp)
    pods = out(c.run("get", "pods", "-l", "app=made", "-o", "name"))[0].split()
    assert len(pods) == 2
    assert out(c.run("delete", pods[0]))[0] == 'pod "%s" deleted\n' % pods[0].split("/")[1]

    def replaced():
        now = out(c.run("get", "pods", "-l", "app=made", "-o", "name"))[0].split()
        return len(now) == 2 and pods[0] not in now and now

    now = poll(replaced, timeout=30, what="a replacement pod")
    assert pods[1] in now
    cp = c.run("create", "-f", tmp_path / "d.yaml")
    assert out(cp)[1].strip() == 'Error from server (AlreadyExists): error when creating "%s": ' \
        'deployments.apps "made" already exists' % (tmp_path / "d.yaml")
    assert c.run("delete", "-f", tmp_path / "d.yaml").returncode == 0
    assert out(c.run("get", "pods,rs", "-l", "app=made", "-o", "name"))[0] == ""
