"""Drives the pdb bridge (payload/pdbserver.py) directly in a real 3.14 interpreter: a worker
thread is stopped at the server's prompt, then the session ends under it (what a killed
client does), N times in a row. Prints one JSON verdict line."""
import json
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import pdbserver  # noqa: E402

ROUNDS = int(sys.argv[2])
errors = []
notices = []
count = [0]


def step(x):
    return x + 1


def worker():
    try:
        while True:
            count[0] = step(count[0])
    except BaseException as e:  # what the app would die of
        errors.append(repr(e))


class Chan:
    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def send(self, event, **fields):
        with self.cond:
            self.events.append((event, fields))
            self.cond.notify_all()

    def wait(self, pred, timeout=10):
        with self.cond:
            return self.cond.wait_for(lambda: any(pred(e) for e in self.events), timeout)


def busy():
    while True:
        pass


# Threads switch often and the GIL is contended, as in a busy app: the server's thread may
# then lose it between sending its prompt and reading the reply, the window a session once
# ended in.
sys.setswitchinterval(1e-5)
for _ in range(2):
    threading.Thread(target=busy, daemon=True).start()
t = threading.Thread(target=worker, name="worker", daemon=True)
t.start()
stopped = 0
for _ in range(ROUNDS):
    chan = Chan()
    b = pdbserver.Bridge(chan, {"thread": "worker"})
    b.start()
    # a real signal: the server sent its prompt, so the worker waits in it
    if chan.wait(lambda e: e[0] == "pdb" and "prompt" in e[1]["msg"]):
        stopped += 1
    if sys.argv[3] in ("interact", "busy"):
        b.to_server({"reply": "interact"})
        chan.wait(lambda e: e[0] == "pdb" and e[1]["msg"].get("prompt") == ">>> ")
    if sys.argv[3] == "busy":  # the user's own code still runs in the thread as we leave
        b.to_server({"reply": "__import__('time').sleep(%s)" % (pdbserver.FINISH_WAIT + 1)})
    b.finish()
    if sys.argv[3] == "busy":
        notices.append(any("still running a command" in str(e[1]) for e in chan.events))
    if errors or not t.is_alive():
        break
deadline = time.monotonic() + 20
while time.monotonic() < deadline and any(
        x.name.startswith("kubectl-wand") for x in threading.enumerate()):
    time.sleep(0.01)  # a thread still in the server detaches when its command returns
before = count[0]
deadline = time.monotonic() + 10
while count[0] == before and time.monotonic() < deadline:
    time.sleep(0.01)
import bdb  # noqa: E402
import pdb  # noqa: E402
print(json.dumps({"notices": notices, "stopped": stopped, "errors": errors, "alive": t.is_alive(),
                  "moving": count[0] != before, "tool": sys.monitoring.get_tool(0),
                  "pdb": pdb.Pdb._last_pdb_instance is not None,
                  "breaks": [str(x) for x in bdb.Breakpoint.bpbynumber if x],
                  "threads": sorted(x.name for x in threading.enumerate()
                                    if x.name.startswith("kubectl-wand"))}))
