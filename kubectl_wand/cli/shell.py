"""`kubectl wand shell TARGET`: an interactive Python console inside the live process."""

import contextlib
import os
import re
import signal
import sys

import click

from kubectl_wand.cli.common import is_tty, kube_options, reach, status, target_options
from kubectl_wand.engine.shell import LEAVE_AFTER, MAX_OUTPUT, Ended, Shell
from kubectl_wand.errors import WandError
from kubectl_wand.paths import cache_dir
from kubectl_wand.safe_text import StreamFilter, safe

_SGR = re.compile(r"\x1b\[[0-9;:]{0,64}m")
HISTORY_LENGTH = 2000


def history_path(name: str = "shell_history") -> str:
    return str(cache_dir() / name)


class Terminal:
    """What the target prints, made safe for this terminal (no colours with NO_COLOR);
    to a pipe or file it goes as it is, as exec's output does."""

    def __init__(self, raw: bool = False):
        self.streams = {"stdout": sys.stdout, "stderr": sys.stderr}
        self.filters = {n: StreamFilter() for n, s in self.streams.items()
                        if not raw and _isatty(s)}
        self.plain = bool(os.environ.get("NO_COLOR"))

    def write(self, stream: str, data: str):
        f = self.filters.get(stream)
        if f:  # a terminal: only text and colours pass, and no colours with NO_COLOR
            data = f.feed(data)
            if self.plain:
                data = _SGR.sub("", data)
        self.streams[stream].write(data)
        self.streams[stream].flush()

    def flush(self):
        for name, f in self.filters.items():
            self.streams[name].write(f.flush())
            self.streams[name].flush()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def setup_readline(shell: Shell):
    """Completion computed in the target; history in the user's cache directory."""
    try:
        import readline
    except ImportError:
        return None
    cache = {}

    def complete(text, state):
        if state == 0:
            try:
                cache["m"] = shell.complete(text)
            except (WandError, Ended):
                cache["m"] = []
        m = cache.get("m") or []
        return m[state] if state < len(m) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" \t\n`~!@#$%^&*()-=+[{]}\\|;:'\",<>/?")
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    path = history_path()
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(HISTORY_LENGTH)
    return readline, path


def save_history(rl):
    if not rl:
        return
    readline, path = rl
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        readline.write_history_file(path)
        os.chmod(path, 0o600)  # what was typed may hold secrets
    except OSError:
        pass


@contextlib.contextmanager
def no_interrupts():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@click.command("shell")
@click.argument("target")
@click.option("--ack-timeout", type=float, default=5.0, show_default=True,
              help="Seconds for the target's main thread to pick up the injection.")
@click.option("--max-output", type=int, default=MAX_OUTPUT, show_default=True,
              help="Characters of one statement's output brought back; more is cut.")
@click.option("--no-asyncio", is_flag=True,
              help="Do not run top-level await on the app's event loop (plain console).")
@click.option("--raw", is_flag=True,
              help="Pass the target's output to the terminal as it is (see exec --raw).")
@click.option("-q", "--quiet", is_flag=True, help="No banner or progress lines on stderr.")
@target_options
@kube_options
def command(target, ack_timeout, max_output, no_asyncio, raw, quiet, pid, topts):
    """Interactive Python console running inside a live process.

    \b
    Each statement is compiled and run in the target, in a thread of its own: `main` is the
    app's __main__ module, `sys.modules` reaches the rest. With the app's asyncio loop
    running, top-level `await` runs on it. TAB completes from the target's objects.
    Ctrl-C interrupts the running statement; Ctrl-D leaves and removes the console.
    Without a terminal, statements are read from stdin (exit status 1 if one raised).
    """
    interactive = is_tty()
    box, session = reach(target, topts, pid, quiet)
    shell = Shell(session)
    term = Terminal(raw)
    failed = False
    try:
        hello = shell.open(max_output, ack_timeout, use_loop=not no_asyncio)
        if not quiet:
            loop = hello.get("loop")
            status(f"Python {safe(hello.get('python'), 20)} in PID {session.pid} of "
                   f"{box.display} ({session.choice.reason}); `main` is its __main__ module")
            status("asyncio: top-level await runs on the app's loop " + safe(loop, 100)
                   if loop else "no running asyncio loop: plain console")
            if interactive:
                status("Ctrl-C interrupts a statement, Ctrl-D leaves (nothing stays behind)")
        failed = (interact if interactive else pipe)(shell, term)
    except Ended as e:
        status(f"the console in PID {session.pid} ended ({safe(e.args[0].get('why'), 40)})")
    except KeyboardInterrupt:  # Ctrl-C again and again on a statement that would not stop
        failed = True
    finally:
        with no_interrupts():  # the cleanup in the target is not to be cut short
            end = shell.stop("bye")
            term.flush()
            session.close()
    if end is None:
        raise WandError(f"the console in PID {session.pid} did not confirm its end",
                        "its thread ends with the helper's connection; check with "
                        "`kubectl wand stacks`", code="no-end")
    if end.get("left_running"):
        raise WandError("a statement did not stop when interrupted: it still runs in thread "
                        f"'kubectl-wand-shell-run' of PID {session.pid} (blocked in a call "
                        "that an exception cannot interrupt)",
                        "it ends when that call returns; check with `kubectl wand stacks`",
                        code="left-running")
    raise SystemExit(1 if failed else 0)


def show(term: Terminal, ev: dict) -> bool:
    """A statement's end: its traceback on stderr. True if it raised."""
    tb = ev.get("traceback")
    if tb and not isinstance(tb, str):  # the target's word: a string, or shown as text
        tb = repr(tb)
    if tb:
        term.write("stderr", tb if tb.endswith("\n") else tb + "\n")
    if ev.get("truncated"):
        status("[kubectl-wand] output cut at --max-output characters")
    return ev.get("status") == "error"


def interact(shell: Shell, term: Terminal) -> bool:
    rl = setup_readline(shell)

    def on_interrupt(n):
        if n >= 2:  # the first one normally ends the statement at once
            status(f"[kubectl-wand] the statement has not stopped (a call in C sees the "
                   f"interrupt only when it returns); {LEAVE_AFTER - n} more Ctrl-C leave "
                   f"the console")

    try:
        lines = []
        while True:
            try:
                line = input("... " if lines else ">>> ")
            except KeyboardInterrupt:
                sys.stdout.write("\nKeyboardInterrupt\n")
                lines = []
                continue
            except EOFError:
                sys.stdout.write("\n")
                return False
            if not lines and not line.strip():
                continue
            lines.append(line)
            ev = shell.run("\n".join(lines), term.write, on_interrupt=on_interrupt)
            if ev.get("status") == "more":
                continue
            lines = []
            show(term, ev)
            if ev.get("status") == "exit":
                return False
    finally:
        save_history(rl)


def pipe(shell: Shell, term: Terminal) -> bool:
    """Statements from stdin, as the REPL reads them: a blank line ends a block."""
    failed, lines = False, []
    for line in sys.stdin:
        lines.append(line.rstrip("\n"))
        ev = shell.run("\n".join(lines), term.write)
        if ev.get("status") == "more":
            continue
        lines = []
        failed = show(term, ev) or failed
        if ev.get("status") == "exit":
            return failed
    if lines:
        failed = show(term, shell.run("\n".join(lines), term.write, final=True)) or failed
    return failed
