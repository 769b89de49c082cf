"""The one seam between the engine and where processes live."""

from kubectl_wand.options import TargetOptions
from kubectl_wand.targets import Target


def backend_for(target: Target, where: TargetOptions):
    """The backend that reaches ``target``, told what the user said about it."""
    if target.backend in ("docker", "podman"):
        from kubectl_wand.backends.docker import DockerBackend

        return DockerBackend(target.backend, image=where.image)
    if target.backend == "local":
        from kubectl_wand.backends.local import LocalBackend

        return LocalBackend()
    from kubectl_wand.backends.kubernetes import KubernetesBackend

    return KubernetesBackend(where)
