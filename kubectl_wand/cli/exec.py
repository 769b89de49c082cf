"""`kubectl wand exec TARGET -f FILE | -c CODE`: run code inside the live process."""

import json
import signal
import sys

import click

from kubectl_wand import progress
from kubectl_wand.cli.common import ask_process, is_tty, kube_options, status, target_options
from kubectl_wand.cli.fanout import fanout_options
from kubectl_wand.engine import exec as engine
from kubectl_wand.engine import runcode
from kubectl_wand.errors import UsageError, WandError
from kubectl_wand.safe_text import StreamFilter


@click.command("exec")
@click.argument("target")
@click.option("-f", "--file", "path", help="Python file to run in the target ('-' = stdin).")
@click.option("-c", "--code", help="Python code to run in the target.")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the code to finish; then it is stopped in the target "
                   "(as on Ctrl-C), or said to be blocked in a named C call.")
@click.option("--detach", is_flag=True,
              help="Start the code in a background thread of the target and return at once: "
                   "it keeps running (output to the process's own stdout/stderr); "
                   "`ps -o wide` lists it.")
@click.option("--ack-timeout", type=float, default=5.0, show_default=True,
              help="Seconds for the target's main thread to pick up the injection.")
@click.option("--max-output", type=int, default=8 << 20, show_default=True,
              help="Characters of output brought back; more is cut with a note.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--raw", is_flag=True,
              help="On a terminal, pass the code's output as it is; by default only text and "
                   "colours pass, other control sequences (titles, clearing, cursor moves, "
                   "carriage returns) are shown escaped.")
@click.option("--force", is_flag=True,
              help="Run code that would end the target process (os._exit, os.abort, a "
                   "signal to itself…), which is refused otherwise.")
@fanout_options
@target_options(short_container=False)
@kube_options
def command(target, path, code, timeout, detach, ack_timeout, max_output, output, quiet, raw,
            force, pid, all_ready, all_processes, max_parallel, topts):
    """Run Python code inside a live process and bring back its output and exit status.

    The code runs in a thread of the target (its main thread only starts it), with globals
    of its own; `import app` or `sys.modules` reach the application. Exit status: the
    code's (0, 1 if it raised, N for sys.exit(N)); 124 if --timeout expired, 130 on Ctrl-C:
    both stop the code in the target, and say so (or name the C call it is blocked in).
    """
    if (path is None) == (code is None):
        raise UsageError("give exactly one of -f FILE or -c CODE",
                         "e.g. kubectl wand exec deploy/app -c 'print(1)'")
    # argv bytes that are not UTF-8 arrive as surrogate escapes: send them as they were typed
    source = runcode.read_script(path) if path else code.encode("utf-8", "surrogateescape")
    opts = engine.ExecOptions(
        target, source=source, filename=path if path and path != "-" else "<kubectl-wand -c>",
        where=topts, pid=pid, timeout=timeout, detach=detach, ack_timeout=ack_timeout,
        max_output=max_output, all_ready=all_ready, all_processes=all_processes,
        max_parallel=max_parallel, force=force)
    if opts.fanned:
        return _fan_out(opts, output, quiet, raw)
    view = View(output, quiet, raw)
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Ctrl-C (or a TERM) stops the code in the target: also when started with SIGINT
        # ignored (a background job of a script)
        signal.signal(sig, signal.default_int_handler)
    try:
        done = engine.run(opts, view)
    finally:
        view.flush()
    res, pid = done.result, done.pid
    if output == "json":
        click.echo(json.dumps({
            "target": done.display, "pid": pid, "status": res.status,
            "stdout": "".join(view.collected["stdout"]),
            "stderr": "".join(view.collected["stderr"]),
            "traceback": res.traceback, "truncated": res.truncated, "timed_out": res.timed_out,
            "interrupted": res.interrupted, "stopped": bool(res.stopped),
            "blocked_in": (res.blocked or {}).get("call") if res.blocked else None,
            "detached": ({"thread": res.detached.get("thread")} if res.detached else None),
            "seconds": res.seconds}, indent=2))
    elif res.detached and res.status is None:
        status(f"started in the background in thread {res.detached.get('thread')!r} of PID "
               f"{pid}; it keeps running after this command (its output goes to the "
               f"process's own stdout/stderr). `kubectl wand ps {done.display} -o wide` lists it.")
        raise SystemExit(0)
    else:
        if res.traceback:
            f = view.filters.get("stderr")
            sys.stderr.write(f.feed(res.traceback) + f.flush() if f else res.traceback)
        if res.phase == "compile" and res.status:
            raise WandError(f"the code does not compile in the target's Python "
                            f"(PID {pid}); nothing ran",
                            "fix the line shown above (the target's Python version decides "
                            "the syntax; a file not in UTF-8 needs a coding declaration)",
                            code="syntax", exit_code=1)
        if res.traceback and not quiet:
            last = res.traceback.strip().splitlines()[-1] if res.traceback.strip() else "?"
            status(f"error: the code raised {last} (exit status {res.status})")
            status(f"hint: the exception stayed in the injected code's thread; PID "
                   f"{pid} carries on")
        if res.truncated:
            status(f"[kubectl-wand] output truncated at {max_output} characters (--max-output)")
        if res.timed_out:
            raise WandError(f"the code did not finish within {timeout:g}s; "
                            + runcode.describe_stop(res, pid),
                            "raise --timeout, make the code return sooner, or run it with "
                            "--detach", code="timeout", exit_code=124)
        if res.interrupted:
            raise WandError("interrupted; " + runcode.describe_stop(res, pid),
                            "--detach runs code that should outlive this command",
                            code="interrupted", exit_code=130)
    if res.timed_out:
        raise SystemExit(124)
    if res.interrupted:
        raise SystemExit(130)
    raise SystemExit(res.status or 0)


class View:
    """exec's progress on stderr, the code's output on stdout/stderr as it comes (made safe
    for a terminal unless --raw), or collected for -o json."""

    def __init__(self, output, quiet, raw):
        self.fmt, self.quiet = output, quiet
        self.ask = ask_process if is_tty() else None
        self.collected = {"stdout": [], "stderr": []}
        self.streams = {"stdout": sys.stdout, "stderr": sys.stderr}
        # on a terminal, what the code printed may not drive the terminal (unless --raw)
        self.filters = {name: StreamFilter() for name, s in self.streams.items()
                        if not raw and _isatty(s)}

    def step(self, text):
        return progress.spinner(text, force=False if self.quiet else None)

    def started(self, where, why):
        if not self.quiet and self.fmt == "text":
            status(f"Running in {where}, {why}")

    def output(self, stream, data):
        if self.fmt == "json":
            self.collected[stream].append(data)
        else:
            f = self.filters.get(stream)
            self.streams[stream].write(f.feed(data) if f else data)
            self.streams[stream].flush()

    def flush(self):
        for name, f in self.filters.items():
            self.streams[name].write(f.flush())


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _fan_out(opts, output, quiet, raw=False):
    """exec --all / --all-processes: every unit in parallel, results grouped, a summary."""
    from kubectl_wand.cli import fanout as render

    def on_plan(n):
        if not quiet and output == "text":
            what = "process(es)" if opts.all_processes else "target(s)"
            status(f"Running in {n} {what}, at most {opts.max_parallel} at a time")

    render.finish(engine.run_all(opts, on_plan), output, raw=raw)
