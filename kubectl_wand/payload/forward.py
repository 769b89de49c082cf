"""Relay one TCP connection to 127.0.0.1:PORT over stdin/stdout (stdlib only, Python >= 3.6).

Runs in the helper, which shares the target's network namespace: the debug server never
listens anywhere but loopback, and this is how a client on the user's machine reaches it.
Bounded: at most 64 KiB is held at a time; each side blocks until the other took it.
"""

import os
import socket
import sys
import threading


def main():
    port = int(sys.argv[-1])
    # Connect only once the client has spoken (DAP clients speak first): a relay may be
    # started ahead of its client, and until then it must not look like one to the server.
    first = os.read(0, 65536)
    if not first:
        return
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError as e:
        os.write(2, ("kubectl-wand forward: cannot connect to 127.0.0.1:%d: %s\n"
                     % (port, e)).encode())
        sys.exit(1)
    s.settimeout(None)
    s.sendall(first)

    def up():
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            s.sendall(data)
        # The client side is gone: nothing more can arrive, so nothing is left waiting here.
        s.close()
        os._exit(0)

    threading.Thread(target=up, daemon=True).start()
    while True:
        try:
            data = s.recv(65536)
        except OSError:
            break
        if not data:
            break
        while data:
            data = data[os.write(1, data):]


main()
