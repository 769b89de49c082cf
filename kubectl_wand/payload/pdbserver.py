"""kubectl-wand pdb: CPython 3.14's own remote pdb server (``pdb._PdbServer``, what
``python -m pdb -p PID`` starts) inside the target, its socket bridged to the CLI.

Shipped as a blob; the agent runs ``run`` in its op thread. The server talks JSON lines over
one end of a socketpair; a bridge thread relays them to the CLI as ``pdb`` events, and the
control reader (this thread) hands the CLI's ``pdb`` frames to the server. The server uses
the ``sys.monitoring`` backend, bound to the chosen thread (the main one by default), so this
thread can set it up, break in again (``break``: Ctrl-C while the program runs) and take it
all down (tool id freed, breakpoints cleared) whatever the debugged thread is doing.
"""

import json
import socket
import sys
import threading

MAX_MESSAGE = 1 << 20  # characters of one server message relayed (a huge `p` is cut)
MAX_LINE = 4 << 20  # bytes of one server line read; a longer one is dropped with a notice
FINISH_WAIT = 5.0  # seconds a stopped thread gets to leave the server after our EOF


def make_server(pdb, bdb, sockfile, thread, idle):
    class Tracer(bdb._MonitoringTracer):
        """Events of ``thread`` only, whoever starts the trace (the stock one binds to the
        thread that calls start_trace)."""

        @property
        def _tracing_thread(self):
            return thread if self._enabled else None

        @_tracing_thread.setter
        def _tracing_thread(self, value):
            pass

    class Server(pdb._PdbServer):
        def __init__(self):
            super().__init__(sockfile, owns_sockfile=True, colorize=False, nosigint=True,
                             readrc=False, backend="monitoring")
            self.monitoring_tracer = Tracer()

        def detach(self):
            self.clear_all_breaks()  # detach leaves no breakpoint behind
            super().detach()

        def interaction(self, frame, tb):
            idle.clear()  # the debugged thread waits at our prompt
            try:
                super().interaction(frame, tb)
            finally:
                idle.set()

        def _read_reply(self):
            # The stock server lets a closed file's ValueError escape into the debugged
            # thread, where it kills the app: a session that ended is an EOF, it detaches.
            try:
                return super()._read_reply()
            except (OSError, ValueError):
                raise EOFError from None

    return Server()


class Bridge:
    def __init__(self, chan, params):
        self.chan, self.params = chan, params
        self.server = None
        self.ours, theirs = socket.socketpair()
        self.sockfile = theirs.makefile("rwb")
        theirs.close()  # the makefile keeps its own reference
        self.done = threading.Event()  # the server closed its end (it detached)
        self.idle = threading.Event()  # no thread is in the server's interaction
        self.idle.set()

    def pick_thread(self):
        want = self.params.get("thread")
        threads = {t.ident: t for t in threading.enumerate()
                   if not t.name.startswith("kubectl-wand")}
        if want in (None, "", "main"):
            return threading.main_thread()
        for t in threads.values():
            if str(t.ident) == str(want) or t.name == want or str(t.native_id) == str(want):
                return t
        raise LookupError("no thread %r; threads: %s" % (
            want, ", ".join("%s (%s)" % (t.name, t.native_id) for t in threads.values())))

    def start(self):
        import bdb
        import pdb

        if pdb.Pdb._last_pdb_instance is not None:
            raise RuntimeError("another pdb session is already attached to this process")
        if sys.monitoring.get_tool(sys.monitoring.DEBUGGER_ID) is not None:
            raise RuntimeError("another debugger (%s) uses sys.monitoring's debugger slot"
                               % sys.monitoring.get_tool(sys.monitoring.DEBUGGER_ID))
        self.thread = self.pick_thread()
        frame = sys._current_frames().get(self.thread.ident)
        if frame is None:
            raise LookupError("thread %s has no Python frame" % self.thread.name)
        self.server = make_server(pdb, bdb, self.sockfile, self.thread, self.idle)
        threading.Thread(target=self.pump, name="kubectl-wand-pdb-bridge", daemon=True).start()
        self.chan.send("pdb-attached", thread=self.thread.name, native_id=self.thread.native_id)
        self.trace(frame)

    def trace(self, frame):
        """set_trace on another thread's frame; the local events go on that thread's code
        objects (bdb would walk this thread's stack), so a loop without calls stops too."""
        self.server.set_trace(frame)
        self.server.monitoring_tracer.update_local_events(frame)

    def pump(self):
        """Server -> CLI: each JSON line as one ``pdb`` event (bounded). It reads until the
        server closes its end, so a server writing as it detaches never blocks on a full
        socket; a message over MAX_MESSAGE is cut, a line over MAX_LINE dropped."""
        f = self.ours.makefile("rb")
        tail = False  # inside the rest of an over-long line
        try:
            while True:
                line = f.readline(MAX_LINE)
                if not line:
                    break
                if tail or not line.endswith(b"\n"):
                    if not tail:
                        self.chan.send("pdb", msg={"type": "error", "message":
                                                   "[kubectl-wand: an over-long output dropped]"})
                    tail = not line.endswith(b"\n")
                    continue
                try:
                    msg = json.loads(line.decode("utf-8", "replace"))
                except ValueError:
                    continue
                m = msg.get("message") if isinstance(msg, dict) else None
                if isinstance(m, str) and len(m) > MAX_MESSAGE:
                    msg["message"] = m[:MAX_MESSAGE] + "\n[kubectl-wand: message cut]\n"
                self.chan.send("pdb", msg=msg)
        except (OSError, ValueError):
            pass
        self.done.set()  # the server closed its end: it detached
        self.chan.send("pdb-detached")  # the CLI answers with a stop: this op ends

    def to_server(self, msg):
        try:
            self.ours.sendall(json.dumps(msg).encode() + b"\n")
        except OSError:
            pass

    def break_in(self):
        """Ctrl-C while the program runs: stop the debugged thread where it is now."""
        s = self.server
        if s is None or s.enterframe is not None:
            return
        frame = sys._current_frames().get(self.thread.ident)
        if frame is not None:
            self.trace(frame)

    def untrace(self, s):
        """Frames keep no f_trace of ours (a later sys.settrace would call a dead server)."""
        frames = dict(getattr(s, "frame_trace_lines_opcodes", {}) or {})
        f = sys._current_frames().get(self.thread.ident)
        while f is not None:
            frames.setdefault(f, None)
            f = f.f_back
        for f, saved in frames.items():
            try:
                if getattr(f.f_trace, "__self__", None) is s:
                    f.f_trace = None
                if saved is not None:
                    f.f_trace_lines, f.f_trace_opcodes = saved
            except (AttributeError, ValueError):
                pass
        try:
            s.frame_trace_lines_opcodes.clear()
        except AttributeError:
            pass

    def finish(self):
        """Whatever state the session is in: no trace, no breakpoints, nothing of ours.

        The server's file is the debugged thread's to close: a thread at our prompt reads
        EOF (we shut our sending side) and detaches by itself; we wait for that, and close
        its file only when no thread is in the server (a late reader sees EOF either way)."""
        import pdb

        try:
            self.ours.shutdown(socket.SHUT_WR)  # a server at its prompt reads EOF: it quits
        except OSError:
            pass
        if not self.idle.wait(FINISH_WAIT):
            # still inside the server after the EOF: the user's own code runs in `interact`
            # or a `p`; it detaches when that returns (the EOF waits for it)
            self.chan.send("pdb", msg={"type": "error", "message": "[kubectl-wand: the "
                           "debugged thread is still running a command; it detaches when "
                           "the command returns]"})
        s = self.server
        if s is not None:
            try:
                s.clear_all_breaks()
                s.stop_trace()  # frees the monitoring tool id: the thread runs untraced
            except Exception:
                pass
            self.untrace(s)
            if pdb.Pdb._last_pdb_instance is s:
                pdb.Pdb._last_pdb_instance = None
        if self.idle.is_set():
            try:
                self.sockfile.close()
            except (OSError, ValueError):
                pass
            self.done.wait(FINISH_WAIT)  # the pump drains what was left and ends
        try:
            self.ours.close()
        except OSError:
            pass


def run(chan, params, agent):
    b = Bridge(chan, params)
    why = "eof"
    try:
        b.start()
    except Exception as e:
        b.finish()
        chan.send("error", code="pdb-failed", message="pdb could not start in the target: %s"
                  % e, hint="end the other debugger's session first (an `attach` ends with "
                  "Ctrl-C)" if isinstance(e, RuntimeError) else "check the thread's name "
                  "with `kubectl wand stacks`")
        chan.close()
        return

    def relay(req):
        if isinstance(req.get("msg"), dict):
            b.to_server(req["msg"])

    try:
        why = chan.dispatch({"pdb": relay, "break": lambda req: b.break_in()},
                            until=b.done.is_set)
    finally:
        if b.done.is_set():
            why = "detached"
        b.finish()
        chan.send("result", status=0, why=why)
        chan.close()
