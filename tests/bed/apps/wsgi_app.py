"""Flask target.

    cd /app && python3 -m gunicorn -w 2 -b 127.0.0.1:8002 wsgi_app:app
    cd /app && python3 -m flask --app wsgi_app run --port 8003

gunicorn prints "Listening at: http://127.0.0.1:8002"; flask prints "Running on http://127.0.0.1:8003".
"""
from flask import Flask, request

app = Flask(__name__)
counter = 0


def handle(path):
    global counter
    counter += 1
    greeting = f"hello {path}"
    body = f"{greeting} #{counter}\n"  # BREAKPOINT-HERE
    return body


@app.get("/")
@app.get("/<path:rest>")
def root(rest=""):
    return handle(request.path), 200, {"Content-Type": "text/plain; charset=utf-8"}
