"""A real third-party DAP client: Microsoft's @vscode/debugadapter-testsupport (npm), driven by
tests/dap-node/scenarios.js through kubectl-wand's forwarded port, including abrupt deaths of
the client at each state. After each, the target serves at its normal rate (polled)."""

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Attached, breakpoint_line
from tests.reliability.test_debug_session import rate, request_in_background, serves_normally

NODE_DIR = Path(__file__).resolve().parents[1] / "dap-node"
APP = "/app/http_app.py"


@pytest.fixture(scope="module")
def node_client():
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm not installed (apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "@vscode" / "debugadapter-testsupport").is_dir():
        cp = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                            capture_output=True, text=True, timeout=300)
        if cp.returncode:
            pytest.skip("npm install failed: " + cp.stderr[-500:])
    return NODE_DIR


@pytest.fixture(scope="module")
def attached(app_module, node_client):
    c = app_module("python3", "/app/http_app.py")
    c.baseline = max(rate(c), rate(c))
    a = Attached(f"docker/{c.name}", "--local-port", "0")
    yield c, a
    rc, err = a.stop()
    assert rc == 0, err
    c.assert_healthy(8000)


def line_of(text):
    """The line of http_app.py holding ``text``."""
    src = (Path(__file__).resolve().parents[1] / "bed/apps/http_app.py").read_text()
    return next(n for n, ln in enumerate(src.splitlines(), 1) if text in ln)


def run(a, scenario, requests=(), timeout=60, app=APP, port=8000):
    """Run one scenario; on READY, send the HTTP requests; returns (result, request procs)."""
    line = breakpoint_line(app.rsplit("/", 1)[1])
    p = subprocess.Popen(["node", "scenarios.js", str(a[1].port), scenario, app, str(line),
                          str(line_of("self.send_response(200)"))],
                         cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    reqs = []
    result = None
    # a hung client must fail the test, not hang it: it is killed after ``timeout``
    killer = threading.Timer(timeout, p.kill)
    killer.start()
    try:
        for out in p.stdout:
            if out.strip() == "READY":
                reqs = [request_in_background(a[0], path, port) for path in requests]
            elif out.startswith("{"):
                result = json.loads(out)
        p.wait(timeout=30)
    finally:
        killer.cancel()
    assert result is not None and "error" not in result, (result, p.stderr.read())
    return result, reqs


def test_inspect_evaluate_and_step(attached):
    c, _ = attached
    res, reqs = run(attached, "inspect", ["/bp"])
    line = breakpoint_line("http_app.py")
    assert res["stopLine"] == line and res["locals"]["greeting"] == "'hello /bp'"
    assert res["evaluate"] == "'HELLO /BP'"
    assert res["afterNext"] == line + 1 and res["afterStepOut"] == "do_GET"
    assert reqs[0].communicate(timeout=30)[0].startswith("hello /bp")
    serves_normally(c, c.baseline)


def test_conditional_breakpoint_and_logpoint(attached):
    c, _ = attached
    res, reqs = run(attached, "conditional", ["/miss", "/hit"])
    assert res["verified"] == [True, True]
    assert res["stoppedFor"] == "'/hit'"
    assert "logpoint /miss" in res["logpoints"] and "logpoint /hit" in res["logpoints"]
    for r in reqs:
        assert r.communicate(timeout=30)[0].startswith("hello")
    serves_normally(c, c.baseline)


@pytest.mark.parametrize("state", ["running", "stopped", "stepping"])
def test_client_dies_abruptly(attached, state):
    c, _ = attached
    t0 = time.monotonic()
    res, reqs = run(attached, "die-" + state, [] if state == "running" else ["/bp"])
    for r in reqs:  # a request that was stopped completes once the client is gone
        assert r.communicate(timeout=30)[0].startswith("hello /bp")
    assert time.monotonic() - t0 < 30
    serves_normally(c, c.baseline)
    # and the next client gets in and stops again
    res, reqs = run(attached, "inspect", ["/bp"])
    assert res["stopLine"] == breakpoint_line("http_app.py")
    reqs[0].communicate(timeout=30)


def test_twenty_cycles(attached):
    c, _ = attached
    for _ in range(20):
        res, _ = run(attached, "cycle")
        assert res["threads"] >= 1
    serves_normally(c, c.baseline)


def test_set_variable_changes_what_the_app_answers(attached):
    c, _ = attached
    res, reqs = run(attached, "setvar", ["/sv"])
    assert res["setTo"] == "'changed by the editor'"
    assert reqs[0].communicate(timeout=30)[0].startswith("changed by the editor #")
    serves_normally(c, c.baseline)


def test_pause_breaks_into_the_main_thread_then_continues(attached):
    c, _ = attached
    res, _ = run(attached, "pause")
    assert res["reason"] == "pause" and res["frame"], res
    serves_normally(c, c.baseline)


def test_just_my_code_decides_where_step_in_lands(attached):
    c, _ = attached
    mine, reqs = run(attached, "jmc-true", ["/j1"])
    reqs[0].communicate(timeout=30)
    lib, reqs = run(attached, "jmc-false", ["/j2"])
    reqs[0].communicate(timeout=30)
    assert mine["steppedInto"] == APP, mine  # stays in the app's code
    assert lib["steppedInto"].endswith("http/server.py"), lib  # into the standard library
    assert lib["steppedFunction"].endswith("send_response")
    serves_normally(c, c.baseline)


def test_exception_breakpoint_in_a_request_thread(attached):
    c, _ = attached
    res, reqs = run(attached, "exception", ["/boom"])
    assert res["reason"] == "exception" and res["exception"] == "ZeroDivisionError", res
    assert res["raisedIn"] == "handle"
    reqs[0].communicate(timeout=30)  # that request failed; the app goes on
    serves_normally(c, c.baseline)


@pytest.fixture(scope="module")
def attached_asgi(app_module, node_client):
    c = app_module("sh", "-c", "cd /app && exec python3 -m uvicorn asgi_app:app --host "
                   "127.0.0.1 --port 8001", ready="Application startup complete")
    c.baseline = max(rate(c, 8001), rate(c, 8001))
    a = Attached(f"docker/{c.name}", "--local-port", "0")
    yield c, a
    rc, err = a.stop()
    assert rc == 0, err


def test_breakpoint_reached_from_an_asyncio_task(attached_asgi):
    c, _ = attached_asgi
    res, reqs = run(attached_asgi, "asyncio", ["/task"], app="/app/asgi_app.py", port=8001)
    assert "anything" in res["frames"] and res["rest"] == "'task'", res
    assert reqs[0].communicate(timeout=30)[0].startswith("hello /task")
    serves_normally(c, c.baseline, port=8001)
