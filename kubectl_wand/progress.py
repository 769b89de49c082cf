"""A spinner line on stderr for waits longer than a second — only on a terminal.

    with progress.spinner("starting the helper"):
        session = ops.open_session(...)

Nothing is drawn when stderr is not a TTY, with TERM=dumb, or with -v (every call is printed
then). ``suspended()`` clears the line while something else talks to the user (a prompt).
"""

import contextlib
import os
import sys
import threading
import time

from kubectl_wand import log

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_FRAMES = "|/-\\"
DELAY = 1.0  # seconds before anything is drawn: quick waits stay silent
INTERVAL = 0.1

_lock = threading.Lock()
_active = []  # the running spinners (innermost last)


def enabled(stream=None) -> bool:
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and os.environ.get("TERM") != "dumb" and not log.VERBOSE


class Spinner:
    def __init__(self, message, stream=None, delay=DELAY, force=None):
        self.message, self.stream, self.delay = message, stream or sys.stderr, delay
        self.on = enabled(self.stream) if force is None else force
        self.frames = FRAMES
        try:
            FRAMES.encode(getattr(self.stream, "encoding", None) or "ascii")
        except (UnicodeEncodeError, LookupError):
            self.frames = ASCII_FRAMES
        self._stop = threading.Event()
        self._paused = 0
        self._drawn = False
        self._thread = None
        self.started = time.monotonic()

    def __enter__(self):
        if self.on:
            with _lock:
                _active.append(self)
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="kubectl-wand-spinner")
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread:
            self._stop.set()
            self._thread.join()
            with _lock:
                self._clear()
                if self in _active:
                    _active.remove(self)
        return False

    def update(self, message):
        self.message = message

    def _run(self):
        if self._stop.wait(self.delay):
            return
        n = 0
        while not self._stop.is_set():
            with _lock:
                if not self._paused and _active and _active[-1] is self:
                    elapsed = time.monotonic() - self.started
                    frame = self.frames[n % len(self.frames)]
                    self._write(f"\r\x1b[K{frame} {self.message} ({elapsed:.0f}s)")
                    self._drawn = True
            n += 1
            self._stop.wait(INTERVAL)

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self._stop.set()

    def _clear(self):
        if self._drawn:
            self._write("\r\x1b[K")
            self._drawn = False


def spinner(message, **kw) -> Spinner:
    return Spinner(message, **kw)


@contextlib.contextmanager
def suspended():
    """Clear any spinner line and hold it while the caller writes or prompts."""
    with _lock:
        held = list(_active)
        for s in held:
            s._paused += 1
            s._clear()
    try:
        yield
    finally:
        with _lock:
            for s in held:
                s._paused -= 1
