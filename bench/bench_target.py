"""What attaching costs the target, and how fast it picks an injection up (never in the tests).

    .venv/bin/python bench/bench_target.py [--runs N] [--injections N] [--window S]

1. Injection latency on a busy target (/app/busy.py: its main thread spins in pure Python):
   `sys.remote_exec` call → payload running, as kubectl-wand's injector measures it (its `ack`:
   the agent connected back), over --injections exec requests in one session; next to the floor
   (a bare helper's remote_exec → a one-line script's ack file) on the same target.
2. Target cost: requests/s of /app/http_app.py (a thread per request) and of the same handler in
   a single-threaded HTTPServer, under a bounded loopback load generated *inside
   the target's network namespace* (a small client run with `docker exec` in the target, one
   connection at a time, --window seconds per run and at most 20000 requests), --runs windows in
   each phase: before attach, debugger listening, a DAP client attached (no breakpoints), after
   detach; the cycle runs twice (half the windows each) so that a drift of the machine's load
   spreads over all phases. Each phase's figure next to the before-attach one.

Everything made is removed at the end, also on an error or Ctrl-C.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (BUSY_APP, CLI_ENV, DEFAULT_IMAGE, HTTP_APP, WAND, Cleanup, DAPClient,  # noqa
                    Table, guarded, machine_line, pct, start_floor_helper, start_target,
                    time_floor_exec, wait_for_line)

# The load generator, run by the target's own python3 inside its network namespace.
# argv: windows, seconds per window, max requests per window, port.
LOADGEN = r"""
import socket, sys, time
windows, seconds, cap, port = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
req = b"GET /load HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
for _ in range(windows):
    n, t0 = 0, time.monotonic()
    end = t0 + seconds
    while n < cap and time.monotonic() < end:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        while s.recv(65536):
            pass
        s.close()
        n += 1
    print("WINDOW %d %.6f" % (n, time.monotonic() - t0), flush=True)
"""


# The same request handler in a single-threaded HTTPServer: shows which part of the debugger's
# cost is per new thread (pydevd hooks every thread's start and end; http_app starts one per
# request).
SINGLE_THREADED = ["python3", "-c", "import sys; sys.path.insert(0, '/app'); import http_app\n"
                   "from http.server import HTTPServer\n"
                   "s = HTTPServer(('127.0.0.1', 8000), http_app.Handler)\n"
                   "print('READY 8000', flush=True); s.serve_forever()"]


def app_cpu(host_pid):
    """CPU-seconds the app process has used so far (all its threads, gone ones included)."""
    f = open(f"/proc/{host_pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def measured(target, host_pid, windows, seconds):
    """[(requests/s, app CPU-ms per request)] for each window: a window at a time, with the
    app's own CPU read around it. Requests/s follows the machine's other load; the CPU the app
    spends per request much less so: both are shown."""
    out = []
    for _ in range(windows):
        c0 = app_cpu(host_pid)
        rps = load(target, 1, seconds)[0]
        n = max(1.0, rps * seconds)  # requests in the window (the exec's start adds none)
        out.append((rps, (app_cpu(host_pid) - c0) * 1000 / n))
    return out


def load(target, windows, seconds, port=8000, cap=20000):
    """requests/s in each window."""
    cp = subprocess.run(["docker", "exec", "-i", target, "python3", "-", str(windows),
                         str(seconds), str(cap), str(port)], input=LOADGEN, capture_output=True,
                        text=True, timeout=windows * seconds * 3 + 60)
    out = [line.split() for line in cp.stdout.splitlines() if line.startswith("WINDOW")]
    if cp.returncode or len(out) != windows:
        raise RuntimeError(f"load generator failed: {cp.stdout[-300:]!r} {cp.stderr[-300:]!r}")
    return [int(n) / float(t) for _, n, t in out]


def injection_latency(target, n):
    """kubectl-wand's own ack latencies (ms) for n exec injections in one session."""
    from kubectl_wand.backends.docker import DockerBackend
    from kubectl_wand.engine import ops

    class T:
        name = target

    backend = DockerBackend()
    box = backend.resolve(T)[0]
    session = ops.open_session(backend, box)
    acks = []
    try:
        for _ in range(n):
            events = session.request("exec", {"filename": "<bench>"}, blobs=[("code", b"pass")],
                                     timeout=30)
            acks += [e["ms"] for e in events if e.get("event") == "ack"]
    finally:
        session.close()
    return acks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="load windows per phase (10)")
    ap.add_argument("--window", type=float, default=1.0, help="seconds per load window (1)")
    ap.add_argument("--injections", type=int, default=200, help="injections timed (200)")
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    args = ap.parse_args()
    cleanup = Cleanup()
    started = time.perf_counter()
    load0 = os.getloadavg()[0]
    lat = Table("injection latency on a busy target", unit="ms")
    cost = Table("target cost: requests/s under a loopback load (one connection at a time)",
                 unit="req/s")
    cpu_table = Table("target cost: the app's own CPU per request (ratio > 1: dearer)",
                      unit="CPU-ms per request")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    def body():
        log("busy target: injection latency…")
        busy = start_target(args.image, cleanup, "busy", BUSY_APP)
        ours = injection_latency(busy, args.injections)
        helper = start_floor_helper(args.image, busy, "busy")
        _, floor = time_floor_exec(helper, args.injections)
        floor = [x * 1000 for x in floor]
        lat.section(f"/app/busy.py, {args.injections} injections each")
        lat.add("remote_exec → payload running (kubectl-wand)", ours, "floor: one-line script", floor)
        lat.add("  p99", [pct(ours, 99)], "  p99", [pct(floor, 99)])

        for tag, cmd, what in (("web", HTTP_APP, "/app/http_app.py: ThreadingHTTPServer, a thread "
                                "per request"),
                               ("web1", SINGLE_THREADED, "the same handler in a single-threaded "
                                "HTTPServer")):
            target_cost(tag, cmd, what)

    def target_cost(tag, cmd, what):
        web = start_target(args.image, cleanup, tag, cmd)
        host_pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", web],
                                      capture_output=True, text=True).stdout)
        load(web, 3, args.window)  # warm-up, not counted
        phases = {"before": [], "listening": [], "attached": [], "after": []}
        rounds = 2  # the whole cycle twice: a drift of the machine's load shows in every phase
        per = max(1, -(-args.runs // rounds))
        for r in range(rounds):
            log(f"{tag}, round {r + 1}/{rounds}: load before attach…")
            phases["before"] += measured(web, host_pid, per, args.window)
            log("… with the debugger listening")
            p = subprocess.Popen([WAND, "attach", "docker/" + web, "--local-port", "0", "-o",
                                  "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=CLI_ENV)
            cleanup.procs.append(p)
            err = []
            threading.Thread(target=lambda: err.extend(p.stderr), daemon=True).start()
            info = json.loads(wait_for_line(p.stdout, lambda s: s.startswith("{"), 120))
            phases["listening"] += measured(web, host_pid, per, args.window)
            log("… with a DAP client attached (no breakpoints)")
            dap = DAPClient("127.0.0.1", info["port"], timeout=30)
            dap.attach()
            phases["attached"] += measured(web, host_pid, per, args.window)
            dap.close()
            log("… after detach")
            p.send_signal(signal.SIGINT)
            if p.wait(timeout=60):
                raise RuntimeError("attach failed to detach: " + "".join(err))
            cleanup.procs.remove(p)
            phases["after"] += measured(web, host_pid, per, args.window)
        rps = {k: [r for r, _ in v] for k, v in phases.items()}
        cpu = {k: [c for _, c in v] for k, v in phases.items()}
        cost.section(f"{what}; {rounds} rounds x {per} windows of {args.window:g} s per phase")
        cost.add("before attach: requests/s", rps["before"])
        for key, label in (("listening", "debugger listening"),
                           ("attached", "DAP client attached, no breakpoints"),
                           ("after", "after detach")):
            cost.add(f"{label}: requests/s", rps[key], "before attach", rps["before"])
        cpu_table.section(what)
        cpu_table.add("before attach", cpu["before"])
        for key, label in (("listening", "debugger listening"),
                           ("attached", "DAP client attached, no breakpoints"),
                           ("after", "after detach")):
            cpu_table.add(label, cpu[key], "before attach", cpu["before"])

    rc = guarded(body, cleanup)
    if rc == 0:
        print(f"\n{machine_line(started, load0)}")
        print(lat.render())
        print(cost.render())
        print(cpu_table.render())
    return rc


if __name__ == "__main__":
    sys.exit(main())
