"""Shared helpers: run the real CLI, start real target containers, wait on real signals."""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import weakref
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WAND = str(Path(sys.executable).parent / "kubectl-wand")
IMAGE = os.environ.get("WAND_TEST_IMAGE", "wand-bed/py314:latest")
IMAGE_313 = os.environ.get("WAND_TEST_IMAGE_313", "wand-bed/py313:latest")


def docker_ready():
    if not shutil.which("docker"):
        return "docker is not installed (run `bash tests/run.sh`, which installs it)"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "the docker engine is not running (`bash tests/bed/setup.sh` starts it)"
    for image in (IMAGE, IMAGE_313):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
            return f"test image {image} is missing (`bash tests/bed/setup.sh` builds it)"
    return None


@pytest.fixture(scope="session")
def docker():
    why = docker_ready()
    if why:
        if os.environ.get("WAND_REQUIRE_DOCKER"):
            pytest.fail(why)
        pytest.skip(why)
    return "docker"


def wand(*args, timeout=60, input=None, env=None):
    """Run the installed CLI exactly as a user would."""
    return subprocess.run([WAND, *args], capture_output=True, text=True, timeout=timeout,
                          input=input, env=env)


_line_queues = weakref.WeakKeyDictionary()


def wait_for_line(stream, pred, timeout):
    """Read lines from a pipe until pred(line) holds; returns the line (or raises)."""
    q = _line_queues.get(stream)
    if q is None:  # one reader per stream, so later calls see the lines after this one
        q = _line_queues[stream] = queue.Queue()

        def pump():
            for line in stream:
                q.put(line)
            q.put(None)

        threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        try:
            line = q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no matching line within {timeout}s; saw: {seen[-10:]}")
        if line is None:
            raise AssertionError(f"stream closed; saw: {seen[-10:]}")
        seen.append(line)
        if pred(line):
            return line


class Container:
    def __init__(self, name, image):
        self.name, self.image = name, image

    def logs(self):
        cp = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return cp.stdout + cp.stderr

    def sh(self, *cmd, user=None, timeout=30):
        argv = ["docker", "exec"] + (["-u", user] if user else []) + [self.name, *cmd]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def py(self, code, timeout=30):
        return self.sh("python3", "-c", code, timeout=timeout)

    def get(self, port, path="/x", timeout=30):
        """An HTTP GET from inside the container's network namespace."""
        return self.py("import urllib.request as u;"
                       f"print(u.urlopen('http://127.0.0.1:{port}{path}', timeout=25)"
                       ".read().decode(), end='')", timeout=timeout)

    def listening(self):
        """Loopback/any listening TCP sockets in the container: {(addr_hex, port)}."""
        out = self.sh("cat", "/proc/net/tcp", "/proc/net/tcp6").stdout.splitlines()
        result = set()
        for line in out[1:]:
            f = line.split()
            if len(f) > 3 and f[3] == "0A":
                addr, port = f[1].split(":")
                result.add((addr, int(port, 16)))
        return result

    def staged(self):
        """Anything kubectl-wand staged in the usual places."""
        return self.py("import glob;print('\\n'.join(glob.glob('/tmp/.kubectl-wand-*')"
                       "+glob.glob('/dev/shm/.kubectl-wand-*')+glob.glob('/var/tmp/.kubectl-wand-*')))"
                       ).stdout.split()

    def alive(self):
        cp = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", self.name],
                            capture_output=True, text=True)
        return cp.stdout.strip() == "true"

    def id(self):
        return subprocess.run(["docker", "inspect", "-f", "{{.Id}}", self.name],
                              capture_output=True, text=True).stdout.strip()

    def host_pid(self):
        return int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", self.name],
                                  capture_output=True, text=True).stdout.strip() or 0)

    def helper_name(self):
        """The name of this container's helper (the app's own image, no --image)."""
        from kubectl_wand.backends.docker import helper_name

        image = subprocess.run(["docker", "inspect", "-f", "{{.Image}}", self.name],
                               capture_output=True, text=True).stdout.strip()
        return helper_name(self.id(), image)

    def health(self, port=None):
        """One look from inside the target: an HTTP GET on loopback (``port``), what is staged,
        and kubectl-wand processes in its PID namespace other than the idle helper."""
        cp = self.sh("python3", "-c", HEALTH, str(port or 0), timeout=40)
        if cp.returncode:
            raise AssertionError(f"health probe failed in {self.name}: {cp.stderr}")
        return json.loads(cp.stdout)

    def assert_healthy(self, port, wait=20.0, debug_port=5679):
        """Alive and serving, and nothing of kubectl-wand left: no staged file, no injector or
        relay process in the target's PID namespace or on this host, no debug server. Waits
        up to ``wait`` s for cleanup that happens asynchronously (an injector that notices
        its CLI is gone). The idle helper container stays: it is reused by design."""
        deadline = time.monotonic() + wait
        helper = self.helper_name()
        while True:
            assert self.alive(), f"target {self.name} is not running"
            h = self.health(port)
            host = host_processes(helper)
            ports = {p for _, p in self.listening()} if debug_port else set()
            left = {k: v for k, v in (("staged", h["staged"]), ("processes", h["procs"]),
                                      ("host", host),
                                      ("debug port", debug_port in ports)) if v}
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not left, f"left behind in {self.name}: {left}"
        if port:
            assert h["serving"].startswith("hello"), h["serving"]
        return h


HEALTH = r"""
import glob, json, os, sys, urllib.request
port = int(sys.argv[1])
out = {"staged": sorted(glob.glob("/tmp/.kubectl-wand-*") + glob.glob("/var/tmp/.kubectl-wand-*")
                        + glob.glob("/dev/shm/.kubectl-wand-*")), "procs": [], "serving": None}
if port:
    try:
        out["serving"] = urllib.request.urlopen("http://127.0.0.1:%d/health" % port,
                                                timeout=20).read().decode()
    except Exception as e:
        out["serving"] = "ERROR %r" % (e,)
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) != os.getpid():
        try:
            argv = open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")
        except OSError:
            continue
        words = [a.decode("utf-8", "replace") for a in argv if a.startswith(b"kubectl-wand-")]
        if words and words[0] != "kubectl-wand-helper":
            out["procs"].append([int(p)] + words)
print(json.dumps(out))
"""


def host_processes(*needles):
    """[pid, argv] of this host's processes whose command line holds any of ``needles``
    (e.g. a helper container's name: the docker exec relays and injectors talking to it)."""
    found = []
    me = os.getpid()
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == me:
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if any(n in a for n in needles for a in argv):
            found.append([int(p)] + [a[:60] for a in argv])
    return found


def _app_factory(made):
    def start(*cmd, image=IMAGE, user="1000:1000", env=(), extra=(), ready="READY",
              timeout=60):
        name = "wand-test-" + uuid.uuid4().hex[:10]
        argv = ["docker", "run", "-d", "--rm", "--name", name, "--network", "none",
                "--user", user, "--cap-drop", "ALL"]
        for e in env:
            argv += ["-e", e]
        argv += list(extra) + [image, *cmd]
        subprocess.run(argv, check=True, capture_output=True)
        c = Container(name, image)
        made.append(c)
        if ready:
            logs = subprocess.Popen(["docker", "logs", "-f", name], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            try:
                wait_for_line(logs.stdout, lambda line: ready in line, timeout)
            finally:
                logs.kill()
                logs.wait()
        return c

    return start


@pytest.fixture
def app(docker):
    """Factory: start a target container and wait until its app prints READY."""
    made = []
    yield _app_factory(made)
    for c in made:
        remove_container(c.name)


@pytest.fixture(scope="module")
def app_module(docker):
    """The same factory, for targets shared by the tests of one module."""
    made = []
    yield _app_factory(made)
    for c in made:
        remove_container(c.name)


def remove_container(name):
    cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True,
                         text=True).stdout.strip()
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    if cid:
        helpers = subprocess.run(["docker", "ps", "-aq", "--filter",
                                  f"label=kubectl-wand.helper-for={cid}"],
                                 capture_output=True, text=True).stdout.split()
        if helpers:
            subprocess.run(["docker", "rm", "-f", *helpers], capture_output=True)


class Attached:
    """`kubectl-wand attach … -o json` running in the background, as a user's terminal would."""

    def __init__(self, *args, timeout=60):
        self.proc = subprocess.Popen([WAND, "attach", *args, "-o", "json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err = []
        self.err_done = threading.Event()

        def drain():
            self.err.extend(self.proc.stderr)
            self.err_done.set()

        threading.Thread(target=drain, daemon=True).start()
        try:
            line = wait_for_line(self.proc.stdout, lambda s: s.startswith("{"), timeout)
        except AssertionError:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("attach did not get ready: " + "".join(self.err))
        self.info = json.loads(line)
        self.port = self.info["port"]

    def stop(self, sig=signal.SIGINT, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.err_done.wait(timeout)
        return rc, "".join(self.err)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.stop()


def breakpoint_line(path, marker="# BREAKPOINT-HERE"):
    for n, line in enumerate((ROOT / "tests/bed/apps" / path).read_text().splitlines(), 1):
        if marker in line:
            return n
    raise AssertionError("no breakpoint marker in " + path)


def poll(fn, timeout=20.0, what="condition", every=0.05):
    """fn() until it returns something truthy (a real signal), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout}s")
        time.sleep(every)


def host_pid(c):
    """The host PID of a container's PID 1 (for pid/N targets)."""
    return subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", c.name],
                          capture_output=True, text=True, check=True).stdout.strip()


# An app that logs a numbered DEBUG and INFO line every 20 ms through the root logger (INFO).
LOG_TICKER = ["python3", "-c", "\n".join([
    "import logging, time",
    "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')",
    "log = logging.getLogger('app')",
    "print('READY', flush=True)",
    "n = 0",
    "while True:",
    "    n += 1",
    "    log.debug('tick %d', n)",
    "    log.info('tick %d', n)",
    "    time.sleep(0.02)",
])]
