"""This host's processes: the same injector, run by the CLI's own Python.

When the CLI's Python cannot inject (it is not 3.14), stage 2 runs another interpreter of this
host of the target's version — only one that nobody but root (or this user) can change, since
it runs with this user's privileges. A process in a container is refused: its files are the
container's (use the docker/ or Kubernetes form).
"""

import os
import shutil
import sys
from dataclasses import dataclass
from typing import List, Optional

from kubectl_wand import payload
from kubectl_wand.backends.base import Backend, Box
from kubectl_wand.backends.forward import StdioForwarder, TcpForwarder
from kubectl_wand.checks import Check, Preflight
from kubectl_wand.errors import WandError


def _ns(pid, kind):
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


@dataclass
class LocalBox(Box):
    """This host, or one process of it (pid/N)."""

    attached_pid: Optional[int] = None  # told by the engine once it attached

    @property
    def process(self) -> Optional[int]:
        """The process this box stands for: the one attached to, else the one named."""
        return self.attached_pid or self.pid


class LocalBackend(Backend):
    name = "local"
    followable = False  # a host PID has no replacement to wait for

    def resolve(self, target) -> List[LocalBox]:
        if target.pid is not None:
            if not os.path.exists(f"/proc/{target.pid}"):
                raise WandError(f"no process with PID {target.pid} on this host",
                                "`kubectl wand ps local` lists the Python processes",
                                code="no-such-process")
            return [LocalBox(id=str(target.pid), display=f"pid/{target.pid}", pid=target.pid)]
        return [LocalBox(id="local", display="local")]

    def attached(self, box: LocalBox, pid: int):
        box.attached_pid = pid

    def target_gone(self, box: LocalBox):
        pid = box.process
        if pid and not os.path.exists(f"/proc/{pid}"):
            return f"process {pid} exited"
        return None

    def trust(self, box: Box) -> str:
        return "host"

    def preflight(self, target, start_listing) -> Preflight:
        try:
            box = self.resolve(target)[0]
        except WandError as e:
            return Preflight([Check("target", str(target), False, e.message, e.hint)],
                             stop=e.message)
        return Preflight([], box=box, listing=start_listing(box))

    def injector_argv(self, box: Box) -> List[str]:
        return [sys.executable, "-I", "-S", "-c", payload.BOOT, "kubectl-wand-injector"]

    def cache_dir(self, box: Box):
        from kubectl_wand.paths import cache_dir

        return str(cache_dir() / "compiled")  # this user's cache, on this host

    def debug_port(self, box: LocalBox, port: int, local_port: int) -> int:
        """The gate's port in the target: any free one when it shares this network namespace
        and the editor's port would take the same number."""
        pid = box.process
        if port == local_port and _ns(pid, "net") == _ns("self", "net"):
            return 0
        return port

    def forward(self, box: LocalBox, remote_port: int, local_port: int):
        pid = box.process
        if _ns(pid, "net") == _ns("self", "net"):
            # never the debug port itself: the editor's port adds the gate's secret and
            # takes connections from this user only
            return TcpForwarder(remote_port, local_port)
        nsenter = shutil.which("nsenter")
        if not nsenter or os.geteuid() != 0:
            raise WandError(f"process {pid} is in another network namespace",
                            "run as root with nsenter installed, or use the docker/ or "
                            "Kubernetes target form for containers", code="netns")
        relay = [nsenter, "-t", str(pid), "-n", sys.executable, "-I", "-S", "-c",
                 payload.source("forward"), "kubectl-wand-forward", str(remote_port)]
        return StdioForwarder(lambda: relay, local_port)
