"""kubectl-wand agent: runs inside the target, in its main thread, via sys.remote_exec.

``run(params)`` must return fast (it holds the main thread): it connects back to the injector,
writes one audit line to stderr and hands the real work to a daemon thread. Everything it is
told arrives as JSON data; nothing here is generated from user input.
"""

import codecs
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import types

STATE_MODULE = "_kubectl_wand_state"
# The shape of the state kept in the process between injections. Bump it when that shape
# changes: an agent never uses state left by an agent of another shape while it is in use.
STATE_PROTOCOL = 1
MAX_OUTPUT_DEFAULT = 8 * 1024 * 1024
MAX_REQUEST = 1 << 20  # bytes of one control line from the CLI read at a time (its own frames)
SURROGATES = re.compile("[\ud800-\udfff]")


def clean(s):
    """Text that encodes as UTF-8: undecodable bytes (surrogate escapes) become U+FFFD."""
    return SURROGATES.sub("\ufffd", s)


class Channel:
    """JSON lines to the injector over the unix socket it listens on."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.lock = threading.Lock()

    def send(self, event, **fields):
        fields["event"] = event
        data = (json.dumps(fields) + "\n").encode()
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass  # the CLI went away; the work itself must not fail for that

    def control(self, limit=65536):
        """Control lines from the injector (JSON objects), until it closes the connection."""
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    msg = json.loads(line.decode())
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    yield msg
            if len(buf) > limit:
                return

    def dispatch(self, handlers, until=None, limit=MAX_REQUEST):
        """The shipped ops' control reader (shell, pdb): calls ``handlers[op](request)`` for each
        JSON object line (read ``limit`` bytes at most at a time) until ``stop``, the end of the
        connection or ``until()``; returns why it ended: ``stop``'s reason or "eof"."""
        f = self.sock.makefile("rb")
        try:
            while until is None or not until():
                line = f.readline(limit)
                if not line:
                    break
                try:
                    req = json.loads(line.decode("utf-8", "replace"))
                except ValueError:
                    continue
                if not isinstance(req, dict):
                    continue
                op = req.get("op")
                if op == "stop":
                    return str(req.get("why") or "stop")[:40]
                handler = handlers.get(op) if isinstance(op, str) else None
                if handler is not None:
                    handler(req)
        except OSError:
            pass
        return "eof"

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in control()
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class StateMismatch(Exception):
    """The process holds live state of another agent protocol (another kubectl-wand)."""


def state():
    """Module-level state that survives between injections (the debug server, timers).
    State of another protocol is replaced when nothing in it is live, else refused."""
    mod = sys.modules.get(STATE_MODULE)
    if mod is not None and getattr(mod, "protocol", None) != STATE_PROTOCOL:
        busy = state_busy(mod)
        if busy:
            raise StateMismatch("%s (protocol %s; this kubectl-wand speaks %s)" % (
                busy, getattr(mod, "protocol", "0"), STATE_PROTOCOL))
        mod = None
    if mod is None:
        mod = types.ModuleType(STATE_MODULE)
        mod.protocol = STATE_PROTOCOL
        mod.debug = None
        mod.routers = {}
        mod.lock = threading.Lock()  # the debug server
        mod.io_lock = threading.Lock()  # stdout/stderr routing
        mod.background = {}  # exec --detach threads: ident -> what they run
        mod.reverts = {}  # loglevel --for timers
        mod.log_lock = threading.Lock()
        sys.modules[STATE_MODULE] = mod
    return mod


def state_busy(mod):
    """What of ``mod`` is in use now (a debugger, a capture, a timer, a thread), or ''."""
    if getattr(mod, "debug", None) is not None:
        return "a debugger left by another kubectl-wand is running"
    if getattr(mod, "routers", None):
        return "another kubectl-wand's code is running"
    if getattr(mod, "reverts", None):
        return "another kubectl-wand's loglevel --for timer is pending"
    alive = {t.ident for t in threading.enumerate()}
    if any(i in alive for i in (getattr(mod, "background", None) or {})):
        return "another kubectl-wand's exec --detach code is running"
    return ""


def audit(params):
    line = "[kubectl-wand] %s pid=%d injected op=%s id=%s%s\n" % (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.getpid(), params["op"],
        params["id"], (" " + params["audit"]) if params.get("audit") else "")
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except Exception:
        try:
            os.write(2, line.encode())
        except OSError:
            pass


def run(params):
    chan = Channel(params["sock"])
    chan.send("hello", pid=os.getpid(), thread=threading.current_thread().name,
              python=sys.version.split()[0])
    audit(params)
    op = params["op"]
    try:
        state()
    except StateMismatch as e:
        chan.send("error", code="state-mismatch", message="this process holds kubectl-wand "
                  "state this version cannot use: %s" % e, hint="end it with the kubectl-wand "
                  "version that started it (or wait for its --keep/--for to run out), then "
                  "retry")
        chan.close()
        return
    work = {"exec": do_exec, "attach": do_attach, "detach": do_detach,
            "loglevel": do_loglevel, "trace": do_trace, "shell": do_shipped,
            "pdb": do_shipped}.get(op)
    if work is None:
        chan.send("error", code="bad-op", message="unknown operation %r" % op)
        chan.close()
        return
    if op == "attach" and params.get("wait_for_client"):
        work(chan, params)  # the user asked for the main thread to wait for the editor
        return
    t = threading.Thread(target=work, args=(chan, params), name="kubectl-wand-" + op,
                         daemon=True)
    if op in ("attach", "detach"):
        # the debugger's own: never traced or suspended (a session's lifeline must answer
        # while the app is stopped at a breakpoint)
        t.pydev_do_not_trace = t.is_pydev_daemon_thread = True
    t.start()


# ---------------------------------------------------------------- exec

class Router:
    """Stands in for sys.stdout/stderr: writes from a capturing thread go to its sink."""

    def __init__(self, orig, name):
        self._orig, self._name, self._sinks = orig, name, {}

    def write(self, s):
        sink = self._sinks.get(threading.get_ident())
        if sink is None:
            return self._orig.write(s)
        return sink(self._name, s)

    def flush(self):
        sink = self._sinks.get(threading.get_ident())
        if sink is not None:
            sink.flush()  # print(..., flush=True) in the code: the CLI sees it now
        elif self._orig is not None:
            self._orig.flush()

    @property
    def buffer(self):
        return BufferRouter(self)

    def __getattr__(self, name):
        return getattr(self._orig, name)


class BufferRouter:
    """sys.stdout.buffer of a capturing thread: its bytes are captured too (as text)."""

    def __init__(self, router):
        self._r = router

    def write(self, b):
        sink = self._r._sinks.get(threading.get_ident())
        if sink is None:
            return self._r._orig.buffer.write(b)
        sink.write_bytes(self._r._name, bytes(b))
        return len(b)

    def flush(self):
        sink = self._r._sinks.get(threading.get_ident())
        if sink is not None:
            sink.flush()
        else:
            self._r._orig.buffer.flush()

    def __getattr__(self, name):
        return getattr(self._r._orig.buffer, name)


def _install(name):
    st = state()
    cur = getattr(sys, name)
    r = st.routers.get(name)
    if r is None or cur is not r:
        r = Router(cur, name)
        st.routers[name] = r
        setattr(sys, name, r)
    return r


def _uninstall(name, r, ident):
    r._sinks.pop(ident, None)
    st = state()
    if not r._sinks and getattr(sys, name) is r:
        setattr(sys, name, r._orig)
        st.routers.pop(name, None)


OUTPUT_CHUNK = 65536  # characters per output event: one big write is sent in pieces
MAX_TRACEBACK = 256 * 1024  # characters of a traceback sent back (its two ends)


class Capture:
    def __init__(self, chan, limit):
        self.chan, self.limit, self.sent, self.truncated = chan, limit, 0, False
        self.buf, self.last = [], time.monotonic()
        self.decoders = {}

    def write_bytes(self, stream, b):
        """Bytes written to sys.stdout.buffer: decoded as UTF-8, invalid bytes as U+FFFD."""
        dec = self.decoders.get(stream)
        if dec is None:
            dec = self.decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        self(stream, dec.decode(b))

    def __call__(self, stream, s):
        if not isinstance(s, str):
            s = str(s)
        n = len(s)
        s = clean(s)
        if self.sent >= self.limit:
            self.truncated = True
            return n
        room = self.limit - self.sent
        if len(s) > room:
            s, self.truncated = s[:room], True
        self.sent += len(s)
        self.buf.append((stream, s))
        if sum(len(x[1]) for x in self.buf) > 65536 or time.monotonic() - self.last > 0.1:
            self.flush()
        return n

    def flush(self):
        out = {}
        for stream, s in self.buf:
            out.setdefault(stream, []).append(s)
        self.buf = []
        self.last = time.monotonic()
        for stream, parts in out.items():
            data = "".join(parts)
            for i in range(0, len(data), OUTPUT_CHUNK):  # lines stay small (bounded readers)
                self.chan.send("output", stream=stream, data=data[i:i + OUTPUT_CHUNK])

    def finish(self):
        for stream, dec in self.decoders.items():
            tail = dec.decode(b"", final=True)
            if tail:
                self(stream, tail)
        self.flush()


class ExecStopped(BaseException):
    """Raised asynchronously in an exec thread the operator stopped (--timeout, Ctrl-C, its
    CLI gone); a BaseException, so ``except Exception`` in the user's code lets it through."""


def _compile_user(params):
    filename = params.get("filename") or "<kubectl-wand exec>"
    if params.get("code_path"):
        with open(params["code_path"], "rb") as f:
            source = f.read()
    else:
        source = params.get("code", "")
    return filename, compile(source, filename, "exec")


def do_exec(chan, params):
    if params.get("detach"):
        return _exec_detached(chan, params)
    ident = threading.get_ident()
    cap = Capture(chan, params.get("max_output", MAX_OUTPUT_DEFAULT))
    routers = {}
    with state().io_lock:
        for name in ("stdout", "stderr"):
            routers[name] = _install(name)
            routers[name]._sinks[ident] = cap
    status, tb, phase = 0, None, "compile"
    started = time.monotonic()
    run = Running(ident, params)
    stopped = None
    try:
        filename, code = _compile_user(params)
        phase = "run"
        ns = {"__name__": "__kubectl_wand_exec__", "__builtins__": __builtins__,
              "__file__": filename}
        run.watch(chan)
        try:
            exec(code, ns)
        finally:
            run.finish()
    except ExecStopped as e:
        status, stopped = None, run.why
        tb = clean("".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next)))
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    except BaseException as e:
        status = 1
        if phase == "compile":  # SyntaxError, undecodable source, NUL bytes: nothing ran
            tb = "".join(traceback.format_exception_only(type(e), e))
        else:  # the user's frames only, not this function's
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next))
        tb = clean(tb)
        if len(tb) > MAX_TRACEBACK:  # one event, one line: keep it under the readers' bound
            tb = tb[:MAX_TRACEBACK // 2] + "\n[… traceback cut …]\n" + tb[-MAX_TRACEBACK // 2:]
    finally:
        with state().io_lock:
            for name, r in routers.items():
                _uninstall(name, r, ident)
        cap.finish()
    seconds = round(time.monotonic() - started, 4)
    if run.reported:  # the CLI was told it is still blocked; it is gone now: log the end
        _log_line("exec id=%s stopped after %.1fs (%s)" % (params.get("id"), seconds,
                                                          run.reported))
    chan.send("result", status=status, traceback=tb, truncated=cap.truncated, phase=phase,
              seconds=seconds, stopped=stopped)
    chan.close()


def _exec_detached(chan, params):
    """--detach: the code runs on in a thread of its own, its output going to the process's
    own stdout/stderr; the CLI gets the thread's name and leaves."""
    try:
        filename, code = _compile_user(params)
    except BaseException as e:
        chan.send("result", status=1, phase="compile", truncated=False, seconds=0,
                  traceback=clean("".join(traceback.format_exception_only(type(e), e))))
        chan.close()
        return
    st = state()
    ns = {"__name__": "__kubectl_wand_exec__", "__builtins__": __builtins__,
          "__file__": filename}

    def body():
        started = time.monotonic()
        status = 0
        try:
            exec(code, ns)
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 1
        except BaseException:
            status = 1
            traceback.print_exc()
        finally:
            st.background.pop(threading.get_ident(), None)
        _log_line("exec --detach id=%s finished after %.1fs, status %s"
                  % (params.get("id"), time.monotonic() - started, status))

    t = threading.Thread(target=body, name="kubectl-wand-bg-exec", daemon=True)
    t.start()
    st.background[t.ident] = {"id": params.get("id"), "since": time.time()}
    chan.send("result", status=None, detached=True, thread=t.name, native_id=t.native_id,
              phase="run", truncated=False, seconds=0)
    chan.close()


def _log_line(text):
    line = "[kubectl-wand] %s pid=%d %s\n" % (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.getpid(), text)
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except Exception:
        pass


# ---------------------------------------------------------------- log levels

def _level_name(level):
    import logging

    name = logging.getLevelName(level)
    return name if isinstance(name, str) and not name.startswith("Level ") else str(level)


def _get_logger(key):
    import logging

    return logging.getLogger() if key == "root" else logging.getLogger(key)


def _filters(logger, level):
    """Handlers on the way up that would still drop records at ``level``."""
    import logging

    out, seen_handler, c = [], False, logger
    while c is not None:
        for h in c.handlers:
            seen_handler = True
            if h.level > level:
                out.append("%s on logger %s is at %s" % (type(h).__name__, c.name,
                                                         _level_name(h.level)))
        if not c.propagate:
            break
        c = c.parent
    if not seen_handler and logging.lastResort is not None and logging.lastResort.level > level:
        out.append("no handler is configured: only %s and above reach stderr"
                   % _level_name(logging.lastResort.level))
    return out


def _revert(key, level, token):
    st = state()
    with st.log_lock:
        entry = st.reverts.get(key)
        if entry is None or entry["token"] != token:
            return  # replaced or cancelled by a later loglevel call
        del st.reverts[key]
        _get_logger(key).setLevel(level)
    line = "[kubectl-wand] %s pid=%d loglevel reverted: %s -> %s\n" % (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.getpid(), key, _level_name(level))
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except Exception:
        pass


def do_loglevel(chan, params):
    """Set loggers' levels (JSON data: names and an int); optionally revert after a while with
    a daemon timer kept in the state module, so a later call cancels or replaces it."""
    import logging

    try:
        level = params.get("level")
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ValueError("the level must be a non-negative integer, got %r" % (level,))
        for_seconds = params.get("for_seconds")
        if for_seconds is not None and (isinstance(for_seconds, bool) or
                                        not isinstance(for_seconds, (int, float)) or
                                        for_seconds <= 0):
            raise ValueError("for_seconds must be a positive number")
        names = params.get("loggers") or ["root"]
        if not all(isinstance(n, str) for n in names):
            raise ValueError("logger names must be strings")
        st = state()
        results = []
        with st.log_lock:
            for name in names:
                key = "root" if name in ("", "root") else name
                existed = key == "root" or isinstance(
                    logging.Logger.manager.loggerDict.get(key), logging.Logger)
                lg = _get_logger(key)
                previous, effective = lg.level, lg.getEffectiveLevel()
                item = {"logger": key, "existed": existed, "previous": _level_name(previous),
                        "previous_effective": _level_name(effective), "level": _level_name(level),
                        "reverts_to": None, "reverts_in": None, "replaced_revert": None}
                original = previous
                pending = st.reverts.pop(key, None)
                if pending is not None:
                    pending["timer"].cancel()
                    original = pending["level"]  # the level from before any temporary change
                    item["replaced_revert"] = _level_name(original)
                lg.setLevel(level)
                if for_seconds:
                    token = object()
                    t = threading.Timer(for_seconds, _revert, args=(key, original, token))
                    t.daemon = True
                    t.name = "kubectl-wand-loglevel-revert"
                    st.reverts[key] = {"timer": t, "level": original, "token": token,
                                       "at": time.time() + for_seconds}
                    t.start()
                    item["reverts_to"], item["reverts_in"] = _level_name(original), for_seconds
                item["filtered_by"] = _filters(lg, level)
                results.append(item)
        chan.send("loglevel", loggers=results)
    except Exception as e:
        chan.send("error", code="loglevel-failed", message="%s: %s" % (type(e).__name__, e))
    finally:
        chan.close()


# ---------------------------------------------------------------- trace (payload/tracer.py)

def do_trace(chan, params):
    """The tracer ships as a file of its own; it runs here, in this thread, to its end."""
    try:
        with open(params["tracer_path"], "rb") as f:
            code = compile(f.read(), "<kubectl-wand tracer>", "exec")
        ns = {"__name__": "_kubectl_wand_tracer"}
        exec(code, ns)
    except Exception as e:
        chan.send("error", code="trace-failed", message="%s: %s" % (type(e).__name__, e))
        chan.close()
        return
    ns["run"](chan, params)


# ---------------------------------------------------------------- shell, pdb (shipped files)

def do_shipped(chan, params):
    """shell (payload/console.py) and pdb (payload/pdbserver.py) ship as files of their own;
    this thread becomes their control reader until the CLI stops or goes."""
    try:
        with open(params["module_path"], "rb") as f:
            code = compile(f.read(), "<kubectl-wand %s>" % params["op"], "exec")
        ns = {"__name__": "_kubectl_wand_" + params["op"]}
        exec(code, ns)
    except Exception as e:
        chan.send("error", code=params["op"] + "-failed", message="%s: %s" % (type(e).__name__, e))
        chan.close()
        return
    ns["run"](chan, params, globals())
