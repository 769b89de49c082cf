"""read_script refusals, pick_process without a TTY, remote_root for pathMappings."""

import io
import sys

import pytest

from kubectl_wand.engine import attach, ops, runcode
from kubectl_wand.engine.procs import Proc, assign_roles
from kubectl_wand.errors import WandError


def test_read_script_returns_bytes(tmp_path):
    f = tmp_path / "s.py"
    f.write_bytes(b"print('hi')\n")
    assert runcode.read_script(str(f)) == b"print('hi')\n"


def test_read_script_keeps_non_utf8_bytes_untouched(tmp_path):
    # no decoding on the CLI side: a latin-1 file with a coding cookie goes through byte for byte
    data = b"# -*- coding: latin-1 -*-\nprint('caf\xe9')\n"
    f = tmp_path / "latin.py"
    f.write_bytes(data)
    assert runcode.read_script(str(f)) == data


def test_read_script_exactly_at_limit_is_accepted(tmp_path):
    f = tmp_path / "big.py"
    with open(f, "wb") as fh:
        fh.truncate(runcode.MAX_SCRIPT_BYTES)
    # a sparse file of NULs: accepted by size, then refused as binary
    with pytest.raises(WandError) as ei:
        runcode.read_script(str(f))
    assert ei.value.code == "bad-script"
    f.write_bytes(b"#" * runcode.MAX_SCRIPT_BYTES)
    assert len(runcode.read_script(str(f))) == runcode.MAX_SCRIPT_BYTES


def _refusal(path):
    with pytest.raises(WandError) as ei:
        runcode.read_script(path)
    return ei.value


def test_read_script_refuses_directory(tmp_path):
    e = _refusal(str(tmp_path))
    assert (e.code, e.exit_code) == ("bad-script", 2)
    assert e.message == f"{tmp_path} is a directory, not a script"


def test_read_script_refuses_missing_file(tmp_path):
    e = _refusal(str(tmp_path / "nope.py"))
    assert (e.code, e.exit_code) == ("bad-script", 2)
    assert e.message == f"cannot read {tmp_path / 'nope.py'}: No such file or directory"


def test_read_script_refuses_too_large(tmp_path):
    f = tmp_path / "huge.py"
    with open(f, "wb") as fh:
        fh.truncate(runcode.MAX_SCRIPT_BYTES + 1)  # sparse: costs no disk
    e = _refusal(str(f))
    assert (e.code, e.exit_code) == ("too-large", 2)
    assert f"is {runcode.MAX_SCRIPT_BYTES + 1} bytes" in e.message
    assert "4 MiB" in e.message
    assert "separately" in e.hint


def test_read_script_refuses_nul_bytes(tmp_path):
    f = tmp_path / "x.pyc"
    f.write_bytes(b"\xa7\r\r\n\0\0\0\0print")
    e = _refusal(str(f))
    assert (e.code, e.exit_code) == ("bad-script", 2)
    assert "looks binary" in e.message and "NUL" in e.message


class _Stdin:
    def __init__(self, data):
        self.buffer = io.BytesIO(data)


def test_read_script_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"print(2)\n"))
    assert runcode.read_script("-") == b"print(2)\n"


def test_read_script_from_stdin_too_large(monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"#" * (runcode.MAX_SCRIPT_BYTES + 10)))
    e = _refusal("-")
    assert (e.code, e.exit_code) == ("too-large", 2)


def _procs():
    return assign_roles([
        Proc(1, 0, 0, ["python3", "/app/a.py"], python="3.14.0"),
        Proc(2, 0, 0, ["python3", "-m", "celery", "-A", "proj", "worker"], python="3.14.0"),
    ])


def test_pick_process_ambiguous_without_ask_lists_candidates():
    with pytest.raises(WandError) as ei:
        ops.pick_process(_procs(), None)
    e = ei.value
    assert (e.code, e.exit_code) == ("ambiguous", 2)
    assert e.message == ("several Python processes could be meant:\n"
                         "  PID 1: python3 /app/a.py\n"
                         "  PID 2: python3 -m celery -A proj worker")
    assert "--pid" in e.hint


def test_pick_process_ambiguous_with_ask():
    seen = []

    def ask(cands):
        seen.append([p.pid for p in cands])
        return cands[1]

    c = ops.pick_process(_procs(), None, ask)
    assert seen == [[1, 2]]
    assert c.proc.pid == 2 and c.reason == "PID 2 as chosen"


def test_pick_process_pid_wins_without_ask():
    c = ops.pick_process(_procs(), 2)
    assert c.proc.pid == 2 and c.reason == "PID 2 as asked"


def test_pick_process_long_command_cut_at_100():
    procs = [Proc(1, 0, 0, ["python3", "/a.py", "x" * 300], python="3.14"),
             Proc(2, 0, 0, ["python3", "/b.py"], python="3.14")]
    with pytest.raises(WandError) as ei:
        ops.pick_process(assign_roles(procs), None)
    first = ei.value.message.splitlines()[1]
    assert first == ("  PID 1: " + ("python3 /a.py " + "x" * 300)[:100]
                     + "…[214 more characters]")


@pytest.mark.parametrize("argv, cwd, root", [
    (["python3", "/app/x.py"], "/srv", "/app"),
    (["python3", "app/x.py"], "/srv", "/srv/app"),
    (["python3", "./x.py"], "/srv", "/srv"),
    (["python3", "../lib/x.py"], "/srv/app", "/srv/lib"),
    (["python3", "-u", "-X", "dev", "-W", "ignore", "/opt/svc/main.py", "--port", "80"],
     "/", "/opt/svc"),
    (["python3", "-m", "uvicorn", "app:app"], "/srv", "/srv"),
    (["python3", "-m", "uvicorn", "app:app", "--app-dir", "/x/y.py"], "/srv", "/srv"),
    (["python3", "-c", "import x"], "/work", "/work"),
    (["/usr/local/bin/python3.14", "/usr/local/bin/gunicorn", "--chdir", "/code", "app:app"],
     "/", "/code"),
    (["/usr/local/bin/python3.14", "/usr/local/bin/gunicorn", "--chdir", "src", "app:app"],
     "/srv", "/srv/src"),
    (["python3"], None, "/"),
    (["python3", "/app/x.py"], None, "/app"),
])
def test_remote_root(argv, cwd, root):
    assert attach.remote_root(Proc(1, 0, 0, argv, python="3.14", cwd=cwd)) == root


WINCH_BIT = format(1 << 27, "x")  # SigCgt bit of SIGWINCH (28)


@pytest.mark.parametrize("sigcgt, role, choice, want", [
    (WINCH_BIT, "worker", "auto", "SIGWINCH"),
    (WINCH_BIT, "main", None, "SIGWINCH"),
    ("0000000180004002", "worker", "auto", None),  # WINCH not caught
    (WINCH_BIT, "master", "auto", None),
    (WINCH_BIT, "reloader", "auto", None),
    ("zz", "worker", "auto", None),
    (WINCH_BIT, "worker", "none", None),
    (format(1 << 9, "x"), "main", "usr1", "SIGUSR1"),  # caught
    ("1", "main", "SIGHUP", "SIGHUP"),  # bit 0: SIGHUP caught
    ("0", "master", "winch", "SIGWINCH"),  # asked explicitly: even a master
    ("0", "main", "urg", "SIGURG"),  # ignored by default: harmless either way
])
def test_nudge_signal(sigcgt, role, choice, want):
    p = Proc(1, 0, 0, ["python3"], python="3.14", sigcgt=sigcgt, role=role)
    assert ops.nudge_signal(p, choice) == want


@pytest.mark.parametrize("choice", ["usr1", "USR2", "SIGHUP", "pwr"])
def test_nudge_signal_refuses_one_that_would_terminate(choice):
    """A signal the process does not catch, whose default action ends it, is never sent."""
    with pytest.raises(WandError) as ei:
        ops.nudge_signal(Proc(7, 0, 0, ["python3"], sigcgt="0"), choice)
    assert ei.value.code == "would-kill" and ei.value.exit_code == 2
    assert "would terminate" in ei.value.message and "--signal none" in ei.value.hint


@pytest.mark.parametrize("choice", ["KILL", "SIGTERM", "9", "int"])
def test_nudge_signal_refuses_others(choice):
    with pytest.raises(WandError) as ei:
        ops.nudge_signal(Proc(1, 0, 0, ["python3"]), choice)
    assert (ei.value.code, ei.value.exit_code) == ("usage", 2)
    assert "USR1" in ei.value.hint
