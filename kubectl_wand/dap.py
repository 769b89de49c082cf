"""A small Debug Adapter Protocol client: enough to hit a breakpoint and read variables.

Used by `kubectl wand demo`, the tests and the benches; editors speak the same protocol.
"""

import json
import socket
import threading
import time
from typing import Optional


class DAPError(Exception):
    pass


class DAPClient:
    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.timeout = timeout
        self.seq = 0
        self.buf = b""
        self.messages = []
        self.cond = threading.Condition()
        self.closed = False
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        try:
            while True:
                while b"\r\n\r\n" not in self.buf:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise EOFError
                    self.buf += chunk
                head, self.buf = self.buf.split(b"\r\n\r\n", 1)
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                while len(self.buf) < length:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise EOFError
                    self.buf += chunk
                body, self.buf = self.buf[:length], self.buf[length:]
                with self.cond:
                    self.messages.append(json.loads(body))
                    self.cond.notify_all()
        except (EOFError, OSError, ValueError):
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def send(self, command: str, **arguments) -> int:
        self.seq += 1
        msg = {"seq": self.seq, "type": "request", "command": command, "arguments": arguments}
        body = json.dumps(msg).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def wait_for(self, pred, timeout: Optional[float] = None, what="message"):
        deadline = time.monotonic() + (timeout or self.timeout)
        with self.cond:
            while True:
                for i, m in enumerate(self.messages):
                    if pred(m):
                        return self.messages.pop(i)
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise DAPError(f"no {what} from the debugger"
                                   + (" (connection closed)" if self.closed else ""))
                self.cond.wait(left)

    def request(self, command: str, timeout: Optional[float] = None, **arguments) -> dict:
        seq = self.send(command, **arguments)
        resp = self.wait_for(lambda m: m.get("type") == "response" and
                             m.get("request_seq") == seq, timeout, f"response to {command}")
        if not resp.get("success"):
            raise DAPError(f"{command} failed: {resp.get('message')}")
        return resp

    def event(self, name: str, timeout: Optional[float] = None) -> dict:
        return self.wait_for(lambda m: m.get("type") == "event" and m.get("event") == name,
                             timeout, f"'{name}' event")

    def attach(self, breakpoints=None, path_mappings=None):
        """initialize → attach → breakpoints → configurationDone, as editors do."""
        self.request("initialize", clientID="kubectl-wand", adapterID="debugpy",
                     pathFormat="path", linesStartAt1=True, columnsStartAt1=True)
        seq = self.send("attach", justMyCode=False, pathMappings=path_mappings or [])
        self.event("initialized")
        for path, lines in (breakpoints or {}).items():
            self.request("setBreakpoints", source={"path": path},
                         breakpoints=[{"line": n} for n in lines])
        self.request("setExceptionBreakpoints", filters=[])
        self.request("configurationDone")
        self.wait_for(lambda m: m.get("type") == "response" and m.get("request_seq") == seq,
                      what="response to attach")

    def stopped_locals(self, timeout: Optional[float] = None) -> dict:
        """Wait for a stop; return {thread, frame, locals} of the top frame."""
        ev = self.event("stopped", timeout)
        tid = ev["body"]["threadId"]
        frames = self.request("stackTrace", threadId=tid, levels=1)["body"]["stackFrames"]
        scopes = self.request("scopes", frameId=frames[0]["id"])["body"]["scopes"]
        ref = next(s["variablesReference"] for s in scopes if s["name"].lower() == "locals")
        variables = self.request("variables", variablesReference=ref)["body"]["variables"]
        return {"thread": tid, "frame": frames[0], "reason": ev["body"].get("reason"),
                "locals": {v["name"]: v["value"] for v in variables}}

    def close(self):
        try:
            self.request("disconnect", timeout=5, terminateDebuggee=False)
        except DAPError:
            pass
        finally:
            try:  # wakes our reader thread, so that close() really closes the connection
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
