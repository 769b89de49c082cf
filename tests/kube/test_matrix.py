"""Every real kubectl found here (1.27..1.33 from the kubectl package; 1.36/1.37 when
tests/kube/fetch_kubectl.sh cached them) x both transports, against the test API server.

The default run does a smoke test per version (ps + exec); `-m kube_matrix` adds attach to a
breakpoint and the failure texts that differ between versions.
"""
import json
import signal

import pytest

from kubectl_wand.dap import DAPClient
from tests.conftest import breakpoint_line
from tests.kube.conftest import attach_json, helpers_of, request_in_pod, bed_ready, wand  # noqa: F401 (fixture)
from tests.kube.apiserver.cluster import Cluster, kubectl_versions

VERSIONS = list(kubectl_versions())
PARAMS = [(v, t) for v in VERSIONS for t in ("websocket", "spdy")]
# the default run: the oldest and the newest kubectl found, one transport each (1.27 has no
# websocket exec); -m kube_matrix: all of them
DEFAULT = {(VERSIONS[0], "spdy"), (VERSIONS[-1], "websocket")} if VERSIONS else set()


@pytest.fixture(params=[pytest.param(p, id="%s-%s" % p, marks=() if p in DEFAULT else pytest.mark.kube_matrix)
                        for p in PARAMS])
def vcluster(request, tmp_path, bed_ready):
    version, transport = request.param
    c = Cluster(tmp_path / "cluster", client_version=version, transport=transport)
    try:
        yield c
    finally:
        c.close()


def test_smoke_ps_and_exec(vcluster):
    c = vcluster
    d = c.deployment("app", ready_line="READY")
    cp = wand(c, "ps", "deploy/app", "-o", "json")
    assert cp.returncode == 0, cp.stderr
    assert [p["pod"] for p in json.loads(cp.stdout)] == d.pods
    cp = wand(c, "exec", "deploy/app", "-c", "import os; print('pid', os.getpid())")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "pid 1\n"
    assert len(helpers_of(c, d.pod)) == 1
    cp = wand(c, "exec", "deploy/app", "-c", "raise SystemExit(7)")
    assert cp.returncode == 7, cp.stderr


@pytest.mark.kube_matrix
def test_attach_breakpoint(vcluster):
    c = vcluster
    d = c.deployment("app", ready_line="READY")
    line = breakpoint_line("http_app.py")
    p, ready = attach_json(c)
    try:
        dap = DAPClient("127.0.0.1", ready["port"])
        dap.attach(breakpoints={"/app/http_app.py": [line]})
        req = request_in_pod(c, d.pod, "/m")
        stop = dap.stopped_locals(timeout=30)
        assert stop["locals"]["greeting"] == "'hello /m'"
        dap.request("continue", threadId=stop["thread"])
        assert req.communicate(timeout=30)[0].startswith("hello /m")
        dap.close()
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
    assert rc == 0, p.stderr.read()


@pytest.mark.kube_matrix
@pytest.mark.parametrize("case", ["rbac-exec", "psa", "image-pull", "no-knative"])
def test_failures(vcluster, case):
    c = vcluster
    args = ["exec", "deploy/app", "-c", "print(1)"]
    ns = "default"
    if case == "rbac-exec":
        c.forbid("pods/exec")
        expect = ["pods/exec", "kubectl auth can-i create pods --subresource=exec"]
    elif case == "psa":
        ns = c.namespace("locked", labels={"pod-security.kubernetes.io/enforce": "baseline"})
        args += ["-n", ns]
        expect = ["Pod Security", "SYS_PTRACE"]
    elif case == "image-pull":
        args += ["--image", "registry.invalid/nope:1"]
        expect = ["cannot start", "ErrImagePull"]
    else:
        c.set(no_knative=True)
        args = ["ps", "ksvc/hello"]
        expect = ["Knative"]
    c.deployment("app", ns=ns, ready_line="READY")
    cp = wand(c, *args)
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    for text in expect:
        assert text in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr
