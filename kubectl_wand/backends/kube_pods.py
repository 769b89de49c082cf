"""Kubernetes pods as boxes: the typed box, what is read from a pod's JSON, and the operator's
own cache of interpreter paths found in images."""

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import List, Optional

from kubectl_wand.backends.base import Box, PodSummary, python_candidates
from kubectl_wand.errors import WandError

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
PYTHON_PATH = re.compile(r"^(?:/[A-Za-z0-9._+-]+)+/python[0-9.]*t?$")


@dataclass(kw_only=True)
class KubeBox(Box):
    """One container of a pod (``image`` is the helper's image: --image, else the app's)."""

    pod: str
    namespace: str
    container: str
    pod_json: dict  # refreshed once a helper runs
    node: Optional[str] = None
    ready: bool = False
    age: str = "?"
    image_key: Optional[str] = None  # the app image's digest (else name): key of the cache
    image_name: Optional[str] = None  # the helper image as the user named it
    python_hints: List[str] = field(default_factory=list)  # interpreters worth trying
    python_try: int = 0  # the hint the app container is being tried with
    helper: Optional[str] = None  # the ephemeral helper container, once there is one
    helper_python: Optional[str] = None  # its own interpreter (its spec's command)

    @property
    def summary(self) -> PodSummary:
        return PodSummary(self.pod, self.namespace, self.container, self.node, self.ready,
                          self.age)


def box_for(pod: dict, container: str, image: Optional[str] = None) -> KubeBox:
    """The box for ``container`` of ``pod`` (its JSON); ``image`` is --image, if given."""
    meta = pod["metadata"]
    spec_c = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    multi = len(pod["spec"]["containers"]) > 1
    status = next((c for c in pod.get("status", {}).get("containerStatuses") or []
                   if c.get("name") == container), {})
    image_key = status.get("imageID") or spec_c.get("image")
    known = known_python(image_key)
    hints = python_candidates(*(([known] if known else []) + list(spec_c.get("command") or [])
                                + list(spec_c.get("args") or [])))
    return KubeBox(
        id=f"{meta['namespace']}/{meta['name']}/{container}",
        display=f"pod/{meta['name']}" + (f" -c {container}" if multi else ""),
        image=image or spec_c.get("image"),
        pod=meta["name"], namespace=meta["namespace"], container=container, pod_json=pod,
        node=pod["spec"].get("nodeName"), ready=pod_ready(pod),
        age=age(meta.get("creationTimestamp")), image_key=image_key,
        image_name=image or spec_c.get("image"), python_hints=hints)


def pod_ready(pod: dict) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    if pod.get("status", {}).get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


def age(ts: Optional[str]) -> str:
    if not ts:
        return "?"
    then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    s = int((datetime.now(timezone.utc) - then).total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit}"
    return f"{s}s"


def default_container(pod: dict, wanted: Optional[str]) -> str:
    names = [c["name"] for c in pod["spec"]["containers"]]
    if wanted:
        if wanted not in names:
            raise WandError(f"container {wanted!r} is not in pod {pod['metadata']['name']} "
                            f"(containers: {', '.join(names)})", code="not-found")
        return wanted
    ann = (pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER)
    return ann if ann in names else names[0]


def _pythons_file():
    from kubectl_wand.paths import cache_dir

    return cache_dir() / "pythons.json"


def known_python(image_key: Optional[str]) -> Optional[str]:
    """The interpreter path found earlier in this image (the operator's own cache)."""
    if not image_key:
        return None
    try:
        path = json.loads(_pythons_file().read_text()).get(image_key)
    except (OSError, ValueError, AttributeError):
        return None
    return path if isinstance(path, str) and PYTHON_PATH.match(path) else None


def remember_python(image_key: Optional[str], path: str):
    if not image_key:
        return
    f = _pythons_file()
    try:
        known = json.loads(f.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    known[image_key] = path
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp%d" % os.getpid())
        tmp.write_text(json.dumps(dict(list(known.items())[-200:])))
        tmp.replace(f)
    except OSError:
        pass
