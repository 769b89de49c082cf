"""Completion: the candidates, the protocol, the command table, the shell scripts.

Names come from fake kubectl/docker scripts (tests/fake_tools.py); the real-kubectl round trip
(`kubectl __complete wand …`) is in tests/dist.
"""

import importlib
import os
import shutil
import subprocess
import sys
import time

import click
import pytest

from kubectl_wand import completion
from kubectl_wand.cli import COMMANDS
from kubectl_wand.cli.completion import SCRIPTS
from tests import fake_tools

BIN = os.path.dirname(sys.executable)


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    bindir = fake_tools.install(tmp_path)
    log = tmp_path / "calls.log"
    for k, v in fake_tools.env(bindir, base={}, FAKE_LOG=log).items():
        monkeypatch.setenv(k, v if k != "PATH" else v + os.environ["PATH"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(completion, "_TABLE", None)
    return log


def values(words, cur):
    cands, directive = completion.complete(words, cur)
    return [v for v, _ in cands], directive


def test_subcommands_with_descriptions(fakes):
    cands, directive = completion.complete([], "")
    names = [v for v, _ in cands]
    assert names == list(COMMANDS)
    assert all(d for _, d in cands)
    assert directive == completion.NO_FILE
    assert values([], "at") == (["attach"], completion.NO_FILE)


def test_target_kinds_then_names(fakes):
    kinds, directive = values(["attach"], "")
    assert kinds[:2] == ["deploy/", "pod/"]
    assert {"docker/", "podman/", "pid/", "sts/", "svc/", "ksvc/"} <= set(kinds)
    assert "local" not in kinds
    assert directive == completion.NO_SPACE | completion.NO_FILE  # no space after "deploy/"
    assert "local" in values(["ps"], "")[0]  # ps also lists this host
    assert values(["attach"], "deploy/") == (["deploy/web", "deploy/worker"], completion.NO_FILE)
    assert values(["attach"], "deploy/wo")[0] == ["deploy/worker"]
    # long kind names and plurals work, and the typed spelling is kept
    assert values(["attach"], "deployment/")[0] == ["deployment/web", "deployment/worker"]
    assert values(["exec"], "sts/")[0] == ["sts/db"]
    assert values(["exec"], "ksvc/")[0] == ["ksvc/hello"]


def test_names_follow_namespace_and_context_flags(fakes):
    assert values(["attach", "-n", "shop"], "deploy/")[0] == ["deploy/cart"]
    assert values(["attach", "--namespace=shop"], "deploy/")[0] == ["deploy/cart"]
    values(["attach", "--context", "kind-wand", "--kubeconfig", "/k"], "deploy/")
    last = fakes.read_text().splitlines()[-1]
    assert last == ("kubectl --kubeconfig /k --context kind-wand --request-timeout=2s "
                    "get deployments -o name")


def test_bare_name_is_a_pod(fakes):
    assert values(["attach"], "web")[0] == ["web-7d9c-abcde"]
    cands, directive = values(["attach"], "d")
    assert cands == ["deploy/", "ds/", "docker/", "db-0"]
    assert directive & completion.NO_SPACE


def test_docker_containers_without_helpers(fakes):
    cands, directive = completion.complete(["attach"], "docker/")
    assert cands == [("docker/web", "wand-bed/py314"), ("docker/api-1", "python:3.14-slim")]
    assert directive == completion.NO_FILE
    assert values(["ps"], "podman/a")[0] == ["podman/api-1"]


def test_local_pids(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    for pid, argv in ((10, [b"/usr/bin/python3.14", b"app.py"]), (11, [b"bash"]),
                      (12, [b"gunicorn", b"app:app"])):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(argv) + b"\0")
    (proc / "self").mkdir()
    assert completion.local_pythons(str(proc)) == [(10, "/usr/bin/python3.14 app.py"),
                                                    (12, "gunicorn app:app")]
    monkeypatch.setattr(completion, "local_pythons", lambda: [(10, "python3 app.py")])
    assert completion.complete(["exec"], "pid/") == ([("pid/10", "python3 app.py")],
                                                     completion.NO_FILE)


def test_flag_values(fakes):
    assert values(["attach", "-n"], "")[0] == ["default", "kube-system", "shop"]
    assert values(["ps", "--namespace"], "s")[0] == ["shop"]
    assert values(["ps"], "--namespace=k")[0] == ["--namespace=kube-system"]
    assert values(["attach", "--context"], "")[0] == ["kind-wand",
                                                      "arn:aws:eks:eu-west-1:1:cluster/prod"]
    assert values(["attach", "deploy/web", "-c"], "")[0] == ["app", "sidecar"]
    assert values(["ps", "db-0", "--container"], "")[0] == ["postgres"]
    assert values(["attach", "--pod"], "")[0] == ["web-7d9c-abcde", "db-0"]
    assert values(["ps", "-o"], "")[0] == ["table", "wide", "json"]
    assert values(["attach", "-o"], "j")[0] == ["json"]
    assert values(["exec", "x", "--signal"], "U")[0] == ["USR1", "USR2", "URG"]
    assert values(["completion"], "")[0] == ["bash", "fish", "zsh"]
    # files: no candidates, and the shell may complete file names (directive 0)
    assert values(["exec", "x", "-f"], "") == ([], completion.DEFAULT)
    assert values(["attach", "x", "--kubeconfig"], "") == ([], completion.DEFAULT)
    # exec's -c is code, not a container: nothing to offer
    assert values(["exec", "deploy/web", "-c"], "") == ([], completion.NO_FILE)
    # free values and a second positional: nothing, and no file names
    assert values(["attach", "--port"], "") == ([], completion.NO_FILE)
    assert values(["attach", "deploy/web"], "") == ([], completion.NO_FILE)


def test_options_listed(fakes):
    opts, directive = values(["attach"], "-")
    assert {"-n", "--namespace", "--context", "--kubeconfig", "-o", "--write-launch-json",
            "--wait-for-client", "-h", "--help"} <= set(opts)
    assert directive == completion.NO_FILE
    assert values(["attach"], "--w") == (["--wait-for-client", "--write-launch-json"],
                                         completion.NO_FILE)
    cands, _ = completion.complete(["ps"], "--namespace")
    assert cands == [("--namespace", "Kubernetes namespace (default: the context's)")]
    assert values([], "--v")[0] == ["--version"]


def test_every_click_option_is_offered(fakes):
    """The table is read from the click commands, so nothing drifts: check it against them."""
    for name, module in COMMANDS.items():
        try:
            cmd = importlib.import_module(module).command
        except ImportError:
            continue  # a command still being written elsewhere
        offered = set(values([name], "-")[0])
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert set(p.opts + p.secondary_opts) <= offered, (name, p.opts)
                for o in p.opts:
                    kind = completion.command_spec(name)[2][o][0]
                    assert (kind is None) == (p.is_flag and not p._flag_needs_value), (name, o)
                    if isinstance(p.type, click.Choice) and p.name != "nudge":
                        assert kind == list(p.type.choices)
    assert completion.SIGNALS[2:] == list(__import__("kubectl_wand.engine.ops", fromlist=["x"])
                                          .SIGNALS)


def test_table_is_cached_and_rebuilt_when_code_changes(fakes, tmp_path, monkeypatch):
    completion.complete([], "")
    cached = list((tmp_path / "cache" / "kubectl-wand").glob("completion-*.json"))
    assert len(cached) == 1
    built = []
    monkeypatch.setattr(completion, "build_table", lambda: built.append(1) or {"x": ["d", [], {}]})
    monkeypatch.setattr(completion, "_TABLE", None)
    assert values([], "")[0] == list(COMMANDS)  # from the cache: nothing imported
    assert built == []
    monkeypatch.setattr(completion, "_TABLE", None)
    monkeypatch.setattr(completion, "_code_stamp", lambda: "otherstamp")
    assert values([], "")[0] == ["x"]  # new code: rebuilt, and older tables removed
    assert built == [1]
    names = [p.name for p in (tmp_path / "cache" / "kubectl-wand").iterdir()]
    assert names == ["completion-otherstamp.json"]


@pytest.mark.parametrize("mode", ["FAKE_FAIL", "FAKE_SLEEP"])
def test_silent_and_bounded_on_errors(fakes, monkeypatch, mode):
    monkeypatch.setenv(mode, "5")
    monkeypatch.setattr(completion, "TIMEOUT", 0.5)
    t0 = time.monotonic()
    assert values(["attach"], "deploy/") == ([], completion.NO_FILE)
    assert values(["attach", "-n"], "") == ([], completion.NO_FILE)
    assert values(["attach"], "docker/") == ([], completion.NO_FILE)
    assert time.monotonic() - t0 < 3


def test_missing_tools_are_silent(fakes, monkeypatch):
    monkeypatch.setenv("WAND_KUBECTL", "/nonexistent/kubectl")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert values(["attach"], "deploy/") == ([], completion.NO_FILE)
    assert values(["attach"], "docker/") == ([], completion.NO_FILE)


def test_protocol_output(fakes, capsys):
    assert completion.main(["attach", "docker/"]) == 0
    assert capsys.readouterr().out == ("docker/web\twand-bed/py314\n"
                                       "docker/api-1\tpython:3.14-slim\n:4\n")
    completion.main([])
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == ":4" and out[0].startswith("ps\t")
    assert completion.render([("a\tb", "x\ny")], 0) == "a b\tx y\n:0\n"


def test_broken_table_never_shows_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr(completion, "complete", lambda w, c: 1 / 0)
    assert completion.main(["x", ""]) == 0
    assert capsys.readouterr().out == ":4\n"


def test_console_entry_points(fakes):
    """kubectl_complete-wand, `kubectl-wand __complete` and a kubectl_complete-wand symlink."""
    helper = os.path.join(BIN, "kubectl_complete-wand")
    wand = os.path.join(BIN, "kubectl-wand")
    if not (os.path.exists(helper) and os.path.exists(wand)):
        pytest.skip("console scripts not installed in this environment")
    env = dict(os.environ)
    for argv in ([helper, "attach", "docker/"], [wand, "__complete", "attach", "docker/"]):
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30).stdout
        assert out.splitlines() == ["docker/web\twand-bed/py314",
                                    "docker/api-1\tpython:3.14-slim", ":4"]


# ------------------------------------------------------------------ shell scripts

def bash_complete(line, comp_words, tmp_path, env):
    script = tmp_path / "wand.bash"
    script.write_text(SCRIPTS["bash"])
    words = " ".join("'" + w.replace("'", "'\\''") + "'" for w in comp_words)
    code = (f"source {script}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n"
            f"COMP_WORDS=({words})\nCOMP_CWORD={len(comp_words) - 1}\n"
            "_kubectl_wand\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    cp = subprocess.run(["bash", "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert cp.returncode == 0, cp.stderr
    return [x for x in cp.stdout.splitlines() if x]


@pytest.mark.skipif(not shutil.which("bash"), reason="bash not installed")
def test_bash_script(fakes, tmp_path):
    if not os.path.exists(os.path.join(BIN, "kubectl-wand")):
        pytest.skip("console script not installed in this environment")
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"])
    assert bash_complete("kubectl-wand at", ["kubectl-wand", "at"], tmp_path, env) == ["attach"]
    assert bash_complete("kubectl-wand attach docker/", ["kubectl-wand", "attach", "docker/"],
                         tmp_path, env) == ["docker/web", "docker/api-1"]
    assert bash_complete("kubectl-wand ps -n ", ["kubectl-wand", "ps", "-n", ""],
                         tmp_path, env) == ["default", "kube-system", "shop"]
    # bash breaks words at ':' and '=': only its own last piece is replaced
    got = bash_complete("kubectl-wand ps --context=arn:aws",
                        ["kubectl-wand", "ps", "--context", "=", "arn", ":", "aws"],
                        tmp_path, env)
    assert got == ["aws:eks:eu-west-1:1:cluster/prod"]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh not installed")
def test_zsh_script(fakes, tmp_path):
    """The zsh function, with compsys' _describe/_files replaced by printers."""
    script = tmp_path / "_kubectl-wand"
    script.write_text(SCRIPTS["zsh"])
    assert subprocess.run(["zsh", "-n", str(script)], timeout=30).returncode == 0
    code = f"""
_describe() {{ print -r -- "DESCRIBE ${{@[5,-1]}}"; print -rl -- "${{(@P)4}}"; }}
_files() {{ print FILES; }}
compdef() {{ print "COMPDEF $*"; }}
source {script}
words=(kubectl-wand attach docker/); CURRENT=3; _kubectl_wand
words=(kubectl-wand ps --context ''); CURRENT=4; _kubectl_wand
words=(kubectl-wand exec x -f ''); CURRENT=5; _kubectl_wand
words=(kubectl-wand at); CURRENT=2; _kubectl_wand
"""
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"])
    cp = subprocess.run(["zsh", "-f", "-c", code], capture_output=True, text=True, env=env,
                        timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == [
        "COMPDEF _kubectl_wand kubectl-wand",
        "DESCRIBE ", "docker/web:wand-bed/py314", "docker/api-1:python:3.14-slim",
        "DESCRIBE ", "kind-wand", "arn\\:aws\\:eks\\:eu-west-1\\:1\\:cluster/prod",
        "FILES",
        "DESCRIBE ", "attach:" + completion.command_spec("attach")[0],
    ]


@pytest.mark.skipif(not shutil.which("fish"), reason="fish not installed")
def test_fish_script(fakes, tmp_path):
    script = tmp_path / "kubectl-wand.fish"
    script.write_text(SCRIPTS["fish"])
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], HOME=str(tmp_path))
    cp = subprocess.run(["fish", "--no-config", "-c", f"source {script}; "
                         "complete -C 'kubectl-wand attach docker/'; echo ---; "
                         "complete -C 'kubectl-wand ps -n s'"],
                        capture_output=True, text=True, env=env, timeout=30)
    assert cp.returncode == 0, cp.stderr
    first, second = cp.stdout.split("---\n")
    assert sorted(first.splitlines()) == ["docker/api-1\tpython:3.14-slim",
                                          "docker/web\twand-bed/py314"]
    assert second.splitlines() == ["shop"]


def test_completion_command_prints_scripts():
    from click.testing import CliRunner

    from kubectl_wand.cli import cli

    for shell in ("bash", "zsh", "fish"):
        res = CliRunner().invoke(cli, ["completion", shell])
        assert res.exit_code == 0
        assert res.output == SCRIPTS[shell]
        assert "__complete" in res.output
    assert CliRunner().invoke(cli, ["completion", "tcsh"]).exit_code == 2
