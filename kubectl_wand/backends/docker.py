"""Docker and Podman: a helper container joins the target's PID and network namespaces.

That is the shape of a Kubernetes ephemeral debug container: the app container keeps no extra
capability, no published port and no debugpy; the helper (the target's own image by default)
gets SYS_PTRACE, runs the injector, relays the debug port over stdio, and stays around idle for
a while so later commands reuse it.
"""

import json
import shlex
from typing import List

from kubectl_wand import payload
from kubectl_wand.backends.base import HELPER_CACHE, Backend, Box, run
from kubectl_wand.engine.forward import StdioForwarder
from kubectl_wand.errors import WandError

HELPER_IDLE_SECONDS = 600


class DockerBackend(Backend):
    slow_forward = True  # its relays start ahead (prespawn): cli/attach makes it early
    forward_after_reach = True  # …once the injector's own `docker exec` has started
    def __init__(self, runtime: str = "docker", image: str = None, idle: int = HELPER_IDLE_SECONDS):
        self.runtime, self.image, self.idle = runtime, image, idle
        self.name = runtime

    def _cli_error(self, text: str, name: str) -> WandError:
        if "No such container" in text or "no such container" in text:
            return WandError(f"no {self.runtime} container named {name!r}",
                             f"`{self.runtime} ps` lists the running containers",
                             code="not-found")
        if "Cannot connect" in text or "permission denied" in text.lower():
            return WandError(f"cannot reach the {self.runtime} engine: {text}",
                             "start it (e.g. `dockerd`) or check access to its socket",
                             code="engine")
        return WandError(text or f"{self.runtime} failed", code="engine")

    def resolve(self, target) -> List[Box]:
        cp = run([self.runtime, "inspect", "--type", "container", target.name], timeout=20)
        if cp.returncode != 0:
            raise self._cli_error(cp.stderr.decode("utf-8", "replace").strip(), target.name)
        info = json.loads(cp.stdout)[0]
        state = info.get("State", {})
        if not state.get("Running"):
            raise WandError(f"{self.runtime} container {target.name!r} is not running "
                            f"(status: {state.get('Status', '?')})",
                            f"start it first: `{self.runtime} start {target.name}`",
                            code="not-running")
        return [Box(id=info["Id"], display=f"{self.runtime}/{target.name}",
                    image=self.image or info.get("Image"),
                    extra={"name": info.get("Name", "").lstrip("/"),
                           "image_name": info.get("Config", {}).get("Image")})]

    def helper_name(self, box: Box) -> str:
        return "kubectl-wand-helper-" + box.id[:12]

    def cache_dir(self, box: Box):
        return HELPER_CACHE

    def injector_argv(self, box: Box) -> List[str]:
        return [self.runtime, "exec", "-i", self.helper_name(box),
                "python3", "-I", "-S", "-c", payload.BOOT, "kubectl-wand-injector"]

    def start_helper(self, box: Box) -> bool:
        """Start the helper; True if this call started it (`docker run -d` returns once the
        container runs), False if another command had just created it."""
        argv = [self.runtime, "run", "-d", "--rm", "--name", self.helper_name(box),
                "--label", "kubectl-wand.helper-for=" + box.id,
                "--pid", "container:" + box.id, "--network", "container:" + box.id,
                "--cap-add", "SYS_PTRACE", "--user", "0:0", "--entrypoint", "python3",
                box.image, "-I", "-S", "-c", payload.source("idle"),
                "kubectl-wand-helper", str(self.idle)]
        cp = run(argv, timeout=120)
        err = cp.stderr.decode("utf-8", "replace").strip()
        if cp.returncode != 0 and "already in use" not in err:
            if "executable file not found" in err or "no such file" in err.lower():
                raise WandError(f"the helper image {box.image} has no python3",
                                "pass --image with any image that has python3 "
                                "(the target's own interpreter does the injecting)",
                                code="helper-image")
            raise WandError(f"could not start the helper container: {err}",
                            "check `" + shlex.join(argv[:4]) + " …` with -v", code="helper")
        return cp.returncode == 0

    def recover(self, box: Box, stderr: str) -> bool:
        if "No such container" in stderr or "is not running" in stderr or \
                "no such container" in stderr:
            if not self.start_helper(box):
                self.wait_helper(box)  # someone else's `docker run` may still be starting it
            return True
        return False

    def wait_helper(self, box: Box, timeout: float = 30.0):
        """Until the helper runs: another command may have just created it."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cp = run([self.runtime, "inspect", "-f", "{{.State.Running}}",
                      self.helper_name(box)], timeout=10)
            if cp.stdout.strip() == b"true":
                return
            if cp.returncode != 0 and b"No such" in cp.stderr:
                self.start_helper(box)  # it was on its way out (idle expiry): start anew
            time.sleep(0.05)  # polling the engine for the container state
        raise WandError("the helper container did not start", code="helper")

    def explain_failure(self, box, stderr):
        if "executable file not found" in stderr:
            return WandError(f"the helper image {box.image} has no python3",
                             "pass --image with any image that has python3", code="helper-image")
        return super().explain_failure(box, stderr)

    def forward(self, box: Box, remote_port: int, local_port: int):
        relay = [self.runtime, "exec", "-i", self.helper_name(box), "python3", "-I", "-S",
                 "-c", payload.source("forward"), "kubectl-wand-forward", str(remote_port)]
        return StdioForwarder(lambda: relay, local_port, prespawn=True)

    def target_gone(self, box: Box):
        cp = run([self.runtime, "inspect", "-f", "{{.State.Running}} {{.State.Status}} "
                  "{{.State.ExitCode}}", box.id], timeout=10)
        if cp.returncode != 0:
            return f"container {box.extra.get('name') or box.id[:12]} is gone"
        running, status, code = (cp.stdout.decode().split() + ["?", "?", "?"])[:3]
        if running != "true":
            return (f"container {box.extra.get('name') or box.id[:12]} stopped ({status}, "
                    f"exit code {code})")
        return None

    def remove_helper(self, box: Box):
        run([self.runtime, "rm", "-f", self.helper_name(box)], timeout=30)
