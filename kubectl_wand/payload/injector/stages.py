# Part of the injector (payload.INJECTOR_PARTS): shipped and imported as one text with the
# others, so it shares their names; it is not a module of its own.

# ---------------------------------------------------------------- the two stages

def stage2(state):
    pid, start, info = state["pid"], state["start"], state["info"]
    TRUST["mode"] = state.get("trust", TRUST["mode"])
    try:
        ROOT["fd"] = open_root(pid)
    except OSError as e:
        raise Fail("permission", "cannot see the root filesystem of process %d: %s"
                   % (pid, e.strerror), "the helper needs CAP_SYS_PTRACE over the target")
    cache = Cache(state.get("cache"))
    emit("stage2", python=sys.version.split()[0], exe=sys.executable, cached=cache.load())
    bases = staging_bases(info)
    stage = None
    agent_source = None
    try:
        while True:
            emit("ready")
            cache.store_pending()
            if not wait_readable(0, pid, start):
                emit("target-exited", pid=pid)
                return
            try:
                req = read_json()
            except EOFError:
                req = {"op": "eof"}
            op = req.get("op")
            if op == "leave":
                state["keep_stage"] = True
                if stage is not None:
                    stage.keep(pid, start)
                return
            if op == "close":
                return
            if op == "eof":
                if not state.get("on_eof"):
                    return
                req = state["on_eof"]
                op = req["op"]
            if op == "stacks":
                # read from memory only: no remote_exec, no staging, no lock
                emit("stacks", **read_stacks(pid, tasks=req.get("tasks", True)))
                continue
            if op == "stop":  # a trace or profile that had just ended by itself
                continue
            if op == "profile":  # memory reads only, like stacks
                sample_profile(pid, start, req)
                continue
            blobs = {}
            for name, size in req.get("blobs", []):
                blobs[name] = read_frame()
            if req.get("agent_source"):
                agent_source = req["agent_source"]
            if stage is None:
                stage = Stage(make_stage_dir(fast_bases(bases, pid) if op == "attach" else bases,
                                             info["uid"], info["gid"]),
                              info["uid"], info["gid"])
            params = dict(req.get("params", {}), op=op, agent_source=agent_source)
            written = []
            if op == "attach" and req.get("debugpy") == "cached" and cache.members:
                params["debugpy_dir"] = cache.extract(stage)
            if agent_source:
                blobs["agent_code"] = agent_code(agent_source)
                params.pop("agent_source", None)
            for name, data in blobs.items():
                if name.endswith(".tgz"):
                    params[name[:-4] + "_dir"] = extract_tgz(
                        stage, name[:-4] + "-" + secrets.token_hex(4), data)
                    if name == "debugpy.tgz":
                        cache.remember(data)
                else:
                    written.append(name + "-" + secrets.token_hex(4))
                    params[name + "_path"] = stage.write(written[-1], data)
            if op == "attach" and not req.get("keep"):
                state["on_eof"] = {"op": "detach", "params": {}}
            emit("staged", dir=stage.path)
            try:
                last = inject_once(stage, pid, start, params, req)
            finally:
                for name in written:
                    stage.unlink(name)
            if op == "detach":
                state.pop("on_eof", None)
                if last and last.get("was_attached"):
                    if last.get("stopped") is False:
                        # another session still uses the debugger; if its tree is ours, keep it
                        if (last.get("lib") or "").startswith(stage.path + "/"):
                            state["keep_stage"] = True
                            stage.keep(pid, start)
                    else:
                        release_kept(last.get("lib"), stage.path)
                if req.get("final", True):
                    emit("done")
                    return
    finally:
        if stage is not None and not state.get("keep_stage"):
            stage.remove()


HELPER_LOCK = "/tmp/kubectl-wand-helper.lock"


def hold_helper():
    """Tell a reusable helper's idle loop (payload/idle.py) that a session is running."""
    try:
        import fcntl

        # never through a symlink: on this host's /tmp (pid/N) anyone could plant one; and
        # never blocking: anyone who can open it could hold an exclusive lock forever
        fd = os.open(HELPER_LOCK, os.O_RDWR | os.O_NOFOLLOW)
        if _try_lock(fd, 1.0, fcntl.LOCK_SH):
            os.utime(fd)
            os.set_inheritable(fd, True)  # held through an exec into stage 2
        else:
            os.close(fd)
    except OSError:
        pass


def stage1():
    hold_helper()
    req = read_json()
    # What our own filesystem is: "image" (a helper container: the image's pristine files),
    # "host" (this host: only what root alone can change may run), "target" (a lister run
    # as the app's own user in its container: lists only, its output is data)
    TRUST["mode"] = req.get("trust") if req.get("trust") in ("image", "host") else "target"
    procs = scan()
    shown, cut = bounded(procs)
    emit("procs", procs=shown, procs_cut=cut, helper_python=sys.version.split()[0],
         uid=os.getuid(), helper_exe=sys.executable, protocol=PROTOCOL)
    if req.get("op") == "ps":
        return
    if req.get("op") == "check":
        emit("checks", **environment_checks(procs))
        return
    try:
        choice = read_json()
    except EOFError:
        return
    if TRUST["mode"] == "target":
        raise Fail("lister-only", "this injector runs as the target's own user and only lists",
                   None)
    if isinstance(choice.get("pids"), list):
        return enter_many(choice, procs)
    pid = choice.get("pid")
    if pid is None:
        return
    enter(pid, choice, procs)


def target_state(pid, procs):
    """Check the chosen process: its stage 2 state, and the interpreter of our own that will
    inject (None: this one)."""
    info = next((p for p in procs if p["pid"] == pid), None)
    if info is None:
        try:
            uptime = float(_read(PROC + "/uptime").split()[0])
            info = proc_info(pid, uptime)
        except OSError:
            info = None
        if info is None:
            if not os.path.exists(PROC + "/%d" % pid):
                raise Fail("no-such-process", "no process %d in the target" % pid,
                           "`kubectl wand ps` lists the processes")
    if info is None:
        raise Fail("not-python", "process %d is not a Python process" % pid,
                   "`kubectl wand ps` lists the Python processes")
    check_target(info, procs)
    python = helper_for(info)
    return {"pid": pid, "start": info["start_ticks"], "info": info,
            "trust": TRUST["mode"]}, python


def enter(pid, choice, procs):
    """Check the chosen process, then run stage 2: in this very interpreter when it can
    inject, else in another interpreter of our own filesystem (never the target's)."""
    state, python = target_state(pid, procs)
    cache = open_cache(choice)  # the helper's own directory
    if cache:
        state["cache"] = cache
    if python is None:
        need_remote_exec()
        return stage2(state)
    exec_stage2(python, state)


def exec_stage2(python, state):
    """Become ``python`` (a file of our own filesystem, checked by helper_for) on the same
    stdin/stdout, running stage 2 with ``state``."""
    if CODE_CACHE:
        os.set_inheritable(CODE_CACHE["fd"], True)
        state["code"] = CODE_CACHE
    if state.get("cache"):
        os.set_inheritable(state["cache"]["fd"], True)
    # the source goes in a memory file, not argv: one argument may hold at most 128 KiB
    src = os.memfd_create("kubectl-wand-injector", 0)
    write_all(src, SRC.encode())
    os.lseek(src, 0, os.SEEK_SET)
    os.set_inheritable(src, True)
    state["src_fd"] = src
    os.execv(python, [python, "-I", "-S", "-c", "import os,sys\n" + LOADER + STAGE2,
                      "kubectl-wand-stage2", json.dumps(state)])


def enter_many(choice, procs):
    """Stage 1 of a fan-out. Processes that one interpreter of ours can inject into (a
    server's workers) share one stage 2, which forks a child per process: a fork costs ~1 ms
    where starting an interpreter costs ~20 ms of CPU. Others get a child of ours each."""
    pids = [p for p in choice["pids"] if isinstance(p, int)]
    states, pythons = [], set()
    for pid in pids:
        try:
            state, python = target_state(pid, procs)
            pythons.add(python)
        except Fail as e:
            state = {"pid": pid, "error": [e.code, e.message, e.hint, e.extra]}
        except OSError as e:
            state = {"pid": pid, "error": ["no-such-process", "process %d: %s" % (pid, e),
                                           None, {}]}
        states.append(state)
    if any("error" not in st for st in states) and len(pythons) == 1:
        state = {"fan": states, "trust": TRUST["mode"]}
        cache = open_cache(choice)
        if cache:
            state["cache"] = cache
        python = pythons.pop()
        if python is None:
            return stage2_many(state)
        exec_stage2(python, state)
    fan_out(dict((pid, (lambda pid=pid: enter(pid, choice, procs))) for pid in pids))


def need_remote_exec():
    if not hasattr(sys, "remote_exec"):
        raise Fail("version", "the target runs Python %s; sys.remote_exec needs 3.14+"
                   % sys.version.split()[0], "attach works only to CPython 3.14+")


def stage2_many(state):
    """Stage 2 of a shared fan-out: a forked child per process runs its stage 2."""
    def child(st):
        need_remote_exec()
        if "error" in st:
            code, message, hint, extra = st["error"]
            raise Fail(code, message, hint, **extra)
        if state.get("cache"):
            st["cache"] = state["cache"]
        stage2(st)

    fan_out(dict((st["pid"], (lambda st=st: child(st))) for st in state["fan"]))


# Stage 2 starts with this after LOADER: argv = [state JSON]; the state's "src_fd" is a memory
# file holding the source, its "code" entry the cache directory fd stage 1 keeps open.
STAGE2 = (
    "import json\n"
    "_s=json.loads(sys.argv[2])\n"
    "_c=_s.get('code') or {}\n"
    "_f=os.fdopen(_s['src_fd'],'rb')\n"
    "_b=_f.read()\n"
    "_f.close()\n"
    "exec(_load(_b,_c.get('fd'),_c.get('key')),"
    "{'__name__':'__wand__','SRC':_b.decode(),'LOADER':'','CODE_CACHE':None})\n"
)


def main():
    try:
        if len(sys.argv) >= 3 and sys.argv[1] == "kubectl-wand-stage2":
            state = json.loads(sys.argv[2])
            if "fan" in state:
                stage2_many(state)
            else:
                need_remote_exec()
                stage2(state)
        else:
            stage1()
    except Fail as e:
        emit("error", code=e.code, message=e.message, hint=e.hint, **e.extra)
        sys.exit(1)
    except EOFError:
        sys.exit(0)
    except Exception as e:  # anything unforeseen still becomes a message, never a hang
        emit("error", code="internal", message="%s: %s" % (type(e).__name__, e), hint=None)
        sys.exit(1)


if __name__ in ("__main__", "__wand__"):
    if "SRC" not in globals():  # run as a file (tests): nothing cached
        SRC, LOADER, CODE_CACHE = None, "", None
    main()
