"""A target whose main thread runs Python all the time, with HTTP served by a daemon thread.

    python3 /srv/ticker.py [PORT]        (default 8010; 0 = no HTTP server)

The main thread calls tick() every 20 ms, so an injection is picked up within 20 ms, and a
breakpoint on the marked line stops the *main* thread (unlike http_app.py, whose handlers
run in worker threads). Prints "READY <port>" once ready.
"""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ticks = 0


def tick(n):
    global ticks
    ticks = n  # MAIN-BREAKPOINT
    return n


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello {self.path} tick {ticks}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8010
    if port:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    print(f"READY {port}", flush=True)
    n = 0
    while True:
        n += 1
        tick(n)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
