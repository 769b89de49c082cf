"""Each backend resolves its own typed box (no container needed): the local backend on this
test process, Docker from `docker inspect`'s JSON (a fake runtime), Kubernetes from pod JSON;
and the capabilities the engine calls are declared on Backend, not probed."""

import json
import os
import sys
from dataclasses import fields

import pytest

from kubectl_wand.backends.base import Backend, Box, PodSummary
from kubectl_wand.backends.docker import DockerBackend, DockerBox
from kubectl_wand.backends.kube_pods import KubeBox, box_for
from kubectl_wand.backends.kubernetes import KubernetesBackend
from kubectl_wand.backends.local import LocalBackend, LocalBox
from kubectl_wand.errors import WandError
from kubectl_wand.options import Scope, TargetOptions
from kubectl_wand.targets import Target


def test_box_has_no_free_form_dict():
    for cls in (Box, DockerBox, KubeBox, LocalBox):
        assert "extra" not in {f.name for f in fields(cls)}, cls
    assert Box("x", "x").summary is None


def test_local_resolves_a_local_box_for_pid_n_and_is_told_the_attached_pid():
    backend = LocalBackend()
    [box] = backend.resolve(Target("local", pid=os.getpid()))
    assert type(box) is LocalBox
    assert (box.id, box.display, box.pid, box.attached_pid) == (
        str(os.getpid()), f"pid/{os.getpid()}", os.getpid(), None)
    assert box.summary is None and backend.target_gone(box) is None
    # the same network namespace and the same number on both sides: the gate takes any port
    assert backend.debug_port(box, 5678, 5678) == 0
    assert backend.debug_port(box, 5678, 6000) == 5678
    backend.attached(box, 1)
    assert box.attached_pid == 1 and box.process == 1
    [host] = backend.resolve(Target("local"))
    assert type(host) is LocalBox and host.pid is None and host.process is None


def test_local_pid_that_does_not_exist():
    with pytest.raises(WandError) as e:
        LocalBackend().resolve(Target("local", pid=2 ** 22 + 12345))
    assert e.value.code == "no-such-process"


def test_backend_declares_what_attach_calls():
    class Plain(Backend):
        pass

    box = Box("b", "fake/b")
    assert Plain().debug_port(box, 5678, 5678) == 5678
    assert Plain().attached(box, 7) is None


INSPECT = [{"Id": "c0ffee" * 10 + "abcd", "Name": "/web", "Path": "/usr/local/bin/python3.14",
            "Args": ["-u", "app.py"], "Image": "sha256:1234",
            "State": {"Running": True, "Status": "running"},
            "Config": {"Image": "wand-bed/py314", "Entrypoint": None,
                       "Cmd": ["python3.14", "-u", "app.py"]}}]


def fake_runtime(tmp_path, answer):
    (tmp_path / "inspect.json").write_text(json.dumps(answer))
    exe = tmp_path / "fakedocker"
    exe.write_text(f"#!{sys.executable}\nimport sys\n"
                   f"sys.stdout.write(open({str(tmp_path / 'inspect.json')!r}).read())\n")
    exe.chmod(0o755)
    return str(exe)


def test_docker_resolves_a_docker_box(tmp_path):
    backend = DockerBackend(fake_runtime(tmp_path, INSPECT))
    [box] = backend.resolve(Target("docker", "web"))
    assert type(box) is DockerBox
    assert (box.id, box.name, box.image, box.image_name) == (
        INSPECT[0]["Id"], "web", "sha256:1234", "wand-bed/py314")
    assert box.python_hints[0] == "/usr/local/bin/python3.14"
    assert (box.pid, box.summary, box.helper_python, box.recoveries) == (None, None, None, 0)
    assert backend.helper_python(box) == "/tmp/kubectl-wand-python"
    box.helper_python = "python3.14"
    assert backend.injector_argv(box)[4] == "python3.14"
    with_image = DockerBackend(fake_runtime(tmp_path, INSPECT), image="other:1")
    [box] = with_image.resolve(Target("docker", "web"))
    assert (box.image, box.image_name) == ("other:1", "other:1")


def pod(name, ready=True, containers=("app",), command=("/opt/py/bin/python3", "srv.py"),
        created="2026-01-01T00:00:00Z"):
    return {"metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
            "spec": {"nodeName": "node-1",
                     "containers": [{"name": c, "image": "shop/app:1", "command": list(command)}
                                    for c in containers]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": c, "imageID": "shop/app@sha256:ab",
                                              "state": {"running": {}}} for c in containers]}}


@pytest.fixture
def no_python_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_kube_box_from_pod_json(no_python_cache):
    p = pod("web-1", containers=("app", "side"))
    box = box_for(p, "side")
    assert type(box) is KubeBox
    assert (box.id, box.display, box.pod, box.namespace, box.container) == (
        "shop/web-1/side", "pod/web-1 -c side", "web-1", "shop", "side")
    assert (box.image, box.image_name, box.image_key) == (
        "shop/app:1", "shop/app:1", "shop/app@sha256:ab")
    assert box.pod_json is p and box.python_hints[0] == "/opt/py/bin/python3"
    assert (box.helper, box.helper_python, box.python_try, box.pid) == (None, None, 0, None)
    assert box.summary == PodSummary("web-1", "shop", "side", "node-1", True, box.age)
    assert box.age.endswith("d")
    assert list(box.summary.to_json()) == ["pod", "namespace", "container", "node", "ready",
                                           "age"]
    assert box_for(p, "app", image="dbg:1").image == "dbg:1"


def test_kube_resolve_returns_kube_boxes(no_python_cache, monkeypatch):
    pods = [pod("web-old", created="2026-01-01T00:00:00Z"),
            pod("web-new", created="2026-01-02T00:00:00Z"),
            pod("web-sick", ready=False, created="2026-01-03T00:00:00Z")]
    backend = KubernetesBackend(TargetOptions())
    monkeypatch.setattr(backend, "pods_for", lambda target: pods)
    target = Target("kubernetes", "web", kind="deployment")
    [box] = backend.resolve(target)
    assert type(box) is KubeBox and box.pod == "web-new" and box.ready
    assert backend.trust(box) == "target" and backend.cache_dir(box) is None
    argv = backend.injector_argv(box)
    assert argv[argv.index("exec"):argv.index("exec") + 5] == [
        "exec", "-i", "web-new", "-c", "app"]
    box.helper, box.helper_python = "kubectl-wand-abc", "/usr/bin/python3"
    argv = backend.injector_argv(box)
    assert argv[argv.index("-c") + 1:argv.index("-c") + 4] == [
        "kubectl-wand-abc", "--", "/usr/bin/python3"]
    assert backend.trust(box) == "image"
    backend.opts.scope = Scope.LIST
    listed = backend.resolve(target)
    assert [(type(b), b.pod, b.ready) for b in listed] == [
        (KubeBox, "web-old", True), (KubeBox, "web-new", True), (KubeBox, "web-sick", False)]


def test_kube_recover_walks_the_python_hints(no_python_cache):
    backend = KubernetesBackend(TargetOptions())
    box = box_for(pod("web-1"), "app")
    first = backend.python(box)
    assert backend.recover(box, "exec: \"x\": executable file not found in $PATH")
    assert box.python_try == 1 and backend.python(box) != first


def test_fanout_json_names_the_pod_of_a_kube_box_only(no_python_cache):
    from kubectl_wand.engine.fanout import UnitResult

    out = UnitResult(box_for(pod("web-1"), "app"), 7, ok=True).to_json()
    assert (out["pod"], out["namespace"], out["container"]) == ("web-1", "shop", "app")
    assert "pod" not in UnitResult(Box("b", "docker/b"), 7, ok=True).to_json()
