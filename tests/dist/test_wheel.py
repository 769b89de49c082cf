"""pip install: the wheel, installed into a fresh venv, found by the real kubectl on PATH.

The wheel is built from a copy of the sources (`pip wheel --no-deps`) and installed with
`--no-deps`; its dependencies come from this test environment through a .pth line, so the test
needs no network. The real kubectl (/usr/bin/kubectl) then discovers `kubectl-wand` and
`kubectl_complete-wand` by PATH, exactly as after `pip install kubectl-wand`.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest

from kubectl_wand import __version__
from tests import fake_tools
from tests.dist.helpers import (KUBECTL, clean_env, complete_lines, copy_source, need_kubectl,
                                run)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    need_kubectl()
    tmp = tmp_path_factory.mktemp("wheel")
    src = copy_source(tmp / "src")
    cp = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "-w", str(tmp / "dist"),
                         "--no-deps", "--no-build-isolation", "-q",
                         "--disable-pip-version-check"], capture_output=True, text=True,
                        timeout=120)
    assert cp.returncode == 0, cp.stderr
    wheels = list((tmp / "dist").glob("kubectl_wand-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    cp = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                         "install", "--no-deps", "-q", "--disable-pip-version-check",
                         str(wheels[0])], capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # click, tabulate, debugpy from this environment (appended after the venv's own packages)
    (site / "zz_wand_test_deps.pth").write_text(str(Path(click.__file__).parent.parent) + "\n")
    home = tmp / "home"
    home.mkdir()
    return {"wheel": wheels[0], "venv": venv, "bin": venv / "bin", "home": home, "tmp": tmp}


def env_for(installed, *extra_dirs, **extra):
    return clean_env([installed["bin"], *extra_dirs], installed["home"], **extra)


def test_wheel_contents(installed):
    with zipfile.ZipFile(installed["wheel"]) as z:
        names = z.namelist()
        eps = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "kubectl-wand = kubectl_wand.cli:main" in eps
    assert "kubectl_complete-wand = kubectl_wand.completion:main" in eps
    assert any(n.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in n for n in names)
    for module in ("kubectl_wand/payload/agent.py", "kubectl_wand/payload/injector/stages.py",
                   "kubectl_wand/payload/binaries.py",
                   "kubectl_wand/completion.py", "kubectl_wand/editors.py"):
        assert module in names
    assert installed["wheel"].name.startswith(f"kubectl_wand-{__version__}-py3-none-any")


def test_the_venv_runs_the_wheel_not_the_checkout(installed):
    cp = run([installed["bin"] / "python", "-c", "import kubectl_wand; print(kubectl_wand.__file__)"],
             env_for(installed))
    assert cp.stdout.startswith(str(installed["venv"])), cp.stdout + cp.stderr


def test_kubectl_finds_the_plugin(installed):
    env = env_for(installed)
    cp = run([KUBECTL, "plugin", "list"], env)
    assert str(installed["bin"] / "kubectl-wand") in cp.stdout, cp.stdout + cp.stderr
    cp = run([KUBECTL, "wand", "--help"], env, cwd=installed["tmp"])
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("Usage: kubectl wand [OPTIONS] COMMAND [ARGS]...")
    for name in ("attach", "exec", "ps", "completion"):
        assert f"\n  {name} " in cp.stdout
    cp = run([KUBECTL, "wand", "attach", "--help"], env)
    assert cp.stdout.startswith("Usage: kubectl wand attach [OPTIONS] TARGET")
    assert "--write-launch-json" in cp.stdout
    cp = run([KUBECTL, "wand", "--version"], env)
    assert cp.stdout.strip() == f"kubectl-wand, version {__version__}"
    cp = run([KUBECTL, "wand", "attach", "foo/bar"], env)  # errors keep kubectl's exit codes
    assert cp.returncode == 2 and cp.stderr.startswith("error: unsupported target kind foo")


def test_kubectl_plugin_completion(installed):
    """kubectl >= 1.26 runs kubectl_complete-wand for `kubectl wand <TAB>`."""
    bindir = fake_tools.install(installed["tmp"])
    env = env_for(installed, bindir, WAND_KUBECTL=bindir / "kubectl")
    cands, directive = complete_lines(env, "")
    assert [c.split("\t")[0] for c in cands][:4] == ["ps", "attach", "exec", "demo"]
    assert directive == 4
    cands, directive = complete_lines(env, "attach", "")
    assert "deploy/\tDeployment" in cands and "docker/\tDocker container" in cands
    assert directive == 6  # no space after "deploy/", no file names
    cands, directive = complete_lines(env, "attach", "docker/")
    assert cands == ["docker/web\twand-bed/py314", "docker/api-1\tpython:3.14-slim"]
    cands, _ = complete_lines(env, "attach", "-n", "shop", "deploy/")
    assert cands == ["deploy/cart"]
    cands, _ = complete_lines(env, "ps", "-n", "")
    assert cands == ["default", "kube-system", "shop"]
    cands, _ = complete_lines(env, "exec", "--context", "")
    assert cands == ["kind-wand", "arn:aws:eks:eu-west-1:1:cluster/prod"]
    cands, directive = complete_lines(env, "exec", "deploy/web", "-f", "")
    assert (cands, directive) == ([], 0)  # the shell completes the file name


def test_kubectl_plugin_completion_is_silent_without_a_cluster(installed):
    """The real kubectl with no kubeconfig: names are simply absent, fast, no noise."""
    env = env_for(installed, WAND_COMPLETION_TIMEOUT=2)
    cp = run([KUBECTL, "__complete", "wand", "attach", "deploy/"], env)
    assert cp.returncode == 0
    assert cp.stdout.splitlines() == [":4"]
    assert "Traceback" not in cp.stderr


def test_uv_tool_install(installed):
    """`uv tool install kubectl-wand`: uv (from PyPI) installs the wheel with its dependencies
    resolved from the package index, and the real kubectl finds both entry points."""
    tmp = installed["tmp"]
    uv_venv = tmp / "uv"
    subprocess.run([sys.executable, "-m", "venv", str(uv_venv)], check=True, timeout=120)
    cp = subprocess.run([str(uv_venv / "bin" / "pip"), "install", "-q",
                         "--disable-pip-version-check", "uv"], capture_output=True, text=True,
                        timeout=300)
    if cp.returncode != 0:
        pytest.skip("uv could not be installed from the package index: " + cp.stderr[-300:])
    tools, bin_dir = tmp / "uv-tools", tmp / "uv-bin"
    # the machine's own TLS and proxy settings, as the user's shell has them
    net = {k: v for k, v in os.environ.items()
           if k in ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
                    "https_proxy", "http_proxy", "no_proxy") or k.startswith("UV_INDEX")}
    env = clean_env([uv_venv / "bin"], installed["home"], UV_TOOL_DIR=tools,
                    UV_TOOL_BIN_DIR=bin_dir, UV_CACHE_DIR=tmp / "uv-cache", **net)
    cp = run([uv_venv / "bin" / "uv", "tool", "install", installed["wheel"]], env, timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert "kubectl-wand" in cp.stderr and "kubectl_complete-wand" in cp.stderr
    env = clean_env([bin_dir], installed["home"])
    cp = run([KUBECTL, "wand", "--version"], env)
    assert cp.returncode == 0 and __version__ in cp.stdout, cp.stderr
    lines, directive = complete_lines(env, "at")
    assert any(line.startswith("attach") for line in lines) and directive == 4
