"""krew and the single-file zipapp: the archive, the manifest, and an install done krew's way.

krew itself cannot be downloaded here: conftest.install_like_krew does what `kubectl krew
install --manifest=plugin.yaml --archive=…` does, and the real kubectl then runs the plugin from
there with python3.10 first on PATH.
"""

import copy
import io
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from kubectl_wand import __version__
from tests import fake_tools
from tests.dist.conftest import ARCHIVE, build, krew_env
from tests.dist.helpers import (KUBECTL, ROOT, clean_env, complete_lines, find_python,
                                python_shim, run)


def doc_of(path):
    return yaml.safe_load(Path(path).read_text())


# ------------------------------------------------------------------ the manifest

def test_built_manifest_passes_krew_index_rules(built):
    assert build.lint_manifest(doc_of(built["manifest"]), __version__, built["archive"]) == []
    cp = subprocess.run([sys.executable, str(ROOT / "krew" / "build.py"), "--check", "--dist",
                         str(built["dist"]), "--manifest", str(built["manifest"])],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert "krew-index rules pass" in cp.stdout


def test_committed_manifest(built):
    """plugin.yaml in the repo: valid, this version; a build changes only version/uri/sha256."""
    committed = (ROOT / "plugin.yaml").read_text()
    doc = yaml.safe_load(committed)
    assert build.lint_manifest(doc, __version__) == []
    spec = doc["spec"]
    assert spec["version"] == f"v{__version__}"
    assert "python3 >= 3.10" in spec["caveats"]
    assert "kubectl_complete-wand" in spec["caveats"]
    sha = build.sha256_file(built["archive"])
    rebuilt = built["manifest"].read_text().splitlines()
    for old, new in zip(committed.splitlines(), rebuilt, strict=True):
        if old != new:
            assert re.match(r"\s*(sha256|uri|version):", old), (old, new)
    assert all(p["sha256"] == sha for p in doc_of(built["manifest"])["spec"]["platforms"])
    uris = {p["uri"] for p in doc_of(built["manifest"])["spec"]["platforms"]}
    assert uris == {f"{build.HOMEPAGE}/releases/download/v{__version__}/{ARCHIVE}"}


def _broken(doc, change):
    d = copy.deepcopy(doc)
    change(d)
    return d


@pytest.mark.parametrize("change, problem", [
    (lambda d: d.update(apiVersion="krew.googlecontainertools.github.com/v1alpha1"),
     "apiVersion must be"),
    (lambda d: d.update(kind="Plugins"), "kind must be Plugin"),
    (lambda d: d["metadata"].update(name="kubectl-wand"), "metadata.name must be 'wand'"),
    (lambda d: d["spec"].update(version="0.1.0"), "not a semantic version with a leading v"),
    (lambda d: d["spec"].update(version="v9.9.9"), "does not match kubectl_wand.__version__"),
    (lambda d: d["spec"]["platforms"][0].update(sha256="A" * 64), "64 lowercase hex"),
    (lambda d: d["spec"]["platforms"][1].update(sha256="abc"), "64 lowercase hex"),
    (lambda d: d["spec"]["platforms"][0].update(files=[{"from": "kubectl-wand", "to": "."}]),
     "must install the LICENSE"),
    (lambda d: d["spec"]["platforms"][0].pop("selector"), "has no selector"),
    (lambda d: d["spec"]["platforms"].append(copy.deepcopy(d["spec"]["platforms"][0])),
     "duplicates platform"),
    (lambda d: d["spec"]["platforms"].pop(3), "lacks darwin/arm64"),
    (lambda d: d["spec"]["platforms"][0].pop("bin"), "bin is missing"),
    (lambda d: d["spec"].pop("caveats"), "spec.caveats is missing"),
    (lambda d: d["spec"].update(caveats="enjoy"), "python3 >= 3.10 is needed"),
    (lambda d: d["spec"].update(shortDescription="x" * 51), "longer than 50"),
    (lambda d: d["spec"]["platforms"][0].update(uri="http://x/a.tar.gz"), "https:// URL of a"),
    (lambda d: d["spec"]["platforms"][0].update(bin="kubectl-wands"), "not in the installed files"),
])
def test_lint_catches(built, change, problem):
    doc = doc_of(built["manifest"])
    problems = build.lint_manifest(_broken(doc, change), __version__, built["archive"])
    assert any(problem in p for p in problems), problems


def test_lint_checks_the_archive(built, tmp_path):
    doc = doc_of(built["manifest"])
    other = tmp_path / ARCHIVE
    with tarfile.open(other, "w:gz") as tf:  # wrong sha, and a bin without its exec bit
        for name in ("kubectl-wand", "LICENSE"):
            info = tarfile.TarInfo(name)
            info.size, info.mode = 1, 0o644
            tf.addfile(info, io.BytesIO(b"x"))
    problems = build.lint_manifest(doc, __version__, other)
    assert any("sha256 does not match" in p for p in problems)
    assert any("not executable inside the archive" in p for p in problems)


# ------------------------------------------------------------------ the archive and zipapp

def test_archive_layout(built):
    with tarfile.open(built["archive"], "r:gz") as tf:
        members = {m.name: m for m in tf.getmembers()}
        assert sorted(members) == ["LICENSE", "kubectl-wand", "kubectl_complete-wand"]
        assert all(m.isfile() and m.uid == 0 and m.mtime == 0 for m in members.values())
        assert members["kubectl-wand"].mode == 0o755
        assert members["kubectl_complete-wand"].mode == 0o755
        assert members["LICENSE"].mode == 0o644
        assert tf.extractfile("LICENSE").read() == (ROOT / "LICENSE").read_bytes()
        assert tf.extractfile("kubectl-wand").read() == built["zipapp"].read_bytes()
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    layout = build.installed_layout(built["archive"],
                                    doc_of(built["manifest"])["spec"]["platforms"][0]["files"])
    assert sorted(layout) == ["LICENSE", "kubectl-wand", "kubectl_complete-wand"]


def test_zipapp_contents(built):
    data = built["zipapp"].read_bytes()
    assert data.startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(built["zipapp"]) as z:
        names = set(z.namelist())
        assert {"__main__.py", "kubectl_wand/__init__.py", "kubectl_wand/engine/__init__.py",
                "kubectl_wand/payload/agent.py", "kubectl_wand/engine/debugpy.tgz",
                "click/__init__.py", "tabulate/__init__.py"} <= names
        assert not [n for n in names if n.endswith((".so", ".pyd", ".pyc", ".dylib"))]
        assert any(n.startswith("click-") and n.endswith(".dist-info/METADATA") for n in names)
        assert not any(n.startswith("debugpy/") for n in names)  # shipped as its archive only
        with tarfile.open(fileobj=io.BytesIO(z.read("kubectl_wand/engine/debugpy.tgz"))) as tf:
            assert "debugpy/server/api.py" in tf.getnames()
    assert len(data) < 3 * 1024 * 1024


def test_build_is_reproducible(built, tmp_path):
    cp = subprocess.run([sys.executable, str(ROOT / "krew" / "build.py"), "--dist",
                         str(tmp_path), "--no-manifest"], capture_output=True, text=True,
                        timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert build.sha256_file(tmp_path / ARCHIVE) == build.sha256_file(built["archive"])


def test_dist_is_git_ignored():
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout")
    cp = subprocess.run(["git", "check-ignore", "--stdin", "-v", "-n"], cwd=ROOT, text=True,
                        input=f"dist/kubectl-wand\ndist/{ARCHIVE}\ntests/dist/test_krew.py\n",
                        capture_output=True)
    verdict = {line.split("\t")[1]: line.split("\t")[0] != "::" for line in cp.stdout.splitlines()}
    assert verdict == {"dist/kubectl-wand": True, f"dist/{ARCHIVE}": True,
                       "tests/dist/test_krew.py": False}, cp.stdout + cp.stderr


# ------------------------------------------------------------------ installed krew's way

def test_kubectl_runs_the_krew_plugin_on_python310(krew_install):
    env = krew_env(krew_install)
    cp = run(["python3", "-c", "import sys; print(sys.version_info[:2])"], env)
    if find_python(10):
        assert cp.stdout.strip() == "(3, 10)"
    cp = run([KUBECTL, "wand", "--help"], env)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("Usage: kubectl wand [OPTIONS] COMMAND [ARGS]...")
    cp = run([KUBECTL, "wand", "--version"], env)
    assert cp.stdout.strip() == f"kubectl-wand, version {__version__}"
    cp = run([KUBECTL, "wand", "exec", "pid/0", "-c", "1"], env)
    assert cp.returncode == 2 and cp.stderr.startswith("error: invalid PID in target pid/0")
    # the second run uses the unpacked copy in the cache
    assert list((krew_install["home"] / ".cache" / "kubectl-wand").glob("app-*/__main__.py"))


def test_zipapp_in_place_and_debugpy_tree(krew_install):
    """Without the cache (read-only home): runs from the zip; debugpy's tree unpacks on demand."""
    env = krew_env(krew_install, WAND_ZIPAPP_IN_PLACE=1)
    cp = run([KUBECTL, "wand", "ps", "--help"], env)
    assert cp.returncode == 0 and cp.stdout.startswith("Usage: kubectl wand ps")
    app = krew_install["store"] / "kubectl-wand"
    code = (f"import sys; sys.path.insert(0, {str(app)!r});"
            "from kubectl_wand.engine import bundle;"
            "d = bundle.debugpy_dir(); print(d); print((d / 'server' / 'api.py').is_file());"
            "print(bundle.debugpy_tgz()[:2] == b'\\x1f\\x8b')")
    cp = run(["python3", "-c", code], env)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0].startswith(str(krew_install["home"] / ".cache" / "kubectl-wand"))
    assert lines[1:] == ["True", "True"]


def test_too_old_python_is_refused_clearly(krew_install, tmp_path):
    old = find_python(9) or find_python(8)
    if not old:
        pytest.skip("no python3 < 3.10 on this machine")
    shim = python_shim(tmp_path, old)
    env = clean_env([krew_install["root"] / "bin", shim], krew_install["home"])
    cp = run([KUBECTL, "wand", "--help"], env)
    assert cp.returncode == 1
    assert cp.stderr.startswith("error: kubectl-wand needs python3 >= 3.10;")


def test_completion_after_the_caveats_step(krew_install, built):
    """The caveats' `ln -sf …` line, run as written, makes `kubectl wand <TAB>` work."""
    caveats = doc_of(built["manifest"])["spec"]["caveats"]
    step = next(line.strip() for line in caveats.splitlines() if line.strip().startswith("ln "))
    env = krew_env(krew_install)
    cands, _ = complete_lines(env, "")
    assert cands == []  # before: kubectl finds no kubectl_complete-wand
    cp = run(["sh", "-c", step], env)
    assert cp.returncode == 0, cp.stderr
    bindir = fake_tools.install(built["tmp"])
    env = krew_env(krew_install, bindir, WAND_KUBECTL=bindir / "kubectl")
    cands, directive = complete_lines(env, "")
    assert [c.split("\t")[0] for c in cands][:3] == ["ps", "attach", "exec"]
    assert directive == 4
    cands, _ = complete_lines(env, "attach", "docker/")
    assert cands == ["docker/web\twand-bed/py314", "docker/api-1\tpython:3.14-slim"]
    cands, _ = complete_lines(env, "ps", "--namespace", "")
    assert cands == ["default", "kube-system", "shop"]


def test_archive_completion_helper(krew_install, built):
    """The shipped kubectl_complete-wand script, linked instead of the symlink trick."""
    bindir = fake_tools.install(built["tmp"])
    env = krew_env(krew_install, bindir, WAND_KUBECTL=bindir / "kubectl")
    cp = run([krew_install["store"] / "kubectl_complete-wand", "attach", "deploy/"], env)
    assert cp.stdout.splitlines() == ["deploy/web", "deploy/worker", ":4"]
