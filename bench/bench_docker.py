"""Timings of kubectl-wand's Docker backend against real containers (never part of the tests).

    .venv/bin/python bench/bench_docker.py [--runs N] [--image IMAGE] [--no-jitter]

Two kinds of target (uid 1000, --network none, --cap-drop ALL): /app/http_app.py, whose main
thread looks for injections only every 0.5 s, and a loop back in the interpreter every 5 ms, so
the same figures there are the tool's own cost. Per kind, each figure next to its reference
measured in the same run:

  exec -c 'print(1)' round trip      next to the floor: docker exec into a bare helper,
                                     sys.remote_exec, ack file
  attach → DAP initialize answered   next to the floor (remote_exec + debugpy.listen with a
                                     compiled debugpy already in the target, initialize from
                                     inside the container: no CLI) and to the naive flow
                                     (docker cp, a one-shot helper runs remote_exec, retry
                                     initialize through a relay until it answers)
  bytes the CLI writes per attach    (/proc/PID/io of the CLI until its ready line)
  helper containers per 11 attaches  (docker events: creations labelled for the target)

The floor and the naive flow need a process that never had debugpy: each of their runs gets
a fresh target (set up untimed). Everything made is removed at the end, also on an error or
Ctrl-C. See docs/performance.md for what each figure means.
"""

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (DEFAULT_IMAGE, HTTP_APP, TICKING_APP, WAND, CLI_ENV,  # noqa
                    Cleanup, Table, guarded, machine_line, start_floor_helper, start_target,
                    time_attach, time_exec, time_floor_attach, time_floor_exec,
                    time_naive_docker)


def time_version():
    t0 = time.perf_counter()
    cp = subprocess.run([WAND, "--version"], capture_output=True, text=True, timeout=30,
                        env=CLI_ENV)
    t = time.perf_counter() - t0
    if cp.returncode:
        raise RuntimeError("kubectl-wand --version failed: " + cp.stderr)
    return t


def helpers_created(target_id, since):
    """How many kubectl-wand helper containers were created for the target since `since`."""
    cp = subprocess.run(["docker", "events", "--since", str(since), "--until",
                         str(int(time.time()) + 1), "--filter", "type=container",
                         "--filter", "event=create", "--filter",
                         "label=kubectl-wand.helper-for=" + target_id, "--format", "{{.ID}}"],
                        capture_output=True, text=True, timeout=60)
    return len(cp.stdout.split())


def container_id(name):
    return subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True,
                          text=True).stdout.strip()


def run_kind(args, cleanup, table, kind, app, jitter, log):
    n = args.runs
    tag = "h" if app is HTTP_APP else "t"
    spaced = (lambda fn, *a, **k: (jitter(), fn(*a, **k))[1])

    a = start_target(args.image, cleanup, tag + "a", app)     # exec + exec floor
    b = start_target(args.image, cleanup, tag + "b", app)     # attach
    log(f"{kind}: exec…")
    cold_exec = spaced(time_exec, "docker/" + a)
    warm_exec = [spaced(time_exec, "docker/" + a) for _ in range(n)]
    fh = start_floor_helper(args.image, a, tag + "a")
    floor_exec = [spaced(time_floor_exec, fh) for _ in range(n)]

    log(f"{kind}: attach…")
    since = int(time.time()) - 1
    cold = spaced(time_attach, "docker/" + b, cleanup, pause=jitter)
    warm = [spaced(time_attach, "docker/" + b, cleanup, pause=jitter) for _ in range(n)]
    created = helpers_created(container_id(b), since)
    log(f"{kind}: attach floor and naive flow (a fresh target each run)…")
    floor = [spaced(time_floor_attach, args.image, app, cleanup, f"{tag}f{i}") for i in range(n)]
    naive = [spaced(time_naive_docker, args.image, app, cleanup, f"{tag}n{i}") for i in range(n)]

    table.section(f"target: {kind}")
    table.add("exec round trip, warm (helper exists)", warm_exec,
              "floor: exec+remote_exec+ack", [t for t, _ in floor_exec])
    table.add("exec round trip, cold (starts the helper)", [cold_exec])
    table.add("attach → DAP initialize, warm", [r["ready"] for r in warm],
              "floor: debugpy .pyc in place", [t for t, _ in floor])
    table.add("", [], "  of which in the container", [t for _, t in floor])
    table.add("attach → DAP initialize, warm", [r["ready"] for r in warm],
              "naive: cp + exec + poll", naive)
    table.add("attach → DAP initialize, cold (first ever)", [cold["ready"]],
              "naive: cp + exec + poll", naive)
    table.add("detach: SIGINT → attach exited, warm", [r["detach"] for r in warm])
    table.add("bytes written by the CLI per attach, warm (kB)",
              [r["bytes"] / 1000 for r in warm if r["bytes"] is not None])
    table.add("bytes written by the CLI, cold attach (kB)",
              [cold["bytes"] / 1000] if cold["bytes"] is not None else [])
    table.add(f"helper containers created for {n + 1} attaches", [created])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per warm measurement (10)")
    ap.add_argument("--image", default=DEFAULT_IMAGE,
                    help="target image with python3 = 3.14 and /app/http_app.py")
    ap.add_argument("--no-jitter", action="store_true",
                    help="no random pause before each run on http_app (see docs/performance.md)")
    ap.add_argument("--kinds", default="ticking,http", help="target kinds (ticking,http)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    rng = random.Random(768)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    def http_jitter():
        """An untimed pause to a random phase of http_app's 0.5 s select() timeout: runs back
        to back would all start at the same phase of its poll loop and come out rounded up to
        its period. Outside the timed window; not a wait for anything to become ready."""
        if not args.no_jitter:
            time.sleep(rng.uniform(0.0, 0.5))

    cleanup = Cleanup()
    started = time.perf_counter()
    load0 = os.getloadavg()[0]
    table = Table(f"Docker backend, image {args.image}")

    def body():
        log(f"kubectl-wand bench (docker), {args.runs} runs each, {os.cpu_count()} CPUs, "
            f"load {load0:.2f}")
        table.section("CLI start-up")
        table.add("kubectl-wand --version", [time_version() for _ in range(args.runs)])
        for kind in args.kinds.split(","):
            if kind == "ticking":
                run_kind(args, cleanup, table, "ticking loop (looks every 5 ms)", TICKING_APP,
                         lambda: None, log)
            elif kind == "http":
                run_kind(args, cleanup, table, "/app/http_app.py (looks every 0.5 s)", HTTP_APP,
                         http_jitter, log)

    rc = guarded(body, cleanup)
    if rc == 0:
        print(f"\n{machine_line(started, load0)}" + ("; no jitter" if args.no_jitter else ""))
        print(table.render())
    return rc


if __name__ == "__main__":
    sys.exit(main())
