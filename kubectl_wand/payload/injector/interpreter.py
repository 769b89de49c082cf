# Part of the injector (payload.INJECTOR_PARTS): shipped and imported as one text with the
# others, so it shares their names; it is not a module of its own.

# ---------------------------------------------------------------- which interpreter injects

_own = {}


def own_python():
    """This interpreter: (version text, free-threaded, has remote_exec)."""
    if not _own:
        _own["v"] = (version_text(sys.hexversion), "t" in getattr(sys, "abiflags", ""),
                     hasattr(sys, "remote_exec"))
    return _own["v"]


def _candidates(info):
    ver = info["python"].split(".")
    names = ["python%s.%s%s" % (ver[0], ver[1], "t" if info["free_threaded"] else ""),
             "python%s" % ver[0], "python"]
    seen, out = set(), []
    exe = info.get("exe") or ""
    first = [p for p in (info.get("runtime_path"), exe) if p and not p.endswith(" (deleted)")]
    dirs = [os.path.dirname(p) for p in first]
    dirs += os.environ.get("PATH", "").split(":") + ["/usr/local/bin", "/usr/bin", "/bin"]
    for path in first + [d + "/" + n for d in dirs if d.startswith("/") for n in names]:
        if path not in seen:
            seen.add(path)
            out.append(path)
    return out


_helper_cache = {}


def helper_for(info):
    """The interpreter of our own filesystem that injects into this process: None for this
    very one, else its path; Fail with the precise remedy when there is none. Never runs a
    candidate: reads its ELF headers. On this host (trust "host") a candidate must also be
    one only root can change (trusted_tree)."""
    want, ft = info["python"], info["free_threaded"]
    key = (want, ft, info.get("runtime_path"), info.get("exe"))
    if key in _helper_cache:
        result = _helper_cache[key]
        if isinstance(result, Fail):
            raise result
        return result
    try:
        result = _choose_helper(info, want, ft)
    except Fail as e:
        _helper_cache[key] = e
        raise
    _helper_cache[key] = result
    runtime_visible(info)
    return result


def _choose_helper(info, want, ft):
    mine, my_ft, has_rx = own_python()
    if has_rx and my_ft == ft and compatible(mine, want):
        return None
    tried, untrusted = [], []
    for path in _candidates(info):
        facts = read_facts(path)
        if not facts:
            continue
        if facts["runtime"]:
            ver, cft = version_text(facts["runtime"][0]), facts["runtime"][1]
        else:  # a shared build: the exe names its libpython
            m = next((LIBPY_NAME.match(n) for n in facts["needed"] if LIBPY_NAME.match(n)), None)
            if not m:
                continue
            ver, cft = "%s.%s.0" % (m.group(1), m.group(2)), m.group(3) == "t"
        if cft != ft or not compatible(ver, want) or tuple(map(int, ver.split(".")[:2])) < (3, 14):
            tried.append("%s is %s%s" % (path, ver, " free-threaded" if cft else ""))
            continue
        if TRUST["mode"] == "host":
            why = trusted_tree(path)
            if why:
                untrusted.append("%s (%s)" % (path, why))
                continue
        return path
    flavour = " (free-threaded)" if ft else ""
    if untrusted:
        raise Fail("untrusted-python", "the only Python %s%s here that could inject is one "
                   "another user can change: %s; kubectl-wand never runs it with your "
                   "privileges" % (want, flavour, "; ".join(untrusted)),
                   "run kubectl-wand as that process's own user, or install a Python %s "
                   "that only root can change and run kubectl-wand with it" % want[:4])
    where = "this host" if TRUST["mode"] == "host" else "the helper's image"
    raise Fail("no-matching-python", "no Python %s%s in %s can inject into it (the "
               "helper's own is %s%s)" % (want, flavour, where, mine,
                                          ("; also found: " + ", ".join(tried[:4])) if tried
                                          else ""),
               "pass --image with an image that has Python %s%s (the helper runs its own "
               "interpreter, never the target's)" % (".".join(want.split(".")[:2]), flavour))


def runtime_visible(info):
    """CPython's remote_exec (and the memory reader) open the target's runtime file by its
    mapped path *in our filesystem*, to find where the runtime sits. Make sure that path shows
    the same build: in a helper container of another image, link it to the target's file (read
    only, never run); a different build there is refused, since the offsets would be wrong."""
    path, pid = info["runtime_path"], info["pid"]
    mine = read_facts(path)
    if mine is not None:
        same = (mine["runtime"] and version_text(mine["runtime"][0]) == info["python"]
                and mine["layout"] == info.get("runtime_layout")
                and mine["build_id"] == info.get("build_id"))
        if same:
            return
        raise Fail("interpreter-mismatch", "the target's interpreter %s is another build than "
                   "the file at that path in %s" % (
                       path, "this host" if TRUST["mode"] == "host" else "the helper"),
                   "the running process's binary was changed after its image was built, or "
                   "--image names an image with another build at that path: pass --image with "
                   "the app's own image")
    if TRUST["mode"] != "image" or os.path.lexists(path):
        raise Fail("interpreter-unreachable", "the target's interpreter %s cannot be read "
                   "here" % path, "pass --image with the app's own image")
    source = (PROC + "/%d/exe" % pid) if path == info.get("exe") else \
        (PROC + "/%d/root%s" % (pid, path))
    try:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        os.symlink(source, path)  # our own container's filesystem, not the target's
    except OSError as e:
        raise Fail("interpreter-unreachable", "cannot make the target's interpreter %s "
                   "readable in the helper: %s" % (path, e.strerror),
                   "pass --image with the app's own image")
