"""Plain stdlib HTTP target: ThreadingHTTPServer, serve_forever() in the main thread.

    python3 /app/http_app.py [PORT]        (default 8000, binds 127.0.0.1 only)

Prints "READY <port>" once the socket accepts connections.
"""
import sys
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
        greeting = f"hello {self.path}"
        body = handle(self.path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Greeting", greeting)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # keep stdout/stderr quiet per request
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # bound and listening here
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
