"""`kubectl wand attach TARGET`: debugpy in the live process, a local port, editor config."""

import json
import signal
import sys

import click

from kubectl_wand.cli.common import (ask_process, is_tty, kube_options, resolve, status,
                                     target_options)
from kubectl_wand.engine import ops
from kubectl_wand.engine.launch import vscode_config
from kubectl_wand.errors import WandError


@click.command("attach")
@click.argument("target")
@click.option("--port", type=int, default=5679, show_default=True,
              help="Port debugpy listens on inside the target (127.0.0.1 only).")
@click.option("--local-port", type=int, default=5679, show_default=True,
              help="Local port to forward; 0 picks a free one.")
@click.option("--keep", is_flag=True, help="Leave the debugger in the target on exit.")
@click.option("--wait-for-client", is_flag=True,
              help="Hold the target's main thread until an editor connects.")
@click.option("--ack-timeout", type=float, default=5.0, show_default=True,
              help="Seconds for the target's main thread to pick up the injection.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              help="json: one line with the address once ready (for scripts).")
@target_options
@kube_options
def command(target, port, local_port, keep, wait_for_client, ack_timeout, output, pid, **opts):
    """Start debugpy inside a live Python process and forward a local port to it.

    Stays in the foreground; Ctrl-C stops forwarding and detaches the debugger (the target
    runs at full speed again, its port freed) unless --keep.
    """
    if not (0 < port < 65536) or not (0 <= local_port < 65536):
        raise WandError("ports must be between 1 and 65535 (--local-port may be 0)",
                        exit_code=2, code="usage")
    _, backend, boxes = resolve(target, opts)
    box = boxes[0]
    session = ops.open_session(backend, box, pid=pid, ask=ask_process if is_tty() else None,
                               signal=opts.get("nudge"))
    proc = session.choice.proc
    box.extra["attached_pid"] = proc.pid
    status(f"Attaching to {box.display}, {session.choice.reason}: {proc.command[:80]}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    att = ops.Attachment(session, port=port, keep=keep, wait_for_client=wait_for_client,
                         ack_timeout=ack_timeout)
    fwd = None
    try:
        ev = att.start()
        if ev.get("reused"):
            status("debugpy was already listening in this process; reusing it")
        fwd = backend.forward(box, ev.get("port") or port, local_port)
        cfg = vscode_config(f"kubectl-wand: {box.display} (pid {proc.pid})", "127.0.0.1",
                            fwd.local_port, ops.remote_root(proc))
        if output == "json":
            click.echo(json.dumps({"event": "ready", "host": "127.0.0.1",
                                   "port": fwd.local_port, "pid": proc.pid,
                                   "target": box.display, "remote_port": ev.get("port"),
                                   "launch": cfg}), nl=True)
            sys.stdout.flush()
        else:
            status(f"debugpy is listening on 127.0.0.1:{ev.get('port')} inside the target "
                   f"(pid {proc.pid}); forwarded to 127.0.0.1:{fwd.local_port}")
            status("VS Code launch.json configuration:")
            click.echo(json.dumps(cfg, indent=2))
            status("Press Ctrl-C to " + ("stop forwarding (debugger stays: --keep)" if keep
                                         else "detach."))
        while True:
            ev = att.wait()
            if ev.get("event") in ("target-exited", "closed"):
                raise WandError(f"the target process {proc.pid} exited; the session is over",
                                "attach again to its replacement", code="target-exited")
    except KeyboardInterrupt:
        status("Detaching…" if not keep else "Leaving the debugger running (--keep).")
        try:
            res = att.detach() if att.listening else session.close()
        except WandError as e:
            raise WandError(f"detach failed: {e.message}", e.hint, code="detach-failed")
        if res and res.get("was_attached"):
            status(f"Detached from pid {proc.pid}; its debug port is closed.")
    finally:
        if fwd:
            fwd.close()
        session.chan.close(timeout=10)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
