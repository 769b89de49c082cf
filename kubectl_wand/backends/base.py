"""What every backend provides, and the one way backends run external commands."""

import re
import subprocess
from dataclasses import asdict, dataclass
from typing import List, Optional

from kubectl_wand.errors import WandError
from kubectl_wand.log import trace

HELPER_CACHE = "/tmp/kubectl-wand-cache"  # in a helper container's own filesystem
# The helper's own interpreter, linked by payload/idle.py when the helper starts (its own
# filesystem: a fresh container of the image, never the target's writable layer)
HELPER_PYTHON = "/tmp/kubectl-wand-python"
DEFAULT_PYTHONS = ("python3", "python3.14", "python", "python3.15", "python3.13")
_PY_WORD = re.compile(r"^(?:/[A-Za-z0-9._+-]+)*/?python[0-9.]*t?$")


def python_candidates(*texts) -> List[str]:
    """Interpreter names or absolute paths worth trying as a helper's own Python, best first:
    those that the target's command line, entrypoint or container spec name, then the usual
    names on PATH. Only plain python-looking words are kept (they come from the target)."""
    out: List[str] = []
    for text in texts:
        for word in re.split(r"[\s;&|'\"=]+", text or ""):
            if _PY_WORD.match(word) and word not in out and len(word) < 200:
                out.append(word)
    return out + [p for p in DEFAULT_PYTHONS if p not in out]


def exec_not_found(stderr: str) -> bool:
    """The runtime could not find the executable it was asked to start."""
    low = stderr.lower()
    return "executable file not found" in low or ("exec" in low and "no such file" in low)


@dataclass
class PodSummary:
    """Where a Kubernetes box is, as listings show it (ps' columns, fan-out's JSON)."""

    pod: str
    namespace: str
    container: str
    node: Optional[str]
    ready: bool
    age: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Box:
    """A place holding processes: a container, a pod's container, or this host. Each backend
    fills its own subclass (DockerBox, KubeBox, LocalBox) and reads only that; the engine
    reads only these fields."""

    id: str
    display: str
    image: Optional[str] = None
    pid: Optional[int] = None  # the target names one process itself (pid/N)

    @property
    def summary(self) -> Optional[PodSummary]:
        """The pod, namespace and container it is; None off Kubernetes."""
        return None


class Backend:
    """The one seam: where processes live and how to reach them. What a backend can do
    differently is declared here, not probed with getattr."""

    name = "?"
    # Starting a forward costs a process (a `docker exec`, a `kubectl port-forward`): attach
    # starts it ahead, while the injection runs
    slow_forward = False
    # …but only once the injector's own connection is up (on 2 CPUs the two would compete)
    forward_after_reach = False
    # The forward cannot speak the debugger gate's secret itself: a local Front adds it
    front_forward = False
    # attach may wait for a replacement (a new pod of the workload, a restarted worker);
    # a host PID has none
    followable = True

    def resolve(self, target) -> List[Box]:
        raise NotImplementedError

    def injector_argv(self, box: Box) -> List[str]:
        """A command whose stdin/stdout speak the injector protocol beside ``box``."""
        raise NotImplementedError

    def prepare_inject(self, box: Box):
        """Make ready what injecting needs beyond listing (e.g. a Kubernetes helper)."""

    def trust(self, box: Box) -> str:
        """What the injector's own filesystem is: "image" (a helper container of the app's
        image), "host" (this host), "target" (a lister running as the app itself)."""
        return "image"

    def cache_dir(self, box: Box) -> Optional[str]:
        """Where the injector keeps debugpy trees compiled for the target's interpreter between
        attaches: a directory of the helper's own filesystem, never the target's (None: none)."""
        return None

    def preflight(self, target, start_listing):
        """validate's checks of this backend's own (tools, cluster, permissions) and the box
        attach would use; ``start_listing(box)`` starts the process listing (a future)."""
        raise NotImplementedError

    def recover(self, box: Box, stderr: str) -> bool:
        """Repair what made the injector fail to start (e.g. an expired helper); True = retry."""
        return False

    def explain_failure(self, box: Box, stderr: str) -> WandError:
        return WandError(f"could not start the injector for {box.display}"
                         + (f": {stderr}" if stderr else ""), "retry with -v to see each call",
                         code="injector-failed")

    def forward(self, box: Box, remote_port: int, local_port: int):
        raise NotImplementedError

    def debug_port(self, box: Box, port: int, local_port: int) -> int:
        """The port debugpy should listen on inside the target (a backend sharing the host's
        network picks one that is free there)."""
        return port

    def attached(self, box: Box, pid: int):
        """attach chose process ``pid`` in ``box`` (a backend may need it later)."""

    def target_gone(self, box: Box) -> Optional[str]:
        """Why ``box`` is no longer there (its container stopped…), or None if it is, or if
        this backend cannot tell. Asked when an injector vanished mid-way."""
        return None


def run(argv: List[str], timeout: float = 30.0, input: Optional[bytes] = None,
        check: bool = False) -> subprocess.CompletedProcess:
    """Run a command with a timeout; a missing binary or a hang becomes a WandError."""
    trace(argv)
    try:
        cp = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise WandError(f"{argv[0]} not found on PATH", f"install {argv[0]} or add it to PATH",
                        code="no-tool")
    except subprocess.TimeoutExpired:
        raise WandError(f"`{' '.join(argv[:3])} …` did not finish within {timeout:.0f}s",
                        "check the connection to the cluster or engine; -v shows each call",
                        code="timeout")
    if check and cp.returncode != 0:
        raise WandError(cp.stderr.decode("utf-8", "replace").strip() or
                        f"{argv[0]} exited with status {cp.returncode}", code="tool-failed")
    return cp
