"""Timings of the Kubernetes backend through the kubectl stand-in (never part of the tests).

    .venv/bin/python bench/bench_kube.py [--runs N]

A one-replica deployment of /app/busy.py (main thread back in the interpreter every 5 ms)
and one of /app/http_app.py, pods = containers. Measures `exec -c 'print(1)'` (first call:
creates the ephemeral helper; then reuses it) and attach-to-ready (launch → DAP `initialize`
answered through `kubectl port-forward`). Note: each call of the stand-in (a Python script)
costs ~90 ms that real kubectl does not; the count of kubectl calls is printed too.
"""

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_docker import WAND, table  # noqa: E402
from kubectl_wand.dap import DAPClient  # noqa: E402
from tests.conftest import wait_for_line  # noqa: E402
from tests.kube.standin.cluster import Cluster  # noqa: E402


def time_exec(c, target):
    n0 = len(c.argv_log())
    t0 = time.perf_counter()
    cp = subprocess.run([WAND, "exec", target, "-q", "-c", "print(1)"], env=c.env,
                        capture_output=True, text=True, timeout=120)
    t = time.perf_counter() - t0
    if cp.returncode or cp.stdout.strip() != "1":
        raise RuntimeError(f"exec failed: {cp.stderr}")
    return t, len(c.argv_log()) - n0


def time_attach(c, target):
    n0 = len(c.argv_log())
    t0 = time.perf_counter()
    p = subprocess.Popen([WAND, "attach", target, "--local-port", "0", "-o", "json"],
                         env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = []
    threading.Thread(target=lambda: err.extend(p.stderr), daemon=True).start()
    try:
        info = json.loads(wait_for_line(p.stdout, lambda s: s.startswith("{"), 120))
        dap = DAPClient("127.0.0.1", info["port"], timeout=30)
        dap.request("initialize", clientID="bench", adapterID="debugpy")
        ready = time.perf_counter() - t0
        dap.close()
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
    if rc:
        raise RuntimeError("attach failed: " + "".join(err))
    return ready, len(c.argv_log()) - n0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    import tempfile

    c = Cluster(Path(tempfile.mkdtemp(prefix="wand-bench-kube-")))
    try:
        c.deployment("busy", ready_line="READY", containers=[
            {"name": "app", "command": ["python3", "/app/busy.py"], "user": 1000}])
        c.deployment("web", ready_line="READY")
        cold, cold_calls = time_exec(c, "deploy/busy")
        warm = [time_exec(c, "deploy/busy") for _ in range(args.runs)]
        att_cold, att_cold_calls = time_attach(c, "deploy/web")
        att = [time_attach(c, "deploy/busy") for _ in range(args.runs)]
        att_web = [time_attach(c, "deploy/web") for _ in range(args.runs)]
        table([
            ("exec -c 'print(1)' through the stand-in (5 ms target)", [
                (f"cold: adds the ephemeral helper ({cold_calls} kubectl calls)", [cold]),
                (f"warm: reuses it ({warm[0][1]} kubectl calls)", [w[0] for w in warm])]),
            ("attach → DAP initialize answered via kubectl port-forward", [
                (f"cold, http_app ({att_cold_calls} kubectl calls)", [att_cold]),
                (f"warm, 5 ms target ({att[0][1]} kubectl calls)", [a[0] for a in att]),
                ("warm, http_app (0.5 s serve_forever poll)", [a[0] for a in att_web])]),
        ])
        helpers = [s["name"] for p in c.pods() for s in
                   c.get_pod(p)["status"].get("ephemeralContainerStatuses", [])]
        print(f"ephemeral helper containers created: {len(helpers)} "
              f"for {2 + 2 * args.runs + 1 + args.runs} commands on 2 pods")
    finally:
        c.close()


if __name__ == "__main__":
    main()
