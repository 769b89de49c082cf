"""The CLI's end of the injector pipe holds a bounded amount whatever the other end sends
(real child processes standing in for an injector that relays a hostile target)."""

import json
import sys

import pytest

from kubectl_wand.engine import session as sess
from kubectl_wand.engine.session import Channel, EventQueue, TextTail


def _chan(code):
    return Channel([sys.executable, "-c", code])


def test_line_over_the_cap_becomes_an_error_event(monkeypatch):
    monkeypatch.setattr(sess, "MAX_LINE", 1 << 16)
    ch = _chan("import sys; sys.stdout.write('x' * (1 << 20) + '\\n'); "
               "sys.stdout.write('{\"event\": \"ready\"}\\n')")
    ev = ch.next(10)
    assert ev["event"] == "error" and ev["code"] == "too-large"
    assert ch.next(10) == {"event": "ready"}  # the stream goes on after the dropped line
    ch.close()


def test_queue_is_bounded_in_bytes_and_applies_backpressure(monkeypatch):
    monkeypatch.setattr(sess, "MAX_QUEUED", 1 << 16)
    ev = json.dumps({"event": "output", "data": "y" * 1000})
    ch = _chan(f"import sys\nfor i in range(5000): sys.stdout.write({ev!r} + '\\n')")
    # nobody reads: the reader thread stops at the budget instead of growing
    import time
    deadline = time.monotonic() + 5
    while ch.events.size < (1 << 16) - 1100 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a real counter, bounded
    assert ch.events.size <= (1 << 16)
    assert ch.proc.poll() is None  # the writer is blocked on a full pipe, not done
    n = 0
    while ch.next(10) is not sess.CLOSED:
        n += 1
    assert n == 5000  # nothing lost once read
    ch.close()


def test_event_queue_passes_one_oversized_event_alone():
    q = EventQueue(limit=10)
    q.put("big", 100)
    assert q.get(0.1) == "big"


def test_stray_output_kept_bounded():
    t = TextTail(limit=100)
    for i in range(1000):
        t.append("line %d" % i)
    lines = list(t)
    assert lines[0].startswith("[kubectl-wand:") and lines[-1] == "line 999"
    assert sum(len(x) for x in lines[1:]) <= 100
