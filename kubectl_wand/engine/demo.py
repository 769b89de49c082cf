"""`demo`: the whole journey on a throwaway local container, no cluster needed.

Starts an unprepared Python 3.14 web app (non-root, no network, no debugpy, no SYS_PTRACE),
attaches, hits a breakpoint through a real DAP client, reads a local variable, detaches and
removes everything it made. Each step is reported through ``say`` (the CLI renders it).
"""

import time
from typing import Callable

from kubectl_wand.backends.docker import DockerBackend
from kubectl_wand.dap import DAPClient, DAPError
from kubectl_wand.engine import attach, ops
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




def run_demo(image: str, runtime: str, say: Callable[[str], None],
             show: Callable[[dict], None]):
    backend = DockerBackend(runtime)
    name = f"kubectl-wand-demo-{int(time.time() * 1000) % 10**8}"
    t0 = time.monotonic()
    try:
        backend.start_throwaway(name, image, ["python3", "-c", WRITE_APP, APP_PATH, APP])
    except WandError as e:
        raise WandError(f"could not start the demo container: {e.message}",
                        "pass --image with a local image that has Python 3.14", code="demo")
    box = None
    try:
        if not backend.wait_for_log(name, "READY", 30.0):
            raise WandError("the demo app did not start", f"see `{runtime} logs {name}`",
                            code="demo")
        say(f"1. started {name} from {image}: uid 1000, no network, no SYS_PTRACE, "
            f"no debugpy ({time.monotonic() - t0:.2f}s)")
        box = backend.resolve(Target(runtime, name))[0]
        t1 = time.monotonic()
        session = ops.open_session(backend, box)
        att = attach.Attachment(session, port=5679)
        ev = att.start()
        fwd = backend.forward(box, ev["port"], 0)
        fwd.preamble = att.preamble  # the debugger's gate answers only this session
        say(f"2. debugpy listening on 127.0.0.1:{ev['port']} inside the app (PID "
            f"{session.pid}), forwarded to 127.0.0.1:{fwd.local_port} "
            f"({time.monotonic() - t1:.2f}s)")
        try:
            dap = DAPClient("127.0.0.1", fwd.local_port)
            dap.attach(breakpoints={APP_PATH: [BREAK_LINE]})
            say(f"3. DAP client attached, breakpoint set at {APP_PATH}:{BREAK_LINE}")
            req = backend.exec_in(name, [
                "python3", "-c", "import urllib.request as u; print(u.urlopen("
                "'http://127.0.0.1:8000/demo').read().decode().strip())"])
            stop = dap.stopped_locals(timeout=20)
            say(f"4. stopped ({stop['reason']}) in {stop['frame']['name']}() at line "
                f"{stop['frame']['line']}; locals:")
            show(stop["locals"])
            dap.request("continue", threadId=stop["thread"])
            answer = req.communicate(timeout=20)[0].decode().strip()
            say(f"5. continued; the request completed: {answer!r}")
            dap.close()
        except DAPError as e:
            raise WandError(f"the demo's debugger session failed: {e}",
                            "run it again with -v; `kubectl wand validate` checks the "
                            "container", code="demo")
        finally:
            res = att.detach()
            fwd.close()
        say(f"6. detached (debugger stopped, port closed: "
            f"{bool(res and res.get('was_attached'))})")
    finally:
        backend.remove_container(name)
        if box is not None:
            backend.remove_helper(box)
        say(f"7. removed the demo container and helper; total {time.monotonic() - t0:.2f}s")
