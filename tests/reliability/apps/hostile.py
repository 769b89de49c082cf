"""A target that attacks the operator through everything kubectl-wand reads from it.

    python3 /srv/hostile.py [ARGS…]      (ARGS end up in its argv, as the test chooses)

- the root logger's level (WARNING) renamed with escape sequences (`loglevel`);
- a thread whose OS name, a function whose name and file name, and an asyncio task whose
  name carry terminal escape sequences, all blocked where `stacks` shows them;
- WAND_HOSTILE_CWD=DIR: makes DIR and runs from it (editor-config injection via the cwd);
- WAND_HOSTILE_KIDS=N,BYTES: N Python children with BYTES of argv each (huge `ps`);
- socket.socket patched, as a compromised app could: when kubectl-wand's agent (which runs
  inside this process) sends an output event holding FLOOD-ME, the agent's socket first gets
  WAND_HOSTILE_FLOOD_MB MiB of extra output events (past any --max-output); LONG-LINE sends
  that many MiB with no newline at all; BAD-STATUS makes the next result's exit status a
  string of escape sequences. Everything else passes untouched.
The main thread ticks, so injections are picked up. Prints READY.
"""
import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time

EVIL = "\x1b]0;PWNED\x07\x1b[2J\x1b[31m"
ESC_THREAD = "\x1b]0;T\x07\x1b[2J"  # 15 bytes at most: the OS thread name limit

cwd = os.environ.get("WAND_HOSTILE_CWD")
if cwd:
    os.makedirs(cwd, exist_ok=True)
    os.chdir(cwd)

kids = []
if os.environ.get("WAND_HOSTILE_KIDS"):
    n, size = (int(x) for x in os.environ["WAND_HOSTILE_KIDS"].split(","))
    chunk = 100_000  # one argument may not exceed 128 KiB (MAX_ARG_STRLEN)
    args = [EVIL + "A" * (chunk - len(EVIL))] * max(1, size // chunk)
    for _ in range(n):
        kids.append(subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", "import sys; sys.stdin.read()", *args],
            stdin=subprocess.PIPE))


forge = []


class HostileSocket(socket.socket):
    def sendall(self, data, *flags):
        if self.family == socket.AF_UNIX and b"BAD-STATUS" in data:
            forge.append(1)  # the next result gets a string for its exit status
        elif self.family == socket.AF_UNIX and forge and b'"event": "result"' in data:
            forge.clear()
            data = (json.dumps({"event": "result", "status": "\x1b]0;EXIT\x07\x1b[2J",
                                "traceback": None, "seconds": "x"}) + "\n").encode()
        if self.family == socket.AF_UNIX and b"FLOOD-ME" in data:
            mb = int(os.environ.get("WAND_HOSTILE_FLOOD_MB", "100"))
            event = (json.dumps({"event": "output", "stream": "stdout",
                                 "data": (EVIL + "F" * 65536)[:65536]}) + "\n").encode()
            for _ in range(mb * 16):
                super().sendall(event)
        elif self.family == socket.AF_UNIX and b"LONG-LINE" in data:
            mb = int(os.environ.get("WAND_HOSTILE_FLOOD_MB", "100"))
            block = b"L" * (1 << 20)
            for _ in range(mb):
                super().sendall(block)
        return super().sendall(data, *flags)


socket.socket = HostileSocket
logging.addLevelName(logging.WARNING, "WARN\x1b]0;LVL\x07\x1b[2J")  # root's level name

# a function and a file name with escape sequences, where a thread waits
src = "def waiter(ev):\n    ev.wait()\n"
ns = {}
exec(compile(src, "/srv/\x1b]0;FILE\x07.py", "exec"), ns)
waiter = ns["waiter"]
waiter.__code__ = waiter.__code__.replace(co_name="fn\x1b[2J\x1b]0;FN\x07",
                                          co_qualname="fn\x1b[2J\x1b]0;FN\x07")
stop = threading.Event()
threading.Thread(target=waiter, args=(stop,), name=ESC_THREAD, daemon=True).start()


async def sleeper():
    await asyncio.sleep(3600)


async def main():
    # the main thread runs the loop and ticks, so injections are picked up within 20 ms
    t = asyncio.create_task(sleeper(), name="task\x1b]0;TASK\x07\x1b[2J")
    print("READY", flush=True)
    while True:
        await asyncio.sleep(0.02)
    await t


asyncio.run(main())
