"""What the benches share: the CLI to time, statistics, tables with references, the in-container
floors, the naive flow, and cleanup of every container made. Never part of the test suite.

Every wait here is on a real signal (a line, an answer, an exit), never a sleep; the only
sleeps are the untimed random pauses (jitter) documented in docs/performance.md.
"""

import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kubectl_wand.dap import DAPClient  # noqa: E402
from tests.conftest import wait_for_line  # noqa: E402

WAND = str(Path(sys.executable).parent / "kubectl-wand")
if not os.path.exists(WAND):
    WAND = shutil.which("kubectl-wand") or WAND

# The CLI runs the code of the tree this bench lives in (so a bench copied into a worktree of
# an older commit measures that commit: the "before" figures in docs/performance.md).
CLI_ENV = dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"]
                                                   if os.environ.get("PYTHONPATH") else ""))


def cli_env(base=None) -> dict:
    """The CLI's environment: this tree first on PYTHONPATH, and its modules compiled once like
    an installed CLI's (pip, uv and the zipapp's cache do that); under PYTHONDONTWRITEBYTECODE
    this tree's would be compiled again on every run (+20 ms)."""
    env = dict(os.environ if base is None else base, PYTHONPATH=CLI_ENV["PYTHONPATH"])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


CLI_ENV = cli_env()

RUN_ID = uuid.uuid4().hex[:8]
BENCH_LABEL = "kubectl-wand.bench=" + RUN_ID
DEFAULT_IMAGE = os.environ.get("WAND_TEST_IMAGE", "wand-bed/py314:latest")

HTTP_APP = ["python3", "/app/http_app.py"]
BUSY_APP = ["python3", "/app/busy.py"]
# Main thread back in the interpreter every 5 ms: injections are picked up at once, so what is
# left is the tool's own cost (http_app's serve_forever() only looks every 0.5 s).
TICKING_APP = ["python3", "-c", "import time\nprint('READY 0', flush=True)\n"
               "while True:\n    time.sleep(0.005)\n"]


# ---------------------------------------------------------------- statistics and tables

def stats(xs):
    """(median, p90, min, max); p90 is the inclusive quantile."""
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0], xs[0]
    return (statistics.median(xs), statistics.quantiles(xs, n=10, method="inclusive")[8],
            xs[0], xs[-1])


def pct(xs, q):
    """The q-th percentile (inclusive method), e.g. pct(xs, 99)."""
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


class Table:
    """Rows of (label, values, reference label, reference values), printed side by side."""

    def __init__(self, title, unit="s"):
        self.title, self.unit, self.rows = title, unit, []

    def section(self, name):
        self.rows.append(name)

    def add(self, label, xs, ref_label=None, ref=None, note=""):
        self.rows.append((label, list(xs), ref_label, list(ref) if ref else None, note))

    def render(self):
        head = (f"{'measurement':<50} {'runs':>4} {'median':>8} {'p90':>8}   "
                f"{'reference':<28} {'median':>8} {'p90':>8} {'ratio':>6}")
        lines = [f"== {self.title} ({self.unit})", head]
        for row in self.rows:
            if isinstance(row, str):
                lines.append("-" * len(head))
                lines.append(row)
                continue
            label, xs, ref_label, ref, note = row
            if xs:
                med, p90, _, _ = stats(xs)
                line = f"  {label:<48} {len(xs):>4} {med:>8.3f} {p90:>8.3f}"
            else:
                line = f"  {label:<48} {'':>4} {'':>8} {'':>8}"
            if ref:
                rmed, rp90, _, _ = stats(ref)
                line += f"   {ref_label:<28} {rmed:>8.3f} {rp90:>8.3f}"
                if xs:
                    line += f" {med / rmed if rmed else float('inf'):>5.2f}x"
            if note:
                line += ("   " if ref else " " * 60) + note
            lines.append(line)
        return "\n".join(lines)


def machine_line(started, load0):
    return (f"{os.cpu_count()} CPUs; load {load0:.2f} -> {os.getloadavg()[0]:.2f}; "
            f"wall {time.perf_counter() - started:.0f} s")


# ---------------------------------------------------------------- containers

def docker(*args, check=True, input=None, timeout=120):
    cp = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout)
    if check and cp.returncode:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed: "
                           f"{cp.stderr.decode(errors='replace').strip()}")
    return cp


def _ps_filter(flt):
    return subprocess.run(["docker", "ps", "-aq", "--filter", flt], capture_output=True,
                          text=True).stdout.split()


class Cleanup:
    """Everything a bench made, removed at the end whatever happens."""

    def __init__(self):
        self.targets = []   # container ids (their kubectl-wand helpers go too)
        self.procs = []     # CLI processes still possibly running

    def run(self):
        for p in list(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)      # let an attach detach if it still can
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        ids = set(_ps_filter("label=" + BENCH_LABEL))
        for cid in self.targets:
            ids.add(cid)
            ids.update(_ps_filter("label=kubectl-wand.helper-for=" + cid))
        if ids:
            subprocess.run(["docker", "rm", "-f", *sorted(ids)], capture_output=True)
        left = set(_ps_filter("label=" + BENCH_LABEL))
        for cid in self.targets:
            left.update(_ps_filter("label=kubectl-wand.helper-for=" + cid))
        return sorted(left)


def start_target(image, cleanup, tag, cmd=HTTP_APP):
    """A fresh target (uid 1000, no network, no capability); waits for its READY line."""
    name = f"wand-bench-{RUN_ID}-{tag}"
    cp = subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--label", BENCH_LABEL,
                         "--network", "none", "--user", "1000:1000", "--cap-drop", "ALL",
                         image, *cmd], capture_output=True, text=True)
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


def remove(*names):
    subprocess.run(["docker", "rm", "-f", *names], capture_output=True)


def start_floor_helper(image, target, tag):
    """A bare helper in the target's PID and network namespaces (what any tool needs)."""
    name = f"wand-bench-{RUN_ID}-floor-{tag}"
    docker("run", "-d", "--rm", "--name", name, "--label", BENCH_LABEL,
           "--pid", "container:" + target, "--network", "container:" + target,
           "--cap-add", "SYS_PTRACE", image, "python3", "-c", "import time; time.sleep(900)")
    return name


# ---------------------------------------------------------------- the CLI

def cli_bytes_written(pid):
    """Bytes the CLI's main thread wrote so far (/proc/PID/task/PID/io wchar): what it sent to
    the injector's stdin, plus its own output line. (/proc/PID/io would add the output of every
    reaped child, e.g. each `kubectl get`.)"""
    try:
        for line in open(f"/proc/{pid}/task/{pid}/io"):
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def time_exec(target, env=None, code="print(1)", expect="1"):
    t0 = time.perf_counter()
    cp = subprocess.run([WAND, "exec", target, "-q", "-c", code], capture_output=True, text=True,
                        timeout=120, env=env or CLI_ENV)
    t = time.perf_counter() - t0
    if cp.returncode or cp.stdout.strip() != expect:
        raise RuntimeError(f"exec failed (exit {cp.returncode}): {cp.stdout!r} {cp.stderr!r}")
    return t


def time_attach(target, cleanup, env=None, pause=None, client=None):
    """One attach: launch → DAP initialize answered through the forwarded port.

    Returns {"ready", "detach", "bytes"}; ``client(dap)`` (untimed) runs with the client
    connected, ``pause()`` (untimed) before the SIGINT."""
    t0 = time.perf_counter()
    p = subprocess.Popen([WAND, "attach", target, "--local-port", "0", "-o", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env or CLI_ENV)
    cleanup.procs.append(p)
    err = []
    threading.Thread(target=lambda: err.extend(p.stderr), daemon=True).start()
    try:
        line = wait_for_line(p.stdout, lambda s: s.startswith("{"), 120)
    except AssertionError as e:
        p.kill()
        p.wait()
        raise RuntimeError(f"attach did not get ready ({e}): {''.join(err)}")
    shipped = cli_bytes_written(p.pid)
    info = json.loads(line)
    dap = DAPClient("127.0.0.1", info["port"], timeout=30)
    dap.request("initialize", clientID="kubectl-wand-bench", adapterID="debugpy",
                pathFormat="path", linesStartAt1=True, columnsStartAt1=True)
    ready = time.perf_counter() - t0
    if client:
        client(dap)
    dap.close()  # the editor disconnects (not timed), then the user presses Ctrl-C
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
    return {"ready": ready, "detach": detach, "bytes": shipped, "info": info}


# ---------------------------------------------------------------- floors

# remote_exec → ack file, in a bare helper (python3 of the target image, fed on stdin): stage a
# file the target can read through /proc/1/root, sys.remote_exec it, wait for its ack file.
# argv[1] = how many injections (one line each).
FLOOR_EXEC = r"""
import os, sys, time, uuid
uid = os.stat("/proc/1").st_uid
for _ in range(int(sys.argv[1])):
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
    ack = outer + "/ack"
    t1 = time.monotonic()
    sys.remote_exec(1, script)
    deadline = t1 + 10.0
    while not os.path.exists(ack):
        if time.monotonic() > deadline:
            print("TIMEOUT", flush=True)
            break
    else:
        print("ACK %.6f" % (time.monotonic() - t1), flush=True)
    for f in os.listdir(outer):
        os.unlink(os.path.join(outer, f))
    os.rmdir(outer)
"""

# The attach floor: debugpy (py + pyc made by the target's interpreter) already in the target's
# /tmp; remote_exec a script that imports it and listens (in the main thread: the least work),
# then a DAP initialize from the same network namespace. Nothing else: no CLI, no relay.
FLOOR_ATTACH = r"""
import json, os, socket, sys, time, uuid
lib, port = sys.argv[1], int(sys.argv[2])
t0 = time.monotonic()
uid = os.stat("/proc/1").st_uid
inner = "/tmp/.wand-floor-" + uuid.uuid4().hex[:10]
outer = "/proc/1/root" + inner
os.mkdir(outer, 0o700)
os.chown(outer, uid, uid)
script = outer + "/x.py"
fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, ("import sys\nsys.path.append(%r)\nimport debugpy\n"
              "debugpy.listen(('127.0.0.1', %d), in_process_debug_adapter=True)\n"
              "open(%r, 'w').close()\n" % (lib, port, inner + "/ack")).encode())
os.close(fd)
os.chown(script, uid, uid)
t1 = time.monotonic()
sys.remote_exec(1, script)
while not os.path.exists(outer + "/ack"):
    if time.monotonic() - t1 > 30:
        print("TIMEOUT", flush=True)
        sys.exit(1)
t2 = time.monotonic()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
body = json.dumps({"seq": 1, "type": "request", "command": "initialize",
                   "arguments": {"clientID": "floor", "adapterID": "debugpy"}}).encode()
s.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
buf = b""
while b'"command": "initialize"' not in buf and b'"command":"initialize"' not in buf:
    c = s.recv(65536)
    if not c:
        break
    buf += c
t3 = time.monotonic()
print("READY %.6f %.6f %.6f" % (t2 - t1, t3 - t1, t3 - t0), flush=True)
s.close()
"""

# Byte-compile a debugpy tree in place with the target's interpreter (unchecked hash pycs).
COMPILE_TREE = r"""
import compileall, py_compile, sys, warnings
warnings.simplefilter("ignore")
ok = compileall.compile_dir(sys.argv[1], quiet=2, workers=1,
                            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
sys.exit(0 if ok else 1)
"""


def debugpy_tree_tar():
    """The debugpy tree kubectl-wand ships, as an uncompressed tar (for docker cp)."""
    from kubectl_wand.engine import bundle

    import gzip

    return gzip.decompress(bundle.debugpy_tgz())


def place_debugpy(target, helper, compiled=True):
    """Put the debugpy tree in the target's /tmp/.wand-floor-lib (owned by its user), compiled
    by its own interpreter; untimed preparation of the floor."""
    lib = "/tmp/.wand-floor-lib"
    docker("exec", target, "mkdir", "-p", lib)
    docker("cp", "-", f"{target}:{lib}", input=debugpy_tree_tar())
    # the target has no capability at all: its helper (root, default set) hands the tree over
    docker("exec", helper, "chown", "-R", "1000:1000", "/proc/1/root" + lib)
    if compiled:
        docker("exec", "-i", "-u", "1000", target, "python3", "-", lib,
               input=COMPILE_TREE.encode())
    return lib


def time_floor_attach(image, app_cmd, cleanup, tag, port=5690):
    """The attach floor on a fresh target (setup untimed). Returns
    (docker exec → initialize answered, remote_exec → initialize answered)."""
    target = start_target(image, cleanup, tag, app_cmd)
    try:
        helper = start_floor_helper(image, target, tag)
        lib = place_debugpy(target, helper)
        t0 = time.perf_counter()
        cp = subprocess.run(["docker", "exec", "-i", helper, "python3", "-", lib, str(port)],
                            input=FLOOR_ATTACH, capture_output=True, text=True, timeout=60)
        outer = time.perf_counter() - t0
        out = cp.stdout.split()
        if cp.returncode or not out or out[0] != "READY":
            raise RuntimeError(f"floor attach failed: {cp.stdout!r} {cp.stderr!r}")
        return outer, float(out[2])
    finally:
        remove(target, f"wand-bench-{RUN_ID}-floor-{tag}")


def time_floor_exec(helper, n=1):
    """(docker exec start → last ack, [remote_exec → ack for each of the n injections])."""
    t0 = time.perf_counter()
    cp = subprocess.run(["docker", "exec", "-i", helper, "python3", "-", str(n)],
                        input=FLOOR_EXEC, capture_output=True, text=True, timeout=120)
    t = time.perf_counter() - t0
    acks = [float(line.split()[1]) for line in cp.stdout.splitlines() if line.startswith("ACK")]
    if cp.returncode or len(acks) != n:
        raise RuntimeError(f"floor injection failed (exit {cp.returncode}): "
                           f"{cp.stdout[-500:]!r} {cp.stderr[-500:]!r}")
    return t, acks


# ---------------------------------------------------------------- the naive flow

NAIVE_INJECT = ("import sys\nsys.path.append({lib!r})\nimport debugpy\n"
                "debugpy.listen(('127.0.0.1', {port}), in_process_debug_adapter=True)\n")


def dap_initialize_via(argv, timeout=5.0):
    """One relay process (argv speaks TCP over stdio); True if `initialize` was answered."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    body = json.dumps({"seq": 1, "type": "request", "command": "initialize",
                       "arguments": {"clientID": "naive", "adapterID": "debugpy"}}).encode()
    try:
        p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        p.stdin.flush()
    except BrokenPipeError:
        pass
    got = b""
    done = threading.Event()

    def read():
        nonlocal got
        while True:
            c = p.stdout.read1(65536)
            if not c:
                break
            got += c
            if b'"initialize"' in got:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    p.kill()
    p.wait()
    return b'"initialize"' in got and b'"response"' in got


def naive_archive(lib: str, port: int) -> bytes:
    """The archive a user of the naive flow builds once: the debugpy tree plus the script
    that imports it from ``lib`` and listens on ``port``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as out, \
            tarfile.open(fileobj=io.BytesIO(debugpy_tree_tar())) as src:
        for m in src.getmembers():
            out.addfile(m, src.extractfile(m) if m.isfile() else None)
        data = NAIVE_INJECT.format(lib=lib, port=port).encode()
        ti = tarfile.TarInfo("inject.py")
        ti.size, ti.mode = len(data), 0o644
        out.addfile(ti, io.BytesIO(data))
    return raw.getvalue()


def time_naive_docker(image, app_cmd, cleanup, tag, port=5691):
    """The flow without kubectl-wand, scripted as fast as it goes (no sleeps): docker cp the
    debugpy tree and a script into the target, a one-shot privileged helper runs
    sys.remote_exec on it, then retry a relay + DAP initialize until it is answered."""
    from kubectl_wand import payload

    target = start_target(image, cleanup, tag, app_cmd)
    try:
        lib = "/tmp/naive-" + uuid.uuid4().hex[:8]
        archive = naive_archive(lib, port)
        relay = ["docker", "exec", "-i", target, "python3", "-I", "-S", "-c",
                 payload.source("forward"), "naive-forward", str(port)]
        t0 = time.perf_counter()
        docker("exec", target, "mkdir", lib)
        docker("cp", "-", f"{target}:{lib}", input=archive)
        docker("run", "--rm", "--label", BENCH_LABEL, "--pid", "container:" + target,
               "--cap-add", "SYS_PTRACE", image, "python3", "-c",
               f"import sys; sys.remote_exec(1, '/proc/1/root{lib}/inject.py')")
        tries = 0
        while not dap_initialize_via(relay):
            tries += 1
            if time.perf_counter() - t0 > 60:
                raise RuntimeError("naive flow: the debug port never answered")
        return time.perf_counter() - t0
    finally:
        remove(target)


def no_interrupts():
    """Cleanup must finish: a second Ctrl-C or TERM would leave containers behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def on_term(signum, frame):
    raise KeyboardInterrupt


def guarded(main_fn, cleanup):
    """Run main_fn(); always clean up; exit code 130 on Ctrl-C, 1 if something was left."""
    signal.signal(signal.SIGTERM, on_term)
    try:
        main_fn()
    except KeyboardInterrupt:
        no_interrupts()
        print("\ninterrupted; removing containers…", file=sys.stderr)
        left = cleanup.run()
        if left:
            print("could not remove: " + " ".join(left), file=sys.stderr)
        return 130
    except BaseException:
        no_interrupts()
        cleanup.run()
        raise
    no_interrupts()
    left = cleanup.run()
    if left:
        print("could not remove: " + " ".join(left), file=sys.stderr)
        return 1
    return 0
