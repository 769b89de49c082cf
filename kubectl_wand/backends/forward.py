"""Local port forwarding: a loopback listener, one relay process per connection."""

import errno
import os
import socket
import subprocess
import threading
from typing import Callable, List, Optional, Sequence

from kubectl_wand.children import die_with_parent
from kubectl_wand.errors import WandError
from kubectl_wand.log import trace

# Relays copy at most CHUNK bytes at a time and block on the slower side (backpressure: no
# buffer grows with what either end sends); at most MAX_CONNECTIONS are served at once, so
# a burst of connections cannot start an unbounded number of relay processes.
CHUNK = 65536
MAX_CONNECTIONS = 16


def peer_uid(conn: socket.socket) -> Optional[int]:
    """The uid owning the other end of a loopback TCP connection to us (Linux /proc/net/tcp),
    or None where that cannot be read."""
    try:
        peer_host, peer_port = conn.getpeername()[:2]
        my_port = conn.getsockname()[1]
        with open("/proc/net/tcp") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None
    want_local = ":%04X" % peer_port
    want_remote = ":%04X" % my_port
    for line in lines:
        f = line.split()
        if len(f) > 7 and f[1].endswith(want_local) and f[2].endswith(want_remote):
            return int(f[7])
    return None


def operator_uids() -> set:
    """Who may use the editor's port: this user, and under sudo the user who ran sudo."""
    uids = {os.getuid()}
    sudo = os.environ.get("SUDO_UID", "")
    if os.getuid() == 0 and sudo.isdigit():
        uids.add(int(sudo))
    return uids


def listen_local(port: int, host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            raise WandError(f"local port {port} is already in use",
                            "choose another with --local-port, or --local-port 0 for a free one",
                            code="local-port-busy")
        raise WandError(f"cannot listen on {host}:{port}: {e.strerror}", code="local-port")
    s.listen(8)
    return s


class Forward:
    """What attach reads of every forward: its local port, the line it sends first on each
    connection (the debug gate's secret), the uids it turned away, whether its far end is
    gone for good (the pod was replaced), and a hook told each time it restarts itself."""

    local_port = 0
    preamble: Optional[bytes] = None
    refused: Sequence[int] = ()  # a list per instance in forwards that check the peer's uid
    dead = False
    on_restart: Optional[Callable[[int], None]] = None

    def close(self):
        raise NotImplementedError


class StdioForwarder(Forward):
    """Each accepted connection is relayed through a fresh process's stdin/stdout.

    ``prespawn``: one relay is always started ahead of the next client (payload/forward.py
    connects to the debug port only once its client has spoken), so a connecting editor does
    not wait for a `docker exec` and a Python to start."""

    def __init__(self, relay_argv: Callable[[], List[str]], local_port: int,
                 prespawn: bool = False):
        self.relay_argv = relay_argv
        self.sock = listen_local(local_port)
        self.local_port = self.sock.getsockname()[1]
        self.procs: List[subprocess.Popen] = []
        self.closed = False
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.prespawn, self.ahead, self.ahead_lock = prespawn, None, threading.Lock()
        self.preamble: Optional[bytes] = None  # the debug gate's secret line, sent first
        self.allowed = operator_uids()
        self.refused: List[int] = []  # uids of local connections turned away
        if prespawn:
            self._refill()
        threading.Thread(target=self._accept, daemon=True, name="wand-forward").start()

    def _refill(self):
        def run():
            argv = self.relay_argv()
            trace(argv)
            try:
                # no die-with-parent needed: if we vanish, its stdin ends and so does it
                p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
            except OSError:
                return
            with self.ahead_lock:
                if not self.closed and self.ahead is None:
                    self.ahead, p = p, None
            if p is not None:
                p.kill()
                p.wait()

        threading.Thread(target=run, daemon=True, name="wand-forward-ahead").start()

    def _spare(self) -> Optional[subprocess.Popen]:
        """The relay started ahead, if it is still alive (and a new one behind it)."""
        if not self.prespawn:
            return None
        with self.ahead_lock:
            p, self.ahead = self.ahead, None
        self._refill()
        if p is not None and p.poll() is not None:
            p.wait()
            return None
        return p

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            uid = peer_uid(conn)
            if uid is not None and uid not in self.allowed:
                # another local user: the port is the operator's alone
                self.refused.append(uid)
                conn.close()
                continue
            if not self.slots.acquire(blocking=False):
                conn.close()  # over MAX_CONNECTIONS: refused, the others go on
                continue
            threading.Thread(target=self._serve_slot, args=(conn,), daemon=True).start()

    def _serve_slot(self, conn):
        try:
            self._serve(conn)
        finally:
            self.slots.release()

    def _serve(self, conn):
        argv = self.relay_argv()
        trace(argv)
        try:
            p = self._spare() or subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, start_new_session=True,
                                 preexec_fn=die_with_parent())
        except OSError:
            conn.close()
            return
        self.procs.append(p)

        def up():
            try:
                if self.preamble:
                    p.stdin.write(self.preamble)
                    p.stdin.flush()
                while True:
                    data = conn.recv(CHUNK)
                    if not data:
                        break
                    p.stdin.write(data)
                    p.stdin.flush()
            except OSError:
                pass
            try:
                p.stdin.close()
            except OSError:
                pass

        threading.Thread(target=up, daemon=True).start()
        try:
            while True:
                data = p.stdout.read1(CHUNK)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()
            p.kill()
            p.wait()
            self.procs.remove(p)

    def close(self):
        self.closed = True
        try:
            # close() alone leaves the port bound while accept() blocks in another thread
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        for p in list(self.procs):
            p.kill()
        with self.ahead_lock:
            p, self.ahead = self.ahead, None
        if p is not None:
            p.kill()
            p.wait()


class Early:
    """A forward started ahead of the debugger, so that its own start-up (a `kubectl
    port-forward` process until its "Forwarding from" line) overlaps the injection: it reaches
    into the pod only when a client connects. ``result()`` hands it over (restarted if the
    debugger turned out to listen on another port); ``close()`` when done with it.

    The thread that made it lives until ``close()``: a child process started with a
    parent-death signal (PR_SET_PDEATHSIG) dies with the *thread* that started it."""

    def __init__(self, make: Callable[[int], object], remote_port: int,
                 after: Optional[threading.Event] = None):
        self.make, self.remote_port, self.after = make, remote_port, after
        self.fwd, self.error = None, None
        self.made, self.released = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="wand-forward-early")
        self.thread.start()

    def _run(self):
        if self.after is not None:
            # on 2 CPUs two `docker exec`s started together slow each other down: the
            # injector's goes first, the relay has the whole injection to get ready
            self.after.wait(10)
        try:
            self.fwd = self.make(self.remote_port)
        except BaseException as e:  # raised to the caller by result()
            self.error = e
        self.made.set()
        self.released.wait()

    def result(self, remote_port: int):
        self.made.wait()
        if self.error is not None:
            raise self.error
        if remote_port != self.remote_port:
            self.fwd.close()
            self.fwd = self.make(remote_port)
            self.remote_port = remote_port
        return self.fwd

    def close(self):
        self.made.wait()
        if self.fwd is not None:
            self.fwd.close()
        self.released.set()


class TcpForwarder(StdioForwarder):
    """Relay to a TCP address reachable from this machine (local targets, other port)."""

    def __init__(self, remote_port: int, local_port: int):
        self.remote_port = remote_port
        super().__init__(lambda: [], local_port)

    def _serve(self, conn):
        try:
            up = socket.create_connection(("127.0.0.1", self.remote_port), timeout=5)
        except OSError:
            conn.close()
            return
        up.settimeout(None)
        if self.preamble:
            try:
                up.sendall(self.preamble)
            except OSError:
                conn.close()
                up.close()
                return

        def pump(a, b):
            try:
                while True:
                    data = a.recv(CHUNK)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pump, args=(conn, up), daemon=True).start()
        pump(up, conn)


class Front(TcpForwarder):
    """The editor's port in front of a forward that cannot add the gate's secret itself
    (`kubectl port-forward`): it adds it. The inner forward's own port alone is useless."""

    def __init__(self, inner, local_port: int):
        self.inner = inner
        super().__init__(inner.local_port, local_port)

    @property
    def dead(self):
        return self.inner.dead

    @property
    def on_restart(self):
        return self.inner.on_restart

    @on_restart.setter
    def on_restart(self, fn):
        self.inner.on_restart = fn

    def close(self):
        super().close()
        self.inner.close()
