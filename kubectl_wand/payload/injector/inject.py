# Part of the injector (payload.INJECTOR_PARTS): shipped and imported as one text with the
# others, so it shares their names; it is not a module of its own.

# ---------------------------------------------------------------- injection (stage 2)

def lock(pid, start, timeout):
    """Serialise injections per process: the interpreter has one pending slot, not a queue.

    An abstract unix socket in the (shared) network namespace is the lock: it vanishes with
    its holder, leaving nothing on disk. Its name is predictable, so a process of the target
    could take it first: a holder that is not one of our injectors is ignored (the lock only
    orders our own injectors) — never waited for. Returns the socket, or None then.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = ("\0kubectl-wand-lock-%d-%d" % (pid, start)).encode()
    deadline = time.monotonic() + timeout
    checked = False
    while True:
        try:
            s.bind(name)
            return s
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                s.close()
                raise
        if not checked:
            checked = True
            holder = _abstract_holder(name)
            if holder is not None and not holder[1]:
                emit("lock-squatted", pid=holder[0])
                s.close()
                return None
        if time.monotonic() > deadline:
            s.close()
            raise Fail("busy", "another kubectl-wand injection into process %d is in progress"
                       % pid, "retry when it has finished")
        time.sleep(0.02)


def _abstract_holder(name):
    """(pid, is one of our injectors) of the process holding an abstract unix socket, or None
    when it cannot be told (then we wait, as for one of ours)."""
    want = "@" + name[1:].decode()
    inode = None
    try:
        with open(PROC + "/net/unix", "rb") as f:
            for line in f.read(16 << 20).split(b"\n")[1:]:
                parts = line.split()
                if len(parts) >= 8 and parts[7].decode("utf-8", "replace") == want:
                    inode = parts[6].decode()
                    break
    except OSError:
        return None
    if inode is None:
        return None
    link = "socket:[%s]" % inode
    for d in os.listdir(PROC):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir(PROC + "/%s/fd" % d):
                if os.readlink(PROC + "/%s/fd/%s" % (d, fd)) == link:
                    argv = _read(PROC + "/%s/cmdline" % d, "rb")[:4096].split(b"\0")
                    return int(d), any(a.startswith(b"kubectl-wand-") for a in argv)
        except OSError:
            continue
    return None


STUB = '''def _kubectl_wand_stub(d, i):
    import json, os
    p = d + "/" + i
    with open(p + ".json", "rb") as f:
        params = json.loads(f.read())
    for ext in (".py", ".json"):
        try:
            os.unlink(p + ext)
        except OSError:
            pass
    path = params.pop("agent_code_path", None)
    if path:  # compiled by stage 2, i.e. by this very interpreter: nothing to compile here
        import marshal
        with open(path, "rb") as f:
            code = marshal.loads(f.read())
    else:
        code = compile(params.pop("agent_source"), "<kubectl-wand agent>", "exec")
    ns = {"__name__": "_kubectl_wand_agent"}
    exec(code, ns)
    ns["run"](params)
_kubectl_wand_stub(%s, %s)
del _kubectl_wand_stub
'''


class Injection:
    """One remote_exec into the target and the agent's connect-back."""

    def __init__(self, stage, pid, start):
        self.stage, self.pid, self.start = stage, pid, start
        self.id = secrets.token_hex(6)
        self.sock = None

    def fire(self, params):
        st = self.stage
        sock_path = st.path + "/" + self.id + ".sock"
        if len(sock_path) > 100:
            raise Fail("no-staging", "staging path too long for a unix socket: " + sock_path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: no chmod by path afterwards
        try:
            self.sock.bind(st.ref + "/" + self.id + ".sock")
        finally:
            os.umask(old)
        if os.getuid() == 0:
            os.chown(self.id + ".sock", st.uid, st.gid, dir_fd=st.fd, follow_symlinks=False)
        self.sock.listen(1)
        params = dict(params, sock=sock_path, id=self.id)
        st.write(self.id + ".json", json.dumps(params).encode())
        # Only our own path and id enter the source; both are checked against a strict charset.
        assert SAFE_PATH.match(st.path) and re.match(r"^[0-9a-f]+$", self.id)
        script = st.write(self.id + ".py",
                          (STUB % (json.dumps(st.path), json.dumps(self.id))).encode())
        if not same_root(self.pid):
            # one string for both sides: CPython checks it in our filesystem, the target opens
            # it in its own; through /proc/PID/root both reach the same file (shared PID
            # namespace: the target's /proc/PID is itself)
            script = PROC + "/%d/root%s" % (self.pid, script)
        t0 = time.monotonic()
        try:
            sys.remote_exec(self.pid, script)
        except Exception as e:
            raise Fail(*classify(e))
        return t0

    def await_ack(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], min(left, 0.05))
            if r:
                conn, _ = self.sock.accept()
                return conn
            if not alive(self.pid, self.start):
                raise Fail("exited", "process %d exited during the injection" % self.pid,
                           "check the target's logs (and its restarts); nothing of "
                           "kubectl-wand was left in it")

    def cleanup(self):
        for ext in (".py", ".json", ".sock"):
            self.stage.unlink(self.id + ext)
        if self.sock:
            self.sock.close()


FINAL_EVENTS = ("result", "listening", "waiting", "detached", "loglevel", "error",
                "trace-end")
EXITED_HINT = ("the code (or something it triggered) ended the process; check the target's "
               "logs and whether it was restarted")


STOP_GRACE = 3.0  # seconds the agent has, after a stop, for its final event


def control(conn, obj):
    """One control line to the agent (a CLI frame verbatim, or a stop)."""
    line = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    if b"\n" in line.strip():
        line = json.dumps(json.loads(line.decode())).encode()
    conn.setblocking(True)
    try:
        conn.sendall(line.strip() + b"\n")
    except OSError:
        pass  # the agent is gone; the relay sees it
    conn.setblocking(False)


def relay(conn, pid, start, timeout, on_event=None):
    """Copy the agent's JSON lines to stdout until it closes; returns the last event.

    Meanwhile each frame the CLI sends is forwarded to the agent as one JSON line; the CLI's
    end (stdin EOF) or the op's timeout sends the agent ``{"op": "stop", "why": ...}`` and
    leaves it STOP_GRACE seconds for its final event."""
    conn.setblocking(False)
    buf, last, name = b"", None, None
    deadline = None if timeout is None else time.monotonic() + timeout
    stdin, ending = True, None
    while True:
        now = time.monotonic()
        if ending is not None and now > ending:
            return last
        if deadline is not None and now > deadline:
            emit("timeout", seconds=timeout)
            control(conn, {"op": "stop", "why": "timeout"})
            deadline, ending = None, min(ending or now + STOP_GRACE, now + STOP_GRACE)
        r, _, _ = select.select([conn, 0] if stdin else [conn], [], [], 0.05)
        if 0 in r:
            try:
                control(conn, read_frame())
            except EOFError:
                stdin = False
                control(conn, {"op": "stop", "why": "eof"})
                ending = min(ending or now + STOP_GRACE, now + STOP_GRACE)
        if conn not in r:
            if not r and not alive(pid, start):
                raise Fail("exited", "process %d exited while running the injected code" % pid,
                           EXITED_HINT)
            continue
        try:
            chunk = conn.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            if name not in FINAL_EVENTS:
                # the agent hung up before its answer: what the death of the process looks
                # like (os._exit, a crash); say so rather than "no result"
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    if not alive(pid, start):
                        raise Fail("exited", "process %d exited while running the injected "
                                   "code" % pid, EXITED_HINT)
                    time.sleep(0.05)
            return last
        buf += chunk
        # what is left of buf holds no newline: the new chunk alone says if one came
        if len(buf) > MAX_LINE and b"\n" not in chunk:  # the agent never sends such a line
            raise Fail("too-large", "the target sent a line over %d MiB instead of an event; "
                       "stopped reading it" % (MAX_LINE >> 20), "check the target process")
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            event = json.loads(line.decode())
            last, name = event, event.get("event")
            if on_event:
                on_event(event)
            emit(event.pop("event"), **event)


def wait_readable(fd, pid, start):
    """Wait for the CLI's next request while watching that the target still lives."""
    while True:
        r, _, _ = select.select([fd], [], [], 0.25)
        if r:
            return True
        if not alive(pid, start):
            return False


def inject_once(stage, pid, start, params, req):
    held = lock(pid, start, req.get("lock_timeout", 30))
    inj = Injection(stage, pid, start)
    try:
        t0 = inj.fire(params)
        emit("injected", id=inj.id)
        ack_timeout = req.get("ack_timeout", 5.0)
        nudge = req.get("signal")
        conn = inj.await_ack(min(ack_timeout, 0.3) if nudge else ack_timeout)
        if conn is None and nudge:
            # A main thread blocked in a system call runs Python again only after a signal
            # with a Python-level handler interrupts it; the user chose (or allowed) one.
            import signal

            os.kill(pid, getattr(signal, nudge))
            emit("nudged", signal=nudge)
            conn = inj.await_ack(max(0.1, ack_timeout - 0.3))
        if conn is None:
            where = main_thread_stack(pid)
            where["caught"] = caught_signals(pid)
            raise Fail("blocked", "process %d did not pick up the injection within %.1fs: its "
                       "main thread is not running Python code" % (pid, req.get("ack_timeout", 5.0)),
                       "remote execution runs in the main thread at its next bytecode; a main "
                       "thread blocked in a system call never gets there. The request stays "
                       "pending in the interpreter (its files are removed, so it will only log "
                       "one harmless line when it wakes).", where=where)
        emit("ack", ms=round((time.monotonic() - t0) * 1000, 2))
        if held:
            held.close()
        held = None
        last = relay(conn, pid, start, req.get("timeout"))
        conn.close()
        return last
    finally:
        inj.cleanup()
        if held:
            held.close()


def classify(e):
    """Map a remote_exec failure to a stable error code and a remedy."""
    msg = str(e)
    if isinstance(e, PermissionError) or "Operation not permitted" in msg:
        return ("permission", "no ptrace permission on the target: " + msg,
                "the helper needs CAP_SYS_PTRACE (kubectl debug --profile=general, "
                "docker --cap-add SYS_PTRACE) or run as root on the host")
    if "Remote debugging is not enabled" in msg:
        return ("remote-debug-disabled", msg,
                "the target was started with PYTHON_DISABLE_REMOTE_DEBUG or "
                "-X disable-remote-debug; restart it without them to allow attaching")
    if "Can't send commands from a Python" in msg or "version" in msg.lower():
        return ("version", msg, "the target must run CPython 3.14+ of the same build flavour")
    return ("inject-failed", "sys.remote_exec failed: %s: %s" % (type(e).__name__, msg), None)
