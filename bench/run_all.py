"""Every bench, one command (never part of the test suite):

    .venv/bin/python bench/run_all.py [--runs N] [--only docker,kube,target,fanout]

Runs, one after the other (they would disturb each other's timings in parallel):

  bench_docker.py   exec and attach on the Docker backend next to the floor and the naive flow,
                    bytes per attach, helper containers per attaches
  bench_kube.py     the same through the real kubectl and the test API, API requests per command
  bench_target.py   injection latency on a busy target (p50/p99), requests/s of an HTTP target
                    before attach, listening, client attached, after detach
  bench_fanout.py   ps and exec --all over 1, 5 and 20 replicas
  bench_observe.py  the target's throughput and CPU under trace (10/100/1000 hits/s) and
                    profile (10/100/1000 Hz), next to the same target untouched

and prints their tables together (median and p90 over --runs runs, each figure next to its
reference measured in the same run). Progress goes to stderr; the tables to stdout. Needs the
Docker engine and the test images (`bash tests/bed/setup.sh`). About 15 minutes with 10 runs.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "docker": ["bench_docker.py"],
    "kube": ["bench_kube.py"],
    "target": ["bench_target.py"],
    "fanout": ["bench_fanout.py"],
    "observe": ["bench_observe.py"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per figure (10; at least 10 "
                    "for the published figures)")
    ap.add_argument("--only", default=",".join(BENCHES), help="which benches (default: all)")
    args = ap.parse_args()
    started = time.perf_counter()
    out, failed = [], []
    for name in args.only.split(","):
        if name not in BENCHES:
            ap.error(f"unknown bench {name!r}; choose from {', '.join(BENCHES)}")
        argv = [sys.executable, str(HERE / BENCHES[name][0]), "--runs", str(args.runs)]
        print(f"### {' '.join(argv[1:])}", file=sys.stderr, flush=True)
        cp = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
        if cp.returncode:
            failed.append(name)
        out.append(f"### {name} (exit {cp.returncode})\n{cp.stdout.strip()}\n")
        print(out[-1], flush=True)
    print(f"all benches: wall {time.perf_counter() - started:.0f} s, load now "
          f"{os.getloadavg()[0]:.2f}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
