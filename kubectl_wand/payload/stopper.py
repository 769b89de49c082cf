"""Stopping injected code in the target: shipped with agent.py and run in its namespace.

An exec thread gets a control reader: a ``stop`` line from the injector (--timeout, Ctrl-C,
the CLI's end) or the injector's connection closing raises ExecStopped in the exec thread
(PyThreadState_SetAsyncExc), then waits STOP_WAIT seconds. Code running Python stops at its
next bytecode; code blocked inside a C call (time.sleep, socket.recv…) stops only when that
call returns: then the CLI is told exactly which call, and the end is logged to stderr.
"""

import sys
import threading

STOP_WAIT = 1.0


def _async_exc(ident, exc):
    """Schedule ``exc`` (a class) in thread ``ident``, or clear a pending one (None)."""
    import ctypes

    # a prototype of our own: setting argtypes on ctypes.pythonapi's shared function object
    # would change it for every other caller in the app (the shell's interrupt broke so)
    f = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
        ("PyThreadState_SetAsyncExc", ctypes.pythonapi))
    return f(ident, id(exc) if exc is not None else None)


class Running:
    """The exec thread's user code, as seen from its control reader."""

    def __init__(self, ident, params):
        self.ident, self.params = ident, params
        self.native = threading.get_native_id()
        self.lock = threading.Lock()
        self.running = False
        self.done = threading.Event()
        self.why = None
        self.reported = None  # what the CLI was told when the code did not stop in time

    def watch(self, chan):
        self.chan = chan
        with self.lock:
            self.running = True
        t = threading.Thread(target=self._control, name="kubectl-wand-exec-ctl", daemon=True)
        t.pydev_do_not_trace = t.is_pydev_daemon_thread = True
        t.start()

    def finish(self):
        """The user's code returned or raised: from now on no stop may land in our code."""
        while True:
            try:
                with self.lock:
                    self.running = False
                    _async_exc(self.ident, None)  # a stop that came too late: dropped
                break
            except ExecStopped:
                continue  # it landed right here: the code is over anyway
        self.done.set()

    def _control(self):
        why = "closed"  # the injector went away without a word
        for msg in self.chan.control():
            if msg.get("op") == "stop":
                why = msg.get("why") or "stop"
                break
        if not self.done.is_set():
            self.stop(why)

    def stop(self, why):
        with self.lock:
            if not self.running:
                return
            self.why = why
            _async_exc(self.ident, ExecStopped)
        if self.done.wait(STOP_WAIT):
            return  # do_exec reports "stopped"
        where = describe(self.ident, self.native)
        self.reported = "was blocked in %s" % (where.get("call") or where.get("where") or "?")
        self.chan.send("stopping", stopped=False, why=why, **where)
        self.chan.close()


def describe(ident, native):
    """Where a thread is: its innermost Python line, the C call it is blocked in (from the
    bytecode at that line), and the kernel's wait channel."""
    out = {"thread": next((t.name for t in threading.enumerate() if t.ident == ident), "?")}
    frame = sys._current_frames().get(ident)
    if frame is not None:
        out["where"] = "%s:%d in %s" % (frame.f_code.co_filename, frame.f_lineno or 0,
                                        frame.f_code.co_name)
        try:
            out["call"] = call_name(frame)
        except Exception:
            out["call"] = None
    try:
        with open("/proc/self/task/%d/wchan" % native) as f:
            w = f.read().strip()
        if w and w != "0":
            out["kernel"] = w
    except OSError:
        pass
    return out


LOADS = ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FAST", "LOAD_FAST_BORROW", "LOAD_FAST_CHECK",
         "LOAD_DEREF")


def call_name(frame):
    """The function a frame is calling right now, e.g. 'time.sleep' or 'socket.recv':
    the instructions that pushed the callable, resolved without running any code
    (inspect.getattr_static); their dotted source names when that fails."""
    import dis

    code = frame.f_code
    ins = list(dis.get_instructions(code))
    idx = next((i for i, x in enumerate(ins) if x.offset == frame.f_lasti), None)
    if idx is None or ins[idx].opname not in ("CALL", "CALL_KW"):
        return None
    need = (ins[idx].arg or 0) + (3 if ins[idx].opname == "CALL_KW" else 2)
    depth, j = 0, idx - 1
    while j >= 0 and depth < need:
        x = ins[j]
        depth += dis.stack_effect(x.opcode, x.arg if x.opcode >= dis.HAVE_ARGUMENT else None)
        j -= 1
    if depth != need:
        return None
    parts, depth = [], 0
    for x in ins[j + 1:idx]:
        if depth >= 2:
            break
        depth += dis.stack_effect(x.opcode, x.arg if x.opcode >= dis.HAVE_ARGUMENT else None)
        if x.opname in LOADS and not parts:
            parts.append(x.argval)
        elif x.opname == "LOAD_ATTR" and parts:
            parts.append(x.argval)
    if not parts or not all(isinstance(p, str) for p in parts):
        return None
    dotted = ".".join(parts)
    try:
        return _resolved(frame, parts) or dotted
    except Exception:
        return dotted


def _resolved(frame, parts):
    import builtins
    from inspect import getattr_static

    missing = object()
    obj = frame.f_locals.get(parts[0], missing)
    if obj is missing:
        obj = frame.f_globals.get(parts[0], missing)
    if obj is missing:
        obj = getattr(builtins, parts[0], missing)
    if obj is missing:
        return None
    for p in parts[1:]:
        obj = getattr_static(obj, p)
    import types

    if not isinstance(obj, (types.BuiltinFunctionType, types.MethodDescriptorType,
                            types.FunctionType, types.WrapperDescriptorType)):
        return None  # only these give their names without running code
    qual = obj.__qualname__
    if getattr(obj, "__objclass__", None) is not None:  # a C method: socket.recv
        return qual
    mod = getattr(obj, "__module__", None)
    return "%s.%s" % (mod, qual) if isinstance(mod, str) else qual
