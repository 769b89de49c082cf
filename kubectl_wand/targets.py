"""Parse what the user typed (``deploy/app``, ``docker/web``, ``pid/42``…) into a Target."""

import re
from dataclasses import dataclass
from typing import Optional

from kubectl_wand.errors import UsageError

# kubectl's short names and plurals, to the canonical resource we query.
KUBE_KINDS = {
    "pod": "pod", "pods": "pod", "po": "pod",
    "deployment": "deployment", "deployments": "deployment", "deploy": "deployment",
    "statefulset": "statefulset", "statefulsets": "statefulset", "sts": "statefulset",
    "daemonset": "daemonset", "daemonsets": "daemonset", "ds": "daemonset",
    "replicaset": "replicaset", "replicasets": "replicaset", "rs": "replicaset",
    "job": "job", "jobs": "job",
    "service": "service", "services": "service", "svc": "service",
    "ksvc": "ksvc", "kservice": "ksvc", "kservices": "ksvc",
    "services.serving.knative.dev": "ksvc", "service.serving.knative.dev": "ksvc",
}
RUNTIMES = ("docker", "podman")
# DNS-1123 subdomain: what Kubernetes accepts as an object name.
KUBE_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$")


@dataclass(frozen=True)
class Target:
    """Where the process lives: ``backend`` is kubernetes, docker, podman or local."""

    backend: str
    name: Optional[str] = None
    kind: Optional[str] = None  # kubernetes resource kind, canonical
    pid: Optional[int] = None

    def __str__(self):
        if self.backend == "kubernetes":
            return f"{self.kind}/{self.name}"
        if self.backend == "local":
            return f"pid/{self.pid}" if self.pid else "local"
        return f"{self.backend}/{self.name}"


def _show(text):
    return repr(text) if any(not c.isprintable() for c in text) or not text else text


def parse_target(text: str) -> Target:
    """Parse one target string; raises UsageError with the accepted forms."""
    if text is None or not text.strip():
        raise UsageError("no target given",
                         "give one of: deploy/NAME, pod/NAME, docker/NAME, podman/NAME, pid/N")
    raw = text
    text = text.strip()
    if text == "local":
        return Target("local")
    prefix, sep, rest = text.partition("/")
    if not sep:
        return Target("kubernetes", _kube_name(text, raw), kind="pod")
    low = prefix.lower()
    if low in RUNTIMES:
        if not CONTAINER_NAME.match(rest):
            raise UsageError(f"invalid container name in target {_show(raw)}",
                             f"`{low} ps` lists the running containers")
        return Target(low, rest)
    if low == "pid":
        if not rest.isdigit() or int(rest) <= 0 or not rest.isascii():
            raise UsageError(f"invalid PID in target {_show(raw)}", "use pid/N with N > 0")
        return Target("local", pid=int(rest))
    if low in KUBE_KINDS:
        return Target("kubernetes", _kube_name(rest, raw), kind=KUBE_KINDS[low])
    raise UsageError(
        f"unsupported target kind {_show(prefix)} in {_show(raw)}",
        "supported: pod, deploy, sts, ds, rs, job, svc, ksvc (kubectl names), "
        "docker/NAME, podman/NAME, pid/N")


def _kube_name(name, raw):
    if not KUBE_NAME.match(name):
        raise UsageError(f"invalid Kubernetes name in target {_show(raw)}",
                         "names are lowercase letters, digits, '-' and '.'")
    return name
