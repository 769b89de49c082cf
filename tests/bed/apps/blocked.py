"""A target whose main thread never reaches the eval breaker.

    python3 /app/blocked.py [--handler] [PORT]     (default port 8004, 127.0.0.1 only)

The main thread sits in time.sleep(3600) while a daemon thread serves HTTP (so Python code
does run, just not on the main thread). With --handler a Python SIGUSR1 handler is installed,
so `kill -USR1` wakes the main thread and lets a pending sys.remote_exec script run.
Prints "READY <port>" once the socket accepts connections.
"""
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counter = 0


def handle(path):
    global counter
    counter += 1
    greeting = f"hello {path}"
    body = f"{greeting} #{counter}\n"  # BREAKPOINT-HERE
    return body


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = handle(self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def main():
    args = sys.argv[1:]
    if "--handler" in args:
        args.remove("--handler")
        signal.signal(signal.SIGUSR1, lambda *a: None)
    port = int(args[0]) if args else 8004
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
