"""Fan-out timings through the real kubectl against the test API (never part of the tests).

    .venv/bin/python bench/bench_fanout.py [--runs N] [--sizes 1,5,20] [--max-parallel 8]

For each size N it creates a Deployment with N ready replicas (pods are Docker
containers, see tests/kube/apiserver) whose app's main thread is back in the interpreter every
5 ms (so the figures are the tool's, not an app's pick-up delay), then times, as a user's shell
would (launch → exit, output checked):

  ps deploy/fanN                       the lister in every pod, in parallel (no helper)
  exec deploy/fanN --all -c pass       cold: the first one, which adds one ephemeral helper
                                       per pod; warm: later ones, which reuse them
  floor: kubectl exec POD -- true      the least any tool does per pod through this kubectl:
                                       one bare `kubectl exec` per pod, run in parallel just
                                       as wide (--max-parallel), no CLI, no Python in the pod
  exec deploy/procsN --all-processes   one replica running N Python processes (one parent,
                                       N-1 children): every process of it, warm

Prints medians and p90 over --runs warm runs, each next to the single-replica (or
single-process) figure, and how busy the machine's CPUs were during the warm exec runs
(CPU-seconds per pod, whoever spent them). Every container made is removed at the end, also
on an error or Ctrl-C. See docs/performance.md for the figures and what they mean.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from common import WAND, cli_env, Table  # noqa: E402
from tests.kube.apiserver.cluster import Cluster  # noqa: E402
TICKER = ["python3", "-c", "import time; print('READY', flush=True); "
          "[time.sleep(0.005) for _ in iter(int, 1)]"]


def busy_jiffies():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def procs_app(n):
    """A Python process with n-1 Python children, all ticking; READY once the children run."""
    child = "import time\\nprint(1, flush=True)\\nwhile True: time.sleep(0.005)"
    return ["python3", "-c",
            "import subprocess, sys, time\n"
            f"kids = [subprocess.Popen([sys.executable, '-c', '{child}'], "
            f"stdout=subprocess.PIPE) for _ in range({n - 1})]\n"
            "[k.stdout.readline() for k in kids]\n"
            "print('READY', flush=True)\n"
            "while True: time.sleep(0.005)\n"]


def floor(cluster, pods, width):
    """One bare `kubectl exec POD -c app -- true` per pod, `width` at a time: seconds."""
    def one(pod):
        subprocess.run(["kubectl", "exec", pod, "-c", "app", "--", "true"], env=cluster.env,
                       check=True, capture_output=True, timeout=120)

    t0 = time.monotonic()
    with ThreadPoolExecutor(min(width, len(pods))) as pool:
        list(pool.map(one, pods))
    return time.monotonic() - t0


def timed(cluster, argv, check):
    t0 = time.monotonic()
    cp = subprocess.run([WAND] + argv, env=cli_env(cluster.env),
                        capture_output=True, text=True, timeout=600)
    dt = time.monotonic() - t0
    if cp.returncode != 0 or not check(cp.stdout):
        raise SystemExit(f"unexpected result of {' '.join(argv)} (exit {cp.returncode}):\n"
                         f"{cp.stdout[-2000:]}\n{cp.stderr[-2000:]}")
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="warm runs per figure (default 10)")
    ap.add_argument("--sizes", default="1,5,20", help="replica counts (default 1,5,20)")
    ap.add_argument("--max-parallel", type=int, default=8, help="exec --max-parallel")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    tmp = tempfile.mkdtemp(prefix="wand-bench-fanout-")
    cluster = Cluster(tmp)
    rows = []
    started = time.monotonic()
    load0 = os.getloadavg()[0]
    try:
        for n in sizes:
            name = f"fan{n}"
            t0 = time.monotonic()
            dep = cluster.deployment(name, replicas=n, ready_line="READY",
                                     containers=[{"name": "app", "command": TICKER,
                                                  "user": 1000}])
            print(f"[{n}] {n} ready pod(s) in {time.monotonic() - t0:.1f}s", file=sys.stderr)
            ok_ps = lambda out, n=n: len(out.strip().splitlines()) == n + 1  # noqa: E731
            ok_exec = lambda out, n=n: out.rstrip().endswith(  # noqa: E731
                f"{n} target{'s' if n != 1 else ''}: {n} succeeded, 0 failed")
            exec_argv = ["exec", f"deploy/{name}", "--all", "-q", "--max-parallel",
                         str(args.max_parallel), "-c", "pass"]
            cold = timed(cluster, exec_argv, ok_exec)
            ps = [timed(cluster, ["ps", f"deploy/{name}"], ok_ps) for _ in range(args.runs)]
            b0, t0 = busy_jiffies()
            warm = [timed(cluster, exec_argv, ok_exec) for _ in range(args.runs)]
            b1, t1 = busy_jiffies()
            # the machine's CPU use during the warm exec runs: all of it, whoever spent it
            # (the CLI, kubectl processes, the test API server, dockerd, the injectors in the pods)
            cpu = ((b1 - b0) / (t1 - t0), (b1 - b0) / os.sysconf("SC_CLK_TCK") / args.runs / n)
            bare = [floor(cluster, dep.pods, args.max_parallel) for _ in range(args.runs)]
            for pod in dep.pods:  # idle tickers would still take their share of the CPUs
                cluster.delete_pod(pod)
            # N processes in one replica
            pname = f"procs{n}"
            dep = cluster.deployment(pname, replicas=1, ready_line="READY",
                                     containers=[{"name": "app", "command": procs_app(n),
                                                  "user": 1000}])
            ok_procs = lambda out, n=n: out.rstrip().endswith(  # noqa: E731
                f"{n} process{'es' if n != 1 else ''} in 1 target: {n} succeeded, 0 failed"
                if n != 1 else "1 target: 1 succeeded, 0 failed")
            procs_argv = ["exec", f"deploy/{pname}", "--all-processes", "-q",
                          "--max-parallel", str(args.max_parallel), "-c", "pass"]
            timed(cluster, procs_argv, ok_procs)  # adds the helper
            procs = [timed(cluster, procs_argv, ok_procs) for _ in range(args.runs)]
            cluster.delete_pod(dep.pod)
            rows.append((n, ps, cold, warm, cpu, bare, procs))
            print(f"[{n}] ps {statistics.median(ps):.3f}s, exec --all cold {cold:.3f}s, "
                  f"warm {statistics.median(warm):.3f}s, floor {statistics.median(bare):.3f}s, "
                  f"--all-processes {statistics.median(procs):.3f}s", file=sys.stderr)
    finally:
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs; load {load0:.2f} -> {os.getloadavg()[0]:.2f}; "
          f"{args.runs} warm runs each; exec --max-parallel {args.max_parallel}; "
          f"wall {time.monotonic() - started:.0f} s")
    table = Table("fan-out through the real kubectl and the test API: ps and exec --all over N replicas")
    base = rows[0] if rows and rows[0][0] == 1 else None
    for n, ps, cold, warm, cpu, bare, procs in rows:
        table.section(f"{n} replica{'s' if n != 1 else ''}: machine CPU {cpu[0]:.0%} busy, "
                      f"{cpu[1]:.2f} CPU-s per pod per exec --all")
        ref = base if base and n != 1 else None
        table.add(f"ps deploy/fan{n}", ps, "ps over 1 replica" if ref else None,
                  ref[1] if ref else None)
        table.add("exec --all, warm", warm, "exec --all over 1" if ref else None,
                  ref[3] if ref else None)
        table.add(f"exec --all, cold (adds {n} helper{'s' if n != 1 else ''})", [cold])
        table.add("floor: kubectl exec POD -- true", bare,
                  "the same over 1 pod" if ref else None, ref[5] if ref else None)
        table.add("exec --all, warm", warm, "floor over these pods", bare)
        table.add(f"exec --all-processes, {n} process{'es' if n != 1 else ''} in 1 pod",
                  procs, "the same, 1 process" if ref else None, ref[6] if ref else None)
    print(table.render())


if __name__ == "__main__":
    main()
