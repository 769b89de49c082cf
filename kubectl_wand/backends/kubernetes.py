"""Kubernetes through kubectl (placeholder until the Kubernetes backend lands)."""

from kubectl_wand.backends.base import Backend
from kubectl_wand.errors import WandError


class KubernetesBackend(Backend):
    name = "kubernetes"

    def __init__(self, opts):
        self.opts = opts

    def resolve(self, target):
        raise WandError("Kubernetes targets are not supported yet",
                        "use docker/NAME, podman/NAME or pid/N", code="unsupported")
