"""The user's Kubernetes journeys, end to end through the real kubectl against the test API
server (tests/kube/apiserver; pods = Docker containers), over both kubectl transports.

The plugin runs unchanged: it finds `kubectl` on PATH.
"""

import json
import os
import re
import signal
import sys
import subprocess

import pytest

from kubectl_wand.dap import DAPClient
from tests.conftest import WAND, breakpoint_line, wait_for_line
from tests.kube.conftest import api_calls, attach_json, bed_ready, helpers_of, k8s, \
    request_in_pod, wand  # noqa: F401


def http_get(cluster, pod, path="/x", port=8000):
    return subprocess.run(
        ["docker", "exec", cluster.docker_name(pod), "python3", "-c",
         f"import urllib.request as u;print(u.urlopen('http://127.0.0.1:{port}{path}', "
         "timeout=25).read().decode(), end='')"], capture_output=True, text=True, timeout=30)


def test_ps_deployment_three_replicas_and_multi_container_pod(checked):
    c = checked
    d = c.deployment("app", replicas=3, ready_line="READY")
    m = c.deployment("multi", containers=[
        {"name": "sidecar", "command": ["sleep", "3600"], "user": 1000},
        {"name": "web", "command": ["python3", "/app/http_app.py", "8000"], "user": 1000}],
        annotations={"kubectl.kubernetes.io/default-container": "web"}, ready_line=None)
    cp = wand(c, "ps", "deploy/app")
    assert cp.returncode == 0, cp.stderr
    lines = [ln.split() for ln in cp.stdout.splitlines()[1:]]
    assert sorted(ln[0] for ln in lines) == sorted(d.pods)
    assert all(ln[1] == "app" and ln[3] == "yes" and ln[8].startswith("3.14") for ln in lines)
    data = json.loads(wand(c, "ps", "deploy/multi", "-o", "json").stdout)
    by_container = {item["container"]: item for item in data}
    assert set(by_container) == {"sidecar", "web"}
    assert by_container["web"]["processes"][0]["argv"][-2:] == ["/app/http_app.py", "8000"]
    assert by_container["sidecar"]["processes"] == []  # no Python there: said, not a crash
    assert "error" not in by_container["sidecar"]
    # listing never creates ephemeral containers
    assert all(helpers_of(c, p) == [] for p in d.pods + m.pods)


def test_attach_deployment_breakpoint_then_pod_replaced(checked):
    c = checked
    d = c.deployment("app", replicas=1, ready_line="READY")
    line = breakpoint_line("http_app.py")
    p, ready = attach_json(c)
    try:
        assert ready["target"] == f"pod/{d.pod}" and ready["pid"] == 1
        dap = DAPClient("127.0.0.1", ready["port"])
        dap.attach(breakpoints={"/app/http_app.py": [line]})
        req = request_in_pod(c, d.pod, "/k8s")
        stop = dap.stopped_locals(timeout=30)
        assert stop["frame"]["line"] == line and stop["locals"]["greeting"] == "'hello /k8s'"
        dap.request("continue", threadId=stop["thread"])
        assert req.communicate(timeout=30)[0].startswith("hello /k8s")
        dap.close()
        assert len(helpers_of(c, d.pod)) == 1
        # the oracle (kubernetes client): one helper with SYS_PTRACE running as root; the app
        # container untouched
        pod = k8s(c).read_namespaced_pod(d.pod, "default")
        (eph,) = pod.spec.ephemeral_containers
        assert eph.image == "wand-bed/py314:latest" and eph.target_container_name == "app"
        assert eph.security_context.capabilities.add == ["SYS_PTRACE"]
        if c.kubectl_version >= (1, 31):  # --custom: root in the helper only
            assert eph.security_context.run_as_user == 0
        assert [(x.name, x.image, x.command, x.security_context.run_as_user) for x in pod.spec.containers] \
            == [("app", "wand-bed/py314:latest", ["python3", "/app/http_app.py"], 1000)]
        assert [s.restart_count for s in pod.status.container_statuses] == [0]
        # Rollout: the pod goes away, the plugin follows to the replacement, same local port.
        new_pod = c.replace_pod(d.pod, ready_line="READY")
        again = json.loads(wait_for_line(p.stdout, lambda s: s.startswith("{"), 120))
        assert again["reattach"] is True and again["target"] == f"pod/{new_pod}"
        assert again["port"] == ready["port"]
        dap = DAPClient("127.0.0.1", again["port"])
        dap.attach(breakpoints={"/app/http_app.py": [line]})
        req = request_in_pod(c, new_pod, "/again")
        stop = dap.stopped_locals(timeout=30)
        assert stop["locals"]["greeting"] == "'hello /again'"
        dap.request("continue", threadId=stop["thread"])
        req.communicate(timeout=30)
        dap.close()
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
    err = p.stderr.read()
    assert rc == 0, err
    assert "waiting for its replacement" in err and "Detached" in err
    # The debug server is gone from the pod after detach.
    tcp = subprocess.run(["docker", "exec", c.docker_name(new_pod), "cat", "/proc/net/tcp"],
                         capture_output=True, text=True).stdout
    listening = [ln for ln in tcp.splitlines()[1:] if ln.split()[3] == "0A"]
    assert not any(ln.split()[1].endswith(":162F") for ln in listening)  # 5679


def test_exec_on_service_reuses_one_helper(checked):
    c = checked
    d = c.deployment("web", replicas=1, ready_line="READY", labels={"app": "web"})
    c.service("web-svc", selector={"app": "web"})
    for i in range(3):
        cp = wand(c, "exec", "svc/web-svc", "-c", f"print('run', {i})")
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout == f"run {i}\n"
    assert len(helpers_of(c, d.pod)) == 1  # ephemeral containers are forever: reuse them
    patches = api_calls(c, "ephemeralcontainers", d.pod, "PATCH")
    assert len(patches) == 1
    spec = c.get_pod(d.pod)["spec"]["ephemeralContainers"][0]
    assert spec["securityContext"]["capabilities"]["add"] == ["SYS_PTRACE"]  # --profile=general
    assert http_get(c, d.pod).stdout.startswith("hello")


@pytest.mark.parametrize("case", ["not-found", "bad-kind", "psa", "rbac-ephemeral",
                                  "no-ephemeral", "image-pull", "py313", "context"])
def test_kubernetes_failures_read_well(checked, case):
    c = checked
    args = ["exec", "deploy/app", "-c", "print(1)"]
    if case == "not-found":
        expect = ['deployments.apps "app" not found', "hint:"]
    elif case == "bad-kind":
        args = ["exec", "cronjob/app", "-c", "print(1)"]
        expect = ["unsupported target kind"]
    elif case == "context":
        args += ["--context", "nope"]
        expect = ['context "nope" does not exist', "kubectl config get-contexts"]
    else:
        ns = "default"
        if case == "psa":
            ns = c.namespace("locked", labels={"pod-security.kubernetes.io/enforce": "baseline"})
            args += ["-n", ns]
            expect = ["Pod Security", "SYS_PTRACE", "pod-security.kubernetes.io/enforce=privileged"]
        elif case == "rbac-ephemeral":
            c.forbid("pods/ephemeralcontainers")
            expect = ["pods/ephemeralcontainers",
                      "kubectl auth can-i patch pods --subresource=ephemeralcontainers"]
        elif case == "no-ephemeral":
            c.set(no_ephemeral=True)
            expect = ["ephemeral containers"]
        elif case == "image-pull":
            args += ["--image", "registry.invalid/nope:1"]
            expect = ["cannot start", "ImagePullBackOff" if False else "ErrImagePull", "--image"]
        elif case == "py313":
            expect = ["Python 3.13", "3.14"]
        image = "wand-bed/py313:latest" if case == "py313" else None
        c.deployment("app", ns=ns, ready_line="READY",
                     containers=[{"name": "app", "command": ["python3", "/app/http_app.py"],
                                  "user": 1000, **({"image": image} if image else {})}])
    cp = wand(c, *args)
    assert cp.returncode != 0
    for text in expect:
        assert text in cp.stderr, cp.stderr


@pytest.mark.parametrize("case", ["no-kubectl", "kubectl-old", "unknown-namespace",
                                  "no-ready-pods", "rbac-portforward", "unreachable",
                                  "custom-hidden"])
def test_more_kubernetes_failures(checked, case):
    c = checked
    env, args = {}, ["exec", "deploy/app", "-c", "print(1)"]
    if case == "no-ready-pods":
        c.deployment("app", wait=False, containers=[
            {"name": "app", "command": ["python3", "-c", "raise SystemExit(1)"], "user": 1000}])
        expect = ["no ready pods for deployment/app", "--pod"]
    else:
        d = c.deployment("app", ready_line="READY")
    if case == "no-kubectl":
        env = {"PATH": os.path.dirname(sys.executable)}
        expect = ["kubectl not found on PATH"]
    elif case == "kubectl-old":
        # no kubectl < 1.27 is installed here: a wrapper reports 1.26 and runs the real one
        old = c.dir + "/old-kubectl"
        os.makedirs(old, exist_ok=True)
        with open(old + "/kubectl", "w") as f:
            f.write('#!/bin/sh\ncase "$*" in *"version --client"*) echo \'{"clientVersion": '
                    '{"major": "1", "minor": "26", "gitVersion": "v1.26.3"}}\'; exit 0;; esac\n'
                    'exec %s "$@"\n' % c.kubectl)
        os.chmod(old + "/kubectl", 0o755)
        env = {"PATH": old + os.pathsep + c.env["PATH"]}
        expect = ["too old", "1.27"]
    elif case == "unknown-namespace":
        args += ["-n", "nope"]
        # newer kubectl look the namespace up after a NotFound and name it instead
        expect = [('"app" not found', 'namespaces "nope" not found'), "namespace nope"]
    elif case == "unreachable":
        dead = c.dir + "/dead.kubeconfig"
        with open(c.kubeconfig) as f, open(dead, "w") as g:
            g.write(f.read().replace(":%d'" % c.port, ":1'"))
        args += ["--kubeconfig", dead]
        expect = ["cannot reach the cluster: The connection to the server 127.0.0.1:1 was refused",
                  "kubectl cluster-info"]
    elif case == "custom-hidden":
        # kubectl 1.31 hides `debug --custom` under KUBECTL_DEBUG_CUSTOM_PROFILE=false
        if c.kubectl_version < (1, 31) or c.kubectl_version >= (1, 32):
            pytest.skip("only kubectl 1.31 has the switch")
        env = {"KUBECTL_DEBUG_CUSTOM_PROFILE": "false"}
        expect = ["KUBECTL_DEBUG_CUSTOM_PROFILE=false", "unset KUBECTL_DEBUG_CUSTOM_PROFILE"]
    elif case == "rbac-portforward":
        c.forbid("pods/portforward")
        args = ["attach", "deploy/app", "--local-port", "0", "-o", "json"]
        expect = ["pods/portforward", "kubectl auth can-i create pods --subresource=portforward"]
    cp = wand(c, *args, env=env)
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    for text in expect:
        assert any(t in cp.stderr for t in ((text,) if isinstance(text, str) else text)), cp.stderr
    assert "Traceback" not in cp.stderr
    assert not re.search(r"^[EWI]\d{4} ", cp.stderr, re.M)  # no raw klog lines
    if case == "rbac-portforward":
        # the failed attach detached again: no debug server left listening in the pod
        tcp = subprocess.run(["docker", "exec", c.docker_name(d.pod), "cat", "/proc/net/tcp"],
                             capture_output=True, text=True).stdout
        assert not any(ln.split()[1].endswith(":162F") and ln.split()[3] == "0A"
                       for ln in tcp.splitlines()[1:])


def test_ps_knative_service_and_all_namespaces(checked):
    c = checked
    k = c.knative_service("hello", ready_line="READY")
    c.deployment("other", ns="team-b", ready_line="READY")
    data = json.loads(wand(c, "ps", "ksvc/hello", "-o", "json").stdout)
    assert [item["pod"] for item in data] == k.pods
    cp = wand(c, "ps", "-A")
    assert cp.returncode == 0, cp.stderr
    assert "team-b" in cp.stdout and k.pods[0] in cp.stdout


DISPATCHER = "/usr/bin/kubectl"


@pytest.mark.skipif(not os.path.exists("/usr/lib/google-cloud-sdk/bin/kubectl.1.28"),
                    reason="gcloud's kubectl dispatcher and its 1.28 binary are not installed")
def test_gcloud_dispatcher_runs_the_servers_version(tmp_path, bed_ready):
    """gcloud's /usr/bin/kubectl picks its binary by the server's version (1.28 here, which has
    no `debug --custom`): the plugin must ask that same binary for its version, i.e. with the
    user's --kubeconfig, not the dispatcher's own default."""
    from tests.kube.apiserver.cluster import Cluster

    c = Cluster(tmp_path / "cluster", server_version="v1.28.9")
    try:
        c.deployment("app", ready_line="READY")
        bindir = tmp_path / "dispatcher"
        bindir.mkdir()
        (bindir / "kubectl").symlink_to(DISPATCHER)
        env = dict(c.env, PATH=str(bindir) + os.pathsep + os.environ["PATH"])
        env.pop("KUBECONFIG")
        cp = subprocess.run([WAND, "exec", "deploy/app", "--kubeconfig", c.kubeconfig, "-c",
                             "import sys; print(sys.version_info[:2])"],
                            env=env, capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout == "(3, 14)\n"
        assert "--custom" not in cp.stderr
    finally:
        c.close()


def test_attach_follows_a_pod_deleted_with_kubectl(cluster, tmp_path):
    """`kubectl create -f` a Deployment, attach, `kubectl delete pod`: the API's ReplicaSet
    controller makes a replacement and attach follows it on the same local port."""
    from tests.kube.test_apiserver import MANIFEST

    c = cluster
    if c.transport != "websocket":
        pytest.skip("one transport is enough here (port-forward over SPDY: the journey above)")
    (tmp_path / "d.yaml").write_text(MANIFEST.replace("replicas: 2", "replicas: 1"))
    assert c.run("create", "-f", tmp_path / "d.yaml").returncode == 0
    assert c.run("rollout", "status", "deploy/made", "--timeout=60s", timeout=90).returncode == 0
    (old,) = c.pods(selector="app=made")
    c.wait_pod_ready(old, ready_line="READY")
    p, ready = attach_json(c, "deploy/made")
    try:
        assert ready["target"] == f"pod/{old}"
        assert c.run("delete", "pod", old, "--wait=false").returncode == 0
        again = json.loads(wait_for_line(p.stdout, lambda s: s.startswith("{"), 120))
        assert again["reattach"] is True and again["target"] != ready["target"]
        assert again["port"] == ready["port"]
        dap = DAPClient("127.0.0.1", again["port"])
        assert dap.request("initialize", adapterID="debugpy", clientID="wand-test")["success"]
        dap.close()
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
    assert rc == 0, p.stderr.read()
