"""What the user said about where the target is: one typed object from the CLI's flags to the
backends (never click's dict)."""

import enum
from dataclasses import dataclass
from typing import Optional


class Scope(enum.Enum):
    """Which of a Kubernetes target's pods a command works on."""

    ONE = "one"            # the newest ready pod (attach, exec, …)
    EVERY_READY = "ready"  # every ready replica (--all)
    LIST = "list"          # every running pod and container (ps)


@dataclass
class TargetOptions:
    namespace: Optional[str] = None
    context: Optional[str] = None
    kubeconfig: Optional[str] = None
    container: Optional[str] = None
    selector: Optional[str] = None
    pod: Optional[str] = None
    image: Optional[str] = None  # the helper's image (default: the target container's own)
    nudge: str = "auto"  # --signal: what wakes a main thread blocked in a system call
    all_namespaces: bool = False  # ps -A
    scope: Scope = Scope.ONE
