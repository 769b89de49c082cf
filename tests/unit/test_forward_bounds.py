"""A local forward serves a bounded number of connections at once (real sockets)."""

import socket
import threading

from kubectl_wand.backends import forward


def _echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def serve(c):
        while True:
            data = c.recv(65536)
            if not data:
                break
            c.sendall(data)
        c.close()

    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv


def _talk(port, data=b"ping"):
    """(socket, answer); b"" when the forward refused it (closed at once: EOF, or a reset when
    our bytes reached the closed socket first)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(data)
        return s, s.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        return s, b""


def test_connections_over_the_limit_are_refused_and_the_others_go_on(monkeypatch):
    monkeypatch.setattr(forward, "MAX_CONNECTIONS", 2)
    srv = _echo_server()
    fwd = forward.TcpForwarder(srv.getsockname()[1], 0)
    try:
        a, got_a = _talk(fwd.local_port)
        b, got_b = _talk(fwd.local_port)
        assert got_a == got_b == b"ping"
        c, got_c = _talk(fwd.local_port)
        assert got_c == b""  # refused: closed at once
        c.close()
        a.close()
        # a slot is free again once a connection ends (its release is polled, bounded)
        for _ in range(100):
            d, got_d = _talk(fwd.local_port)
            if got_d:
                break
            d.close()
        assert got_d == b"ping"
        b.sendall(b"still")
        assert b.recv(100) == b"still"
        b.close()
        d.close()
    finally:
        fwd.close()
        srv.close()
