"""debugpy inside the target, behind the gate (dapgate.py): shipped with agent.py and run in
its namespace (state(), audit(), _log_line(), Channel come from there).

Each non-``--keep`` attach session holds its agent connection open for the whole session: its
lifeline. When the lifeline ends (the CLI's Ctrl-C sends ``stop``; a killed CLI or injector
just closes it) the session lets go of the debugger, and the last one stops it. A ``--keep``
debugger has a lifetime; when it runs out with no session using it, it stops by itself.
"""

import os
import sys
import threading
import time
import traceback

PYDEVD_MODULES = ("debugpy", "pydevd", "_pydevd", "_pydev", "pydev_", "_pydev_")
KEEP_DEFAULT = 1800.0


def _debugpy(params):
    lib = params.get("debugpy_dir")
    if "debugpy" not in sys.modules and lib:
        if lib not in sys.path:
            sys.path.append(lib)  # appended: the app's own imports must not see our tree first
    import debugpy
    import debugpy.server.api  # noqa: F401  (imports pydevd, whose server socket we replace)

    return debugpy


class GilPriority:
    """A short GIL switch interval while this thread imports debugpy and starts listening.

    Each file read during an import lets the GIL go; getting it back from a CPU-bound main
    thread takes a whole switch interval (5 ms by default), and an import does hundreds of
    reads: seconds in all. With 0.1 ms it takes a fraction of a second. The app's own interval
    comes back at once afterwards (unless it changed it meanwhile)."""

    SHORT = 0.0001

    def __enter__(self):
        self.old = sys.getswitchinterval()
        sys.setswitchinterval(min(self.old, self.SHORT))
        self.set = sys.getswitchinterval()  # as stored (whole microseconds), to compare later

    def __exit__(self, *exc):
        if sys.getswitchinterval() == self.set:
            sys.setswitchinterval(self.old)


class Foreign(Exception):
    """The app itself already called debugpy.listen()."""


def _foreign():
    api = sys.modules.get("debugpy.server.api")
    return bool(api is not None and getattr(api.listen, "called", False))


def _notify(event, **fields):
    """Gate news (a client came or went) to every session's lifeline."""
    info = state().debug
    for ch in list((info or {}).get("lifelines", ())):
        ch.send(event, **fields)


def _start(params, host, port):
    """Gate first (a busy port fails here, before anything else), then pydevd behind it."""
    gate = Gate(host, port, notify=_notify)
    try:
        # pydevd warns on stderr about frozen modules; not the app's business
        quiet = "PYDEVD_DISABLE_FILE_VALIDATION" not in os.environ
        if quiet:
            os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        try:
            with GilPriority():
                debugpy = _debugpy(params)
                pydevd = sys.modules["pydevd"]
                try:
                    debugpy.configure(subProcess=False)  # so that a later stop is for good
                except Exception:
                    pass
                orig = pydevd.create_server_socket
                pydevd.create_server_socket = lambda host, port: gate.server
                try:
                    debugpy.listen((gate.host, gate.port), in_process_debug_adapter=True)
                except RuntimeError as e:
                    pydevd.create_server_socket = orig
                    if "already been called" in str(e):
                        raise Foreign()
                    raise
        finally:
            if quiet:
                os.environ.pop("PYDEVD_DISABLE_FILE_VALIDATION", None)
    except BaseException:
        gate.close()
        raise
    gate.start()
    return debugpy, {"host": gate.host, "port": gate.port, "lib": params.get("debugpy_dir"),
                     "since": time.time(), "users": 0, "gate": gate, "lifelines": [],
                     "pydb": pydevd.get_global_debugger(), "orig_server": orig,
                     "keep_until": None, "keep_token": None}


def _keep(info, seconds):
    """A --keep lifetime: the debugger stops by itself then, unless a session uses it."""
    token = object()
    info["keep_token"], info["keep_until"] = token, time.time() + seconds
    t = threading.Timer(seconds, _keep_expired, args=(token,))
    t.daemon, t.name = True, "kubectl-wand-keep"
    t.pydev_do_not_trace = t.is_pydev_daemon_thread = True
    t.start()


def _keep_expired(token):
    st = state()
    with st.lock:
        info = st.debug
        if info is None or info.get("keep_token") is not token:
            return
        info["keep_until"] = info["keep_token"] = None
        if info["users"] > 0:
            return  # the last session's end stops it
        _stop(st, info, "its --keep lifetime ran out")


def do_attach(chan, params):
    st = state()
    host, port = "127.0.0.1", int(params.get("port", 5679))
    secret = params.get("secret")
    keep = params.get("keep")
    keep_s = float(params.get("keep_seconds") or KEEP_DEFAULT) if keep else None
    try:
        with st.lock:
            reused = st.debug is not None
            if not reused:
                if _foreign():
                    raise Foreign()
                debugpy, st.debug = _start(params, host, port)
            info = st.debug
            if secret:
                info["gate"].allow(secret, params.get("id"))
            if keep:
                _keep(info, keep_s)
            else:
                info["users"] += 1
                info["lifelines"].append(chan)
        ev = {"host": info["host"], "port": info["port"], "reused": reused, "gated": True,
              "lib": info.get("lib"), "users": info["users"],
              "keep_until": info.get("keep_until")}
        if not reused:
            ev["debugpy"] = getattr(debugpy, "__version__", "?")
        chan.send("listening", **ev)
    except Foreign:
        chan.send("listening", host=host, port=None, reused=True, foreign=True)
        chan.close()
        return
    except OSError as e:
        chan.send("error", code="port-busy" if e.errno == 98 else "listen-failed",
                  message="debugpy could not listen on %s:%d in the target: %s"
                  % (host, port, e.strerror or e),
                  hint="choose another port inside the target with --port")
        chan.close()
        return
    except Exception as e:
        chan.send("error", code="listen-failed", message="debugpy failed to start: %s: %s"
                  % (type(e).__name__, e), traceback=traceback.format_exc())
        chan.close()
        return
    if params.get("wait_for_client"):
        chan.send("waiting")
        if not keep:
            hidden_thread(_lifeline, (chan, params), "kubectl-wand-attach")
        else:
            chan.close()
        sys.modules["debugpy"].wait_for_client()
        return
    if keep:
        chan.close()
        return
    _lifeline(chan, params)


def _lifeline(chan, params):
    """Until the injector says stop or goes away; then this session lets go."""
    why = "closed"
    for msg in chan.control():
        if msg.get("op") == "stop":
            why = msg.get("why") or "stop"
            break
    st = state()
    with st.lock:
        info = st.debug
        if info is None or chan not in info["lifelines"]:
            res = {"was_attached": False}
        else:
            info["lifelines"].remove(chan)
            res = _release(st, info, params.get("secret"), "session ended (%s)" % why)
    chan.send("detached", why=why, **res)
    chan.close()


def _release(st, info, secret, why):
    """One session fewer; the last one stops the debugger (st.lock held)."""
    if secret:
        info["gate"].forget(secret)
    info["users"] -= 1
    if info["users"] > 0:
        return {"was_attached": True, "stopped": False, "users": info["users"],
                "lib": info.get("lib")}
    _stop(st, info, why)
    return {"was_attached": True, "stopped": True, "lib": info.get("lib")}


def _stop(st, info, why):
    """End the client's session (threads resumed), stop pydevd, forget our debugpy tree."""
    st.debug = None
    info["gate"].close()
    try:
        import pydevd

        try:
            sys.modules["debugpy"].wait_for_client.cancel()
        except Exception:
            pass
        pydevd.stoptrace()
        # stoptrace() skips the disposal when pydevd already dropped its global debugger
        # (a client disconnect does that): dispose of the one we started, explicitly.
        py_db = info.get("pydb")
        if py_db is not None:
            py_db.dispose_and_kill_all_pydevd_threads(wait=True)
            waiter = getattr(py_db, "_waiting_for_connection_thread", None)
            if waiter is not None:
                waiter.do_kill_pydev_thread()
        pydevd.create_server_socket = info["orig_server"]
    except Exception as e:
        _log_line("stoptrace: %s" % e)
    try:
        sys.modules["debugpy.server.api"].listen.called = False
    except (KeyError, AttributeError):
        pass
    lib = info.get("lib")
    if lib:
        # Forget the shipped tree so a later attach imports a fresh copy from its new place.
        if lib in sys.path:
            sys.path.remove(lib)
        for name in list(sys.modules):
            mod = sys.modules.get(name)
            f = getattr(mod, "__file__", None) or ""
            if f.startswith(lib + "/") or name.startswith(PYDEVD_MODULES):
                del sys.modules[name]
    _log_line("debugger stopped: %s" % why)
    if not st.routers and not getattr(st, "reverts", None):
        sys.modules.pop(STATE_MODULE, None)


def do_detach(chan, params):
    """The older way out (an injection): one session fewer, as a lifeline's end."""
    st = state()
    with st.lock:
        info = st.debug
        if info is None:
            res = {"was_attached": False}
        else:
            res = _release(st, info, params.get("secret"), "detach")
    chan.send("detached", **res)
    chan.close()
