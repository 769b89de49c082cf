"""`kubectl wand attach TARGET`: debugpy in the live process, a local port, editor config."""

import json
import signal
import sys
import time

import click

from kubectl_wand import editors, progress
from kubectl_wand.cli.common import ask_process, is_tty, kube_options, status, target_options
from kubectl_wand.engine import attach as engine
from kubectl_wand.errors import UsageError, WandError


@click.command("attach")
@click.argument("target")
@click.option("--port", type=int, default=5679, show_default=True,
              help="Port debugpy listens on inside the target (127.0.0.1 only).")
@click.option("--local-port", type=int, default=5679, show_default=True,
              help="Local port to forward; 0 picks a free one.")
@click.option("--keep", "keep", is_flag=False, flag_value="30m", default=None,
              metavar="[DURATION]",
              help="Leave the debugger in the target on exit, for DURATION (default 30m, at "
                   "most 7 days); it then stops by itself unless a session uses it. Put it "
                   "after TARGET, or use --keep=DURATION.")
@click.option("--wait-for-client", is_flag=True,
              help="Hold the target's main thread until an editor connects.")
@click.option("--ack-timeout", type=float, default=5.0, show_default=True,
              help="Seconds for the target's main thread to pick up the injection.")
@click.option("--no-follow", is_flag=True,
              help="End when the process or pod goes away instead of re-attaching to its "
                   "replacement.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              help="json: one line per (re-)attach with the address (for scripts).")
@click.option("--write-launch-json", "launch_json", is_flag=False,
              flag_value=editors.DEFAULT_PATH, default=None, metavar="[PATH]",
              help="Merge the entry into .vscode/launch.json (or PATH: a file, or a folder "
                   "holding .vscode/), replacing the entry of the same name and keeping the "
                   "others and their comments. Put it after TARGET, or use --write-launch-json=PATH.")
@target_options
@kube_options
def command(target, port, local_port, keep, wait_for_client, ack_timeout, no_follow, output,
            pid, topts, launch_json=None):
    """Start debugpy inside a live Python process and forward a local port to it.

    Stays in the foreground; Ctrl-C stops forwarding and detaches the debugger (the target
    runs at full speed again, its port freed) unless --keep. If the pod is replaced (rollout,
    crash) or a reloading server restarts its worker, it re-attaches to the replacement on the
    same local port.
    """
    opts = engine.AttachOptions(target, topts, pid=pid, port=port, local_port=local_port,
                                keep_seconds=_keep_seconds(keep),
                                wait_for_client=wait_for_client, ack_timeout=ack_timeout,
                                follow=not no_follow, editor_name=f"kubectl-wand: {target}")
    launch_path = None
    if launch_json:
        launch_path = editors.launch_json_path(launch_json)
        editors.read_launch_json(launch_path)  # refuse a file we could not merge into, now
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    engine.run(opts, View(output, launch_path))


class View:
    """attach's events, rendered: status lines on stderr, the editor's configuration (or one
    JSON line per (re-)attach with -o json) on stdout."""

    def __init__(self, output, launch_path=None):
        self.output, self.launch_path = output, launch_path
        self.ask = ask_process if is_tty() else None

    def step(self, text):
        return progress.spinner(text)

    def event(self, ev):
        getattr(self, "on_" + type(ev).__name__)(ev)

    def on_Attaching(self, ev):
        status(f"{'Attaching' if ev.first else 'Re-attaching'} to {ev.display}, "
               f"{ev.reason}: {ev.command[:80]}")

    def on_Reused(self, ev):
        status("debugpy was already listening in this process (another session or "
               "--keep); reusing it")

    def on_Ready(self, ev):
        cfg = ev.launch
        for w in ev.warnings:  # the folder comes from the target: never pasted in as it is
            status(f"warning: {w}")
        written = _write_launch_json(self.launch_path, cfg) if self.launch_path else None
        if ev.keep:
            status(_keep_note(ev))
        if self.output == "json":
            click.echo(json.dumps({"event": "ready", "host": "127.0.0.1",
                                   "port": ev.local_port, "pid": ev.pid,
                                   "target": ev.display, "remote_port": ev.remote_port,
                                   "reattach": not ev.first, "launch": cfg,
                                   "nvim_dap": editors.nvim_dap_snippet(cfg),
                                   **({"launch_json": written} if written else {})}))
            sys.stdout.flush()
            return
        status(f"debugpy is listening on 127.0.0.1:{ev.remote_port} inside the target "
               f"(pid {ev.pid}); forwarded to 127.0.0.1:{ev.local_port}")
        if ev.first:
            status("VS Code launch.json configuration:")
            click.echo(json.dumps(cfg, indent=2))
            status("nvim-dap (with nvim-dap-python), e.g. :lua or a keymap:")
            click.echo(editors.nvim_dap_snippet(cfg), nl=False)
            status("Press Ctrl-C to " + ("stop forwarding (the debugger stays: --keep)"
                                         if ev.keep else "detach."))

    def on_Client(self, ev):
        if ev.state == "connected":
            status("debugger client connected")
        elif ev.why == "client-gone":
            status(f"debugger client went away without detaching: breakpoints cleared, "
                   f"threads resumed ({ev.resumed_ms} ms); the next client can connect")
        elif ev.state == "gone":
            status("debugger client disconnected")

    def on_Refused(self, ev):
        status(f"refused a connection to 127.0.0.1:{ev.local_port} from uid {ev.uid}: the "
               "forwarded port is for your own user only")

    def on_PortForwardRestarted(self, ev):
        status(f"port-forward dropped; restarted ({ev.count})")

    def on_Replacing(self, ev):
        status(f"{ev.what} went away; waiting for its replacement…")

    def on_Detaching(self, ev):
        status("Leaving the debugger running (--keep)." if ev.keep else "Detaching…")

    def on_Detached(self, ev):
        res = ev.result
        if res and res.get("was_attached") and res.get("stopped") is False:
            status(f"Detached from pid {ev.pid}; debugpy keeps listening for the "
                   f"{res.get('users')} other session(s) using it.")
        elif res and res.get("was_attached"):
            status(f"Detached from pid {ev.pid}; its debug port is closed.")


def _keep_seconds(text):
    if text is None:
        return None
    from kubectl_wand.cli.loglevel import parse_duration

    try:
        return parse_duration(text)
    except UsageError as e:
        raise UsageError(e.message.replace("--for", "--keep"),
                         "e.g. --keep 30m, --keep=2h (at most 7 days)", code="usage")


def _keep_note(ev):
    when = time.strftime("%H:%M UTC", time.gmtime(ev.keep_until)) if ev.keep_until else "?"
    return (f"--keep: the debugger stays in pid {ev.pid} until {when}, then stops by itself "
            f"unless a session uses it. To end it sooner: `kubectl wand attach {ev.display} "
            f"--pid {ev.pid}` again, then Ctrl-C.")


def _write_launch_json(path, cfg):
    """Merge cfg into launch.json; a failure here is a warning, the session goes on."""
    try:
        what = editors.write_launch_json(path, cfg)
    except (WandError, OSError) as e:
        status(f"warning: could not write {path}: {getattr(e, 'message', None) or e}")
        return None
    status(f"{what.capitalize()} configuration {cfg['name']!r} in {path}")
    return str(path)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
