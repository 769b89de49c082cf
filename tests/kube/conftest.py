"""Fixtures for tests that run the code under test against the kubectl stand-in.

    def test_x(cluster):                 # a fresh fake cluster per test (its containers removed after)
        d = cluster.deployment("web", ready_line="READY")
        subprocess.run([...], env=cluster.env)   # `kubectl` on PATH is tests/kube/standin/kubectl

`cluster_module` is the same, shared by the tests of one module (cheaper: create pods once).
Skips (or fails, with WAND_REQUIRE_DOCKER=1) when Docker or the bed image is missing.
"""
import os
import shutil
import subprocess

import pytest

from tests.conftest import WAND
from tests.kube.argv_check import check_argv
from tests.kube.standin.cluster import DEFAULT_IMAGE, Cluster, docker_available, image_available

_reason = []


def standin_unavailable():
    """Why the stand-in can't run here, or None."""
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
def standin_ready():
    why = standin_unavailable()
    if why:
        if os.environ.get("WAND_REQUIRE_DOCKER"):
            pytest.fail("kubectl stand-in unavailable: " + why)
        pytest.skip("kubectl stand-in unavailable: " + why)


@pytest.fixture
def cluster(tmp_path, standin_ready):
    c = Cluster(tmp_path / "standin")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def cluster_module(tmp_path_factory, standin_ready):
    c = Cluster(tmp_path_factory.mktemp("standin"))
    try:
        yield c
    finally:
        c.close()


def wand(cluster, *args, timeout=120, env=None):
    """The real CLI with the stand-in first on PATH."""
    return subprocess.run([WAND, *args], env=dict(cluster.env, **(env or {})),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def checked(cluster):
    """The cluster, plus a check that every kubectl call the plugin made is a real one."""
    yield cluster
    problems = []
    for argv in cluster.argv_log():
        problems += check_argv(argv)
    assert problems == [], problems


def helpers_of(cluster, pod):
    """kubectl-wand's ephemeral helper containers in a pod."""
    st = cluster.get_pod(pod)["status"].get("ephemeralContainerStatuses", [])
    return [s["name"] for s in st if s["name"].startswith("kubectl-wand-")]
