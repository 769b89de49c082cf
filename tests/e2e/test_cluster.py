"""The Kubernetes journeys on a REAL cluster (opt-in): set WAND_E2E_KUBECONFIG.

    kind create cluster --name wand
    WAND_E2E_KUBECONFIG=$HOME/.kube/config .venv/bin/python -m pytest tests/e2e -v

Creates a namespace `wand-e2e-<random>` with a 3-replica Deployment (image WAND_E2E_IMAGE,
default python:3.14-slim, running the demo app written at start-up) and a Service, runs the
same journeys as tests/kube (which use the real kubectl against a local API emulation), and
deletes the namespace at the end.
"""

import json
import os
import signal
import subprocess
import uuid

import pytest

from kubectl_wand.engine.demo import APP, APP_PATH, BREAK_LINE, WRITE_APP
from kubectl_wand.dap import DAPClient
from tests.conftest import WAND, wait_for_line

KUBECONFIG = os.environ.get("WAND_E2E_KUBECONFIG")
IMAGE = os.environ.get("WAND_E2E_IMAGE", "python:3.14-slim")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not KUBECONFIG, reason="no real cluster: set WAND_E2E_KUBECONFIG to a kubeconfig "
    "(e.g. a kind cluster) to run the end-to-end suite")]


def kubectl(*args, input=None, check=True, timeout=180):
    cp = subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, *args], input=input,
                        capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode:
        raise AssertionError(f"kubectl {' '.join(args)}: {cp.stderr}")
    return cp


def wand(ns, *args, timeout=180):
    return subprocess.run([WAND, *args, "-n", ns, "--kubeconfig", KUBECONFIG],
                          capture_output=True, text=True, timeout=timeout)


def manifest(ns):
    container = {"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                 "command": ["python3", "-c", WRITE_APP, APP_PATH, APP],
                 "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": False}}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "app", "namespace": ns},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "wand-e2e"}},
                       "template": {"metadata": {"labels": {"app": "wand-e2e"}},
                                    "spec": {"containers": [container]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": ns},
           "spec": {"selector": {"app": "wand-e2e"}, "ports": [{"port": 80,
                                                                "targetPort": 8000}]}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [deploy, svc]})


@pytest.fixture(scope="module")
def ns():
    name = "wand-e2e-" + uuid.uuid4().hex[:6]
    kubectl("create", "namespace", name)
    try:
        kubectl("apply", "-f", "-", input=manifest(name))
        kubectl("-n", name, "rollout", "status", "deploy/app", "--timeout=300s", timeout=320)
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def pods(ns):
    out = kubectl("-n", ns, "get", "pods", "-l", "app=wand-e2e", "-o", "json").stdout
    return [p["metadata"]["name"] for p in json.loads(out)["items"]
            if not p["metadata"].get("deletionTimestamp")]


def test_ps_deployment(ns):
    cp = wand(ns, "ps", "deploy/app", "-o", "json")
    assert cp.returncode == 0, cp.stderr
    data = json.loads(cp.stdout)
    assert len(data) == 3
    assert all(item["processes"][0]["python"].startswith("3.14") for item in data)


def test_exec_through_service(ns):
    cp = wand(ns, "exec", "svc/app", "-c", "import os; print('pid', os.getpid())")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("pid ")


def test_attach_breakpoint_and_follow_replacement(ns):
    p = subprocess.Popen([WAND, "attach", "deploy/app", "-n", ns, "--kubeconfig", KUBECONFIG,
                          "--local-port", "0", "-o", "json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(wait_for_line(p.stdout, lambda s: s.startswith("{"), 180))
        pod = ready["target"].split("/", 1)[1]
        dap = DAPClient("127.0.0.1", ready["port"])
        dap.attach(breakpoints={APP_PATH: [BREAK_LINE]})
        req = subprocess.Popen(["kubectl", "--kubeconfig", KUBECONFIG, "-n", ns, "exec", pod,
                                "--", "python3", "-c", "import urllib.request as u;print(u."
                                "urlopen('http://127.0.0.1:8000/e2e').read().decode())"],
                               stdout=subprocess.PIPE, text=True)
        stop = dap.stopped_locals(timeout=60)
        assert stop["locals"]["greeting"] == "'hello from /e2e'"
        dap.request("continue", threadId=stop["thread"])
        req.communicate(timeout=60)
        dap.close()
        kubectl("-n", ns, "delete", "pod", pod, "--wait=false")
        again = json.loads(wait_for_line(p.stdout, lambda s: s.startswith("{"), 300))
        assert again["reattach"] and again["target"] != ready["target"]
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=120)
    assert rc == 0, p.stderr.read()
