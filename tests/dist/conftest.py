"""Fixtures of the install tests: one build of the release artefacts, one krew-style install."""

import hashlib
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubectl_wand import __version__
from tests.dist.helpers import (ROOT, clean_env, find_python, load_build_module, need_kubectl,
                                python_shim)

build = load_build_module()
ARCHIVE = f"kubectl-wand-v{__version__}.tar.gz"
KREW_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """`krew/build.py` into a temporary dist/, updating a copy of plugin.yaml."""
    tmp = tmp_path_factory.mktemp("krew")
    manifest = tmp / "plugin.yaml"
    shutil.copy2(ROOT / "plugin.yaml", manifest)
    cp = subprocess.run([sys.executable, str(ROOT / "krew" / "build.py"), "--dist",
                         str(tmp / "dist"), "--manifest", str(manifest)],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    return {"tmp": tmp, "dist": tmp / "dist", "archive": tmp / "dist" / ARCHIVE,
            "zipapp": tmp / "dist" / "kubectl-wand", "manifest": manifest}


def install_like_krew(manifest: Path, archive: Path, krew_root: Path) -> Path:
    """What `kubectl krew install --manifest --archive` does: pick the platform by its
    selector, check the sha256, apply `files` (from → to) into store/NAME/VERSION/, and link
    `bin` as bin/kubectl-NAME."""
    doc = yaml.safe_load(manifest.read_text())
    here = (platform.system().lower(), KREW_ARCH[platform.machine().lower()])
    plat = next(p for p in doc["spec"]["platforms"]
                if (p["selector"]["matchLabels"]["os"], p["selector"]["matchLabels"]["arch"])
                == here)
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == plat["sha256"]
    store = krew_root / "store" / doc["metadata"]["name"] / doc["spec"]["version"]
    for dest, (mode, data) in build.installed_layout(archive, plat["files"]).items():
        target = store / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode & 0o777)
    (krew_root / "bin").mkdir(parents=True, exist_ok=True)
    link = krew_root / "bin" / f"kubectl-{doc['metadata']['name']}"
    link.symlink_to(store / plat["bin"])
    return store


@pytest.fixture(scope="session")
def krew_install(built):
    need_kubectl()
    root = built["tmp"] / "krew-root"
    store = install_like_krew(built["manifest"], built["archive"], root)
    python = find_python(10) or sys.executable
    shim = python_shim(built["tmp"], python)
    home = built["tmp"] / "home"
    home.mkdir()
    return {"root": root, "store": store, "shim": shim, "home": home, "python": python}


def krew_env(k, *extra_dirs, **extra):
    """A fresh shell's env after the install: krew's bin and python3 (3.10) first on PATH."""
    return clean_env([k["root"] / "bin", k["shim"], *extra_dirs], k["home"],
                     KREW_ROOT=k["root"], **extra)
