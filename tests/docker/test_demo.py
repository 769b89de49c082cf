"""`kubectl wand demo`: the whole journey on a throwaway container of a local image, through
the debugger's gate (the forward adds this session's secret), and nothing left afterwards."""

import json
import subprocess

from tests.conftest import IMAGE, wand


def test_demo_runs_the_journey_and_leaves_nothing(docker):
    cp = wand("demo", "--image", IMAGE, timeout=180)
    assert cp.returncode == 0, cp.stderr
    steps = [line.split(".", 1)[0] for line in cp.stderr.splitlines()
             if line[:1].isdigit() and line[1:2] == "."]
    assert steps == [str(n) for n in range(1, 8)], cp.stderr
    assert "stopped (breakpoint) in handle()" in cp.stderr
    assert "port closed: True" in cp.stderr
    assert json.loads(cp.stdout)["path"] == "'/demo'"
    left = subprocess.run(["docker", "ps", "-a", "--filter", "name=kubectl-wand-demo",
                           "-q"], capture_output=True, text=True).stdout.split()
    assert left == [], left
