"""The krew-installed zipapp on python3.10, end to end on a real container: exec, then attach
(debugpy from the archive bundled in the zipapp answers a DAP client) with launch.json written."""

import json
import signal
import subprocess

from kubectl_wand.dap import DAPClient
from tests.conftest import wait_for_line
from tests.dist.conftest import krew_env
from tests.dist.helpers import KUBECTL, run


def test_exec_and_attach_through_kubectl(app, krew_install):
    c = app("python3", "/app/http_app.py")
    env = krew_env(krew_install)
    cp = run([KUBECTL, "wand", "exec", f"docker/{c.name}", "-c",
              "import sys; print(sys.version_info[:2])"], env)
    assert (cp.returncode, cp.stdout) == (0, "(3, 14)\n"), cp.stderr
    project = krew_install["home"] / "project"
    project.mkdir()
    proc = subprocess.Popen([KUBECTL, "wand", "attach", f"docker/{c.name}", "--local-port", "0",
                             "-o", "json", f"--write-launch-json={project}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=project)
    try:
        ready = json.loads(wait_for_line(proc.stdout, lambda s: s.startswith("{"), 60))
        dap = DAPClient("127.0.0.1", ready["port"])
        try:
            resp = dap.request("initialize", adapterID="debugpy", clientID="wand-test")
            assert resp["success"]
        finally:
            dap.close()
        assert ready["launch_json"] == str(project / ".vscode" / "launch.json")
        written = json.loads((project / ".vscode" / "launch.json").read_text())
        assert written["configurations"] == [ready["launch"]]
        assert ready["launch"]["name"] == f"kubectl-wand: docker/{c.name}"
        assert "require('dap').run(" in ready["nvim_dap"]
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
        err = proc.stderr.read()
    assert rc == 0, err
    assert "Detached from pid" in err
