"""Docker and Podman: a helper container joins the target's PID and network namespaces.

That is the shape of a Kubernetes ephemeral debug container: the app container keeps no extra
capability, no published port and no debugpy; the helper (the target's own image by default)
gets SYS_PTRACE, runs the injector, relays the debug port over stdio, and stays around idle for
a while so later commands reuse it.
"""

import json
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import List, Optional

from kubectl_wand import payload
from kubectl_wand.backends.base import (HELPER_CACHE, HELPER_PYTHON, Backend, Box,
                                        exec_not_found, python_candidates, run)
from kubectl_wand.backends.forward import StdioForwarder
from kubectl_wand.checks import Check, Preflight
from kubectl_wand.errors import WandError

HELPER_IDLE_SECONDS = 600


@dataclass
class DockerBox(Box):
    """A running container (``image`` is the helper's image: --image, else the app's)."""

    name: str = ""  # the container's name, for messages
    image_name: Optional[str] = None  # the helper image as the user named it
    python_hints: List[str] = field(default_factory=list)  # interpreters worth trying
    helper_python: Optional[str] = None  # the one this command started the helper with
    recoveries: int = 0  # injector start failures repaired so far


class DockerBackend(Backend):
    slow_forward = True  # its relays start ahead (prespawn): engine/attach starts it early
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

    def resolve(self, target) -> List[DockerBox]:
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
        config = info.get("Config") or {}
        hints = [info.get("Path") or ""] + list(info.get("Args") or []) + \
            list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
        return [DockerBox(id=info["Id"], display=f"{self.runtime}/{target.name}",
                          image=self.image or info.get("Image"),
                          name=info.get("Name", "").lstrip("/"),
                          image_name=self.image or config.get("Image"),
                          python_hints=python_candidates(*hints))]

    def helper_name(self, box: DockerBox) -> str:
        return helper_name(box.id, box.image)

    def cache_dir(self, box: DockerBox):
        return HELPER_CACHE

    def trust(self, box: DockerBox) -> str:
        return "image"  # a fresh container of the image: its files, never the target's layer

    def helper_python(self, box: DockerBox) -> str:
        """The helper's own interpreter: the one this command started it with, else the link
        its idle loop made (payload/idle.py)."""
        return box.helper_python or HELPER_PYTHON

    def injector_argv(self, box: DockerBox) -> List[str]:
        return [self.runtime, "exec", "-i", self.helper_name(box), self.helper_python(box),
                "-I", "-S", "-c", payload.BOOT, "kubectl-wand-injector"]

    def start_helper(self, box: DockerBox) -> bool:
        """Start the helper with the first interpreter of its image that exists; True if this
        call started it (`docker run -d` returns once the container runs), False if another
        command had just created it. The helper only ever runs its own image's files."""
        tried = []
        for python in box.python_hints or python_candidates():
            argv = [self.runtime, "run", "-d", "--rm", "--name", self.helper_name(box),
                    "--label", "kubectl-wand.helper-for=" + box.id,
                    "--label", "kubectl-wand.image=" + (box.image_name or ""),
                    "--pid", "container:" + box.id, "--network", "container:" + box.id,
                    "--cap-add", "SYS_PTRACE", "--user", "0:0", "--entrypoint", python,
                    box.image, "-I", "-S", "-c", payload.source("idle"),
                    "kubectl-wand-helper", str(self.idle)]
            cp = run(argv, timeout=120)
            err = cp.stderr.decode("utf-8", "replace").strip()
            if cp.returncode == 0:
                box.helper_python = python
                return True
            if "already in use" in err:
                return False
            if exec_not_found(err):
                tried.append(python)
                run([self.runtime, "rm", "-f", self.helper_name(box)], timeout=30)
                continue
            raise WandError(f"could not start the helper container: {err}",
                            "check `" + shlex.join(argv[:4]) + " …` with -v", code="helper")
        image = box.image_name or box.image
        raise WandError(f"no Python interpreter found in the helper image {image} "
                        f"(tried {', '.join(tried)})",
                        "pass --image with an image that has the target's Python version "
                        "(the helper runs its own interpreter, never the target's)",
                        code="helper-image")

    def recover(self, box: DockerBox, stderr: str) -> bool:
        box.recoveries += 1
        if box.recoveries > 2:
            return False
        if "No such container" in stderr or "is not running" in stderr or \
                "no such container" in stderr:
            if not self.start_helper(box):
                self.wait_helper(box)  # someone else's `docker run` may still be starting it
            return True
        if exec_not_found(stderr) and not box.helper_python:
            # another command created the helper a moment ago: its link may not be there yet
            box.helper_python = self._entrypoint(box)
            return bool(box.helper_python)
        return False

    def _entrypoint(self, box: DockerBox):
        cp = run([self.runtime, "inspect", "-f", "{{json .Config.Entrypoint}}",
                  self.helper_name(box)], timeout=10)
        try:
            return json.loads(cp.stdout)[0]
        except (ValueError, IndexError, TypeError):
            return None

    def wait_helper(self, box: DockerBox, timeout: float = 30.0):
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
        if exec_not_found(stderr):
            return WandError(f"the helper for {box.display} lost its interpreter link",
                             f"remove it (`{self.runtime} rm -f {self.helper_name(box)}`) and "
                             "retry", code="helper-image")
        return super().explain_failure(box, stderr)

    def forward(self, box: DockerBox, remote_port: int, local_port: int):
        relay = [self.runtime, "exec", "-i", self.helper_name(box), self.helper_python(box),
                 "-I", "-S",
                 "-c", payload.source("forward"), "kubectl-wand-forward", str(remote_port)]
        return StdioForwarder(lambda: relay, local_port, prespawn=True)

    def target_gone(self, box: DockerBox):
        cp = run([self.runtime, "inspect", "-f", "{{.State.Running}} {{.State.Status}} "
                  "{{.State.ExitCode}}", box.id], timeout=10)
        if cp.returncode != 0:
            return f"container {box.name or box.id[:12]} is gone"
        running, status, code = (cp.stdout.decode().split() + ["?", "?", "?"])[:3]
        if running != "true":
            return (f"container {box.name or box.id[:12]} stopped ({status}, "
                    f"exit code {code})")
        return None

    def preflight(self, target, start_listing) -> Preflight:
        """The engine answers, the container runs; the helper is described once listed."""
        sec = f"{self.runtime} engine"
        try:
            cp = run([self.runtime, "version", "--format", "{{.Server.Version}}"], timeout=20)
        except WandError as e:
            return Preflight([Check(sec, self.runtime, False, e.message, e.hint)], stop=e.message)
        if cp.returncode != 0:
            text = cp.stderr.decode("utf-8", "replace").strip()
            return Preflight([Check(sec, "engine", False, f"not reachable: {text}",
                                    "start it (e.g. `dockerd`) or check access to its socket")],
                             stop="engine not reachable")
        checks = [Check(sec, "engine", True,
                        f"reachable, server {cp.stdout.decode().strip() or '?'}")]
        try:
            box = self.resolve(target)[0]
        except WandError as e:
            return Preflight(checks + [Check("target", str(target), False, e.message, e.hint)],
                             stop=e.message)
        checks.append(Check("target", str(target), True, f"container {box.id[:12]} is running"))
        helper = Check("target", "helper", True,
                       f"helper container {self.helper_name(box)} runs beside it (image "
                       f"{box.image_name or box.image[:19]}, CAP_SYS_PTRACE, "
                       "shared PID namespace; it runs the image's own Python)")
        return Preflight(checks, box=box, listing=start_listing(box), after=[helper])

    def start_throwaway(self, name: str, image: str, argv: List[str]):
        """A locked-down container of our own (uid 1000, no network, no capabilities)."""
        cp = run([self.runtime, "run", "-d", "--rm", "--name", name, "--user", "1000:1000",
                  "--network", "none", "--cap-drop", "ALL", image, *argv], timeout=300)
        if cp.returncode != 0:
            raise WandError(cp.stderr.decode("utf-8", "replace").strip(), code="engine")

    def wait_for_log(self, name: str, line: str, timeout: float) -> bool:
        """Follow a container's log until ``line`` (a real signal, not a sleep)."""
        import time

        p = subprocess.Popen([self.runtime, "logs", "-f", name], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        try:
            for got in p.stdout:
                if got.strip() == line.encode():
                    return True
                if time.monotonic() > deadline:
                    return False
            return False
        finally:
            p.kill()
            p.wait()

    def exec_in(self, name: str, argv: List[str]) -> subprocess.Popen:
        return subprocess.Popen([self.runtime, "exec", name, *argv], stdout=subprocess.PIPE)

    def remove_container(self, name: str):
        run([self.runtime, "rm", "-f", name], timeout=60)

    def remove_helper(self, box: DockerBox):
        run([self.runtime, "rm", "-f", self.helper_name(box)], timeout=30)


def helper_name(container_id: str, image: str) -> str:
    """One helper per (target container, helper image): --image always takes effect."""
    import zlib

    return "kubectl-wand-helper-%s-%08x" % (container_id[:12], zlib.crc32((image or "").encode()))
