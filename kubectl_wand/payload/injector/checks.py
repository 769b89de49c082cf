# Part of the injector (payload.INJECTOR_PARTS): shipped and imported as one text with the
# others, so it shares their names; it is not a module of its own.

# ---------------------------------------------------------------- checks (stage 1)

def check_target(info, procs):
    pid = info["pid"]
    if info["state"] == "Z":
        raise Fail("zombie", "process %d is a zombie: it has exited and runs no code" % pid,
                   "pick a live process (see `kubectl wand ps`)")
    if not info["readable"]:
        raise Fail("permission", "no permission to inspect process %d (ptrace access denied)" % pid,
                   "the helper needs CAP_SYS_PTRACE, or the same user as the target with "
                   "ptrace allowed (kernel.yama.ptrace_scope=0)")
    if info["python"] is None:
        raise Fail("not-python", "process %d (%s) is not a Python process (%s)"
                   % (pid, info["name"], info.get("not_python") or "?"),
                   "`kubectl wand ps` lists the Python processes")
    if info.get("inject_blocker"):
        raise Fail("not-injectable", "process %d cannot be reached: %s"
                   % (pid, info["inject_blocker"]), None)
    if TRUST["mode"] == "host" and not same_root(pid):
        raise Fail("container-process", "process %d runs in a container (another root "
                   "filesystem)%s: its interpreter and libraries belong to that container, "
                   "whose processes can change them, so kubectl-wand never runs them with "
                   "this host's privileges" % (pid, _container_of(pid)),
                   "target the container instead, e.g. `kubectl wand exec docker/NAME` (its "
                   "helper runs a pristine copy of the image), or its Kubernetes pod")
    return pid


def _container_of(pid):
    """' (docker container 0123456789ab)' when its cgroup names one, else ''."""
    try:
        m = re.search(r"(?:docker[-/]|libpod-)([0-9a-f]{12})[0-9a-f]{52}",
                      _read(PROC + "/%d/cgroup" % pid))
    except OSError:
        m = None
    return " (docker container %s)" % m.group(1) if m else ""


def environment_checks(procs):
    """What `validate` needs beyond the process table: our ptrace rights and, per Python
    process, a staging directory that would work. Writes nothing but an empty probe directory
    (removed at once), and only when running as root, as the real injection would."""
    facts = {"uid": os.getuid(), "cap_sys_ptrace": None, "cap_sys_chroot": None,
             "ptrace_scope": None, "staging": {}}
    try:
        for line in _read(PROC + "/self/status").splitlines():
            if line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
                facts["cap_sys_ptrace"] = bool(caps & (1 << 19))
                facts["cap_sys_chroot"] = bool(caps & (1 << 18))
    except (OSError, ValueError):
        pass
    try:
        facts["ptrace_scope"] = int(_read(PROC + "/sys/kernel/yama/ptrace_scope").strip())
    except (OSError, ValueError):
        pass  # no Yama: classic ptrace rules
    for info in procs:
        if info.get("python") and info.get("state") != "Z":
            facts["staging"][str(info["pid"])] = staging_check(info)
    return facts


def staging_bases(info):
    return [info.get("tmpdir"), "/tmp", "/var/tmp", "/dev/shm"]


def candidate_bases(bases, uid, gid, tried, root_fd=None):
    """(base, fd) for each base that is a real directory the target's user can enter, walked
    below the target's root without following any symlink; why the others are not goes into
    ``tried``. The caller closes each fd."""
    for base in bases:
        if not base or not SAFE_PATH.match(base) or ".." in base.split("/"):
            continue
        try:
            fd = _walk_dir(base, root_fd)
        except OSError as e:
            tried.append("%s (%s)" % (base, "a symlink on the way: not followed"
                                      if e.errno in (errno.ELOOP, errno.ENOTDIR) else e.strerror))
            continue
        if not _searchable_by(os.fstat(fd), uid, gid):
            os.close(fd)
            tried.append("%s (not a usable directory)" % base)
            continue
        yield base, fd


def staging_check(info):
    """The first usable staging base for this process, as make_stage_dir would pick it."""
    pid, uid, gid = info["pid"], info["uid"], info["gid"]
    if not info.get("readable", True):
        return {"ok": None, "dir": None, "tried": ["cannot see the target's filesystem"]}
    tried = []
    try:
        root = open_root(pid)
    except OSError as e:
        return {"ok": None, "dir": None, "tried": ["cannot see the target's filesystem (%s)"
                                                   % e.strerror]}
    try:
        for base, fd in candidate_bases(staging_bases(info), uid, gid, tried, root):
            try:
                if os.fstatvfs(fd).f_flag & getattr(os, "ST_RDONLY", 1):
                    tried.append("%s (read-only file system)" % base)
                    continue
                if os.getuid() == 0:
                    probe = ".kubectl-wand-check-" + secrets.token_hex(4)
                    try:
                        os.mkdir(probe, 0o700, dir_fd=fd)
                        os.rmdir(probe, dir_fd=fd)
                    except OSError as e:
                        tried.append("%s (%s)" % (base, e.strerror))
                        continue
                elif os.getuid() == uid and not os.access("/proc/self/fd/%d" % fd,
                                                          os.W_OK | os.X_OK):
                    tried.append("%s (not writable)" % base)
                    continue
                return {"ok": True, "dir": base, "tried": tried}
            finally:
                os.close(fd)
    finally:
        os.close(root)
    return {"ok": False, "dir": None, "tried": tried}
