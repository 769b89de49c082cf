"""Usage errors of the CLI: refused before any backend runs, exit status 2, a clear message."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kubectl_wand import cli as cli_mod
from kubectl_wand.cli import cli
from kubectl_wand.errors import UsageError, WandError

BIN = os.path.join(os.path.dirname(sys.executable), "kubectl-wand")


def run_main(monkeypatch, capsys, *args):
    """kubectl_wand.cli.main() as the console script runs it: WandError → message + status."""
    monkeypatch.setattr(sys, "argv", ["kubectl-wand", *args])
    with pytest.raises(SystemExit) as ei:
        cli_mod.main()
    out = capsys.readouterr()
    return ei.value.code, out.out, out.err


@pytest.fixture(autouse=True)
def no_backends(monkeypatch):
    """Any attempt to reach kubectl/docker is a test failure: these are pure usage errors."""
    import kubectl_wand.backends as backends

    def boom(*a, **kw):
        raise AssertionError("a backend was used for a usage error")

    monkeypatch.setattr(backends, "backend_for", boom)


@pytest.mark.parametrize("args, message, hint", [
    (["exec", "deploy/app"], "error: give exactly one of -f FILE or -c CODE",
     "hint: e.g. kubectl wand exec deploy/app -c 'print(1)'"),
    (["exec", "deploy/app", "-f", "x.py", "-c", "print(1)"],
     "error: give exactly one of -f FILE or -c CODE", "hint: e.g."),
    (["attach", "deploy/app", "--port", "65536"], "error: ports must be between 1 and 65535",
     None),
    (["attach", "deploy/app", "--local-port", "-1"], "error: ports must be between", None),
    (["attach", "foo/bar"], "error: unsupported target kind foo in foo/bar",
     "hint: supported: pod, deploy"),
    (["exec", "foo/bar", "-c", "print(1)"], "error: unsupported target kind foo in foo/bar",
     "hint: supported:"),
    (["ps", "foo/bar"], "error: unsupported target kind foo in foo/bar", "hint: supported:"),
    (["exec", "pid/0", "-c", "1"], "error: invalid PID in target pid/0", "hint: use pid/N"),
    (["attach", "deploy/My_App"], "error: invalid Kubernetes name in target deploy/My_App",
     "hint: names are lowercase"),
])
def test_usage_errors_exit_2(monkeypatch, capsys, args, message, hint):
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == message or lines[0].startswith(message)
    if hint:
        assert lines[1].startswith(hint)
    else:
        assert len(lines) == 1


def test_exec_missing_script_exit_2(monkeypatch, capsys, tmp_path):
    code, _, err = run_main(monkeypatch, capsys, "exec", "deploy/app", "-f",
                            str(tmp_path / "nope.py"))
    assert code == 2
    assert err == (f"error: cannot read {tmp_path / 'nope.py'}: No such file or directory\n"
                   "hint: the script is read on this machine, not in the target; check the "
                   "path and its permissions\n")


def test_exec_directory_script_exit_2(monkeypatch, capsys, tmp_path):
    code, _, err = run_main(monkeypatch, capsys, "exec", "deploy/app", "-f", str(tmp_path))
    assert code == 2
    assert err == (f"error: {tmp_path} is a directory, not a script\n"
                   "hint: give the path of a Python file (-f FILE), or '-' to read stdin\n")


@pytest.mark.parametrize("args", [["attach", "deploy/x", "--port", "abc"],
                                  ["nosuchcommand"], ["exec"], ["ps", "-o", "yaml"]])
def test_click_usage_errors_exit_2(monkeypatch, capsys, args):
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert "Error:" in err


def test_runner_surfaces_the_wand_error():
    res = CliRunner().invoke(cli, ["exec", "deploy/app"])
    assert isinstance(res.exception, UsageError)
    assert res.exception.exit_code == 2
    res = CliRunner().invoke(cli, ["attach", "deploy/app", "--port", "0"])
    assert isinstance(res.exception, WandError)
    assert (res.exception.exit_code, res.exception.code) == (2, "usage")


def test_help_lists_commands():
    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0
    commands = res.output.split("Commands:")[1].split()
    for name in ("ps", "attach", "exec", "demo"):
        assert name in commands
    assert "pid/N" in res.output


@pytest.mark.parametrize("name", ["ps", "attach", "exec", "demo"])
def test_each_command_has_help(name):
    res = CliRunner().invoke(cli, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and name in res.output


def test_console_script_exit_status():
    if not os.path.exists(BIN):
        pytest.skip("console script not installed in this environment")
    p = subprocess.run([BIN, "exec", "foo/bar", "-c", "1"], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, NO_COLOR="1"))
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.splitlines()[0] == "error: unsupported target kind foo in foo/bar"
    p = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert p.stdout.startswith("Usage: kubectl wand ")


def test_every_error_code_in_the_code_is_one_of_the_enum():
    """Error codes are one vocabulary (errors.Code): every literal code the CLI, the injector
    or the agent raises or emits is a member."""
    import re
    from pathlib import Path

    from kubectl_wand.errors import Code

    root = Path(__file__).resolve().parents[2] / "kubectl_wand"
    pats = [r'code="([a-z0-9-]+)"', r'Fail\(\s*"([a-z0-9-]+)"', r'"code": "([a-z0-9-]+)"',
            r'return \("([a-z0-9-]+)", ']
    found = {}
    for f in root.rglob("*.py"):
        for pat in pats:
            for m in re.finditer(pat, f.read_text()):
                found.setdefault(m.group(1), str(f.relative_to(root)))
    unknown = {c: f for c, f in found.items() if c not in {m.value for m in Code}}
    assert not unknown, unknown
    assert len(found) > 40
