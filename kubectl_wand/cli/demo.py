"""`kubectl wand demo`: the whole journey on a throwaway local container, no cluster needed.

Starts an unprepared Python 3.14 web app (non-root, no network, no debugpy, no SYS_PTRACE),
attaches, hits a breakpoint through a real DAP client, prints a local variable, detaches and
removes everything it made.
"""

import json
import subprocess
import time

import click

from kubectl_wand.backends.base import run
from kubectl_wand.backends.docker import DockerBackend
from kubectl_wand.cli.common import kube_options, status
from kubectl_wand.dap import DAPClient
from kubectl_wand.engine import ops
from kubectl_wand.errors import WandError
from kubectl_wand.targets import Target

APP_PATH = "/tmp/wand_demo_app.py"
APP = '''import http.server, sys

def handle(path):
    greeting = "hello from " + path
    answer = len(greeting) * 2  # the demo's breakpoint
    return f"{greeting} ({answer})\\n"

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = handle(self.path).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 8000), H)
print("READY", flush=True)
srv.serve_forever(poll_interval=0.2)
'''
BREAK_LINE = 5
WRITE_APP = ("import sys; open(sys.argv[1], 'w').write(sys.argv[2]); "
             "exec(compile(sys.argv[2], sys.argv[1], 'exec'))")


def _wait_ready(runtime, name, timeout=30.0):
    """Follow the container's log until the app says READY (a real signal, not a sleep)."""
    p = subprocess.Popen([runtime, "logs", "-f", name], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        for line in p.stdout:
            if line.strip() == b"READY":
                return
            if time.monotonic() > deadline:
                break
    finally:
        p.kill()
        p.wait()
    raise WandError("the demo app did not start", f"see `{runtime} logs {name}`", code="demo")


@click.command("demo")
@click.option("--image", default="python:3.14-slim", show_default=True,
              help="Any image with python3 = 3.14 (the demo app is written into it).")
@click.option("--runtime", type=click.Choice(["docker", "podman"]), default="docker")
@kube_options
def command(image, runtime, **_):
    """Attach to an unprepared container, hit a breakpoint, read a variable, detach."""
    name = f"kubectl-wand-demo-{int(time.time() * 1000) % 10**8}"
    t0 = time.monotonic()
    cp = run([runtime, "run", "-d", "--rm", "--name", name, "--user", "1000:1000",
              "--network", "none", "--cap-drop", "ALL", image, "python3", "-c", WRITE_APP,
              APP_PATH, APP], timeout=300)
    if cp.returncode != 0:
        raise WandError(f"could not start the demo container: "
                        f"{cp.stderr.decode(errors='replace').strip()}",
                        "pass --image with a local image that has Python 3.14", code="demo")
    backend = DockerBackend(runtime)
    try:
        _wait_ready(runtime, name)
        status(f"1. started {name} from {image}: uid 1000, no network, no SYS_PTRACE, "
               f"no debugpy ({time.monotonic() - t0:.2f}s)")
        box = backend.resolve(Target(runtime, name))[0]
        t1 = time.monotonic()
        session = ops.open_session(backend, box)
        att = ops.Attachment(session, port=5679)
        ev = att.start()
        fwd = backend.forward(box, ev["port"], 0)
        status(f"2. debugpy listening on 127.0.0.1:{ev['port']} inside the app (PID "
               f"{session.pid}), forwarded to 127.0.0.1:{fwd.local_port} "
               f"({time.monotonic() - t1:.2f}s)")
        try:
            dap = DAPClient("127.0.0.1", fwd.local_port)
            dap.attach(breakpoints={APP_PATH: [BREAK_LINE]})
            status(f"3. DAP client attached, breakpoint set at {APP_PATH}:{BREAK_LINE}")
            req = subprocess.Popen(
                [runtime, "exec", name, "python3", "-c",
                 "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/demo')"
                 ".read().decode().strip())"], stdout=subprocess.PIPE)
            stop = dap.stopped_locals(timeout=20)
            status(f"4. stopped ({stop['reason']}) in {stop['frame']['name']}() at line "
                   f"{stop['frame']['line']}; locals:")
            click.echo(json.dumps(stop["locals"], indent=2))
            dap.request("continue", threadId=stop["thread"])
            answer = req.communicate(timeout=20)[0].decode().strip()
            status(f"5. continued; the request completed: {answer!r}")
            dap.close()
        finally:
            res = att.detach()
            fwd.close()
        status(f"6. detached (debugger stopped, port closed: "
               f"{bool(res and res.get('was_attached'))})")
    finally:
        subprocess.run([runtime, "rm", "-f", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        backend.remove_helper(box) if "box" in locals() else None
        status(f"7. removed the demo container and helper; total {time.monotonic() - t0:.2f}s")
