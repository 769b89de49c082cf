"""FastAPI target.

    cd /app && python3 -m uvicorn asgi_app:app --host 127.0.0.1 --port 8001 [--reload]

uvicorn prints its own readiness line ("Uvicorn running on http://127.0.0.1:8001", on stderr).
"""
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()
counter = 0


def handle(path):
    global counter
    counter += 1
    greeting = f"hello {path}"
    body = f"{greeting} #{counter}\n"  # BREAKPOINT-HERE
    return body


@app.get("/", response_class=PlainTextResponse)
async def root():
    return handle("/")


@app.get("/{rest:path}", response_class=PlainTextResponse)
async def anything(rest: str):
    return handle("/" + rest)
