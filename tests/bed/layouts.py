"""Image layouts the world has and the bed image does not: each is the bed's Python 3.14 image
reshaped by a script run as root in a container and committed (nothing pulled), tagged by the
hash of its recipe and base image, so it is built once and reused.

    python tests/bed/layouts.py            # build every layout (setup.sh runs this)

A layout says how its app is started (``argv``, ``user``, docker ``run`` flags), which
interpreter a test may use inside it (``python``), and what kubectl-wand must say of it.
"""

import hashlib
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from typing import List, Optional

BASE = "wand-bed/py314:latest"
APP = "/app/http_app.py"


@dataclass
class Layout:
    name: str
    recipe: str  # sh, run as root in the base image ("" = the base image itself)
    argv: List[str]
    python: str  # an interpreter a test can run inside it (requests, checks)
    user: str = "1000:1000"
    run: List[str] = field(default_factory=list)
    refused: Optional[str] = None  # what ps/exec must say instead of working
    copy_from: Optional[str] = None  # an image whose /usr/bin/python3.13 + stdlib join it

    def image(self, base_id: str) -> str:
        if not self.recipe:
            return BASE
        h = hashlib.sha256((self.recipe + base_id + (self.copy_from or "")).encode()
                           ).hexdigest()[:12]
        return f"wand-bed/layout-{self.name}:{h}"


# A copy of the interpreter tree owned by the app's user, off PATH (uv, pyenv, python-build-
# standalone): the helper must never run it as root.
USER_TREE = """
mkdir -p /opt/py/bin /opt/py/lib
cp /usr/bin/python3.14 /opt/py/bin/python3.14
cp -a /usr/lib/python3.14 /opt/py/lib/python3.14
rm -f /opt/py/lib/python3.14/sitecustomize.py
chown -R 1000:1000 /opt/py
"""

LAYOUTS = [
    Layout("versioned-only", "rm -f /usr/bin/python3\n", ["python3.14", APP], "python3.14"),
    Layout("off-path-user", USER_TREE + "rm -f /usr/bin/python3 /usr/bin/python3.14\n",
           ["/opt/py/bin/python3.14", APP], "/opt/py/bin/python3.14"),
    Layout("venv-copies", "su app -s /bin/sh -c 'python3 -m venv --copies --without-pip "
           "/app/venv'\n", ["/app/venv/bin/python", APP], "/app/venv/bin/python"),
    Layout("venv-symlinks", "su app -s /bin/sh -c 'python3 -m venv --without-pip /app/venv'\n",
           ["/app/venv/bin/python", APP], "/app/venv/bin/python"),
    # distroless-style: no shell, no coreutils, only the interpreter (an entrypoint by path)
    Layout("distroless", "cd /usr/bin && ls | grep -vx 'python3.14' | xargs rm -f\n",
           ["/usr/bin/python3.14", APP], "/usr/bin/python3.14"),
    Layout("pid1-shell", "", ["sh", "-c", f"python3 {APP}; :"], "python3"),
    Layout("pid1-init", "", ["python3", APP], "python3", run=["--init"]),
    Layout("odd-uid", "", ["python3", APP], "python3", user="4242:4242"),
    Layout("ro-root-noexec-tmp", "", ["python3", APP], "python3",
           run=["--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,size=16m"]),
    Layout("debug-env-ignored-E", "", ["python3", "-E", APP], "python3",
           run=["-e", "PYTHON_DISABLE_REMOTE_DEBUG=1"]),
    Layout("debug-env-ignored-I", "", ["python3", "-I", APP], "python3",
           run=["-e", "PYTHON_DISABLE_REMOTE_DEBUG=1"]),
    Layout("debug-env-off", "", ["python3", APP], "python3",
           run=["-e", "PYTHON_DISABLE_REMOTE_DEBUG=1"],
           refused="environment variable PYTHON_DISABLE_REMOTE_DEBUG"),
    Layout("debug-x-off", "", ["python3", "-X", "disable-remote-debug", APP], "python3",
           refused="-X disable-remote-debug"),
    # a helper image whose `python3` is 3.13 beside a python3.14: stage 2 runs in the other
    # interpreter of the helper's own image (used with --image, not as a target)
    Layout("two-pythons", "ln -sf python3.13 /usr/bin/python3\n", ["python3.14", APP],
           "python3.14", copy_from="wand-bed/py313:latest"),
]


def base_id() -> str:
    return subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", BASE],
                          capture_output=True, text=True, check=True).stdout.strip()


def build(layout: Layout, bid: str) -> str:
    """The layout's image, built now if it is not there yet."""
    tag = layout.image(bid)
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    name = "wand-layout-build-" + uuid.uuid4().hex[:8]
    try:
        # the base image runs as root and has no entrypoint: the commit keeps it that way
        subprocess.run(["docker", "create", "--name", name, "--network", "none", BASE,
                        "sh", "-ec", layout.recipe], check=True, capture_output=True,
                       timeout=300)
        if layout.copy_from:
            src = name + "-src"
            subprocess.run(["docker", "create", "--name", src, layout.copy_from], check=True,
                           capture_output=True)
            try:
                for path, into in (("/usr/bin/python3.13", "/usr/bin"),
                                   ("/usr/lib/python3.13", "/usr/lib")):
                    out = subprocess.run(["docker", "cp", f"{src}:{path}", "-"], check=True,
                                         capture_output=True).stdout
                    subprocess.run(["docker", "cp", "-", f"{name}:{into}"], input=out,
                                   check=True, capture_output=True)
            finally:
                subprocess.run(["docker", "rm", "-f", src], capture_output=True)
        subprocess.run(["docker", "start", "-a", name], check=True, capture_output=True,
                       timeout=300)
        subprocess.run(["docker", "commit", "-c", 'CMD ["python3"]', name, tag], check=True,
                       capture_output=True, timeout=300)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return tag


def build_all() -> List[str]:
    bid = base_id()
    return [build(layout, bid) for layout in LAYOUTS]


if __name__ == "__main__":
    for tag in build_all():
        print("layout image", tag)
    sys.exit(0)
