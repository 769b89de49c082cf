"""The target-side control reader shared by shell and pdb (payload/agent.py Channel.dispatch),
over a real socket pair."""
import socket

from kubectl_wand import payload


def channel():
    ns = {"__name__": "__wand__"}
    exec(compile(payload.source("agent"), "agent", "exec"), ns)
    ours, theirs = socket.socketpair()
    chan = object.__new__(ns["Channel"])
    chan.sock = ours
    return chan, theirs


def test_requests_reach_their_handlers_until_stop():
    chan, cli = channel()
    seen = []
    cli.sendall(b'{"op": "run", "n": 1}\nnot json\n[1, 2]\n{"op": ["x"]}\n{"op": "nope"}\n'
                b'\xff{"op": "complete", "n": 2}\n{"op": "run", "n": 3}\n'
                b'{"op": "stop", "why": "' + b"w" * 60 + b'"}\n{"op": "run", "n": 4}\n')
    why = chan.dispatch({"run": lambda r: seen.append(("run", r["n"])),
                         "complete": lambda r: seen.append(("complete", r.get("n")))})
    assert why == "w" * 40
    assert seen == [("run", 1), ("run", 3)]  # the undecodable byte spoils only its own line
    chan.sock.close()
    cli.close()


def test_end_of_connection_and_until():
    chan, cli = channel()
    cli.sendall(b'{"op": "stop"}\n')
    assert chan.dispatch({}, until=lambda: True) == "eof"  # asked to end before reading
    assert chan.dispatch({}) == "stop"
    cli.close()
    assert chan.dispatch({}) == "eof"
    chan.sock.close()
