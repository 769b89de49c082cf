"""kubectl-wand tracer: non-stopping logpoints inside the target, on ``sys.monitoring``.

Loaded by the agent (``do_trace``) in a thread of its own; ``run(chan, params)`` returns only
when the trace is over and nothing of it stays registered. LINE events are switched on for the
code objects holding the wanted lines only (``set_local_events``); the expressions and the
condition are compiled once and evaluated in the frame that runs the line. The callback never
blocks the app: hits go to a bounded queue that a sender thread drains to the socket.

It ends (events off, callback gone, tool id free) on --for, --max-hits, or the end of its
socket: the CLI asked to stop, went away or was killed (the injector then shuts the socket).
"""

import gc
import json
import os
import queue
import reprlib
import sys
import threading
import time
import types

TOOL_NAME = "kubectl-wand-trace"
TOOL_IDS = (4, 3, 5)  # never 0-2: debuggers, coverage and cProfile expect those
MAX_REPR = 1000
BATCH_EVERY = 0.1  # seconds between writes of hits to the CLI
QUEUE_MAX = 1000
STATS_EVERY = 2.0

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 300
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 20
_repr.maxlevel = 3


def bounded_repr(v):
    try:
        s = _repr.repr(v)
    except Exception as e:
        s = "<repr failed: %s>" % type(e).__name__
    return s if len(s) <= MAX_REPR else s[:MAX_REPR] + "…"


class Fail(Exception):
    def __init__(self, code, message, hint=None):
        Exception.__init__(self, message)
        self.code, self.message, self.hint = code, message, hint


# ---------------------------------------------------------------- where the lines are

def _parts(path):
    return [p for p in path.replace("\\", "/").split("/") if p and p != "."]


def suffix_len(local, remote):
    """How many trailing path components two paths share (pathMappings by suffix)."""
    a, b = _parts(local), _parts(remote)
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def loaded_files():
    """File names of the code the process has loaded (modules and functions' code)."""
    out = set()
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if isinstance(f, str) and f.endswith(".py"):
            out.add(f)
    return out


def resolve_file(path, files):
    """The loaded file ``path`` means: the longest component suffix match, unambiguous."""
    scored = [(suffix_len(path, f), f) for f in files]
    best = max((s for s, _ in scored), default=0)
    if best == 0:
        raise Fail("no-file", "no loaded module's file matches %s" % path,
                   "give the path as the target sees it, or enough of its end to be unique "
                   "(e.g. app/views.py); the file must be imported already")
    found = sorted(f for s, f in scored if s == best)
    if len(found) > 1:
        raise Fail("ambiguous-file", "%s matches several loaded files: %s"
                   % (path, ", ".join(found[:8])), "give more of the path to tell them apart")
    return found[0]


def _walk_code(code, out):
    out.append(code)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _walk_code(c, out)


def code_objects(filename):
    """Every code object of ``filename`` reachable from live functions (nested ones through
    co_consts). Module-level code is gone after import, so it is never found."""
    codes, seen = [], set()
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType):
            c = obj.__code__
            if c.co_filename == filename and id(c) not in seen:
                found = []
                _walk_code(c, found)
                for x in found:
                    if id(x) not in seen:
                        seen.add(id(x))
                        codes.append(x)
    return codes


def codes_for_line(codes, line):
    """Code objects that emit a LINE event for ``line`` (innermost owner of the line)."""
    return [c for c in codes if any(ln == line for _, _, ln in c.co_lines())]


def nearest_lines(codes, line):
    lines = sorted({ln for c in codes for _, _, ln in c.co_lines() if ln is not None})
    return sorted(lines, key=lambda x: abs(x - line))[:3]


# ---------------------------------------------------------------- the trace

class Trace:
    def __init__(self, chan, params):
        self.chan = chan
        self.rate = float(params.get("rate") or 10)
        self.max_hits = params.get("max_hits")
        self.for_seconds = params.get("for_seconds")
        self.exprs = list(params.get("exprs") or [])
        self.where_src = params.get("where")
        self.q = queue.Queue(QUEUE_MAX)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.reason = None
        self.hits = self.dropped = self.skipped = self.lost = self.errors = 0
        self.burst = max(1.0, self.rate)  # a full second's worth at once, then the rate
        self.tokens, self.stamp = self.burst, time.monotonic()
        self.reported = set()  # (location, what) whose error was sent once
        # Over the rate, a code object's LINE events are switched off until the next token is
        # due (resume_loop): a hot line then runs uninstrumented between hits instead of
        # calling us each time (drops while paused are not seen, so "dropped" is a minimum)
        self.paused = set()
        self.wake = threading.Event()
        self.pauses = 0
        self.tool = None
        self.codes = []
        self.wanted = {}  # (code, line) -> location label

    # compiled once, in the CLI's words; errors here are the user's, reported before starting
    def compile(self):
        self.code = []
        for e in self.exprs:
            try:
                self.code.append((e, compile(e, "<trace expression>", "eval")))
            except SyntaxError as x:
                raise Fail("bad-expression", "cannot compile %r: %s" % (e, x.msg),
                           "expressions are Python expressions evaluated in the frame")
        self.where = None
        if self.where_src:
            try:
                self.where = compile(self.where_src, "<trace condition>", "eval")
            except SyntaxError as x:
                raise Fail("bad-expression", "cannot compile --where %r: %s"
                           % (self.where_src, x.msg))

    def locate(self, locations):
        files = loaded_files()
        resolved, by_file = [], {}
        for loc in locations:
            path, line = loc["file"], int(loc["line"])
            filename = resolve_file(path, files)
            codes = by_file.get(filename)
            if codes is None:  # one walk of the heap per file
                codes = by_file[filename] = code_objects(filename)
            found = codes_for_line(codes, line)
            if not found:
                near = nearest_lines(codes, line)
                raise Fail("no-code-at-line", "no loaded function of %s runs line %d"
                           % (filename, line),
                           ("lines with code near it: %s" % ", ".join(map(str, near)))
                           if near else "module-level code runs only at import; trace a "
                           "line inside a function")
            label = "%s:%d" % (filename, line)
            for c in found:
                self.wanted[(c, line)] = label
                if c not in self.codes:
                    self.codes.append(c)
            resolved.append({"file": filename, "line": line, "asked": path,
                             "functions": sorted({c.co_qualname for c in found})})
        return resolved

    def register(self):
        mon = sys.monitoring
        for tid in TOOL_IDS:
            try:
                mon.use_tool_id(tid, TOOL_NAME)
            except ValueError:
                continue
            self.tool = tid
            break
        else:
            taken = ", ".join("%d: %s" % (i, mon.get_tool(i)) for i in range(6)
                              if mon.get_tool(i))
            raise Fail("no-tool-id", "no free sys.monitoring tool id for the trace (%s)" % taken,
                       "end another trace (each one holds an id) and retry; ids 0-2 are left "
                       "to debuggers, coverage and profilers")
        mon.register_callback(self.tool, mon.events.LINE, self.on_line)
        for c in self.codes:
            mon.set_local_events(self.tool, c, mon.events.LINE)

    def resume_loop(self):
        """Switch paused code objects' events back on when the next token is due."""
        while not self.stop.is_set():
            self.wake.wait(0.5)
            self.wake.clear()
            if not self.paused:
                continue
            due = (1.0 - (self.tokens + (time.monotonic() - self.stamp) * self.rate)) / self.rate
            if self.stop.wait(max(0.0, due)):
                return
            with self.lock:
                codes, self.paused = self.paused, set()
                if self.tool is None:
                    return
                for c in codes:
                    try:
                        sys.monitoring.set_local_events(self.tool, c, sys.monitoring.events.LINE)
                    except Exception:
                        pass

    def unregister(self):
        """Events off, callback gone, id free: nothing of the trace stays registered."""
        with self.lock:
            self._unregister()

    def _unregister(self):
        if self.tool is None:
            return
        mon, tid, self.tool = sys.monitoring, self.tool, None
        for c in self.codes:
            try:
                mon.set_local_events(tid, c, 0)
            except Exception:
                pass
        mon.register_callback(tid, mon.events.LINE, None)
        mon.free_tool_id(tid)

    # runs in the app's threads: keep it short and never block
    def on_line(self, code, line, _now=time.monotonic, _frame=sys._getframe):
        label = self.wanted.get((code, line))
        if label is None:
            return sys.monitoring.DISABLE  # another line of a traced function: off for good
        if self.where is None and self.tokens + (_now() - self.stamp) * self.rate < 1.0:
            self.dropped += 1  # the hot path: over the rate, nothing evaluated
            if code not in self.paused and self.tool is not None:
                self.paused.add(code)
                self.pauses += 1
                try:
                    sys.monitoring.set_local_events(self.tool, code, 0)
                except Exception:
                    pass
                self.wake.set()
            return None
        if self.stop.is_set():
            return None
        frame = _frame(1)
        while frame is not None and frame.f_code is not code:
            frame = frame.f_back
        if frame is None:
            return None
        try:
            if self.where is not None:
                try:
                    if not eval(self.where, frame.f_globals, frame.f_locals):
                        return None
                except Exception as e:
                    self.error(label, "--where " + self.where_src, e)
                    return None
            with self.lock:
                now = _now()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens < 1.0:
                    self.dropped += 1
                    return None
                if self.max_hits and self.hits >= self.max_hits:
                    return None
                self.tokens -= 1.0
                self.hits += 1
                last = bool(self.max_hits and self.hits >= self.max_hits)
            values = []
            for src, c in self.code:
                try:
                    values.append([src, bounded_repr(eval(c, frame.f_globals, frame.f_locals))])
                except Exception as e:
                    values.append([src, None])
                    self.error(label, src, e)
            self.put({"event": "hit", "at": label, "time": time.time(),
                      "thread": threading.current_thread().name[:200], "values": values})
            if last:
                self.finish("max-hits")
        except Exception:
            pass  # the app's line must run whatever happens here
        return None

    def error(self, label, what, e):
        with self.lock:
            self.errors += 1
            first = (label, what) not in self.reported
            if first:
                self.reported.add((label, what))
        if first:
            self.put({"event": "trace-error", "at": label, "expr": what,
                      "error": "%s: %s" % (type(e).__name__, bounded_repr(e)[:300])})

    def put(self, ev):
        try:
            self.q.put_nowait(ev)
        except queue.Full:
            with self.lock:
                self.lost += 1

    def finish(self, reason):
        if self.reason is None:
            self.reason = reason
        self.stop.set()
        self.wake.set()  # the resume thread ends at once
        try:
            self.q.put_nowait(None)  # wakes the sender
        except queue.Full:
            pass

    # the trace's own threads
    def watch(self):
        """The socket's end (the CLI stopped, left or died) ends the trace."""
        try:
            while True:
                data = self.chan.sock.recv(4096)
                if not data or b"stop" in data:
                    break
        except OSError:
            pass
        self.finish("stopped")

    def send_loop(self):
        deadline = (time.monotonic() + self.for_seconds) if self.for_seconds else None
        next_stats = time.monotonic() + STATS_EVERY
        while True:
            timeout = next_stats - time.monotonic()
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
            try:
                ev = self.q.get(timeout=max(0.0, timeout))
            except queue.Empty:
                ev = None
            if ev is not None:
                self.flush(ev)
                # batch: one write (and one wake-up of this thread) per BATCH_EVERY at most,
                # so the app's threads do not hand the GIL over for every hit
                self.stop.wait(BATCH_EVERY)
            if deadline is not None and time.monotonic() >= deadline:
                self.finish("for")
            if self.stop.is_set():
                break
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + STATS_EVERY
                self.chan.send("trace-stats", **self.stats())
        self.unregister()
        self.flush(None)  # what was queued before the end

    def flush(self, first):
        """``first`` and whatever else is queued, in one write: cheaper per hit at high rates."""
        evs = [first]
        while len(evs) < 500:
            try:
                evs.append(self.q.get_nowait())
            except queue.Empty:
                break
        data = "".join(json.dumps(e) + "\n" for e in evs if e is not None).encode()
        if data:
            with self.chan.lock:
                try:
                    self.chan.sock.sendall(data)
                except OSError:
                    pass  # the CLI is gone: the watcher ends the trace

    def stats(self):
        return {"hits": self.hits, "dropped": self.dropped, "lost": self.lost,
                "errors": self.errors, "paused": self.pauses}


def run(chan, params):
    t = Trace(chan, params)
    try:
        if not hasattr(sys, "monitoring"):
            raise Fail("version", "sys.monitoring needs Python 3.12+")
        t.compile()
        resolved = t.locate(params.get("locations") or [])
        t.register()
    except Fail as e:
        t.unregister()
        chan.send("error", code=e.code, message=e.message, hint=e.hint)
        chan.close()
        return
    except Exception as e:
        t.unregister()
        chan.send("error", code="trace-failed", message="%s: %s" % (type(e).__name__, e))
        chan.close()
        return
    chan.send("tracing", pid=os.getpid(), tool_id=t.tool, locations=resolved)
    watcher = threading.Thread(target=t.watch, name="kubectl-wand-trace-watch", daemon=True)
    watcher.start()
    resumer = threading.Thread(target=t.resume_loop, name="kubectl-wand-trace-resume",
                               daemon=True)
    resumer.start()
    try:
        t.send_loop()
    finally:
        t.finish(t.reason or "stopped")
        resumer.join(5)  # gone before the CLI hears the end
        t.unregister()
        chan.send("trace-end", reason=t.reason or "stopped", **t.stats())
        try:
            chan.sock.shutdown(2)  # ends the watcher's recv() if the trace ended by itself
        except OSError:
            pass
        watcher.join(5)
        chan.close()
