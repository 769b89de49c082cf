# Part of the injector (payload.INJECTOR_PARTS): shipped and imported as one text with the
# others, so it shares their names; it is not a module of its own.

# ---------------------------------------------------------------- process table (stage 1)

TRUST = {"mode": "image"}  # the CLI says what our own filesystem is (stage1: "trust")


def _status(pid):
    out = {}
    for line in _read(PROC + "/%d/status" % pid).splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def same_root(pid):
    try:
        a, b = os.stat(PROC + "/%d/root/" % pid), os.stat("/")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def open_root(pid):
    """The target's root directory as an fd: every path of the target is walked below it."""
    return os.open(PROC + "/%d/root" % pid, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _mapped_pythons(pid):
    """Files mapped by the process whose name says "python", in map order: the files CPython's
    remote_exec searches for its runtime (Python/remote_debug.h). Bounded."""
    out = []
    try:
        with open(PROC + "/%d/maps" % pid, "rb") as f:
            data = f.read(8 << 20)
    except OSError:
        return out
    for line in data.split(b"\n"):
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith(b"/"):
            path = parts[5].decode("utf-8", "replace")
            if "python" in path.rsplit("/", 1)[-1] and path not in out:
                out.append(path)
                if len(out) >= 8:
                    break
    return out


_facts_cache = {}


def target_facts(pid, path, exe):
    """elf_facts of a file as the target maps it: the exe through /proc/PID/exe (the very file,
    even deleted), others below the target's root without following links. Read only."""
    if path == exe:
        opener = lambda: os.open(PROC + "/%d/exe" % pid, os.O_RDONLY | os.O_CLOEXEC)
    else:
        def opener():
            rfd = open_root(pid)
            try:
                return open_in(rfd, path, os.O_RDONLY | os.O_NONBLOCK)
            finally:
                os.close(rfd)
    try:
        fd = opener()
        st = os.fstat(fd)
        os.close(fd)
    except OSError:
        return None
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime)
    if key not in _facts_cache:
        _facts_cache[key] = read_facts(None, opener)
    return _facts_cache[key]


def recognise(pid, exe, readable):
    """Whether the process runs CPython, read from its binaries: (version, free-threaded,
    runtime path, facts, why-not-injectable). (None, …) for anything else."""
    if not readable or not exe:
        return None, False, None, None, None
    deleted = exe.endswith(" (deleted)")
    paths = _mapped_pythons(pid)
    if exe not in paths:
        paths.append(exe)  # a runtime in an exe not named python: found, but not reachable
    for path in paths:
        facts = target_facts(pid, path, exe)
        if facts and facts["runtime"]:
            hexv, ft = facts["runtime"]
            why = None
            if path.endswith(" (deleted)") or deleted and path == exe:
                why = ("its interpreter %s was deleted or replaced after it started; restart "
                       "the process" % path)
            elif "python" not in path.rsplit("/", 1)[-1]:
                why = ("its runtime is in %s, whose name lacks \"python\": CPython's "
                       "remote_exec finds the runtime by that name" % path)
            return version_text(hexv), ft, path, facts, why
    # Older Pythons (< 3.13) carry no debug offsets: recognised by name, for the message only
    for path in [exe] + paths:
        base = path.rsplit("/", 1)[-1].split(" ")[0]
        m = PY_NAME.match(base) or LIBPY_NAME.match(base)
        if m and m.group(2):
            return "%s.%s" % (m.group(1), m.group(2)), m.group(3) == "t", None, None, None
    if PY_NAME.match(exe.rsplit("/", 1)[-1]):  # a venv's "python": its pyvenv.cfg says which
        ver = _venv_version(pid, exe)
        if ver:
            return ver, False, None, None, None
    return None, False, None, None, None


def _venv_version(pid, exe):
    try:
        rfd = open_root(pid)
        try:
            fd = open_in(rfd, os.path.dirname(os.path.dirname(exe)) + "/pyvenv.cfg")
        finally:
            os.close(rfd)
        with os.fdopen(fd, "rb") as f:
            text = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    m = re.search(r"^version(?:_info)?\s*=\s*(\d+\.\d+(?:\.\d+)?)", text, re.M)
    return m.group(1) if m else None


def proc_info(pid, uptime):
    base = PROC + "/%d" % pid
    st = _status(pid)
    with open(base + "/cmdline", "rb") as f:
        raw = f.read(MAX_ARGV + 1)  # a target can have megabytes of argv: the head is enough
    cut = len(raw) > MAX_ARGV
    parts = raw[:MAX_ARGV].split(b"\0")
    argv = [a.decode("utf-8", "replace") for a in (parts if cut else parts[:-1])] if raw else []
    info = {
        "pid": pid,
        "ppid": int(st.get("PPid", "0")),
        "uid": int(st.get("Uid", "0").split()[0]),
        "gid": int(st.get("Gid", "0").split()[0]),
        "state": st.get("State", "?")[:1],
        "name": st.get("Name", ""),
        "argv": argv,
        "rss_kb": int(st.get("VmRSS", "0 kB").split()[0]),
        "threads": int(st.get("Threads", "1")),
        "sigcgt": st.get("SigCgt", "0"),
        "exe": None, "cwd": None, "python": None, "free_threaded": False,
        "remote_debug": None, "readable": True,
    }
    if cut:
        info["argv_cut"] = MAX_ARGV
    if not argv and info["state"] != "Z":
        return None  # a kernel thread, or a process on its way out (its memory is gone)
    fields = _read(base + "/stat").rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    age = uptime - int(fields[19]) / CLK_TCK
    info["start_ticks"] = int(fields[19])
    info["cpu_percent"] = round(100.0 * ticks / CLK_TCK / age, 1) if age > 0 else 0.0
    try:
        info["exe"] = os.readlink(base + "/exe")
        info["cwd"] = os.readlink(base + "/cwd")
        with open(base + "/environ", "rb") as f:
            env = f.read(ENV_MAX).split(b"\0")
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM):
            return info if info["state"] == "Z" else None  # a kernel thread, or gone
        # ptrace-mode checks guard these links: no rights means no injection either
        info["readable"] = False
        env = []
    ver, ft, runtime, facts, why = recognise(pid, info["exe"], info["readable"])
    if ver is None and not info["readable"] and argv:
        m = PY_NAME.match(os.path.basename(argv[0]))
        if m:
            ver = "%s.%s" % (m.group(1), m.group(2)) if m.group(2) else "?"
    if ver is None:
        info["not_python"] = ("no CPython runtime in %s" % info["exe"] if info["readable"]
                              else "cannot be inspected")
        return info
    info["python"], info["free_threaded"] = ver, ft
    info["runtime_path"], info["inject_blocker"] = runtime, why
    if facts:
        info["runtime_layout"], info["build_id"] = facts["layout"], facts["build_id"]
    info["remote_debug_off_by"] = remote_debug_off_by(argv, env)
    info["remote_debug"] = info["remote_debug_off_by"] is None
    info["tmpdir"] = None
    for item in env:
        if item.startswith(b"TMPDIR="):
            info["tmpdir"] = item[7:].decode("utf-8", "replace")
        elif item == b"WERKZEUG_RUN_MAIN=true":
            info["werkzeug_child"] = True
    info["user"] = _user_name(pid, info["uid"])
    return info


ENV_MAX = 64 << 10  # per process: a hostile environment costs us at most this
PROCS_MAX = 4096


_passwd = {}


def _user_name(pid, uid):
    """The target's own name for its uid (its /etc/passwd, not ours; never through a link)."""
    try:
        key = os.stat(PROC + "/%d/root/" % pid).st_ino
        if key not in _passwd:
            _passwd[key] = {}
            rfd = open_root(pid)
            try:
                fd = open_in(rfd, "/etc/passwd")
            finally:
                os.close(rfd)
            with os.fdopen(fd, "rb") as f:
                text = f.read(1 << 20).decode("utf-8", "replace")
            for line in text.splitlines():
                f = line.split(":")
                if len(f) > 2 and f[2].isdigit():
                    _passwd[key].setdefault(int(f[2]), f[0])
        return _passwd[key].get(uid)
    except OSError:
        return None


def scan():
    uptime = float(_read(PROC + "/uptime").split()[0])
    me = os.getpid()
    out = []
    for name in os.listdir(PROC):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            info = proc_info(int(name), uptime)
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        if info is not None and not _is_ours(info):
            out.append(info)
            if len(out) >= PROCS_MAX:
                break
    out.sort(key=lambda p: p["pid"])
    if TRUST["mode"] != "target":
        for info in out:
            if not info.get("python") or info.get("inject_blocker") or not info["readable"] \
                    or not info.get("runtime_path"):
                continue
            try:
                if TRUST["mode"] == "host" and not same_root(info["pid"]):
                    info["inject_blocker"] = "runs in a container%s: use its container's " \
                        "form (docker/NAME, a pod)" % _container_of(info["pid"])
                else:
                    helper_for(info)
            except Fail as e:
                info["helper_blocker"] = e.message
    return out


def bounded(procs):
    """(the processes to report, how many were left out): at most PROCS_BUDGET bytes of
    JSON, Python processes first, so a target with thousands of processes or huge
    command lines cannot make the list unbounded."""
    kept, size = [], 0
    for p in sorted(procs, key=lambda p: (p["python"] is None, p["pid"])):
        n = len(json.dumps(p))
        if size + n > PROCS_BUDGET:
            break
        kept.append(p)
        size += n
    kept.sort(key=lambda p: p["pid"])
    return kept, len(procs) - len(kept)


def _is_ours(info):
    return any(a.startswith("kubectl-wand-") for a in info["argv"])
