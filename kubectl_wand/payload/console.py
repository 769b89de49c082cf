"""kubectl-wand console: an interactive Python console inside the target (``shell``).

Shipped as a blob and run by the agent in its op thread, which becomes the control reader:
each JSON line from the injector (the CLI's frames) is a request — ``run`` (source lines:
compiled here, ``more`` if incomplete), ``complete`` (rlcompleter over the session's
namespace), ``interrupt`` (KeyboardInterrupt into the running statement), ``stop`` (leave).
Statements run one at a time in a thread of their own, whose stdout/stderr alone come back;
with the app's event loop running, top-level ``await`` runs on that loop. On stop everything
the session added (routers, linecache entries, its threads) goes.
"""

import ast
import builtins
import contextvars
import ctypes
import itertools
import linecache
import queue
import sys
import threading
import time
import traceback

CO_COROUTINE = 0x0080
MAX_MATCHES = 500
MORE = object()


def find_loop():
    """The app's running asyncio loop: from a thread's frames in run_forever (the main
    thread's first), else any running loop the garbage collector knows (e.g. uvloop)."""
    aio = sys.modules.get("asyncio")
    if aio is None:
        return None
    frames = sys._current_frames()
    main = threading.main_thread().ident
    for ident in sorted(frames, key=lambda i: i != main):
        f = frames[ident]
        while f is not None:
            if f.f_code.co_name in ("run_forever", "_run_once"):
                loop = f.f_locals.get("self")
                if isinstance(loop, aio.AbstractEventLoop) and loop.is_running():
                    return loop
            f = f.f_back
    import gc

    for obj in gc.get_objects():
        try:
            if isinstance(obj, aio.AbstractEventLoop) and obj.is_running() \
                    and not obj.is_closed():
                return obj
        except Exception:
            continue
    return None


class LoopSink:
    """The loop thread's entry in the routers: only our task's writes are captured
    (marked by a context variable); the app's other tasks keep writing where they did."""

    def __init__(self, router, var):
        self.router, self.var = router, var

    def __call__(self, stream, s):
        cap = self.var.get()
        if cap is None:
            return self.router._orig.write(s)
        return cap(stream, s)

    def write_bytes(self, stream, b):
        cap = self.var.get()
        if cap is None:
            self.router._orig.buffer.write(b)
        else:
            cap.write_bytes(stream, b)


def LineCapture(base, chan, limit):
    """The agent's Capture, sending each completed line at once (a prompt waits on it)."""

    class Cap(base):
        def __call__(self, stream, s):
            n = base.__call__(self, stream, s)
            if "\n" in str(s):
                self.flush()
            return n

    return Cap(chan, limit)


class Quit:
    """exit()/quit() leave the console. (site's would close the app's own stdin.)"""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "Use %s() or Ctrl-D to leave the console" % self.name

    def __call__(self, code=None):
        raise SystemExit(code)


def plain_help(*args):
    """help(obj) as text here; the interactive help() would read the app's stdin and a pager
    could start in the target."""
    if not args:
        print("help(object) shows its documentation; the interactive help() is not "
              "available inside the target")
        return
    import pydoc

    print(pydoc.render_doc(args[0], renderer=pydoc.plaintext))


class Console:
    def __init__(self, chan, params, agent):
        self.chan, self.params, self.agent = chan, params, agent
        self.ns = {"__name__": "__wand_shell__", "__builtins__": builtins, "sys": sys,
                   "main": sys.modules.get("__main__"), "exit": Quit("exit"),
                   "quit": Quit("quit"), "help": plain_help}
        self.limit = int(params.get("max_output") or (1 << 20))
        self.loop = find_loop() if params.get("asyncio", True) else None
        self.flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if self.loop is not None else 0
        self.count = itertools.count(1)
        self.files = []  # linecache entries we added
        self.jobs = queue.Queue()
        self.lock = threading.Lock()
        self.running = None  # id of the statement now running
        self.routers = {}
        self.loop_ident = None
        self.var = contextvars.ContextVar("kubectl_wand_shell", default=None)
        self.worker = threading.Thread(target=self.work, name="kubectl-wand-shell-run",
                                       daemon=True)

    # ------------------------------------------------------------ control (this thread)

    def serve(self):
        self.worker.start()
        loop = self.loop
        self.chan.send("shell", python=sys.version.split()[0],
                       loop=None if loop is None else "%s.%s" % (type(loop).__module__,
                                                                 type(loop).__qualname__),
                       names=sorted(k for k in self.ns if not k.startswith("__")))
        why = "eof"
        try:
            why = self.chan.dispatch({"run": self.jobs.put, "complete": self.complete,
                                      "interrupt": lambda req: self.interrupt(req.get("id"))})
        finally:
            left = self.finish()
            self.chan.send("result", status=0, why=why, left_running=left)
            self.chan.close()

    def complete(self, req):
        import rlcompleter

        text = str(req.get("text", ""))[:1000]
        matches = []
        try:
            c = rlcompleter.Completer(self.ns)
            for state in range(MAX_MATCHES):
                m = c.complete(text, state)
                if m is None:
                    break
                matches.append(m)
        except Exception:
            pass
        self.chan.send("matches", id=req.get("id"), matches=matches)

    def interrupt(self, sid):
        with self.lock:
            if self.running is None or (sid is not None and sid != self.running):
                return False
            n = ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.worker.ident), ctypes.py_object(KeyboardInterrupt))
            return n == 1

    def finish(self):
        """Undo everything: a running statement is interrupted (for up to 2 s), the worker
        ends, routers and linecache entries go. Returns True if a statement would not stop."""
        self.jobs.put(None)
        deadline = time.monotonic() + 2.0
        while self.worker.is_alive() and time.monotonic() < deadline:
            self.interrupt(None)
            self.worker.join(0.1)
        stuck = self.worker.is_alive()  # its routing goes when its statement ends
        for fn in self.files:
            linecache.cache.pop(fn, None)
        # self.ns stays as it is: functions defined here may have been handed to the app
        st = sys.modules.get(self.agent["STATE_MODULE"])
        if st is not None and not stuck and not st.routers and \
                not getattr(st, "reverts", None) and st.debug is None:
            sys.modules.pop(self.agent["STATE_MODULE"], None)
        return stuck

    # ------------------------------------------------------------ statements (worker thread)

    def work(self):
        while True:
            try:
                req = self.jobs.get()
                if req is None:
                    return
                self.run_one(req)
            except KeyboardInterrupt:
                pass  # an interrupt that arrived just after its statement ended

    def run_one(self, req):
        """One statement, its stdout/stderr routed to the CLI (installed for it alone, as
        exec does: between statements nothing of ours stands in sys.stdout)."""
        sid = req.get("id")
        cap = LineCapture(self.agent["Capture"], self.chan, self.limit)
        ident = threading.get_ident()
        st = self.agent["state"]()
        with st.io_lock:
            self.routers = {n: self.agent["_install"](n) for n in ("stdout", "stderr")}
            for r in self.routers.values():
                r._sinks[ident] = cap
        try:
            status, tb = self.guarded(sid, str(req.get("source", "")), bool(req.get("final")))
        except KeyboardInterrupt:  # delivered just as the statement ended: still its own
            status, tb = "error", "KeyboardInterrupt\n"
        self.settle()
        with st.io_lock:
            for name, r in self.routers.items():
                self.agent["_uninstall"](name, r, ident)
        cap.finish()
        if tb and len(tb) > 256 * 1024:
            tb = tb[:128 * 1024] + "\n[… traceback cut …]\n" + tb[-128 * 1024:]
        self.chan.send("done", id=sid, status=status,
                       traceback=self.agent["clean"](tb) if tb else None,
                       truncated=cap.truncated)

    def guarded(self, sid, src, final):
        """(status, traceback) of one statement; an interrupt may hit it anywhere."""
        with self.lock:
            self.running = sid
        try:
            try:
                code = self.compile(src, final)
            except (SyntaxError, ValueError, OverflowError) as e:
                return "error", "".join(traceback.format_exception_only(type(e), e))
            if code is MORE:
                return "more", None
            self.execute(code)
            return "ok", None
        except SystemExit:  # exit(), sys.exit(): this thread's end asked for, not the app's
            return "exit", None
        except BaseException as e:
            return "error", "".join(traceback.format_exception(
                type(e), e, self.user_tb(e.__traceback__)))

    def settle(self):
        """No statement running and no interrupt pending for this thread, for sure: an
        interrupt set before we took the lock may land inside this loop, once per Ctrl-C."""
        while True:
            try:
                with self.lock:
                    self.running = None
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(threading.get_ident()), None)  # drop a pending one
                return
            except KeyboardInterrupt:
                continue

    def user_tb(self, tb):
        """The traceback from the first frame of the user's code (ours are noise)."""
        t = tb
        while t is not None:
            if t.tb_frame.f_code.co_filename.startswith("<shell#"):
                return t
            t = t.tb_next
        return tb.tb_next if tb is not None else None

    def compile(self, src, final):
        """(head, tail) code objects, the tail an expression whose value is shown; MORE if
        the source is an incomplete statement (codeop's rule), unless ``final``."""
        import codeop

        if not final:
            try:
                cc = codeop.CommandCompiler()
                cc.compiler.flags |= self.flags
                probe = cc(src, "<probe>", "single")
            except (SyntaxError, ValueError, OverflowError):
                probe = True  # the full compile below reports it properly
            if probe is None:
                return MORE
        fn = "<shell#%d>" % next(self.count)
        linecache.cache[fn] = (len(src), None, src.splitlines(True), fn)
        self.files.append(fn)
        tree = compile(src, fn, "exec", ast.PyCF_ONLY_AST | self.flags)
        tail = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            tail = compile(ast.Expression(tree.body.pop().value), fn, "eval", self.flags)
        head = compile(tree, fn, "exec", self.flags)
        return head, tail

    def execute(self, code):
        head, tail = code
        self.evaluate(head)
        if tail is not None:
            value = self.evaluate(tail)
            if value is not None:
                self.ns["_"] = value
                sys.stdout.write(repr(value) + "\n")

    def evaluate(self, code):
        res = eval(code, self.ns)  # eval, not exec: a module with await gives its coroutine
        if not code.co_flags & CO_COROUTINE:
            return res
        return self.await_on_loop(res)

    def await_on_loop(self, coro):
        import asyncio

        cap = self.routers["stdout"]._sinks.get(threading.get_ident())

        async def marked():
            self.var.set(cap)  # this task's context only
            return await coro

        if self.loop_ident is None:
            self.loop_ident = self.loop_thread()
        ours = {}
        if self.loop_ident is not None:
            with self.agent["state"]().io_lock:
                for name, r in self.routers.items():
                    ours[name] = r._sinks.setdefault(self.loop_ident, LoopSink(r, self.var))
        fut = asyncio.run_coroutine_threadsafe(marked(), self.loop)
        try:
            while True:  # short waits: an interrupt is delivered between them
                try:
                    return fut.result(0.05)
                except TimeoutError:
                    if self.loop.is_closed():
                        raise RuntimeError("the app's event loop closed")
        except KeyboardInterrupt:
            fut.cancel()
            raise
        finally:
            with self.agent["state"]().io_lock:
                for name, r in self.routers.items():
                    if ours.get(name) is not None and r._sinks.get(self.loop_ident) is \
                            ours[name] and isinstance(ours[name], LoopSink) and \
                            ours[name].var is self.var:
                        del r._sinks[self.loop_ident]

    def loop_thread(self):
        frames = sys._current_frames()
        for ident, f in frames.items():
            while f is not None:
                if f.f_locals.get("self") is self.loop if f.f_code.co_name in (
                        "run_forever", "_run_once") else False:
                    return ident
                f = f.f_back
        return getattr(self.loop, "_thread_id", None)


def run(chan, params, agent):
    Console(chan, params, agent).serve()
