"""The kubectl stand-in itself: object shapes, texts and exit codes of the real kubectl (v1.32),
pods backed by real containers. Waits poll real signals; no fixed sleeps."""
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.kube.argv_check import check_argv

IMAGE = "wand-bed/py314:latest"
SLEEP = {"name": "main", "command": ["sleep", "infinity"]}
GENERAL = ["--profile=general", "--image=" + IMAGE]


def j(cp):
    assert cp.returncode == 0, cp.stderr.decode()
    return json.loads(cp.stdout)


def text(cp):
    return cp.stdout.decode(), cp.stderr.decode()


def poll(fn, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def eph_status(c, pod, name, ns="default"):
    p = j(c.run("get", "pod", pod, "-n", ns, "-o", "json"))
    return next((s for s in p["status"].get("ephemeralContainerStatuses", []) if s["name"] == name), None)


@pytest.fixture(scope="module")
def world(cluster_module):
    """One fake cluster for the read-mostly tests: a web Deployment (http app, 2 containers),
    a StatefulSet, a DaemonSet, a Job, a Service and a Knative service."""
    c = cluster_module
    web = c.deployment("web", containers=[{"name": "app", "command": ["python3", "/app/http_app.py"], "user": 1000},
                                          dict(SLEEP, name="sidecar")],
                       annotations={"kubectl.kubernetes.io/default-container": "app"}, wait=False)
    db = c.statefulset("db", containers=[SLEEP], wait=False)
    agent = c.daemonset("agent", containers=[SLEEP], wait=False)
    batch = c.job("batch", containers=[SLEEP], wait=False)
    kn = c.knative_service("hello", wait=False)
    c.service("web", {"app": "web"}, ports=[(80, 8000)])
    c.wait_pod_ready(web.pod, ready_line="READY")
    c.wait_pod_ready(kn.pod, ready_line="READY")
    for w in (db, agent, batch):
        c.wait_pod_ready(w.pod)
    return {"c": c, "web": web, "db": db, "agent": agent, "batch": batch, "kn": kn}


# --- get --------------------------------------------------------------------------------------

def test_get_each_kind_as_json_and_name(world):
    c = world["c"]
    cases = [("deploy/web", "Deployment", "apps/v1", "deployment.apps/web"),
             ("rs/" + world["web"].pod.rsplit("-", 1)[0], "ReplicaSet", "apps/v1", None),
             ("po/" + world["web"].pod, "Pod", "v1", "pod/" + world["web"].pod),
             ("sts/db", "StatefulSet", "apps/v1", "statefulset.apps/db"),
             ("ds/agent", "DaemonSet", "apps/v1", "daemonset.apps/agent"),
             ("jobs/batch", "Job", "batch/v1", "job.batch/batch"),
             ("svc/web", "Service", "v1", "service/web"),
             ("ksvc/hello", "Service", "serving.knative.dev/v1", "service.serving.knative.dev/hello"),
             ("services.serving.knative.dev/hello", "Service", "serving.knative.dev/v1", None),
             ("ns/default", "Namespace", "v1", "namespace/default")]
    for ref, kind, api, name in cases:
        o = j(c.run("get", ref, "-o", "json"))
        assert (o["kind"], o["apiVersion"]) == (kind, api), ref
        assert o["metadata"]["name"] == ref.split("/", 1)[1]
        if name:
            assert text(c.run("get", ref, "-o", "name"))[0] == name + "\n"
    # TYPE NAME form, label selector -> List, -A, namespaces
    assert j(c.run("get", "deployments", "web", "-o", "json"))["kind"] == "Deployment"
    lst = j(c.run("get", "pods", "-l", "app=web", "-o", "json"))
    assert lst["kind"] == "List" and lst["apiVersion"] == "v1" and lst["metadata"] == {"resourceVersion": ""}
    assert [p["metadata"]["name"] for p in lst["items"]] == [world["web"].pod]
    assert j(c.run("get", "pods", "-l", "app=nothing", "-o", "json"))["items"] == []
    assert world["kn"].pod in text(c.run("get", "pods", "-l", "serving.knative.dev/service=hello", "-o", "name"))[0]
    all_pods = j(c.run("get", "pods", "-A", "-o", "json"))["items"]
    assert len(all_pods) == 5
    names = [n["metadata"]["name"] for n in j(c.run("get", "namespaces", "-o", "json"))["items"]]
    assert "default" in names and "kube-system" in names
    # real kubectl prints 4-space indented, key-sorted JSON
    raw = c.run("get", "deploy/web", "-o", "json").stdout.decode()
    assert raw.startswith('{\n    "apiVersion": "apps/v1",\n    "kind": "Deployment",\n    "metadata": {\n')


def test_pod_shape_and_owner_chain(world):
    c = world["c"]
    pod = j(c.run("get", "pod", world["web"].pod, "-o", "json"))
    assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}", pod["metadata"]["name"])
    ref = pod["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "ReplicaSet" and ref["controller"] is True
    rs = j(c.run("get", "rs", ref["name"], "-o", "json"))
    assert rs["metadata"]["uid"] == ref["uid"]
    assert rs["spec"]["selector"]["matchLabels"]["pod-template-hash"] == pod["metadata"]["labels"]["pod-template-hash"]
    dref = rs["metadata"]["ownerReferences"][0]
    dep = j(c.run("get", "deploy", "web", "-o", "json"))
    assert (dref["kind"], dref["name"], dref["uid"]) == ("Deployment", "web", dep["metadata"]["uid"])
    assert dep["spec"]["selector"]["matchLabels"] == {"app": "web"}
    assert dep["status"]["readyReplicas"] == 1
    assert pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "app"
    assert [x["name"] for x in pod["spec"]["containers"]] == ["app", "sidecar"]
    assert pod["spec"]["containers"][0]["securityContext"] == {"runAsUser": 1000}
    assert pod["spec"]["nodeName"] == "standin-node"
    st = pod["status"]
    assert st["phase"] == "Running" and st["podIP"]
    assert {x["type"]: x["status"] for x in st["conditions"]}["Ready"] == "True"
    assert all(s["ready"] and "running" in s["state"] for s in st["containerStatuses"])
    sts_pod = j(c.run("get", "pod", "db-0", "-o", "json"))
    assert sts_pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    job_pod = j(c.run("get", "pod", world["batch"].pod, "-o", "json"))
    assert job_pod["metadata"]["labels"]["job-name"] == "batch"


def test_get_errors_match_real_kubectl(world):
    c = world["c"]
    assert text(c.run("get", "deploy", "nope", "-o", "json")) == ("", 'Error from server (NotFound): deployments.apps "nope" not found\n')
    assert c.run("get", "deploy", "nope", "-o", "json").returncode == 1
    assert text(c.run("get", "pods/nope", "-o", "json"))[1] == 'Error from server (NotFound): pods "nope" not found\n'
    assert text(c.run("get", "ksvc", "nope", "-o", "json"))[1] == \
        'Error from server (NotFound): services.serving.knative.dev "nope" not found\n'
    cp = c.run("get", "foo", "-o", "json")
    assert (cp.returncode, cp.stderr) == (1, b'error: the server doesn\'t have a resource type "foo"\n')
    cp = c.run("--context", "x", "get", "pods", "-o", "json")
    assert (cp.returncode, cp.stderr) == (1, b"Error in configuration: context was not found for specified context: x\n")
    cp = c.run("auth", "can-i", "get", "pods", "--context=x")
    assert (cp.returncode, cp.stderr) == (1, b'error: context "x" does not exist\n')
    cp = c.run("get", "pods", "--bogus")
    assert cp.returncode == 1 and cp.stderr == b"Error: unknown flag: --bogus\nSee 'kubectl get --help' for usage.\n"
    cp = c.run("rollout", "status", "deploy/web")
    assert cp.returncode == 1 and b"kubectl stand-in does not support: rollout" in cp.stderr


def test_contexts_config_and_version(world, monkeypatch):
    c = world["c"]
    assert text(c.run("config", "current-context"))[0] == "standin\n"
    cfg = j(c.run("config", "view", "--minify", "-o", "json"))
    assert cfg["contexts"][0]["context"]["namespace"] == "default" and cfg["current-context"] == "standin"
    c.context("other", namespace="prod")
    assert text(c.run("config", "get-contexts", "-o", "name"))[0] == "other\nstandin\n"
    assert j(c.run("config", "view", "--minify", "-o", "json", "--context", "other"))["contexts"][0]["context"]["namespace"] == "prod"
    # the context's namespace is the default namespace
    assert j(c.run("--context", "other", "get", "pods", "-o", "json"))["items"] == []
    assert len(j(c.run("get", "pods", "-n", "default", "-o", "json", "--context", "other"))["items"]) == 5
    v = j(c.run("version", "--client", "-o", "json"))
    assert v["clientVersion"]["gitVersion"] == "v1.32.4" and "serverVersion" not in v
    raw = c.run("version", "--client", "-o", "json").stdout.decode()
    assert raw.startswith('{\n  "clientVersion": {\n    "major": "1",\n    "minor": "32",')  # real: 2-space indent
    v = j(c.run("version", "-o", "json", env={"WAND_STANDIN_VERSION": "v1.29.3"}))
    assert v["clientVersion"]["gitVersion"] == "v1.29.3" and v["serverVersion"]["gitVersion"] == "v1.32.4"


# --- exec -------------------------------------------------------------------------------------

def test_exec_streams_and_propagates_exit_code(world):
    c = world["c"]
    pod = world["web"].pod
    cp = c.run("exec", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert cp.returncode == 7
    assert cp.stdout == b"out\n"
    assert cp.stderr == b"err\ncommand terminated with exit code 7\n"
    blob = bytes(range(256)) * 64
    cp = c.run("exec", "-i", pod, "--", "cat", input=blob)
    assert cp.returncode == 0 and cp.stdout == blob
    # default container: the annotation (no message); -c picks another; uid from securityContext
    cp = c.run("exec", pod, "--", "id", "-u")
    assert (cp.stdout, cp.stderr) == (b"1000\n", b"")
    assert c.run("exec", pod, "-c", "sidecar", "--", "id", "-u").stdout == b"0\n"
    # pods without the annotation: first container, with kubectl's notice on stderr
    assert c.run("exec", "deploy/web", "--", "true").returncode == 0
    cp = c.run("exec", pod, "-c", "nope", "--", "true")
    assert cp.stderr == b'error: unable to upgrade connection: container not found ("nope")\n'
    cp = c.run("exec", pod, "ls")
    assert cp.returncode == 1 and cp.stderr.startswith(b"error: exec [POD] [COMMAND] is not supported anymore.")


def test_exec_defaulted_container_notice(cluster):
    p = cluster.pod("two", containers=[dict(SLEEP, name="a"), dict(SLEEP, name="b")])
    cp = cluster.run("exec", p.pod, "--", "true")
    assert cp.returncode == 0
    assert cp.stderr == b'Defaulted container "a" out of: a, b\n'
    assert cluster.run("exec", "-q", p.pod, "--", "true").stderr == b""


# --- debug ------------------------------------------------------------------------------------

def test_debug_interactive_sees_target_and_exits_zero(world):
    c = world["c"]
    pod = world["web"].pod
    script = "ls /proc; tr '\\0' ' ' </proc/1/cmdline; echo; cat; exit 3"
    cp = c.run("debug", pod, "--target=app", *GENERAL, "-i", "--", "sh", "-c", script, input=b"from-stdin\n")
    out, err = text(cp)
    assert cp.returncode == 0  # real kubectl debug -i: 0 even though the command failed
    lines = out.splitlines()
    assert lines[0] == ('Targeting container "app". If you don\'t see processes from this container it may be '
                        "because the container runtime doesn't support this feature.")
    m = re.fullmatch(r"Defaulting debug container name to (debugger-[bcdfghjklmnpqrstvwxz2456789]{5})\.", lines[1])
    assert m, lines[1]
    name = m.group(1)
    assert "1" in lines[2:]  # the app is PID 1 of its PID namespace, which the debugger shares
    assert "python3 /app/http_app.py" in out and "from-stdin" in out
    assert err == "If you don't see a command prompt, try pressing enter.\n"
    s = poll(lambda: (eph_status(c, pod, name) or {}).get("state", {}).get("terminated"), what="terminated")
    assert s["exitCode"] == 3 and s["reason"] == "Error"
    spec = next(e for e in j(c.run("get", "pod", pod, "-o", "json"))["spec"]["ephemeralContainers"] if e["name"] == name)
    assert spec["targetContainerName"] == "app" and spec["stdin"] is True
    assert spec["securityContext"] == {"capabilities": {"add": ["SYS_PTRACE"]}}


def test_debug_quiet_detached_and_unique_names(world):
    c = world["c"]
    pod = world["web"].pod
    t0 = time.monotonic()
    cp = c.run("debug", pod, "--target=app", *GENERAL, "-q", "-c", "helper1", "--", "sleep", "600")
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, b"", b"")
    assert time.monotonic() - t0 < 10  # returns once created, does not wait for the command
    poll(lambda: "running" in (eph_status(c, pod, "helper1") or {}).get("state", {}), what="helper1 running")
    # it shares the app's PID namespace and the pod's network: the app listens on 127.0.0.1:8000
    cp = c.run("exec", pod, "-c", "helper1", "--", "python3", "-c",
               "import urllib.request as u, os; print(open('/proc/1/cmdline').read().split(chr(0))[1]);"
               "print(u.urlopen('http://127.0.0.1:8000/z').read().decode().split()[0])")
    assert cp.stdout.decode().split() == ["/app/http_app.py", "hello"]
    cp = c.run("debug", pod, *GENERAL, "-c", "helper1", "--", "true")
    assert cp.returncode == 1
    assert re.fullmatch(r'The Pod "%s" is invalid: spec\.ephemeralContainers\[\d+\]\.name: Duplicate value: "helper1"\n' % pod,
                        cp.stderr.decode())
    # the legacy default profile warns on stderr (kubectl 1.32)
    cp = c.run("debug", pod, "--image=" + IMAGE, "-q", "--", "true")
    assert cp.returncode == 0 and cp.stderr.decode().startswith("--profile=legacy is deprecated")


def test_debug_image_pull_backoff(world):
    c = world["c"]
    pod = world["web"].pod
    cp = c.run("debug", pod, "--profile=general", "--image=wand-bed/not-there:1", "-q", "-c", "nopull", "--", "true")
    assert cp.returncode == 0
    first = eph_status(c, pod, "nopull")["state"]["waiting"]
    assert first["reason"] in ("ErrImagePull", "ImagePullBackOff")
    later = poll(lambda: eph_status(c, pod, "nopull")["state"]["waiting"]["reason"] == "ImagePullBackOff"
                 and eph_status(c, pod, "nopull"), what="ImagePullBackOff")
    assert later["state"]["waiting"]["message"] == 'Back-off pulling image "wand-bed/not-there:1"'
    # with --attach, kubectl waits forever printing the waiting message
    p = subprocess.Popen([c.kubectl, "debug", pod, "--profile=general", "--image=wand-bed/not-there:1", "-c", "nopull2",
                          "-i", "--", "true"], env=c.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stderr.readline().decode()
        assert line.startswith("Warning: container nopull2: ")
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


def test_debug_pod_security_and_cluster_switches(cluster):
    cluster.namespace("locked", labels={"pod-security.kubernetes.io/enforce": "baseline"})
    p = cluster.pod("target", ns="locked", containers=[SLEEP])
    cp = cluster.run("debug", "-n", "locked", p.pod, "--target=main", *GENERAL, "-c", "dbg", "--", "true")
    assert cp.returncode == 1
    assert cp.stdout.decode().startswith('Targeting container "main".')
    assert cp.stderr == (b'Error from server (Forbidden): pods "target" is forbidden: violates PodSecurity "baseline:latest": '
                         b'non-default capabilities (container "dbg" must not include "SYS_PTRACE" in '
                         b'securityContext.capabilities.add)\n')
    cluster.namespace("strict", labels={"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.pod("t2", ns="strict", containers=[dict(SLEEP, user=1000, securityContext={
        "allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}})])
    cp = cluster.run("debug", "-n", "strict", "t2", *GENERAL, "-q", "-c", "dbg", "--", "true")
    assert cp.stderr.decode() == (
        'Error from server (Forbidden): pods "t2" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "dbg" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "dbg" must set securityContext.capabilities.drop=["ALL"]; '
        'container "dbg" must not include "SYS_PTRACE" in securityContext.capabilities.add), '
        'runAsNonRoot != true (pod or container "dbg" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "dbg" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")\n')
    # no debug containers created by the rejected calls
    assert not [n for n in cluster.containers() if n.endswith("-dbg")]
    cluster.set(no_ephemeral=True)
    cp = cluster.run("debug", "-n", "locked", p.pod, "--profile=baseline", "--image=" + IMAGE, "-q", "--", "true")
    assert cp.stderr == (b'error: ephemeral containers are disabled for this cluster '
                         b'(error from server: "the server could not find the requested resource")\n')
    # kubectl 1.25/1.26 know only --profile=legacy; before 1.25 the global (pprof) --profile takes it
    cp = cluster.run("debug", "-n", "locked", p.pod, "--profile=general", "--image=" + IMAGE, env={"WAND_STANDIN_VERSION": "v1.26.3"})
    assert (cp.returncode, cp.stderr) == (1, b"error: unknown profile: general\n")
    cp = cluster.run("debug", "-n", "locked", p.pod, "--profile=general", "--image=" + IMAGE, env={"WAND_STANDIN_VERSION": "v1.24.17"})
    assert cp.returncode == 1 and cp.stderr.decode().endswith('"command failed" err="unknown profile \'general\'"\n')
    cp = cluster.run("debug", "-n", "locked", p.pod, "--custom=x.json", "--image=" + IMAGE, env={"WAND_STANDIN_VERSION": "v1.30.0"})
    assert cp.stderr == b"Error: unknown flag: --custom\nSee 'kubectl debug --help' for usage.\n"
    cp = cluster.run("debug", "-n", "locked", p.pod, "--profile=bogus", "--image=" + IMAGE)
    assert cp.stderr == b"error: unknown profile: bogus\n"


def test_forbidden_texts_and_auth_can_i(cluster):
    p = cluster.pod("p", containers=[SLEEP])
    assert text(cluster.run("auth", "can-i", "patch", "pods", "--subresource=ephemeralcontainers")) == ("yes\n", "")
    cluster.forbid("pods/ephemeralcontainers", "pods/exec", "pods/portforward")
    cp = cluster.run("auth", "can-i", "patch", "pods", "--subresource=ephemeralcontainers", "-n", "default")
    assert (cp.returncode, cp.stdout) == (1, b"no\n")
    assert cluster.run("auth", "can-i", "get", "pods").returncode == 0
    user_ns = b'User "standin-user" cannot %s resource "pods/%s" in API group "" in the namespace "default"\n'
    cp = cluster.run("debug", p.pod, *GENERAL, "-q", "--", "true")
    assert (cp.returncode, cp.stderr) == (1, b'Error from server (Forbidden): pods "p" is forbidden: ' + user_ns % (b"patch", b"ephemeralcontainers"))
    cp = cluster.run("exec", p.pod, "--", "true")
    assert (cp.returncode, cp.stderr) == (1, b'Error from server (Forbidden): pods "p" is forbidden: ' + user_ns % (b"create", b"exec"))
    cp = cluster.run("port-forward", p.pod, ":80", "--address", "127.0.0.1")
    assert (cp.returncode, cp.stderr) == (1, b'error: error upgrading connection: pods "p" is forbidden: ' + user_ns % (b"create", b"portforward"))
    cluster.forbid("list pods")
    cp = cluster.run("get", "pods", "-o", "json")
    assert cp.stderr == (b'Error from server (Forbidden): pods is forbidden: User "standin-user" cannot list resource "pods" '
                         b'in API group "" in the namespace "default"\n')
    assert cluster.run("get", "pod", "p", "-o", "json").returncode == 0


# --- port-forward ------------------------------------------------------------------------------

class Forward:
    def __init__(self, cluster, *args):
        self.p = subprocess.Popen([cluster.kubectl, "port-forward", *args], env=cluster.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = []
        self.first = self.p.stdout.readline().decode()
        threading.Thread(target=lambda: self.out.extend(l.decode() for l in self.p.stdout), daemon=True).start()
        m = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\n", self.first)
        assert m, (self.first, self.p.stderr.read() if self.p.poll() is not None else "")
        self.port = int(m.group(1))

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def test_port_forward_relays_and_reports(world):
    c = world["c"]
    pod = world["web"].pod
    fw = Forward(c, "pod/" + pod, ":8000", "--address", "127.0.0.1")
    try:
        assert fw.first == "Forwarding from 127.0.0.1:%d -> 8000\n" % fw.port  # only this line for --address 127.0.0.1
        body = urllib.request.urlopen("http://127.0.0.1:%d/hi" % fw.port, timeout=10).read()
        assert body.startswith(b"hello /hi #")
        poll(lambda: "Handling connection for %d\n" % fw.port in fw.out, what="Handling connection line")
        # busy local port: real texts and exit code
        cp = c.run("port-forward", pod, "%d:8000" % fw.port, "--address", "127.0.0.1")
        assert cp.returncode == 1
        assert cp.stderr.decode() == (
            "Unable to listen on port %d: Listeners failed to create with the following errors: [unable to create listener: "
            "Error listen tcp4 127.0.0.1:%d: bind: address already in use]\n"
            "error: unable to listen on any of the requested ports: [{%d 8000}]\n" % (fw.port, fw.port, fw.port))
    finally:
        fw.close()
    # nothing listening on the remote port: the connection fails and port-forward exits (lost connection)
    fw = Forward(c, pod, "0:9", "--address", "127.0.0.1")
    try:
        s = socket.create_connection(("127.0.0.1", fw.port), timeout=10)
        s.settimeout(10)
        assert s.recv(10) == b""
        s.close()
        assert fw.p.wait(timeout=20) == 1
        err = fw.p.stderr.read().decode()
        assert '"Unhandled Error" err="an error occurred forwarding %d -> 9: error forwarding port 9 to pod ' % fw.port in err
        assert "connect: connection refused" in err and err.endswith("error: lost connection to pod\n")
    finally:
        fw.close()


def test_port_forward_service_and_lost_pod(cluster):
    d = cluster.deployment("web", ready_line="READY")
    cluster.service("web", {"app": "web"}, ports=[(80, 8000)])
    fw = Forward(cluster, "svc/web", "0:80", "--address", "127.0.0.1")
    try:
        assert fw.first.endswith(" -> 8000\n")  # service port 80 maps to targetPort 8000
        assert urllib.request.urlopen("http://127.0.0.1:%d/" % fw.port, timeout=10).read().startswith(b"hello")
        new = cluster.replace_pod(d.pod, wait=False)
        assert new != d.pod and new.startswith(d.pod.rsplit("-", 1)[0] + "-")
        with pytest.raises(OSError):
            urllib.request.urlopen("http://127.0.0.1:%d/" % fw.port, timeout=10).read()
        assert fw.p.wait(timeout=20) == 1
        assert fw.p.stderr.read().decode().endswith("error: lost connection to pod\n")
    finally:
        fw.close()
    assert cluster.run("get", "pod", d.pod, "-o", "json").returncode == 1
    assert cluster.pods() == [new]


# --- argv check, log, cleanup ------------------------------------------------------------------

def test_argv_check_against_real_kubectl():
    if not os.access("/usr/bin/kubectl", os.X_OK) and not os.environ.get("WAND_REAL_KUBECTL"):
        pytest.skip("no real kubectl client")
    assert check_argv(["kubectl", "debug", "p", "--profile=general", "--target=app", "-iq", "--image=x",
                       "--", "python3", "--not-a-kubectl-flag"]) == []
    assert check_argv(["-n", "ns", "--context", "c", "port-forward", "pod/p", ":5679", "--address", "127.0.0.1"]) == []
    assert check_argv(["auth", "can-i", "patch", "pods", "--subresource=ephemeralcontainers"]) == []
    assert check_argv(["config", "view", "--minify", "-o", "json"]) == []
    assert check_argv(["debug", "p", "--profil=general"]) == ["kubectl debug: unknown flag --profil"]
    assert check_argv(["exec", "-Z", "p", "--", "ls"]) == ["kubectl exec: unknown shorthand flag -Z in -Z"]
    assert check_argv(["get", "pods", "-o"]) == ["kubectl get: -o needs a value"]


def test_argv_log_and_close_removes_everything(cluster):
    p = cluster.pod("solo", containers=[SLEEP])
    cluster.clear_argv_log()
    assert cluster.run("debug", p.pod, *GENERAL, "-q", "-c", "e1", "--", "sleep", "600").returncode == 0
    assert cluster.run("get", "pods", "-o", "name").returncode == 0
    assert cluster.argv_log() == [["debug", "solo", "--profile=general", "--image=" + IMAGE, "-q", "-c", "e1", "--", "sleep", "600"],
                                  ["get", "pods", "-o", "name"]]
    for argv in cluster.argv_log():
        assert check_argv(argv) == []
    names = cluster.containers()
    assert len(names) == 3 and any(n.endswith("-e1") for n in names)  # sandbox, main, ephemeral
    cluster.close()
    assert cluster.containers() == []


def test_streams_end_when_the_pod_goes(cluster):
    p = cluster.pod("gone", containers=[SLEEP])
    procs = {
        "exec": subprocess.Popen([cluster.kubectl, "exec", "-i", "gone", "--", "cat"], env=cluster.env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        "debug": subprocess.Popen([cluster.kubectl, "debug", "gone", "--target=main", *GENERAL, "-q", "-c", "att",
                                   "-i", "--", "cat"], env=cluster.env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE),
    }
    try:
        cluster.wait_ephemeral(p.pod, "att", "running")
        procs["exec"].stdin.write(b"ping\n")
        procs["exec"].stdin.flush()
        assert procs["exec"].stdout.readline() == b"ping\n"
        cluster.delete_pod(p.pod)
        assert procs["exec"].wait(timeout=20) == 137
        assert procs["exec"].stderr.read().endswith(b"command terminated with exit code 137\n")
        assert procs["debug"].wait(timeout=20) == 0
    finally:
        for pr in procs.values():
            if pr.poll() is None:
                pr.kill()
            pr.wait()
    assert cluster.containers() == []
