"""Shared by the install tests: the real kubectl, an old-but-supported python3, clean envs."""

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
KUBECTL = os.environ.get("WAND_TEST_KUBECTL", "/usr/bin/kubectl")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def need_kubectl():
    if not os.access(KUBECTL, os.X_OK):
        pytest.skip(f"no kubectl at {KUBECTL} (set WAND_TEST_KUBECTL)")


def find_python(minor: int):
    """A real python3.<minor> binary (not a pyenv shim), or None."""
    pattern = f"python3.{minor}"
    candidates = [os.path.join(d, pattern) for d in os.environ.get("PATH", "").split(os.pathsep)
                  if "shims" not in d]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.{minor}.*/bin/{pattern}")))
    candidates += [f"/usr/bin/{pattern}", f"/usr/local/bin/{pattern}"]
    for c in candidates:
        if os.access(c, os.X_OK):
            cp = subprocess.run([c, "-c", "import sys; print(sys.version_info[1])"],
                                capture_output=True, text=True)
            if cp.returncode == 0 and cp.stdout.strip() == str(minor):
                return c
    return None


def python_shim(where: Path, python: str) -> Path:
    """A folder whose `python3` is ``python`` (what `#!/usr/bin/env python3` will find)."""
    d = Path(where) / "pyshim"
    d.mkdir(parents=True, exist_ok=True)
    link = d / "python3"
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(python)
    return d


def clean_env(path_dirs, home: Path, **extra):
    """Only what a fresh shell would have: PATH as given, a fresh HOME (caches, no kubeconfig)."""
    env = {"PATH": os.pathsep.join([str(p) for p in path_dirs] + [SYSTEM_PATH]),
           "HOME": str(home), "XDG_CACHE_HOME": str(Path(home) / ".cache"),
           "KUBECONFIG": str(Path(home) / "no-kubeconfig"), "LANG": "C.UTF-8", "NO_COLOR": "1"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(argv, env, cwd=None, timeout=60):
    """Run in the clean HOME by default: never in the checkout (its kubectl_wand/ would win)."""
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                          cwd=cwd or env.get("HOME"), timeout=timeout)


def complete_lines(env, *words, cwd=None):
    """`kubectl __complete wand WORDS…` through the real kubectl: (candidates, directive)."""
    cp = run([KUBECTL, "__complete", "wand", *words], env, cwd=cwd)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines and lines[-1].startswith(":"), cp.stdout + cp.stderr
    return lines[:-1], int(lines[-1][1:])


def copy_source(dest: Path):
    """The files a wheel is built from, outside the repo (no build/ or egg-info left there)."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "kubectl_wand", dest / "kubectl_wand",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def load_build_module():
    """krew/build.py as a module (krew/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("wand_krew_build", ROOT / "krew" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("wand_krew_build", mod)
    spec.loader.exec_module(mod)
    return mod
