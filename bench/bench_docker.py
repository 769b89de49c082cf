"""Timings of kubectl-wand's Docker backend against real containers (never part of the tests).

    .venv/bin/python bench/bench_docker.py [--runs N] [--image IMAGE] [--no-jitter]

Starts three fresh targets (uid 1000, --network none, --cap-drop ALL). Two run /app/http_app.py:
target A for `exec` (first call cold, then warm) and for the floor, target B for `attach`
(first call cold, then warm). Target C runs a loop whose main thread is back in the interpreter
every 5 ms, so the same figures there show the tool's cost without http_app's up-to-0.5 s wait
for its main thread to pick an injection up. Every wait is on a real signal: the app's READY
line, the JSON line from `attach -o json`, the answer to a DAP `initialize`, the exit of the
CLI, the ack file written by an injected script. Every container made (targets, the floor's
helpers and kubectl-wand's own helpers, labelled kubectl-wand.helper-for=<target id>) is
removed at the end, also on error or Ctrl-C. See docs/performance.md for what each figure means.
"""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubectl_wand.dap import DAPClient  # noqa: E402
from tests.conftest import wait_for_line  # noqa: E402

WAND = str(Path(sys.executable).parent / "kubectl-wand")
if not os.path.exists(WAND):
    WAND = shutil.which("kubectl-wand") or WAND

RUN_ID = uuid.uuid4().hex[:8]
BENCH_LABEL = "kubectl-wand.bench=" + RUN_ID

# What the floor runs inside its helper (python3 of the target image, fed on stdin): stage a
# file the target can read through /proc/1/root, sys.remote_exec it, wait for its ack file.
FLOOR_SCRIPT = r"""
import os, sys, time, uuid
t0 = time.monotonic()
uid = os.stat("/proc/1").st_uid
name = ".wand-floor-" + uuid.uuid4().hex[:10]
inner = "/tmp/" + name                      # the path as the target sees it
outer = "/proc/1/root" + inner              # the same directory, seen from here
os.mkdir(outer, 0o700)
os.chown(outer, uid, uid)
script = outer + "/x.py"
fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, ("open(%r, 'w').close()\n" % (inner + "/ack")).encode())
os.close(fd)
os.chown(script, uid, uid)
t1 = time.monotonic()
sys.remote_exec(1, script)
ack = outer + "/ack"
deadline = t1 + 10.0
while not os.path.exists(ack):
    if time.monotonic() > deadline:
        print("TIMEOUT", flush=True)
        break
    time.sleep(0.002)
else:
    print("ACK %.6f" % (time.monotonic() - t1), flush=True)
for f in os.listdir(outer):
    os.unlink(os.path.join(outer, f))
os.rmdir(outer)
"""


class Cleanup:
    """Everything this run made, removed at the end whatever happens."""

    def __init__(self):
        self.targets = []   # container ids
        self.others = []    # container names (the floor's helper)
        self.procs = []     # CLI processes still possibly running

    def run(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)      # let an attach detach if it still can
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for name in self.others:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        for cid in self.targets:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        ids = set()
        for cid in self.targets:
            ids.update(_ps_filter("label=kubectl-wand.helper-for=" + cid))
        ids.update(_ps_filter("label=" + BENCH_LABEL))
        if ids:
            subprocess.run(["docker", "rm", "-f", *sorted(ids)], capture_output=True)
        left = set()
        for cid in self.targets:
            left.update(_ps_filter("label=kubectl-wand.helper-for=" + cid))
        left.update(_ps_filter("label=" + BENCH_LABEL))
        return sorted(left)


def _ps_filter(flt):
    return subprocess.run(["docker", "ps", "-aq", "--filter", flt], capture_output=True,
                          text=True).stdout.split()


HTTP_APP = ["python3", "/app/http_app.py"]
# Main thread back in the interpreter every 5 ms: injections are picked up at once, so what is
# left is the tool's own cost (http_app's serve_forever() only looks every 0.5 s).
TICKING_APP = ["python3", "-c", "import time\nprint('READY 0', flush=True)\n"
               "while True:\n    time.sleep(0.005)\n"]


def start_target(image, cleanup, tag, cmd=HTTP_APP):
    name = f"wand-bench-{RUN_ID}-{tag}"
    cp = subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--label", BENCH_LABEL,
                         "--network", "none", "--user", "1000:1000", "--cap-drop", "ALL",
                         image, *cmd],
                        capture_output=True, text=True)
    if cp.returncode:
        raise SystemExit(f"cannot start a target from {image}: {cp.stderr.strip()}")
    cleanup.targets.append(cp.stdout.strip())
    logs = subprocess.Popen(["docker", "logs", "-f", name], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line(logs.stdout, lambda line: "READY" in line, 60)
    finally:
        logs.kill()
        logs.wait()
    return name


def start_floor_helper(image, target, cleanup, tag):
    name = f"wand-bench-{RUN_ID}-floor-{tag}"
    cleanup.others.append(name)
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--label", BENCH_LABEL,
                    "--pid", "container:" + target, "--network", "container:" + target,
                    "--cap-add", "SYS_PTRACE", image,
                    "python3", "-c", "import time; time.sleep(600)"],
                   check=True, capture_output=True)
    return name


# ---------------------------------------------------------------- the measurements

def time_version():
    t0 = time.perf_counter()
    cp = subprocess.run([WAND, "--version"], capture_output=True, text=True, timeout=30)
    t = time.perf_counter() - t0
    if cp.returncode:
        raise RuntimeError("kubectl-wand --version failed: " + cp.stderr)
    return t


def time_exec(target):
    t0 = time.perf_counter()
    cp = subprocess.run([WAND, "exec", "docker/" + target, "-q", "-c", "print(1)"],
                        capture_output=True, text=True, timeout=60)
    t = time.perf_counter() - t0
    if cp.returncode or cp.stdout.strip() != "1":
        raise RuntimeError(f"exec failed (exit {cp.returncode}): {cp.stdout!r} {cp.stderr!r}")
    return t


def time_attach(target, cleanup, pause=None):
    """(launch → DAP initialize answered, SIGINT → exit) for one attach.

    pause(), if given, runs untimed before the SIGINT (a random phase, as for the launch)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([WAND, "attach", "docker/" + target, "--local-port", "0", "-o", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cleanup.procs.append(p)
    err = []
    threading.Thread(target=lambda: err.extend(p.stderr), daemon=True).start()
    try:
        line = wait_for_line(p.stdout, lambda s: s.startswith("{"), 60)
    except AssertionError as e:
        p.kill()
        p.wait()
        raise RuntimeError(f"attach did not get ready ({e}): {''.join(err)}")
    info = json.loads(line)
    client = DAPClient("127.0.0.1", info["port"], timeout=30)
    client.request("initialize", clientID="kubectl-wand-bench", adapterID="debugpy",
                   pathFormat="path", linesStartAt1=True, columnsStartAt1=True)
    ready = time.perf_counter() - t0
    client.close()  # the editor disconnects (not timed), then the user presses Ctrl-C
    if pause:
        pause()
    t1 = time.perf_counter()
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise RuntimeError("attach did not exit within 60 s of SIGINT: " + "".join(err))
    detach = time.perf_counter() - t1
    cleanup.procs.remove(p)
    if rc != 0:
        raise RuntimeError(f"attach exited {rc} after SIGINT: {''.join(err)}")
    return ready, detach


def time_floor(helper):
    """(docker exec start → ack, remote_exec → ack inside the helper)."""
    t0 = time.perf_counter()
    cp = subprocess.run(["docker", "exec", "-i", helper, "python3", "-"], input=FLOOR_SCRIPT,
                        capture_output=True, text=True, timeout=30)
    t = time.perf_counter() - t0
    out = cp.stdout.split()
    if cp.returncode or not out or out[0] != "ACK":
        raise RuntimeError(f"floor injection failed (exit {cp.returncode}): "
                           f"{cp.stdout!r} {cp.stderr!r}")
    return t, float(out[1])


# ---------------------------------------------------------------- reporting

def summary(xs):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    p90 = statistics.quantiles(xs, n=10, method="inclusive")[8]
    return statistics.median(xs), p90, xs[0]


def table(sections):
    head = f"{'measurement':<52} {'runs':>4} {'median':>8} {'p90':>8} {'min':>8}"
    print(head)
    for title, rows in sections:
        print("-" * len(head))
        print(title)
        for label, xs in rows:
            med, p90, mn = summary(xs)
            print(f"  {label:<50} {len(xs):>4} {med:>8.3f} {p90:>8.3f} {mn:>8.3f}")


def _no_interrupts():
    """Cleanup must finish: a second Ctrl-C or TERM would leave containers behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per warm measurement (10)")
    ap.add_argument("--image", default=os.environ.get("WAND_TEST_IMAGE", "wand-bed/py314:latest"),
                    help="target image with python3 = 3.14 and /app/http_app.py")
    ap.add_argument("--no-jitter", action="store_true",
                    help="no random pause before each run (see docs/performance.md)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    n = args.runs
    rng = random.Random(768)

    def jitter():
        """An untimed pause to a random phase of http_app's 0.5 s select() timeout.

        Runs back to back would start a fixed delay after the previous pick-up, i.e. always
        at the same phase of the target's poll loop, and every figure would come out rounded
        up to that loop's period. The pause is outside the timed window; it is not a wait for
        anything to become ready.
        """
        if not args.no_jitter:
            time.sleep(rng.uniform(0.0, 0.5))

    def spaced(fn, *a):
        jitter()
        return fn(*a)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    cleanup = Cleanup()
    started = time.perf_counter()
    load0 = os.getloadavg()
    try:
        print(f"kubectl-wand bench (docker), {n} runs each, image {args.image}, "
              f"{os.cpu_count()} CPUs, load {load0[0]:.2f}", file=sys.stderr)
        a = start_target(args.image, cleanup, "a")                # exec + floor, http_app
        b = start_target(args.image, cleanup, "b")                # attach, http_app
        c = start_target(args.image, cleanup, "c", TICKING_APP)   # everything, ticking

        version = [time_version() for _ in range(n)]

        print("exec…", file=sys.stderr)
        cold_exec = spaced(time_exec, a)                 # first ever: starts A's helper
        warm_exec = [spaced(time_exec, a) for _ in range(n)]

        print("attach…", file=sys.stderr)
        cold_ready, cold_detach = spaced(time_attach, b, cleanup, jitter)  # B's helper, 1st debugpy
        warm = [spaced(time_attach, b, cleanup, jitter) for _ in range(n)]

        print("floor…", file=sys.stderr)
        floor_helper = start_floor_helper(args.image, a, cleanup, "a")
        floor = [spaced(time_floor, floor_helper) for _ in range(n)]

        print("ticking target…", file=sys.stderr)
        t_cold_exec = time_exec(c)
        t_exec = [time_exec(c) for _ in range(n)]
        t_attach = [time_attach(c, cleanup) for _ in range(n)]
        t_floor_helper = start_floor_helper(args.image, c, cleanup, "c")
        t_floor = [time_floor(t_floor_helper) for _ in range(n)]

        sections = [
            ("CLI start-up", [("kubectl-wand --version", version)]),
            ("target: /app/http_app.py (main thread looks every 0.5 s)", [
                ("exec round trip, warm (helper exists)", warm_exec),
                ("exec round trip, cold (starts the helper)", [cold_exec]),
                ("attach → DAP initialize answered, warm", [r for r, _ in warm]),
                ("attach → DAP initialize answered, cold", [cold_ready]),
                ("detach: SIGINT → attach exited (0), warm", [d for _, d in warm]),
                ("detach after the cold attach", [cold_detach]),
                ("floor: docker exec → remote_exec → ack", [t for t, _ in floor]),
                ("  of which remote_exec → ack", [t for _, t in floor]),
            ]),
            ("target: ticking loop (main thread looks every 5 ms)", [
                ("exec round trip, warm", t_exec),
                ("exec round trip, cold (starts the helper)", [t_cold_exec]),
                ("attach → DAP initialize answered, warm", [r for r, _ in t_attach]),
                ("detach: SIGINT → attach exited (0), warm", [d for _, d in t_attach]),
                ("floor: docker exec → remote_exec → ack", [t for t, _ in t_floor]),
                ("  of which remote_exec → ack", [t for _, t in t_floor]),
            ]),
        ]
    except KeyboardInterrupt:
        _no_interrupts()
        print("\ninterrupted; removing containers…", file=sys.stderr)
        left = cleanup.run()
        if left:
            print("could not remove: " + " ".join(left), file=sys.stderr)
        return 130
    except Exception:
        _no_interrupts()
        cleanup.run()
        raise
    _no_interrupts()
    left = cleanup.run()
    print(f"\nseconds; {os.cpu_count()} CPUs; load {load0[0]:.2f} → {os.getloadavg()[0]:.2f}; "
          f"wall {time.perf_counter() - started:.0f} s"
          + ("; no jitter" if args.no_jitter else ""))
    table(sections)
    if left:
        print("could not remove: " + " ".join(left), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
