# Part of the injector (payload.INJECTOR_PARTS): shipped and imported as one text with the
# others, so it shares their names; it is not a module of its own.

# ---------------------------------------------------------------- many processes over one connection

def fan_out(units):
    """Many processes over one connection: a forked child per unit (PID) runs ``units[pid]()``
    behind pipes; frames from the CLI name the unit they are for, and every line a child
    writes goes back tagged with it, then an ``exit`` event."""
    import threading

    children = {}
    for pid, run in units.items():
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        child = os.fork()
        if child == 0:
            status = 1
            try:
                os.dup2(in_r, 0)
                os.dup2(out_w, 1)
                for fd in [in_r, in_w, out_r, out_w] + [fd for c in children.values()
                                                        for fd in c[1:]]:
                    os.close(fd)
                run()
                status = 0
            except Fail as e:
                emit("error", code=e.code, message=e.message, hint=e.hint, **e.extra)
            except EOFError:
                status = 0
            except BaseException as e:
                emit("error", code="internal", message="%s: %s" % (type(e).__name__, e),
                     hint=None)
            os._exit(status)
        os.close(in_r)
        os.close(out_w)
        children[pid] = (child, in_w, out_r)
    out_lock = threading.Lock()

    def pump(pid, child, fd):
        with os.fdopen(fd, "rb") as f:
            for line in f:
                if line.startswith(b"{"):
                    line = b'{"unit": %d, ' % pid + line[1:]
                with out_lock:
                    write_all(1, line)
        status = os.waitpid(child, 0)[1]
        with out_lock:
            emit("exit", unit=pid, status=os.WEXITSTATUS(status) if os.WIFEXITED(status)
                 else -os.WTERMSIG(status))

    threads = [threading.Thread(target=pump, args=(pid, c[0], c[2]))
               for pid, c in children.items()]
    for t in threads:
        t.start()
    while True:
        try:
            unit, data = read_frame(unit=True)
        except EOFError:
            break
        if unit in children:
            try:
                write_all(children[unit][1], b"%d\n" % len(data) + data)
            except OSError:
                pass  # that child is gone; its exit event says so
    for c in children.values():
        os.close(c[1])
    for t in threads:
        t.join()
