"""Timings of the Kubernetes backend through the real kubectl against the test API
(tests/kube/apiserver; pods are Docker containers; never part of the tests).

    .venv/bin/python bench/bench_kube.py [--runs N]

One-replica deployments of /app/busy.py (CPU-bound: its main thread spins in pure Python),
a ticking loop (back in the interpreter every 5 ms) and /app/http_app.py (looks every 0.5 s).
Measures `exec -c 'print(1)'` (first call adds the ephemeral helper, later ones reuse it) and
attach-to-ready (launch → DAP `initialize` answered through `kubectl port-forward`), each next
to its references measured in the same run: the floor (remote_exec + debugpy.listen with a
compiled debugpy in place, initialize from inside the container; no CLI) and the naive flow
through the same kubectl and API (copy with `kubectl exec … tar`, `kubectl debug` runs
sys.remote_exec, `kubectl port-forward`, retry initialize until it answers). Also the kubectl
API requests per command, the bytes the CLI writes per attach and the ephemeral helpers per pod.

The API server is Python driving docker on the same CPUs: it costs time a real cluster's
apiserver and kubelet spend elsewhere, so these figures are an upper bound; the count of API
requests is the portable part.
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (BUSY_APP, DEFAULT_IMAGE, cli_env, HTTP_APP, TICKING_APP,  # noqa
                    WAND, Cleanup, Table, guarded, machine_line, naive_archive,
                    time_attach, time_floor_attach, wait_for_line)
from tests.kube.apiserver.cluster import Cluster  # noqa: E402


def time_exec(c, target):
    n0 = len(c.requests())
    t0 = time.perf_counter()
    cp = subprocess.run([WAND, "exec", target, "-q", "-c", "print(1)"], env=cli_env(c.env),
                        capture_output=True, text=True, timeout=120)
    t = time.perf_counter() - t0
    if cp.returncode or cp.stdout.strip() != "1":
        raise RuntimeError(f"exec failed: {cp.stderr}")
    return t, len(c.requests()) - n0


def attach(c, target, cleanup, pause=None):
    n0 = len(c.requests())
    r = time_attach(target, cleanup, env=cli_env(c.env), pause=pause)
    r["calls"] = len(c.requests()) - n0
    return r


def dap_initialize_tcp(port, timeout=2.0):
    """True if a DAP initialize on 127.0.0.1:port is answered."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return False
    try:
        body = json.dumps({"seq": 1, "type": "request", "command": "initialize",
                           "arguments": {"clientID": "naive", "adapterID": "debugpy"}}).encode()
        s.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        got = b""
        while b'"initialize"' not in got:
            chunk = s.recv(65536)
            if not chunk:
                return False
            got += chunk
        return True
    except OSError:
        return False
    finally:
        s.close()


def time_naive(c, image, app, tag, port=5692):
    """The flow without kubectl-wand through the same kubectl and API, as fast as it goes (no sleeps)."""
    dep = c.deployment(tag, ready_line="READY",
                       containers=[{"name": "app", "command": app, "user": 1000}])
    pod = dep.pods[0]
    lib = "/tmp/naive-" + tag
    archive = naive_archive(lib, port)
    env = c.env
    t0 = time.perf_counter()
    cp = subprocess.run(["kubectl", "exec", "-i", pod, "-c", "app", "--", "sh", "-c",
                         f"mkdir -p {lib} && tar xf - -C {lib}"], input=archive, env=env,
                        capture_output=True, timeout=120)
    if cp.returncode:
        raise RuntimeError(f"naive copy failed: {cp.stderr!r}")
    cp = subprocess.run(["kubectl", "debug", pod, "--target=app", "--profile=general",
                         "--image=" + image, "-q", "--", "python3", "-c",
                         f"import sys; sys.remote_exec(1, '/proc/1/root{lib}/inject.py')"],
                        env=env, capture_output=True, timeout=120)
    if cp.returncode:
        raise RuntimeError(f"naive debug failed: {cp.stderr!r}")
    pf = None
    try:
        while True:
            if pf is None or pf.poll() is not None:
                # a refused connection ends kubectl port-forward ("lost connection to pod"):
                # start it again, as a user's retry loop would
                if pf is not None:
                    pf.wait()
                pf = subprocess.Popen(["kubectl", "port-forward", "pod/" + pod, f":{port}",
                                       "--address", "127.0.0.1"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
                line = wait_for_line(pf.stdout, lambda s: "Forwarding from" in s, 60)
                local = int(line.split("127.0.0.1:")[1].split()[0])
            if dap_initialize_tcp(local):
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > 60:
                raise RuntimeError("naive flow: the debug port never answered")
            if pf.poll() is None:
                try:
                    pf.wait(timeout=0.5)  # the failed connection ends it; a real signal
                except subprocess.TimeoutExpired:
                    pass
    finally:
        if pf is not None and pf.poll() is None:
            pf.terminate()
            pf.wait()
        c.delete_pod(pod)


def ephemeral_count(c, pod):
    return len(c.get_pod(pod)["status"].get("ephemeralContainerStatuses", []))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    ap.add_argument("--no-jitter", action="store_true")
    args = ap.parse_args()
    n = args.runs
    rng = random.Random(769)
    cleanup = Cleanup()
    started = time.perf_counter()
    load0 = os.getloadavg()[0]
    table = Table("Kubernetes backend through the real kubectl and the test API")
    tmp = tempfile.mkdtemp(prefix="wand-bench-kube-")
    c = Cluster(Path(tmp))

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    def http_jitter():
        if not args.no_jitter:
            time.sleep(rng.uniform(0.0, 0.5))  # untimed: a random phase of http_app's poll

    def body():
        try:
            apps = {"busy": BUSY_APP, "tick": TICKING_APP, "web": HTTP_APP}
            for name, app in apps.items():
                c.deployment(name, ready_line="READY",
                             containers=[{"name": "app", "command": app, "user": 1000}])
            log("exec…")
            cold, cold_calls = time_exec(c, "deploy/tick")
            warm = [time_exec(c, "deploy/tick") for _ in range(n)]
            table.section("exec -c 'print(1)', ticking target")
            table.add(f"cold: adds the ephemeral helper ({cold_calls} API requests)", [cold])
            table.add(f"warm: reuses it ({warm[0][1]} API requests)", [w[0] for w in warm])

            for name, app in apps.items():
                jitter = http_jitter if name == "web" else (lambda: None)
                log(f"attach {name}…")
                jitter()
                first = attach(c, f"deploy/{name}", cleanup, pause=jitter)
                runs = []
                for _ in range(n):
                    jitter()
                    runs.append(attach(c, f"deploy/{name}", cleanup, pause=jitter))
                pod = c.pods(selector=f"app={name}")[0]
                helpers = ephemeral_count(c, pod)
                log(f"floor and naive flow, {name} (a fresh target each run)…")
                floor, naive = [], []
                for i in range(n):
                    jitter()
                    floor.append(time_floor_attach(args.image, app, cleanup, f"k{name}{i}"))
                for i in range(n):
                    jitter()
                    naive.append(time_naive(c, args.image, app, f"naive-{name}-{i}"))
                what = {"busy": "CPU-bound /app/busy.py", "tick": "ticking loop (5 ms)",
                        "web": "/app/http_app.py (looks every 0.5 s)"}[name]
                table.section(f"attach → DAP initialize via kubectl port-forward: {what}")
                table.add(f"warm ({runs[0]['calls']} API requests)", [r["ready"] for r in runs],
                          "floor: debugpy .pyc in place", [t for t, _ in floor])
                table.add("", [], "  of which in the container", [t for _, t in floor])
                table.add("warm", [r["ready"] for r in runs], "naive: cp + debug + poll", naive)
                table.add(f"first attach to this pod ({first['calls']} API requests)",
                          [first["ready"]], "naive: cp + debug + poll", naive)
                table.add("detach: SIGINT → exited", [r["detach"] for r in runs])
                table.add("bytes written by the CLI per attach, warm (kB)",
                          [r["bytes"] / 1000 for r in runs if r["bytes"] is not None])
                table.add("bytes written by the CLI, first attach (kB)",
                          [first["bytes"] / 1000] if first["bytes"] is not None else [])
                table.add(f"ephemeral helpers in the pod after {n + 1} attaches", [helpers])
        finally:
            c.close()

    rc = guarded(body, cleanup)
    if rc == 0:
        print(f"\n{machine_line(started, load0)}")
        print(table.render())
    return rc


if __name__ == "__main__":
    sys.exit(main())
