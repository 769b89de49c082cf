"""Image layouts through Kubernetes (the stand-in): the lister finds the app image's interpreter
in the app container; the ephemeral helper runs the image's pristine copy of it."""

import json

import pytest

from kubectl_wand.dap import DAPClient
from tests.bed import layouts as L
from tests.conftest import breakpoint_line
from tests.kube.conftest import attach_json, helpers_of, request_in_pod, wand

BY_NAME = {lay.name: lay for lay in L.LAYOUTS}


@pytest.mark.parametrize("name", ["versioned-only", "off-path-user", "distroless"])
def test_layout_journey(checked, name, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # no interpreter remembered yet
    lay = BY_NAME[name]
    image = L.build(lay, L.base_id())
    c = checked
    c.deployment("web", containers=[{"name": "app", "image": image, "command": lay.argv,
                                     "user": 1000}], ready_line="READY")
    cp = wand(c, "ps", "deploy/web", "-o", "json", env=env)
    assert cp.returncode == 0, cp.stderr
    procs = json.loads(cp.stdout)[0]["processes"]
    assert procs[0]["python"].startswith("3.14.") and procs[0]["attachable"], procs
    cp = wand(c, "exec", "deploy/web", "-c", "import sys; print(sys.executable)", env=env)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == ("/opt/py/bin/python3.14" if name == "off-path-user"
                                 else "/usr/bin/python3.14")
    assert wand(c, "stacks", "deploy/web", env=env).returncode == 0
    assert wand(c, "loglevel", "deploy/web", "INFO", env=env).returncode == 0
    # one helper, running the image's interpreter (never `python3`, which it may not have)
    pod = c.pods()[0]
    helpers = helpers_of(c, pod)
    assert len(helpers) == 1, helpers
    line = breakpoint_line("http_app.py")
    attach, info = attach_json(c, "deploy/web", env=env)
    try:
        dap = DAPClient("127.0.0.1", info["port"])
        dap.attach(breakpoints={L.APP: [line]})
        req = request_in_pod(c, pod, "/k", python=lay.python)
        stop = dap.stopped_locals(timeout=30)
        assert stop["locals"]["greeting"] == "'hello /k'"
        dap.request("continue", threadId=stop["thread"])
        assert req.wait(timeout=30) == 0
        dap.close()
    finally:
        attach.send_signal(2)
        assert attach.wait(timeout=60) == 0, attach.stderr.read()
