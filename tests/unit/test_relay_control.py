"""The injector's relay carries CLI frames to the agent while an op runs (shell, pdb, stop):
each frame becomes one JSON line on the agent's socket; stdin EOF becomes a stop."""

import json
import subprocess
import sys

AGENT_AND_RELAY = r"""
import json, socket, threading
import kubectl_wand.payload.injector as inj

inj.alive = lambda pid, start: True
ours, agent = socket.socketpair()

def fake_agent():
    f = agent.makefile("rb")
    for line in f:
        req = json.loads(line)
        agent.sendall((json.dumps({"event": "got", "req": req}) + "\n").encode())
        if req.get("op") == "stop":
            agent.sendall(b'{"event": "result", "status": 0}\n')
            break
    agent.close()

threading.Thread(target=fake_agent, daemon=True).start()
last = inj.relay(ours, 1, 0, None)
print(json.dumps({"event": "relay-returned", "last": last}), flush=True)
"""


def frame(obj):
    data = json.dumps(obj, indent=1).encode()  # a frame may span lines: one line arrives
    return b"%d\n" % len(data) + data


def test_frames_reach_the_agent_as_lines_and_eof_stops():
    p = subprocess.run([sys.executable, "-c", AGENT_AND_RELAY],
                       input=frame({"op": "run", "id": 1, "source": "a = 1\nb = 2"}) +
                       frame({"op": "interrupt", "id": 1}),
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode()
    events = [json.loads(line) for line in p.stdout.splitlines()]
    got = [e["req"] for e in events if e["event"] == "got"]
    assert got == [{"op": "run", "id": 1, "source": "a = 1\nb = 2"},
                   {"op": "interrupt", "id": 1}, {"op": "stop", "why": "eof"}]
    assert events[-2]["event"] == "result"  # the agent's final word still relayed
    assert events[-1] == {"event": "relay-returned", "last": {"status": 0}}
