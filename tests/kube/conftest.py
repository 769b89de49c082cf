"""Fixtures for tests that run the code under test through the REAL kubectl against the test
API server (tests/kube/apiserver), whose pods are Docker containers.

    def test_x(cluster):                 # a fresh cluster per test (its containers removed after)
        d = cluster.deployment("web", ready_line="READY")
        subprocess.run([...], env=cluster.env)   # real kubectl on PATH, KUBECONFIG -> the test API

`cluster` runs each test over both kubectl transports (websocket, SPDY) with one kubectl
version ($WAND_TEST_KUBECTL, default 1.32); `-m kube_matrix` tests run every version found.

`cluster_module` is the same, shared by the tests of one module (cheaper: create pods once).
Skips (or fails, with WAND_REQUIRE_DOCKER=1) when Docker or the bed image is missing.
"""
import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import WAND, wait_for_line
from tests.kube.apiserver.cluster import DEFAULT_IMAGE, Cluster, docker_available, image_available

_reason = []


def bed_unavailable():
    """Why the test cluster can't run here, or None."""
    if not _reason:
        if not shutil.which("docker"):
            why = "docker CLI not installed (bash tests/bed/setup.sh installs it)"
        elif not docker_available():
            why = "docker daemon not reachable (bash tests/bed/setup.sh starts it)"
        elif not image_available(DEFAULT_IMAGE):
            why = "image %s missing (bash tests/bed/setup.sh builds it)" % DEFAULT_IMAGE
        else:
            why = None
        _reason.append(why)
    return _reason[0]


@pytest.fixture(scope="session")
def bed_ready():
    why = bed_unavailable()
    if why:
        if os.environ.get("WAND_REQUIRE_DOCKER"):
            pytest.fail("test cluster unavailable: " + why)
        pytest.skip("test cluster unavailable: " + why)


@pytest.fixture(params=["websocket", "spdy"])
def cluster(request, tmp_path, bed_ready):
    c = Cluster(tmp_path / "cluster", transport=request.param)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def cluster_module(tmp_path_factory, bed_ready):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c
    finally:
        c.close()


def wand(cluster, *args, timeout=120, env=None):
    """The real CLI with a real kubectl first on PATH and KUBECONFIG on the test API."""
    return subprocess.run([WAND, *args], env=dict(cluster.env, **(env or {})),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def checked(cluster):
    """The cluster; the real kubectl checks its own flags (kept for the tests' wording)."""
    yield cluster


def api_calls(cluster, sub, pod=None, method=None):
    """API requests to pods/<sub> (e.g. "exec", "ephemeralcontainers"), of one pod if given."""
    return [r for r in cluster.requests() if r["path"].endswith("/" + sub)
            and (pod is None or "/pods/%s/" % pod in r["path"]) and (method is None or r["method"] == method)]


def k8s(cluster):
    """The official `kubernetes` client on this cluster: the independent oracle for what the
    plugin did (never through the plugin's own kubectl path)."""
    api = getattr(cluster, "_k8s", None)
    if api is None:
        from kubernetes import client, config

        api = cluster._k8s = client.CoreV1Api(config.new_client_from_config(config_file=cluster.kubeconfig))
    return api


def helpers_of(cluster, pod, ns="default"):
    """kubectl-wand's ephemeral helper containers in a pod (read with the kubernetes client)."""
    st = k8s(cluster).read_namespaced_pod(pod, ns).status.ephemeral_container_statuses or []
    return [s.name for s in st if s.name.startswith("kubectl-wand-")]


def attach_json(cluster, target="deploy/app", env=None, timeout=90):
    """`kubectl wand attach TARGET --local-port 0 -o json` in the background: (the process,
    its first ready line, parsed). The caller ends it (SIGINT) and checks its exit."""
    p = subprocess.Popen([WAND, "attach", target, "--local-port", "0", "-o", "json"],
                         env=dict(cluster.env, **(env or {})), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        return p, json.loads(wait_for_line(p.stdout, lambda s: s.startswith("{"), timeout))
    except BaseException:
        p.kill()
        p.wait()
        raise


def request_in_pod(cluster, pod, path, python="python3"):
    """A request to the pod's app (127.0.0.1:8000) from inside its container, running in the
    background (a breakpoint may hold it): its stdout is the body."""
    return subprocess.Popen(["docker", "exec", cluster.docker_name(pod), python, "-c",
                             "import urllib.request as u;print(u.urlopen("
                             f"'http://127.0.0.1:8000{path}', timeout=60).read().decode())"],
                            stdout=subprocess.PIPE, text=True)
