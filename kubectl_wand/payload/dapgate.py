"""The debugger's gate, inside the target: shipped with agent.py and run in its namespace.

It is the only listener of a debug session. Each connection must start with a per-session
secret line (``kubectl-wand-dap <hex>\\n``) that only the operator's CLI knows; anything else in
the pod's network namespace (a sidecar, another local user for ``pid/N``) is dropped without a
byte of DAP. pydevd gets no port at all: it is handed one end of a socketpair per session.

When the client goes away for any reason (editor crash, dropped port-forward, killed relay),
the gate ends the DAP session itself: a ``disconnect`` clears breakpoints, logpoints and
exception breakpoints and resumes every suspended thread, so nothing stays stopped, and the
next client starts clean. One client at a time: a second one gets a clear DAP error.
"""

import hmac
import json
import queue
import socket
import threading
import time

PREAMBLE = b"kubectl-wand-dap "
SECRET_WAIT = 5.0  # seconds a new connection has to present the secret
MAX_PENDING = 8  # connections still presenting their secret at once (a flood is dropped)
END_WAIT = 1.5  # seconds for pydevd to answer the gate's own disconnect
END_SEQ = 987654321  # request seq of the gate's disconnect (clients count from 1)


def hidden_thread(target, args=(), name="kubectl-wand-gate"):
    """A daemon thread the debugger neither traces nor suspends: marked as pydevd marks its
    own. (A breakpoint suspends every traced thread; the gate must keep running.)"""
    t = threading.Thread(target=target, args=args, name=name, daemon=True)
    t.pydev_do_not_trace = True
    t.is_pydev_daemon_thread = True
    t.start()
    return t


class PydevdServer:
    """Stands in for the listening socket pydevd's _WaitForConnectionThread makes: accept()
    hands it the pydevd end of each authenticated session's socketpair."""

    def __init__(self, name):
        self.name, self.q, self.closed = name, queue.Queue(), False

    def listen(self, n):
        pass

    def getsockname(self):
        return self.name

    def accept(self):
        s = self.q.get()
        if s is None:
            self.q.put(None)
            time.sleep(0.05)  # pydevd's loop retries after an error: never spin
            raise OSError("closed")
        return s, ("kubectl-wand-gate", 0)

    def close(self):
        self.closed = True
        self.q.put(None)


def _frames(buf):
    """Complete DAP messages at the start of buf: (list of dicts, rest)."""
    out = []
    while True:
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            return out, buf
        n = None
        for line in buf[:i].split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":", 1)[1])
        if n is None or len(buf) < i + 4 + n:
            return out, buf
        try:
            out.append(json.loads(buf[i + 4:i + 4 + n]))
        except ValueError:
            pass
        buf = buf[i + 4 + n:]


def _dap(obj):
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Gate:
    def __init__(self, host, port, notify=None):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.lsock.bind((host, port))
            self.lsock.listen(8)
        except OSError:
            self.lsock.close()
            raise
        self.host, self.port = self.lsock.getsockname()[:2]
        self.server = PydevdServer((self.host, self.port))
        self.secrets = {}  # secret (bytes) -> session label
        self.active = None
        self.lock = threading.Lock()
        self.pending = threading.BoundedSemaphore(MAX_PENDING)
        self.closed = False
        self.notify = notify or (lambda event, **fields: None)

    def start(self):
        hidden_thread(self._accept, name="kubectl-wand-gate")

    def allow(self, secret, label):
        self.secrets[secret.encode()] = label

    def forget(self, secret):
        self.secrets.pop(secret.encode(), None)

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                if self.closed:
                    return
                time.sleep(0.05)
                continue
            if not self.pending.acquire(blocking=False):
                conn.close()
                continue
            hidden_thread(self._admit, (conn,), "kubectl-wand-gate-conn")

    def _admit(self, conn):
        try:
            conn.settimeout(SECRET_WAIT)
            buf = b""
            while b"\n" not in buf and len(buf) < 128:
                chunk = conn.recv(128)
                if not chunk:
                    break
                buf += chunk
            line, _, rest = buf.partition(b"\n")
            ok = False
            if line.startswith(PREAMBLE):
                given = line[len(PREAMBLE):]
                ok = any(hmac.compare_digest(given, s) for s in list(self.secrets))
            if not ok or self.closed:
                conn.close()
                return
            for attempt in (1, 2):
                with self.lock:
                    busy = self.active
                    if busy is None:
                        self.active = session = Session(self, conn, rest)
                        break
                # the previous client may be on its way out (a reconnect right after a
                # drop or a disconnect): let its session end before refusing
                if busy.said_bye:
                    busy.end("replaced")  # it sent disconnect but kept the connection open
                busy.done.wait(1.0 if busy.ending is None else END_WAIT + 1.0)
        except OSError:
            conn.close()
            return
        finally:
            self.pending.release()
        if busy is not None:
            self._refuse(conn, rest, busy)
            return
        session.run()

    def _refuse(self, conn, rest, busy):
        """A DAP error to the second client's first request, then close: the first client is
        not disturbed."""
        try:
            deadline = time.monotonic() + 3.0
            msgs, buf = _frames(rest)
            while not msgs and time.monotonic() < deadline and len(buf) < 65536:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                msgs, buf = _frames(buf + chunk)
            since = time.strftime("%H:%M:%S UTC", time.gmtime(busy.since))
            text = ("another debugger client is already connected to this process (since %s); "
                    "kubectl-wand allows one at a time: disconnect it first" % since)
            req = msgs[0] if msgs else {}
            conn.sendall(_dap({"seq": 1, "type": "event", "event": "output",
                               "body": {"category": "important", "output": text + "\n"}}) +
                         _dap({"seq": 2, "type": "response", "request_seq": req.get("seq", 0),
                               "success": False, "command": req.get("command", "initialize"),
                               "message": text}))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        """No new clients; the current one's session is ended (threads resumed)."""
        self.closed = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        s = self.active
        if s is not None:
            s.end("detach")
            s.done.wait(END_WAIT + 1.0)
        self.server.close()


class Session:
    """One client's DAP session: bytes copied both ways; its end always reaches pydevd as a
    disconnect."""

    def __init__(self, gate, conn, first):
        self.gate, self.conn, self.first = gate, conn, first
        self.since = time.time()
        self.ending = None  # why, once the client is gone or the gate closes
        self.said_bye = False  # the client sent a DAP disconnect
        self.ended = threading.Event()  # the gate's disconnect was answered
        self.done = threading.Event()
        self.a = None

    def run(self):
        conn = self.conn
        conn.settimeout(None)
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for opt, v in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
                if hasattr(socket, opt):
                    conn.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), v)
        except OSError:
            pass
        self.a, b = socket.socketpair()
        self.gate.server.q.put(b)
        self.gate.notify("client", state="connected")
        hidden_thread(self._up, name="kubectl-wand-dap-in")
        self._down()

    def _up(self):
        """Client -> pydevd, until the client is gone."""
        why = "client-gone"
        try:
            if self.first:
                self.a.sendall(self.first)
            while True:
                data = self.conn.recv(65536)
                if not data:
                    break
                if b'"disconnect"' in data:
                    why = "client-disconnected"  # it said goodbye (the gate's end is a no-op)
                    self.said_bye = True
                self.a.sendall(data)
        except OSError:
            pass
        self.end(why)

    def end(self, why):
        if self.ending is not None:
            return
        self.ending = why
        self.t_end = time.monotonic()
        try:
            self.a.sendall(_dap({"seq": END_SEQ, "type": "request", "command": "disconnect",
                                 "arguments": {"terminateDebuggee": False, "restart": False}}))
        except OSError:
            self.ended.set()
        hidden_thread(self._deadline, name="kubectl-wand-dap-end")

    def _deadline(self):
        self.ended.wait(END_WAIT)
        self.ended.set()

    def _down(self):
        """pydevd -> client; after the end, read pydevd's answer to the gate's disconnect."""
        client_ok, tail = True, b""
        marker = b'"request_seq": %d' % END_SEQ
        self.a.settimeout(0.2)
        while not self.ended.is_set():
            try:
                data = self.a.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            if self.ending is not None:
                tail = (tail + data)[-65536:]
                if marker in tail:
                    break
                continue  # the session is over for the client
            if client_ok:
                try:
                    self.conn.sendall(data)
                except OSError:
                    client_ok = False
                    self.end("client-gone")
        self.ended.set()
        if client_ok and self.ending == "detach":
            try:  # the editor shows the session as ended rather than a broken connection
                self.conn.sendall(_dap({"seq": 1, "type": "event", "event": "terminated",
                                        "body": {}}))
            except OSError:
                pass
        for s in (self.conn, self.a):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        ms = round((time.monotonic() - getattr(self, "t_end", time.monotonic())) * 1000, 1)
        with self.gate.lock:
            if self.gate.active is self:
                self.gate.active = None
        self.gate.notify("client", state="gone", why=self.ending or "pydevd-closed",
                         resumed_ms=ms)
        self.done.set()
