# Part of the injector (payload.INJECTOR_PARTS): shipped and imported as one text with the
# others, so it shares their names; it is not a module of its own.

# ---------------------------------------------------------------- memory: stacks and samples (stage 2)

def alive(pid, start):
    """The process is there, the same one (start time), and not a zombie (runs no code)."""
    try:
        f = _read(PROC + "/%d/stat" % pid).rsplit(")", 1)[1].split()
        return int(f[19]) == start and f[0] not in ("Z", "X")
    except (OSError, IndexError, ValueError):
        return False


def caught_signals(pid):
    """Signals the process handles (Python installs a C handler for each Python handler)."""
    import signal

    try:
        mask = int(_status(pid).get("SigCgt", "0"), 16)
    except (OSError, ValueError):
        return []
    out = []
    for sig in signal.Signals:
        if 0 < sig.value < 64 and mask & (1 << (sig.value - 1)) and sig.name not in (
                "SIGINT", "SIGCHLD", "SIGPIPE"):
            out.append(sig.name)
    return sorted(set(out))


def _task_file(pid, tid, name):
    try:
        return _read(PROC + "/%d/task/%d/%s" % (pid, tid, name)).strip()
    except OSError:
        return None


def _frames(frame_info):
    return [[f.filename, f.lineno, f.funcname] for f in frame_info]


def _unwind(unwinder_cls, pid, method, tries=5):
    """One RemoteUnwinder call, retried on the rare transient read failure (the target runs on
    while we read its memory, so a pointer may be stale for an instant)."""
    last = None
    for i in range(tries):
        try:
            return getattr(unwinder_cls(pid, all_threads=True), method)()
        except PermissionError:
            raise
        except (RuntimeError, OSError) as e:
            last = e
            if "AsyncioDebug" in str(e):
                break  # asyncio not loaded in the target: not transient
            time.sleep(0.001 * (i + 1))
    raise last


def read_stacks(pid, tasks=True):
    """Every thread's Python stack and the asyncio tasks, read from the target's memory by
    ``_remote_debugging`` (CPython 3.14): no code runs in the target, no file is staged, and
    it works with remote debugging disabled or a wedged main thread. Frames innermost first."""
    import _remote_debugging

    unwinder = _remote_debugging.RemoteUnwinder
    threads = []
    for t in _unwind(unwinder, pid, "get_stack_trace"):
        tid = t.thread_id
        wchan = _task_file(pid, tid, "wchan")
        stat_ = _task_file(pid, tid, "stat")
        threads.append({"tid": tid, "main": tid == pid, "name": _task_file(pid, tid, "comm"),
                        "state": stat_.rsplit(")", 1)[1].split()[0] if stat_ else None,
                        "wchan": None if wchan in (None, "", "0") else wchan,
                        "frames": _frames(t.frame_info)})
    if threads and not any(t["main"] for t in threads):
        threads[-1]["main"] = True  # the interpreter lists its threads newest first
    out = {"pid": pid, "threads": threads, "tasks": None, "tasks_note": None}
    if tasks:
        try:
            found = []
            for per_thread in _unwind(unwinder, pid, "get_all_awaited_by"):
                for t in per_thread.awaited_by:
                    stack = []
                    for coro in t.coroutine_stack:
                        stack += _frames(coro.call_stack)
                    found.append({"id": t.task_id, "name": str(t.task_name),
                                  "thread": per_thread.thread_id, "frames": stack,
                                  "awaited_by": [{"task": c.task_name,
                                                  "frames": _frames(c.call_stack)}
                                                 for c in t.awaited_by]})
            out["tasks"] = found
        except PermissionError:
            raise
        except (RuntimeError, OSError) as e:
            out["tasks_note"] = ("asyncio is not in use in this process"
                                 if "AsyncioDebug" in str(e) else "unreadable: %s" % e)
    return out


def main_thread_stack(pid):
    """Where the main thread is, read from memory without running code in the target."""
    frames, wchan = [], None
    try:
        wchan = _read("/proc/%d/wchan" % pid).strip() or None
    except OSError:
        pass
    try:
        for t in read_stacks(pid, tasks=False)["threads"]:
            if t["main"]:
                frames = t["frames"]
                wchan = t["wchan"] or wchan
    except Exception:
        pass
    return {"frames": frames, "wchan": wchan}


def _stop_asked(timeout):
    """Wait up to ``timeout`` for the CLI: a frame (a stop request) or EOF means stop."""
    if not select.select([0], [], [], max(0.0, timeout))[0]:
        return False
    try:
        read_frame()
    except EOFError:
        pass
    return True


def sample_profile(pid, start, req):
    """Stack samples read from memory (no code in the target), ``rate`` per second for
    ``duration`` s or until the CLI says stop; aggregated here with bounds (distinct frames,
    stacks, depth), then one ``profile`` event: frames [func, file, line] and stacks
    [[frame indices, root first], count]. Pacing by monotonic deadlines; late ticks are
    skipped (counted as missed), never bunched."""
    import _remote_debugging

    rate = min(max(float(req.get("rate") or 100), 1.0), 1000.0)
    try:  # built before the clock starts: it reads the target's binary once
        unwinder = _remote_debugging.RemoteUnwinder(pid, all_threads=req.get("threads") != "main")
    except PermissionError as e:
        raise Fail(*classify(e))
    except (RuntimeError, OSError):
        unwinder = None
    end = time.monotonic() + min(max(float(req.get("duration") or 10), 0.05), 3600.0)
    lines, on_cpu, tasks = req.get("lines"), req.get("on_cpu"), req.get("async")
    frames, fidx, stacks = [], {}, {}
    n = errors = missed = 0
    stopped, period = False, 1.0 / rate
    nxt = last = time.monotonic()

    def fi(func, file, line):
        k = (func, file, line if lines else 0)
        i = fidx.get(k)
        if i is None:
            if len(frames) >= 50000:
                k = ("[other frames]", "", 0)
                i = fidx.get(k)
            if i is None:
                i = fidx[k] = len(frames)
                frames.append(k)
        return i

    def add(stack):
        if len(stack) > 256:
            stack = stack[:255] + (fi("[%d more frames]" % (len(stack) - 255), "", 0),)
        if stack not in stacks and len(stacks) >= 20000:
            stack = (fi("[other stacks]", "", 0),)
        stacks[stack] = stacks.get(stack, 0) + 1

    while True:
        now = time.monotonic()
        if now >= end:
            break
        if _stop_asked(min(nxt, end) - now):
            stopped = True
            break
        now = time.monotonic()
        if now < nxt:
            continue
        if now - nxt > period:
            missed += int((now - nxt) / period)
            nxt = now
        nxt += period
        try:
            if unwinder is None:
                unwinder = _remote_debugging.RemoteUnwinder(
                    pid, all_threads=req.get("threads") != "main")
            threads = unwinder.get_stack_trace()
            awaited = unwinder.get_all_awaited_by() if tasks else ()
        except PermissionError as e:
            raise Fail(*classify(e))
        except (RuntimeError, OSError, UnicodeDecodeError, ValueError) as e:
            if tasks and "AsyncioDebug" in str(e):
                raise Fail("no-asyncio", "--async: asyncio is not in use in process %d" % pid,
                           "profile without --async")
            unwinder, errors = None, errors + 1  # a stale pointer while the target runs on
            if not alive(pid, start):
                raise Fail("exited", "process %d exited during the profile" % pid)
            if errors > 100 and errors > 10 * n:
                raise Fail("profile-failed", "the stack reader keeps failing: %s" % e)
            continue
        n += 1
        for t in threads:
            if on_cpu and ((_task_file(pid, t.thread_id, "stat") or ")").rsplit(")", 1)[1]
                           .split()[:1] != ["R"]):
                continue
            if t.frame_info:
                add(tuple(fi(f.funcname, f.filename, f.lineno) for f in reversed(t.frame_info)))
        for per_thread in awaited:
            for t in per_thread.awaited_by:
                fr = [f for c in t.coroutine_stack for f in c.call_stack]
                add((fi("[asyncio tasks]", "", 0),) + tuple(
                    fi(f.funcname, f.filename, f.lineno) for f in reversed(fr)))
        if time.monotonic() - last >= 1.0:
            last = time.monotonic()
            emit("profile-progress", samples=n)
    emit("profile", samples=n, rate=rate, errors=errors, missed=missed, stopped=stopped,
         frames=[list(f) for f in frames], stacks=[[list(k), c] for k, c in stacks.items()])
