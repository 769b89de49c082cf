"""What `trace` and `profile` cost the target (never in the tests).

    .venv/bin/python bench/bench_observe.py [--windows N]   (run_all.py: --runs N = windows)

One CPU-bound target (uid 1000, no network, no capability): its main thread calls step() in a
loop (~0.1 ms of arithmetic each) and prints how many steps it made in each second. Phases, one
after the other on the same target, --windows one-second windows each (the first window after
a change is not counted): untouched; `trace` on step()'s hot line with --rate 10, 100, 1000/s
(every execution of the line reaches the callback, those within the rate are evaluated, repr'd
and sent); `profile` at 10, 100, 1000 Hz (memory reads from the helper); untouched again.
Each phase's median steps/s and the target's CPU per step (all its threads: process_time()),
next to the median of the two untouched phases. On a loaded machine steps/s follows the other
load; CPU per step much less so.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (BENCH_LABEL, CLI_ENV, DEFAULT_IMAGE, RUN_ID, WAND, Cleanup,  # noqa: E402
                    guarded, machine_line)

APP = '''import time


def step(i):
    t = 0
    for k in range(300):
        t += k * k
    x = i * 2  # TRACED
    return x + t


print("READY", flush=True)
i = n = 0
t0, c0 = time.monotonic(), time.process_time()
while True:
    step(i)
    i += 1
    n += 1
    if n % 64 == 0:
        now = time.monotonic()
        if now - t0 >= 1.0:
            cpu = time.process_time()  # every thread of the process: the tracer's too
            print("RATE %.1f %.3f" % (n / (now - t0), (cpu - c0) * 1e6 / n), flush=True)
            n, t0, c0 = 0, now, cpu
'''
TRACED = next(n for n, line in enumerate(APP.splitlines(), 1) if "# TRACED" in line)


class Rates:
    """The target's RATE lines, as they come."""

    def __init__(self, name):
        self.proc = subprocess.Popen(["docker", "logs", "-f", name], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines, self.cond = [], threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            if line.startswith("RATE "):
                with self.cond:
                    self.lines.append(tuple(map(float, line.split()[1:3])))
                    self.cond.notify_all()

    def take(self, n, skip=1):
        """The next ``n`` windows after skipping ``skip`` (the one a change fell in)."""
        with self.cond:
            start = len(self.lines)
            while len(self.lines) < start + skip + n:
                if not self.cond.wait(30):
                    raise RuntimeError("the target stopped reporting its rate")
            return self.lines[start + skip:start + skip + n]


def during(argv, ready, fn, cleanup):
    """Start the CLI, wait for ``ready`` on its stderr, run fn(), then Ctrl-C it."""
    import signal

    p = subprocess.Popen([WAND, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env=CLI_ENV)
    cleanup.procs.append(p)
    for line in p.stderr:
        if ready in line:
            break
    else:
        raise RuntimeError(f"{argv[0]} did not start: {p.wait()}")
    try:
        return fn()
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)


def main_fn(args, cleanup):
    started, load0 = time.perf_counter(), os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="wand-bench-observe-")
    os.chmod(tmp, 0o755)
    Path(tmp, "hotapp.py").write_text(APP)
    os.chmod(Path(tmp, "hotapp.py"), 0o644)
    name = f"wand-bench-{RUN_ID}-observe"
    cp = subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--label", BENCH_LABEL,
                         "--network", "none", "--user", "1000:1000", "--cap-drop", "ALL",
                         "-v", f"{tmp}:/bench:ro", args.image, "python3", "/bench/hotapp.py"],
                        capture_output=True, text=True)
    if cp.returncode:
        raise SystemExit(cp.stderr)
    cleanup.targets.append(cp.stdout.strip())
    rates = Rates(name)
    target = f"docker/{name}"
    rows = [("untouched", rates.take(args.windows))]
    for r in (10, 100, 1000):
        rows.append((f"trace, --rate {r}/s", during(
            ["trace", target, f"hotapp.py:{TRACED}", "x", "--rate", f"{r}/s", "--for", "10m",
             ], "tracing", lambda: rates.take(args.windows), cleanup)))
    for hz in (10, 100, 1000):
        rows.append((f"profile, {hz} Hz", during(
            ["profile", target, "--rate", str(hz), "--duration", "10m", "--top", "0"],
            "Sampling", lambda: rates.take(args.windows), cleanup)))
    rows.append(("untouched, again", rates.take(args.windows)))
    base = statistics.median([x[0] for x in rows[0][1] + rows[-1][1]])
    cbase = statistics.median([x[1] for x in rows[0][1] + rows[-1][1]])
    print(f"\n## trace and profile: the target's steps/s and CPU per step (median of "
          f"{args.windows} 1-s windows)")
    print(f"\n{machine_line(started, load0)}\n")
    print("| phase | steps/s | vs untouched | target CPU µs/step | vs untouched |")
    print("|---|---|---|---|---|")
    for label, xs in rows:
        m = statistics.median([x[0] for x in xs])
        c = statistics.median([x[1] for x in xs])
        print(f"| {label} | {m:,.0f} | {100 * (m / base - 1):+.1f} % | {c:.2f} | "
              f"{100 * (c / cbase - 1):+.1f} % |")
    rates.proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", "--runs", type=int, default=5,
                    help="one-second windows per phase (run_all.py passes --runs)")
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    args = ap.parse_args()
    cleanup = Cleanup()
    return guarded(lambda: main_fn(args, cleanup), cleanup)


if __name__ == "__main__":
    sys.exit(main())
