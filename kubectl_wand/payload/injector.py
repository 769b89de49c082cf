"""kubectl-wand injector: stdlib only, Python >= 3.8 for stage 1.

Stage 1 runs in the helper's own Python, beside the target (its PID namespace): it lists
processes and checks the chosen one, reading binaries and /proc, never running anything of the
target. Stage 2 is this same interpreter when it can inject into the target (the usual case: a
helper of the app's image), else another interpreter of the helper's own filesystem of the
target's version; it never chroots, stages files below the target's root through directory fds
(no symlink followed), injects with ``sys.remote_exec``, waits for the agent's connect-back and
relays its events. payload/binaries.py is shipped in front of this file.

Protocol: the CLI writes frames ``<length>\\n<bytes>`` on stdin; this writes one JSON object per
line on stdout. Any failure is an ``error`` event with a code, a message and a hint.
"""

import errno
import json
import os
import re
import select
import socket
import stat
import sys
import time


class secrets:  # os.urandom is all we need; the module would import random, hashlib, base64
    @staticmethod
    def token_hex(n):
        return os.urandom(n).hex()


PROTOCOL = 1
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]{0,80}$")
PROC = "/proc"  # the proc filesystem; tests point it at a fake tree
# Bounds on what the target can make the helper and the CLI hold (issue 13): bytes of one
# process's command line read, bytes of JSON of the process list sent, bytes of one line
# from the agent.
MAX_ARGV = 4096
PROCS_BUDGET = 2 << 20
MAX_LINE = 4 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Fail(Exception):
    def __init__(self, code, message, hint=None, **extra):
        Exception.__init__(self, message)
        self.code, self.message, self.hint, self.extra = code, message, hint, extra


def emit(event, **fields):
    fields["event"] = event
    write_all(1, (json.dumps(fields) + "\n").encode())


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_frame(unit=False):
    """One frame from stdin, unbuffered so an exec'd successor can read the rest; with
    ``unit``, (the unit its header names or None, frame)."""
    header = b""
    while not header.endswith(b"\n"):
        c = os.read(0, 1)
        if not c:
            raise EOFError
        header += c
    parts = header.split()
    data = read_exact(int(parts[0]))
    if not unit:
        return data
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None), data


def read_json():
    return json.loads(read_frame().decode())


def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


# ---------------------------------------------------------------- process table (stage 1)

try:
    elf_facts  # shipped: payload/binaries.py stands in front of this file
except NameError:  # imported from the package (tests)
    from kubectl_wand.payload.binaries import *  # noqa: F401,F403
    from kubectl_wand.payload.binaries import _pread  # noqa: F401

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


# ---------------------------------------------------------------- staging (stage 2)

def _searchable_by(st, uid, gid):
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def make_stage_dir(bases, uid, gid):
    """A fresh 0700 directory owned by the target's user on the first writable base.

    mkdir never follows a planted symlink, and files go in through a directory fd with
    O_NOFOLLOW|O_EXCL, so a hostile target user cannot redirect our root writes.
    """
    import fcntl

    tried = []
    for base, bfd in candidate_bases(bases, uid, gid, tried, ROOT["fd"]):
        collect_stale(base, bfd=bfd)
        # a stage being made: no collector sweeps now. Shared, and with a deadline: the
        # target's user may hold a lock on its own /tmp forever.
        if not _try_lock(bfd, 2.0, fcntl.LOCK_SH):
            os.close(bfd)
            tried.append("%s (locked by another process)" % base)
            continue
        name = ".kubectl-wand-" + secrets.token_hex(8)
        path = base.rstrip("/") + "/" + name
        try:
            os.mkdir(name, 0o700, dir_fd=bfd)
            # Locked for our whole life (the fd stays open until we exit): a directory that
            # nobody holds is an orphan, whose injector was killed (collect_stale).
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=bfd)
            _HELD.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.getuid() == 0 and uid != 0:
                # the target may enter, not list; it owns only its files. Through the fd: in
                # a base the target's user may write to, the path could be swapped already.
                os.fchmod(fd, 0o711)
        except OSError as e:
            tried.append("%s (%s)" % (base, e.strerror))
            continue
        finally:
            os.close(bfd)  # and its shared lock
        return path
    raise Fail("no-staging", "no writable directory for staging files in the target: "
               + ", ".join(tried),
               "mount a writable emptyDir/tmpfs at /tmp (or set TMPDIR) in the target")


class Stage:
    """The staging directory. As root it stays root-owned 0711 for its whole life (only the
    files in it belong to the target's user), so the target's user can never swap it for a
    symlink under our later root writes."""

    def __init__(self, path, uid, gid):
        self.path, self.uid, self.gid = path, uid, gid
        try:
            self.fd = _walk_dir(path)
        except OSError as e:
            raise Fail("staging", "the staging directory %s is not usable: %s"
                       % (path, e.strerror), "someone in the target replaced it; nothing was "
                       "injected")
        if os.fstat(self.fd).st_uid != os.getuid():
            os.close(self.fd)
            raise Fail("staging", "the staging directory %s was replaced under us" % path,
                       "someone in the target renamed it; nothing was injected")
        # Our own work by path goes through the fd's /proc alias, never through a path in a
        # directory the target's user may write to (TMPDIR, a non-sticky emptyDir).
        alias = "/proc/self/fd/%d" % self.fd
        try:
            same = os.path.samestat(os.stat(alias), os.fstat(self.fd))
        except OSError:
            same = False
        self.ref = alias if same else path

    def keep(self, pid, start):
        """Mark the directory as in use after we exit: the debugger of process ``pid``
        imports from it (collect_stale spares it while that process lives)."""
        try:
            self.write("keep", json.dumps([pid, start]).encode(), give=False)
        except OSError:
            pass

    def write(self, name, data, mode=0o600, give=True):
        """A new file in the directory, given to the target's user unless ``give`` is False."""
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode,
                     dir_fd=self.fd)
        try:
            while data:
                data = data[os.write(fd, data):]
            if os.getuid() == 0 and give:
                os.fchown(fd, self.uid, self.gid)
        finally:
            os.close(fd)
        return self.path + "/" + name

    def extract(self, name, tgz):
        import io
        import tarfile

        dest = self.ref + "/" + name
        os.mkdir(name, 0o700, dir_fd=self.fd)
        with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tf:
            try:
                tf.extractall(dest, filter="data")
            except TypeError:
                tf.extractall(dest)
        if os.getuid() == 0:
            # bottom-up, the top last: the user can enter the tree only once it is complete
            for root, dirs, files in os.walk(dest, topdown=False):
                for n in [os.path.join(root, x) for x in dirs + files]:
                    os.lchown(n, self.uid, self.gid)
            os.lchown(dest, self.uid, self.gid)
        return self.path + "/" + name

    def unlink(self, name):
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass

    def remove(self):
        import shutil

        try:
            for name in os.listdir(self.fd):
                try:
                    if stat.S_ISDIR(os.lstat(name, dir_fd=self.fd).st_mode):
                        shutil.rmtree(name, dir_fd=self.fd)
                    else:
                        os.unlink(name, dir_fd=self.fd)
                except OSError:
                    pass
            parent = _walk_dir(os.path.dirname(self.path))
            try:
                name = os.path.basename(self.path)
                st = os.lstat(name, dir_fd=parent)
                if os.path.samestat(st, os.fstat(self.fd)):  # still ours at that path
                    os.rmdir(name, dir_fd=parent)
            finally:
                os.close(parent)
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass


STAGE_NAME = re.compile(r"^\.kubectl-wand-[0-9a-f]{16}$")
_HELD = []  # fds of the staging directories we made, locked until we exit


ROOT = {"fd": None}  # stage 2: the target's root directory; paths of the target live below it


def _walk_dir(path, root_fd=None):
    """A directory of the target by its own path, walked from its root (ours when None and
    no target root is set) with no symlink followed anywhere on the way."""
    root = root_fd if root_fd is not None else ROOT["fd"]
    if root is None:
        root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return open_in(root, path, dir_only=True)
        finally:
            os.close(root)
    return open_in(root, path, dir_only=True)


def _open_dir(path):
    try:
        return _walk_dir(path)
    except OSError:
        return None


def collect_stale(base, only=None, ignore_keep=False, bfd=None):
    """Remove staging directories in ``base`` whose injector is gone (killed with the helper
    or the node): real directories owned by our uid (the target's user cannot make root-owned
    ones), not locked by a live injector, not marked ``keep`` by a debugger still running.
    Sweeps only under an exclusive lock on the base, which makers of new stages hold shared
    from their mkdir to their lock, so a stage in the making is never taken for an orphan.
    Only the entry is looked up by name; everything under it goes through fds. Returns how
    many were removed."""
    import fcntl
    import shutil

    own = bfd is None
    if own:
        bfd = _open_dir(base)
        if bfd is None:
            return 0
    removed = 0
    try:
        # ``only``: an exiting injector left that one to us; it lets go within moments
        if not _try_lock(bfd, 3.0 if only else 0.0):
            return 0
        names = [only] if only else [n for n in os.listdir(bfd) if STAGE_NAME.match(n)]
        for name in names:
            try:
                st = os.lstat(name, dir_fd=bfd)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                    continue
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=bfd)
            except OSError:
                continue
            try:
                if not os.path.samestat(st, os.fstat(fd)):
                    continue
                if not _try_lock(fd, 3.0 if only else 0.0):
                    continue  # its injector is alive
                if not ignore_keep and _kept_alive(fd):
                    continue  # a debugger left running (--keep) still imports from it
                shutil.rmtree(name, dir_fd=bfd)
                removed += 1
            except OSError:
                pass
            finally:
                os.close(fd)
        fcntl.flock(bfd, fcntl.LOCK_UN)
    finally:
        if own:
            os.close(bfd)
    return removed


def _try_lock(fd, wait, kind=None):
    import fcntl

    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if kind is None else kind) | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _kept_alive(fd):
    """Whether a ``keep`` marker names a process that still lives."""
    try:
        kfd = os.open("keep", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    except OSError:
        return False
    try:
        pid, start = json.loads(os.read(kfd, 200).decode())
        return alive(int(pid), int(start))
    except (ValueError, TypeError, OSError):
        return True  # unreadable: spare it
    finally:
        os.close(kfd)


def release_kept(lib, own):
    """After the last detach: the debugger's tree may live in another (kept) staging
    directory; that one can go now."""
    if not lib or not isinstance(lib, str) or lib.startswith(own + "/"):
        return
    stage_dir = os.path.dirname(lib)
    base, name = os.path.split(stage_dir)
    if SAFE_PATH.match(base) and STAGE_NAME.match(name) and ".." not in base.split("/"):
        collect_stale(base, only=name, ignore_keep=True)


# ---------------------------------------------------------------- debugpy, compiled and cached

# The helper's own cache (never the target's filesystem): stage 1 opens it and stage 2 gets the
# fd (inherited across an exec). It holds, per debugpy archive and interpreter, a tar of the debugpy
# tree with .pyc compiled by that interpreter (unchecked-hash pycs: mtimes never matter), so a
# later attach neither ships the archive again nor imports from source. Kept uncompressed:
# inflating its ~7 MB would cost each attach ~20 ms for a few MB of the helper's disk.
CACHE_KEY = re.compile(r"^[0-9a-f]{16,64}$")
SHM = "/dev/shm"


def open_cache(req):
    """Stage 1: the cache directory the CLI named (a helper's /tmp, or the CLI user's cache
    on this host), as an inheritable fd; None when unusable. Only a directory of our own that
    nobody else may write to is trusted."""
    path, key = req.get("cache"), req.get("cache_key")
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or \
            not isinstance(key, str) or not CACHE_KEY.match(key):
        return None
    try:
        try:
            os.makedirs(path, 0o700)
        except FileExistsError:
            pass
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        os.close(fd)
        return None
    os.set_inheritable(fd, True)
    return {"fd": fd, "key": key}


def _tar_members(raw):
    """(path, data) of the regular files of an uncompressed tar made by tarfile (ustar, pax
    or GNU long names): enough for our own archives, without importing tarfile."""
    out, pos, long_name = [], 0, None
    while pos + 512 <= len(raw):
        h = raw[pos:pos + 512]
        if h == b"\0" * 512:
            break
        size = int(h[124:136].strip(b"\0 ") or b"0", 8)
        kind = h[156:157]
        name = h[0:100].split(b"\0", 1)[0].decode("utf-8")
        if h[257:262] == b"ustar":
            prefix = h[345:500].split(b"\0", 1)[0].decode("utf-8")
            if prefix:
                name = prefix + "/" + name
        data = raw[pos + 512:pos + 512 + size]
        pos += 512 + (size + 511) // 512 * 512
        if kind == b"x":  # pax extended header: only its path matters here
            for rec in data.decode("utf-8").split("\n"):
                k, _, v = rec.partition(" ")[2].partition("=")
                if k == "path":
                    long_name = v
            continue
        if kind == b"L":  # GNU long name
            long_name = data.rstrip(b"\0").decode("utf-8")
            continue
        if long_name is not None:
            name, long_name = long_name, None
        if kind in (b"0", b"\0", b"7"):
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or "" in parts or "\\" in name:
                raise ValueError("unsafe path in archive: %r" % name)
            out.append((name, data))
        elif kind not in (b"5", b"g"):
            raise ValueError("unexpected member type %r in archive" % kind)
    return out


def extract_files(stage, name, members):
    """A new directory ``name`` in the stage holding ``members``, made through directory fds
    only (nothing the target's user could redirect); root-owned 0700 until complete, then
    handed to the target's user bottom-up, the top last (as Stage.extract does)."""
    os.mkdir(name, 0o700, dir_fd=stage.fd)
    top = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=stage.fd)
    fds, order = {"": top}, [""]
    give = os.getuid() == 0

    def dir_fd(path):
        fd = fds.get(path)
        if fd is None:
            parent, _, base = path.rpartition("/")
            pfd = dir_fd(parent)
            os.mkdir(base, 0o700, dir_fd=pfd)
            fd = fds[path] = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                     dir_fd=pfd)
            order.append(path)
        return fd

    try:
        for path, data in members:
            parent, _, base = path.rpartition("/")
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                         dir_fd=dir_fd(parent))
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if give:
                    os.fchown(fd, stage.uid, stage.gid)
            finally:
                os.close(fd)
        if give:
            for path in reversed(order):  # deepest first, the top last
                os.fchown(fds[path], stage.uid, stage.gid)
    finally:
        for fd in fds.values():
            os.close(fd)
    return stage.path + "/" + name


class Cache:
    """Stage 2's view of the helper's cache (an fd from stage 1; None: no cache)."""

    def __init__(self, spec):
        self.fd = spec.get("fd") if spec else None
        self.key = spec.get("key") if spec else None
        self.members = None  # the cached tree of this interpreter, read and checked
        self.pending = None  # a shipped source archive, to compile and keep after the attach
        if self.fd is None:
            return
        import zlib

        tag = "%s-%x-%08x" % (sys.implementation.cache_tag or "none", sys.hexversion,
                              zlib.crc32(sys.version.encode()))
        self.prefix = "debugpy-%s-" % tag
        self.name = self.prefix + self.key[:32] + ".tar"

    def load(self):
        """Read and check the cached tree (its size, the archive layout); False if none."""
        if self.fd is None:
            return False
        try:
            fd = os.open(self.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError:
            return False
        try:
            chunks = []
            while True:
                c = os.read(fd, 1 << 20)
                if not c:
                    break
                chunks.append(c)
        finally:
            os.close(fd)
        try:
            raw = b"".join(chunks)
            if len(raw) < 1024 or raw[-1024:] != b"\0" * 1024:
                raise ValueError("truncated")
            self.members = _tar_members(raw)
        except Exception:
            self.members = None
            self._unlink(self.name)  # damaged: the next attach ships and compiles again
            return False
        return True

    def extract(self, stage):
        members, self.members = self.members, None  # once per session
        return extract_files(stage, "debugpy-" + secrets.token_hex(4), members)

    def remember(self, tgz):
        if self.fd is not None and self.members is None:
            self.pending = tgz

    def store_pending(self):
        """Compile the shipped tree with this interpreter and keep py + pyc in the cache: run
        while the session waits for the CLI, never before an injection."""
        tgz, self.pending = self.pending, None
        if tgz is None:
            return
        try:
            self._store(tgz)
        except Exception as e:  # a cache is an optimisation: never fail the session for it
            emit("cache-failed", message="%s: %s" % (type(e).__name__, e))

    def _store(self, tgz):
        import gzip
        import importlib.util
        import io
        import marshal
        import tarfile
        import warnings

        flags = (1).to_bytes(4, "little")  # PEP 552: hash-based, not checked against source
        tag = sys.implementation.cache_tag
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as out:
            def add(path, data):
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(data), 0o644
                out.addfile(info, io.BytesIO(data))

            for path, data in _tar_members(gzip.decompress(tgz)):
                add(path, data)
                if not path.endswith(".py") or not tag:
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        code = compile(data, path, "exec", dont_inherit=True)
                except (SyntaxError, ValueError):
                    continue  # imported from source, if ever
                d, _, f = path.rpartition("/")
                add("%s/__pycache__/%s.%s.pyc" % (d, f[:-3], tag),
                    importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(data)
                    + marshal.dumps(code))
        data = raw.getvalue()
        tmp = ".tmp-%d-%s" % (os.getpid(), secrets.token_hex(4))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                     dir_fd=self.fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, self.name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        for other in os.listdir(self.fd):  # older debugpy archives for this interpreter
            if other.startswith(self.prefix) and other != self.name:
                self._unlink(other)
        emit("cached", bytes=len(data))

    def _unlink(self, name):
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass


def extract_tgz(stage, name, tgz):
    import gzip

    return extract_files(stage, name, _tar_members(gzip.decompress(tgz)))


def fast_bases(bases, pid):
    """For an attach, the staging bases with the target's /dev/shm first when it is a tmpfs
    with room to spare: the debugpy tree is some 400 files, and creating files on a
    container's overlay root costs up to a millisecond each; on tmpfs, microseconds. The
    tree (~7 MB) is removed on detach."""
    try:
        with open(PROC + "/%d/mountinfo" % pid) as f:
            tmpfs = any(line.split(" - ", 1)[1].startswith("tmpfs ")
                        and line.split()[4] == SHM for line in f if " - " in line)
        fd = _walk_dir(SHM)
        try:
            st = os.fstatvfs(fd)
        finally:
            os.close(fd)
        room = st.f_bavail * st.f_frsize
    except (OSError, IndexError):
        return bases
    if not tmpfs or room < (32 << 20) or st.f_flag & getattr(os, "ST_RDONLY", 1):
        return bases
    return [SHM] + [b for b in bases if b != SHM]


_agent_code = {}


def agent_code(source):
    """The agent compiled by this very interpreter (the target's), marshalled: the injected
    stub loads it instead of compiling ~500 lines on the target's main thread."""
    if source not in _agent_code:
        import marshal

        _agent_code.clear()
        _agent_code[source] = marshal.dumps(compile(source, "<kubectl-wand agent>", "exec"))
    return _agent_code[source]


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
        if len(buf) > MAX_LINE and b"\n" not in buf:  # the agent never sends such a line
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
    os.execv(python, [python, "-I", "-S", "-c", "import os,sys\n" + LOADER + STAGE2,
                      "kubectl-wand-stage2", json.dumps(state), SRC])


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


# Stage 2 starts with this after LOADER: argv = [state JSON, source]; the state's "code" entry
# is the cache directory fd that stage 1 keeps open across execv().
STAGE2 = (
    "import json\n"
    "_c=json.loads(sys.argv[2]).get('code') or {}\n"
    "exec(_load(sys.argv[3].encode(),_c.get('fd'),_c.get('key')),"
    "{'__name__':'__wand__','SRC':sys.argv[3],'LOADER':'','CODE_CACHE':None})\n"
)


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
