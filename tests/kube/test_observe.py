"""trace and profile across the replicas of a Deployment, through the kubectl stand-in
(pods = containers); every kubectl argv checked against the real client's flags."""

import json
import subprocess
import threading

from tests.conftest import WAND, breakpoint_line
from tests.kube.conftest import helpers_of, wand
from tests.kube.test_journeys import http_get

LINE = breakpoint_line("http_app.py")
LEFTOVERS = ("import sys, threading\n"
             "print(sum(sys.monitoring.get_tool(i) is not None for i in range(6)), "
             "sum(t.name.startswith('kubectl-wand-trace') for t in threading.enumerate()))")


def test_trace_and_profile_every_replica(checked):
    c = checked
    d = c.deployment("app", replicas=2, ready_line="READY")
    p = subprocess.Popen([WAND, "trace", "deploy/app", "--all", f"http_app.py:{LINE}", "path",
                          "--max-hits", "2", "-o", "json", "--for", "90s"],
                         env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events, ready = [], threading.Event()

    def pump():
        for line in p.stdout:
            events.append(json.loads(line))
            if sum(e["event"] == "tracing" for e in events) == 2:
                ready.set()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    assert ready.wait(90), p.stderr.read() if p.poll() is not None else events
    for pod in d.pods:  # two requests to each replica: each trace ends at --max-hits
        for i in range(2):
            assert http_get(c, pod, f"/{pod}/{i}").returncode == 0
    p.wait(timeout=90)
    t.join(10)
    err = p.stderr.read()
    assert p.returncode == 0, err
    hits = [e for e in events if e["event"] == "hit"]
    assert sorted((e["target"], e["values"][0][1]) for e in hits) == sorted(
        (f"pod/{pod}", repr(f"/{pod}/{i}")) for pod in d.pods for i in range(2))
    for pod in d.pods:  # gone afterwards: tool ids free, no trace thread
        cp = wand(c, "exec", f"pod/{pod}", "-q", "-c", LEFTOVERS)
        assert cp.returncode == 0 and cp.stdout.split() == ["0", "0"], cp.stdout + cp.stderr

    cp = wand(c, "profile", "deploy/app", "--all", "--duration", "1s", "--split", "-o", "-",
              "--top", "0")
    assert cp.returncode == 0, cp.stderr
    roots = {line.split(";", 1)[0] for line in cp.stdout.splitlines()}
    assert roots == {f"pod/{pod} pid 1" for pod in d.pods}, roots
    assert "serve_forever" in cp.stdout
    assert all(len(helpers_of(c, pod)) == 1 for pod in d.pods)  # one helper per pod, reused
