"""Faults on a Kubernetes target, through the real kubectl against the test API (pods are Docker containers):
`kubectl port-forward` killed mid-session (restarted on the same local port), and the CLI
killed with SIGKILL while forwarding (no `kubectl port-forward` may survive it: the forward
dies with the CLI, the injector in the ephemeral helper detaches and cleans up)."""

import os
import signal
import subprocess

import pytest

from kubectl_wand.dap import DAPClient
from tests.conftest import IMAGE, WAND, Container, host_processes, wait_for_line
from tests.kube.conftest import attach_json, cluster_module, bed_ready  # noqa: F401 (fixtures)
from tests.reliability.conftest import poll


@pytest.fixture(scope="module")
def pod(cluster_module):
    d = cluster_module.deployment("app", ready_line="READY")
    return d.pod


def app_container(cluster, pod):
    return Container(cluster.docker_name(pod), IMAGE)


def assert_pod_clean(cluster, pod):
    """The app container serves, nothing staged or running of ours in the pod (the idle
    ephemeral helper excepted, by design), and no kubectl process for the pod on this host."""
    app_container(cluster, pod).assert_healthy(8000)
    poll(lambda: host_processes(pod) == [], what=f"no process for {pod} on this host")


def port_forwards(pod):
    return [p[0] for p in host_processes(f"pod/{pod}") if "port-forward" in p[1:]]


def test_port_forward_killed_mid_session_is_restarted(cluster_module, pod):
    c = cluster_module
    p, ready = attach_json(c, timeout=120)
    try:
        dap = DAPClient("127.0.0.1", ready["port"])
        dap.request("initialize", adapterID="debugpy", clientID="wand-test")
        dap.close()
        first = poll(lambda: port_forwards(pod), what="kubectl port-forward")
        os.kill(first[0], signal.SIGKILL)
        wait_for_line(p.stderr, lambda s: "port-forward dropped; restarted (1)" in s, 60)
        again = poll(lambda: port_forwards(pod), what="a new kubectl port-forward")
        assert again != first
        dap = DAPClient("127.0.0.1", ready["port"])  # the same local port
        assert dap.request("initialize", adapterID="debugpy",
                           clientID="wand-test")["success"]
        dap.close()
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
    assert rc == 0
    wait_for_line(p.stderr, lambda s: "Detached from pid 1" in s, 10)
    assert_pod_clean(c, pod)


def test_kill_9_of_the_cli_while_forwarding(cluster_module, pod):
    c = cluster_module
    cp = subprocess.run([WAND, "attach", "deploy/app", "--local-port", "0", "-o", "json"],
                        env=dict(c.env, WAND_TEST_KILL_AT="forward"), capture_output=True,
                        text=True, timeout=180)
    assert cp.returncode == -signal.SIGKILL, cp.stderr
    assert cp.stdout.startswith('{"event": "ready"')
    assert_pod_clean(c, pod)  # port-forward gone with the CLI; debugger detached
