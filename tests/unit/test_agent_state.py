"""The agent's state kept in the process between injections carries a protocol version: state
of another shape is replaced when idle and refused while in use (payload/agent.py state())."""
import json
import socket
import sys
import threading
import types
import uuid

import pytest

from kubectl_wand import payload


@pytest.fixture
def agent():
    ns = {"__name__": "__wand__"}
    exec(compile(payload.source("agent"), "agent", "exec"), ns)
    ns["STATE_MODULE"] = "_wand_test_state_" + uuid.uuid4().hex  # not this process's own
    yield ns
    sys.modules.pop(ns["STATE_MODULE"], None)


def plant(agent, **attrs):
    old = types.ModuleType(agent["STATE_MODULE"])
    old.__dict__.update(attrs)
    sys.modules[agent["STATE_MODULE"]] = old
    return old


def test_fresh_state_is_stamped_and_kept(agent):
    st = agent["state"]()
    assert st.protocol == agent["STATE_PROTOCOL"]
    assert st.background == {} and st.reverts == {} and st.debug is None
    assert agent["state"]() is st


@pytest.mark.parametrize("attrs", [
    {},  # an older agent's, nothing in use
    {"debug": None, "routers": {}, "reverts": {}},
    {"protocol": -1, "debug": None, "routers": {}, "background": {123456789: {}}},  # dead
])
def test_idle_state_of_another_shape_is_replaced(agent, attrs):
    old = plant(agent, **attrs)
    st = agent["state"]()
    assert st is not old and st.protocol == agent["STATE_PROTOCOL"]


@pytest.mark.parametrize("attrs, what", [
    ({"debug": {"port": 5679}}, "a debugger"),
    ({"protocol": 99, "debug": None, "routers": {"stdout": object()}}, "code is running"),
    ({"reverts": {"root": {}}}, "loglevel --for timer"),
    ({"background": {threading.get_ident(): {}}}, "exec --detach"),  # a live thread
])
def test_state_in_use_of_another_shape_is_refused(agent, attrs, what):
    old = plant(agent, **attrs)
    with pytest.raises(agent["StateMismatch"]) as e:
        agent["state"]()
    assert what in str(e.value) and f"speaks {agent['STATE_PROTOCOL']}" in str(e.value)
    assert sys.modules[agent["STATE_MODULE"]] is old  # untouched


def test_an_injection_meeting_it_answers_with_an_error(agent, tmp_path):
    plant(agent, debug={"port": 5679})
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(tmp_path / "s"))
    srv.listen(1)
    agent["run"]({"sock": str(tmp_path / "s"), "op": "exec", "id": "t1", "code": "print(1)"})
    conn, _ = srv.accept()
    conn.settimeout(10)
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    events = [json.loads(line) for line in data.decode().splitlines()]
    assert [e["event"] for e in events] == ["hello", "error"]
    assert events[1]["code"] == "state-mismatch" and "another kubectl-wand" in events[1]["message"]
    assert not [t for t in threading.enumerate() if t.name == "kubectl-wand-exec"]
    conn.close()
    srv.close()
