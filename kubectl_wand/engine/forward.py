"""Local port forwarding: a loopback listener, one relay process per connection."""

import errno
import socket
import subprocess
import threading
from typing import Callable, List

from kubectl_wand.children import die_with_parent
from kubectl_wand.errors import WandError
from kubectl_wand.log import trace


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


class StdioForwarder:
    """Each accepted connection is relayed through a fresh process's stdin/stdout."""

    def __init__(self, relay_argv: Callable[[], List[str]], local_port: int):
        self.relay_argv = relay_argv
        self.sock = listen_local(local_port)
        self.local_port = self.sock.getsockname()[1]
        self.procs: List[subprocess.Popen] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="wand-forward").start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        argv = self.relay_argv()
        trace(argv)
        try:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, start_new_session=True,
                                 preexec_fn=die_with_parent())
        except OSError:
            conn.close()
            return
        self.procs.append(p)

        def up():
            try:
                while True:
                    data = conn.recv(65536)
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
                data = p.stdout.read1(65536)
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


class Direct:
    """No relay needed: the debug server is already reachable from here."""

    def __init__(self, port: int):
        self.local_port = port

    def close(self):
        pass


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

        def pump(a, b):
            try:
                while True:
                    data = a.recv(65536)
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
