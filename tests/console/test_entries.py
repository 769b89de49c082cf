"""shell and pdb are offered by TAB completion (kubectl's plugin protocol) with their flags."""

import subprocess

from tests.conftest import WAND


def complete(*words):
    cp = subprocess.run([WAND, "__complete", *words], capture_output=True, text=True,
                        timeout=30)
    assert cp.returncode == 0, cp.stderr
    return [line.split("\t")[0] for line in cp.stdout.splitlines() if not line.startswith(":")]


def test_commands_and_flags_are_offered():
    assert {"shell", "pdb"} <= set(complete(""))
    assert {"--no-asyncio", "--max-output", "--ack-timeout", "-c", "--pid"} <= \
        set(complete("shell", "x", "-"))
    assert {"--thread", "--pid", "-n"} <= set(complete("pdb", "x", "-"))
    assert "deploy/" in complete("shell", "")
    assert "docker/" in complete("pdb", "")
