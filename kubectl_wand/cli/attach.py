"""`kubectl wand attach TARGET`: debugpy in the live process, a local port, editor config."""

import json
import signal
import sys
import threading
import time

import click

from kubectl_wand import editors, progress
from kubectl_wand.cli.common import (ask_process, is_tty, kube_options, resolve, status,
                                     target_options)
from kubectl_wand.engine import bundle, ops
from kubectl_wand.backends.forward import Early, Front
from kubectl_wand.engine.launch import vscode_config
from kubectl_wand.engine.session import kill_point
from kubectl_wand.errors import UsageError, WandError

FOLLOW_TIMEOUT = 180.0


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
    if not (0 < port < 65536) or not (0 <= local_port < 65536):
        raise UsageError("ports must be between 1 and 65535 (--local-port may be 0)", code="usage")
    keep = _keep_seconds(keep)
    editor = {"name": f"kubectl-wand: {target}", "path": None}
    if launch_json:
        editor["path"] = editors.launch_json_path(launch_json)
        editors.read_launch_json(editor["path"])  # refuse a file we could not merge into, now
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    bundle.prefetch()  # the debugpy archive and its key, read while the target is reached
    parsed, backend, boxes = resolve(target, topts)
    first = True
    while True:
        box = boxes[0]
        gone = _attach_once(backend, box, port, local_port, keep, wait_for_client, ack_timeout,
                            output, pid, topts, first, editor)
        if gone is None:
            return
        local_port = gone["local_port"]
        if no_follow or parsed.backend == "local":
            raise WandError(f"{gone['what']} went away; the session is over",
                            "attach again when it is back", code="target-exited")
        status(f"{gone['what']} went away; waiting for its replacement…")
        boxes = _wait_replacement(backend, parsed, box, gone)
        first = False


def _attach_once(backend, box, port, local_port, keep, wait_for_client, ack_timeout, output,
                 pid, topts, first, editor=None):
    """One attach; returns None when the user ended it, or what went away."""
    editor = editor or {"name": f"kubectl-wand: {box.display}", "path": None}
    # a slow forward (kubectl port-forward) starts now: its start-up overlaps the injection
    reached = threading.Event()  # the injector listed the target's processes
    front = backend.front_forward
    inner_port = 0 if front else local_port
    early = (Early(lambda remote: backend.forward(box, remote, inner_port), port,
                   after=reached if backend.forward_after_reach else None)
             if backend.slow_forward else None)
    try:
        with progress.spinner(f"reaching {box.display}"):
            session = ops.open_session(backend, box, pid=pid,
                                       ask=ask_process if is_tty() else None,
                                       signal=topts.nudge, debugpy=True,
                                       reached=reached)
    except BaseException:
        reached.set()
        if early:
            early.close()
        raise
    reached.set()
    proc = session.choice.proc
    backend.attached(box, proc.pid)
    status(f"{'Attaching' if first else 'Re-attaching'} to {box.display}, "
           f"{session.choice.reason}: {proc.command[:80]}")
    debug_port = backend.debug_port(box, port, local_port)
    att = ops.Attachment(session, port=debug_port, keep=bool(keep),
                         wait_for_client=wait_for_client, ack_timeout=ack_timeout,
                         keep_seconds=keep)
    fwd = None
    gone = None
    try:
        with progress.spinner(f"starting debugpy in pid {proc.pid}, waiting for its "
                              "acknowledgement"):
            ev = att.start()
        if ev.get("reused"):
            status("debugpy was already listening in this process (another session or "
                   "--keep); reusing it")
        fwd = (early.result(ev.get("port") or port) if early
               else backend.forward(box, ev.get("port") or port, inner_port))
        if front and att.preamble:
            fwd = Front(fwd, local_port)
        fwd.preamble = att.preamble
        if hasattr(fwd, "on_restart"):
            fwd.on_restart = lambda n: status(f"port-forward dropped; restarted ({n})")
        cfg, warnings = editors.safe_config(
            vscode_config(editor["name"], "127.0.0.1", fwd.local_port, ops.remote_root(proc)),
            fallbacks=[proc.cwd or "/"])
        for w in warnings:  # the folder comes from the target: never pasted in as it is
            status(f"warning: {w}")
        written = _write_launch_json(editor["path"], cfg) if editor["path"] else None
        if keep:
            status(_keep_note(ev, box, proc))
        if output == "json":
            click.echo(json.dumps({"event": "ready", "host": "127.0.0.1",
                                   "port": fwd.local_port, "pid": proc.pid,
                                   "target": box.display, "remote_port": ev.get("port"),
                                   "reattach": not first, "launch": cfg,
                                   "nvim_dap": editors.nvim_dap_snippet(cfg),
                                   **({"launch_json": written} if written else {})}))
            sys.stdout.flush()
        else:
            status(f"debugpy is listening on 127.0.0.1:{ev.get('port')} inside the target "
                   f"(pid {proc.pid}); forwarded to 127.0.0.1:{fwd.local_port}")
            if first:
                status("VS Code launch.json configuration:")
                click.echo(json.dumps(cfg, indent=2))
                status("nvim-dap (with nvim-dap-python), e.g. :lua or a keymap:")
                click.echo(editors.nvim_dap_snippet(cfg), nl=False)
                status("Press Ctrl-C to " + ("stop forwarding (the debugger stays: --keep)"
                                             if keep else "detach."))
        kill_point("forward")
        idle = 0
        while True:
            ev = att.wait()
            idle = idle + 1 if ev.get("event") == "idle" else 0
            if ev.get("event") == "client":
                _client_note(ev)
            refused = getattr(fwd, "refused", None)
            while refused:
                status(f"refused a connection to 127.0.0.1:{fwd.local_port} from uid "
                       f"{refused.pop(0)}: the forwarded port is for your own user only")
            if ev.get("event") == "detached":
                raise WandError("the debugger in the target ended this session "
                                f"({ev.get('why')})", "attach again", code="detached")
            # every 2 s of quiet, look at the target itself: a `docker exec` into a container
            # that was killed may never end, so its end is not always an event
            gone = _gone(backend, box) if idle % 4 == 3 else None
            if ev.get("event") in ("target-exited", "closed") or getattr(fwd, "dead", False) \
                    or gone:
                return {"what": f"process {proc.pid} in {box.display}",
                        "local_port": fwd.local_port, "pid": proc.pid}
    except KeyboardInterrupt:
        status("Detaching…" if not keep else "Leaving the debugger running (--keep).")
        try:
            res = att.detach() if att.listening else session.close()
        except WandError as e:
            raise WandError(f"detach failed: {e.message}", e.hint, code="detach-failed")
        if res and res.get("was_attached") and res.get("stopped") is False:
            status(f"Detached from pid {proc.pid}; debugpy keeps listening for the "
                   f"{res.get('users')} other session(s) using it.")
        elif res and res.get("was_attached"):
            status(f"Detached from pid {proc.pid}; its debug port is closed.")
        return None
    except WandError as e:
        if e.code == "target-exited":
            gone = e.message
        raise
    finally:
        if fwd:
            fwd.close()
        if early:
            early.close()
        session.chan.close(timeout=1 if gone else 10)


def _keep_seconds(text):
    if text is None:
        return None
    from kubectl_wand.cli.loglevel import parse_duration

    try:
        return parse_duration(text)
    except UsageError as e:
        raise UsageError(e.message.replace("--for", "--keep"),
                         "e.g. --keep 30m, --keep=2h (at most 7 days)", code="usage")


def _keep_note(ev, box, proc):
    until = ev.get("keep_until")
    when = time.strftime("%H:%M UTC", time.gmtime(until)) if until else "?"
    return (f"--keep: the debugger stays in pid {proc.pid} until {when}, then stops by itself "
            f"unless a session uses it. To end it sooner: `kubectl wand attach {box.display} "
            f"--pid {proc.pid}` again, then Ctrl-C.")


def _client_note(ev):
    if ev.get("state") == "connected":
        status("debugger client connected")
    elif ev.get("why") == "client-gone":
        status(f"debugger client went away without detaching: breakpoints cleared, threads "
               f"resumed ({ev.get('resumed_ms')} ms); the next client can connect")
    elif ev.get("state") == "gone":
        status("debugger client disconnected")


def _gone(backend, box):
    try:
        return backend.target_gone(box)
    except WandError:
        return None


def _write_launch_json(path, cfg):
    """Merge cfg into launch.json; a failure here is a warning, the session goes on."""
    try:
        what = editors.write_launch_json(path, cfg)
    except (WandError, OSError) as e:
        status(f"warning: could not write {path}: {getattr(e, 'message', None) or e}")
        return None
    status(f"{what.capitalize()} configuration {cfg['name']!r} in {path}")
    return str(path)


def _wait_replacement(backend, parsed, old_box, gone, timeout=FOLLOW_TIMEOUT):
    """Poll until the target has a live replacement: a new ready pod or a new process."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    last = None
    while time.monotonic() < deadline:
        try:
            boxes = backend.resolve(parsed)
            if boxes[0].id != old_box.id:
                return boxes
            from kubectl_wand.engine.session import Session

            procs = Session(backend, boxes[0], timeout=30).open("ps")
            if any(p.pid != gone["pid"] and p.blocker is None and p.role in ("main", "worker")
                   for p in procs):
                return boxes
        except WandError as e:
            if e.code in ("not-found", "not-running") and parsed.kind in (None, "pod"):
                raise WandError(f"{old_box.display} is gone, and nothing replaces a single "
                                "pod or container", "attach again when it is back",
                                code="target-exited")
            last = e
        time.sleep(delay)  # polling the cluster/engine for a replacement (a real signal)
        delay = min(delay * 1.5, 2.0)
    raise WandError(f"no replacement appeared within {timeout:.0f}s"
                    + (f" ({last.message})" if last else ""), "attach again later",
                    code="target-exited")


def _interrupt(signum, frame):
    raise KeyboardInterrupt
