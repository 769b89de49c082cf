"""kubectl-wand injector: stdlib only, Python >= 3.8 for stage 1.

Stage 1 runs in any helper Python that shares the target's PID namespace: it lists processes
and checks the chosen one. Stage 2 is the target's *own* interpreter, exec'd inside a chroot to
the target's root, so ``sys.remote_exec`` always reads the exact binary of the target. It stages
files privately, injects, waits for the agent's connect-back and relays its events.

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
PY_EXE = re.compile(r"(?:^|/)python(\d)\.(\d+)(t?)(?:-[a-z0-9]+)?$")
LIBPY = re.compile(r"/libpython(\d)\.(\d+)(t?)\.so")
PROC = "/proc"  # the proc filesystem; tests point it at a fake tree
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
VERSION_PROBE = (
    "import sys,sysconfig;print(sys.version.split()[0]);"
    "print(int(bool(sysconfig.get_config_var('Py_GIL_DISABLED'))))"
)


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

def _status(pid):
    out = {}
    for line in _read(PROC + "/%d/status" % pid).splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _python_from_paths(exe, maps):
    m = PY_EXE.search((exe or "").replace(" (deleted)", ""))
    if m:
        return m.group(1) + "." + m.group(2), m.group(3) == "t"
    for line in maps:
        m = LIBPY.search(line)
        if m:
            return m.group(1) + "." + m.group(2), m.group(3) == "t"
    return None, False


def same_root(pid):
    try:
        a, b = os.stat(PROC + "/%d/root/" % pid), os.stat("/")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def enter_root(pid):
    """Make the target's root our own (no-op when we already share it)."""
    if not same_root(pid):
        os.chroot("/proc/%d/root" % pid)
    os.chdir("/")


_probe_cache = {}


def probe_version(pid, exe):
    """Exact version and free-threading flag, asked of the target's own binary."""
    key = (os.stat(PROC + "/%d/root/" % pid).st_ino, exe)
    if key in _probe_cache:
        return _probe_cache[key]
    import subprocess

    try:
        out = subprocess.run(
            [exe, "-I", "-S", "-c", VERSION_PROBE, "kubectl-wand-probe"],
            preexec_fn=lambda: enter_root(pid),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            timeout=5, check=True,
        ).stdout.decode().split()
        result = (out[0], out[1] == "1")
    except Exception:
        result = None
    _probe_cache[key] = result
    return result


def proc_info(pid, uptime, probe=True):
    base = PROC + "/%d" % pid
    st = _status(pid)
    raw = _read(base + "/cmdline", "rb")
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1]] if raw else []
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
        env = _read(base + "/environ", "rb").split(b"\0")
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM):
            return info if info["state"] == "Z" else None  # a kernel thread, or gone
        # ptrace-mode checks guard these links: no rights means no injection either
        info["readable"] = False
        env = []
    maps = []
    if info["exe"] and not PY_EXE.search(info["exe"]):
        try:
            maps = [ln for ln in _read(base + "/maps").splitlines() if "libpython" in ln][:1]
        except OSError:
            pass
    ver, ft = _python_from_paths(info["exe"], maps)
    if ver is None and not info["readable"] and argv:
        ver, ft = _python_from_paths(argv[0], [])
        if ver is None and "python" in os.path.basename(argv[0]):
            ver = "?"  # a Python we may not inspect: listed, with the reason
    if ver is None:
        return info if (info["state"] == "Z" or not info["readable"]) else None
    info["python"], info["free_threaded"] = ver, ft
    if probe and info["readable"] and info["exe"] and not (
            probe == "auto" and PY_EXE.search(info["exe"].replace(" (deleted)", ""))
            and tuple(int(x) for x in ver.split(".")) >= (3, 14)):
        # "auto" (attach/exec): the path names major.minor and build flavour, all that the
        # choice of an injectable process needs, and stage 2, which runs that very binary,
        # tells the exact version; an older one is probed, for the message that refuses it
        exact = probe_version(pid, info["exe"].replace(" (deleted)", ""))
        if exact:
            info["python"], info["free_threaded"] = exact
    disabled = None
    for item in env:
        if item.startswith(b"PYTHON_DISABLE_REMOTE_DEBUG="):
            disabled = "environment variable PYTHON_DISABLE_REMOTE_DEBUG"
    for i, a in enumerate(argv):
        if a == "-Xdisable-remote-debug" or (
            a == "-X" and i + 1 < len(argv) and argv[i + 1] == "disable-remote-debug"
        ):
            disabled = "interpreter option -X disable-remote-debug"
    info["remote_debug"] = disabled is None
    info["remote_debug_off_by"] = disabled
    info["tmpdir"] = None
    for item in env:
        if item.startswith(b"TMPDIR="):
            info["tmpdir"] = item[7:].decode("utf-8", "replace")
        elif item == b"WERKZEUG_RUN_MAIN=true":
            info["werkzeug_child"] = True
    info["user"] = _user_name(pid, info["uid"])
    info["wand_threads"] = _wand_threads(pid)
    return info


def _wand_threads(pid):
    """OS names of the threads kubectl-wand runs in the process (a --detach'ed exec, a
    loglevel timer, a kept debugger…): what the tool left there, for `ps -o wide`."""
    out = []
    try:
        tasks = os.listdir(PROC + "/%d/task" % pid)
    except OSError:
        return out
    for t in tasks[:4096]:
        try:
            name = _read(PROC + "/%d/task/%s/comm" % (pid, t)).strip()
        except OSError:
            continue
        if name.startswith("kubectl-wand"):
            out.append(name)
    return out


_passwd = {}


def _user_name(pid, uid):
    """The target's own name for its uid (its /etc/passwd, not ours)."""
    try:
        key = os.stat(PROC + "/%d/root/" % pid).st_ino
        if key not in _passwd:
            _passwd[key] = {}
            for line in _read(PROC + "/%d/root/etc/passwd" % pid).splitlines():
                f = line.split(":")
                if len(f) > 2 and f[2].isdigit():
                    _passwd[key].setdefault(int(f[2]), f[0])
        return _passwd[key].get(uid)
    except OSError:
        return None


def scan(probe=True):
    uptime = float(_read(PROC + "/uptime").split()[0])
    me = os.getpid()
    out = []
    for name in os.listdir(PROC):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            info = proc_info(int(name), uptime, probe)
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        if info is not None and not _is_ours(info):
            out.append(info)
    out.sort(key=lambda p: p["pid"])
    return out


def _is_ours(info):
    return any(a.startswith("kubectl-wand-") for a in info["argv"])


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
        raise Fail("not-python", "process %d (%s) is not a Python process" % (pid, info["name"]),
                   "`kubectl wand ps` lists the Python processes")
    return pid


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


def candidate_bases(bases, uid, gid, tried, root=""):
    """(base, path) for each base that is a real directory the target's user can enter;
    why the others are not goes into ``tried``. ``root`` reads another root from outside."""
    for base in bases:
        if not base or not SAFE_PATH.match(base) or ".." in base.split("/"):
            continue
        path = root + base
        try:
            st = os.lstat(path)
        except OSError as e:
            tried.append("%s (%s)" % (base, e.strerror))
            continue
        if not stat.S_ISDIR(st.st_mode) or not _searchable_by(st, uid, gid):
            tried.append("%s (not a usable directory)" % base)
            continue
        yield base, path


def staging_check(info):
    """The first usable staging base for this process, as make_stage_dir would pick it."""
    pid, uid, gid = info["pid"], info["uid"], info["gid"]
    if not info.get("readable", True):
        return {"ok": None, "dir": None, "tried": ["cannot see the target's filesystem"]}
    root = "" if same_root(pid) else PROC + "/%d/root" % pid
    tried = []
    for base, path in candidate_bases(staging_bases(info), uid, gid, tried, root):
        try:
            if os.statvfs(path).f_flag & getattr(os, "ST_RDONLY", 1):
                tried.append("%s (read-only file system)" % base)
                continue
        except OSError:
            pass
        if os.getuid() == 0:
            probe = path.rstrip("/") + "/.kubectl-wand-check-" + secrets.token_hex(4)
            try:
                os.mkdir(probe, 0o700)
                os.rmdir(probe)
            except OSError as e:
                tried.append("%s (%s)" % (base, e.strerror))
                continue
        elif os.getuid() == uid and not os.access(path, os.W_OK | os.X_OK):
            tried.append("%s (not writable)" % base)
            continue
        return {"ok": True, "dir": base, "tried": tried}
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
    for base, _ in candidate_bases(bases, uid, gid, tried):
        bfd = _open_dir(base)
        if bfd is not None:
            collect_stale(base, bfd=bfd)
            fcntl.flock(bfd, fcntl.LOCK_SH)  # a stage being made: no collector sweeps now
        name = ".kubectl-wand-" + secrets.token_hex(8)
        path = base.rstrip("/") + "/" + name
        try:
            os.mkdir(path, 0o700)
            # Locked for our whole life (the fd stays open until we exit): a directory that
            # nobody holds is an orphan, whose injector was killed (collect_stale).
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
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
            if bfd is not None:
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
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
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

    def keep(self, pid, start, until=None):
        """Mark the directory as in use after we exit: the debugger of process ``pid``
        imports from it (collect_stale spares it while that process lives, and for a --keep
        lifetime only ``until`` then)."""
        try:
            self.write("keep", json.dumps([pid, start] + ([until] if until else [])).encode(),
                       give=False)
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
            st = os.lstat(self.path)
            if os.path.samestat(st, os.fstat(self.fd)):  # still ours at that path
                os.rmdir(self.path)
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass


STAGE_NAME = re.compile(r"^\.kubectl-wand-[0-9a-f]{16}$")
_HELD = []  # fds of the staging directories we made, locked until we exit


def _open_dir(path):
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
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


def _try_lock(fd, wait):
    import fcntl

    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        marker = json.loads(os.read(kfd, 200).decode())
        pid, start = marker[:2]
        if len(marker) > 2 and time.time() > float(marker[2]):
            return False  # its --keep lifetime is over: the debugger stopped by itself
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

# The helper's own cache (never the target's filesystem): stage 1 opens it before the chroot and
# stage 2 inherits the fd. It holds, per debugpy archive and interpreter, a tar of the debugpy
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
        st = os.statvfs(SHM)
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
    its holder, leaving nothing on disk.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = ("\0kubectl-wand-lock-%d-%d" % (pid, start)).encode()
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.bind(name)
            return s
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
        if time.monotonic() > deadline:
            raise Fail("busy", "another kubectl-wand injection into process %d is in progress"
                       % pid, "retry when it has finished")
        time.sleep(0.02)


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


FINAL_EVENTS = ("result", "listening", "waiting", "detached", "loglevel", "error", "stopping")
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
    cache = Cache(state.get("cache"))
    emit("stage2", python=sys.version.split()[0], root=same_root(1), cached=cache.load())
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
                    stage.keep(pid, start, req.get("until"))
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
            emit("staged", dir=stage.path)
            try:
                last = inject_once(stage, pid, start, params, req)
            finally:
                for name in written:
                    stage.unlink(name)
            if op == "detach" or "was_attached" in (last or {}):
                # (an attach's session ends with "detached" when its lifeline closes)
                if last and last.get("was_attached"):
                    if last.get("stopped") is False:
                        # another session still uses the debugger; if its tree is ours, keep it
                        if (last.get("lib") or "").startswith(stage.path + "/"):
                            state["keep_stage"] = True
                            stage.keep(pid, start)
                    else:
                        release_kept(last.get("lib"), stage.path)
                if op == "detach" and req.get("final", True):
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

        # never through a symlink: on this host's /tmp (pid/N) anyone could plant one
        fd = os.open(HELPER_LOCK, os.O_RDWR | os.O_NOFOLLOW)
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.utime(fd)
        os.set_inheritable(fd, True)  # held through the exec into stage 2
    except OSError:
        pass


def stage1():
    hold_helper()
    req = read_json()
    procs = scan(probe=req.get("probe", True))
    emit("procs", procs=procs, helper_python=sys.version.split()[0], uid=os.getuid(),
         protocol=PROTOCOL)
    if req.get("op") == "ps":
        return
    if req.get("op") == "check":
        emit("checks", **environment_checks(procs))
        return
    try:
        choice = read_json()
    except EOFError:
        return
    if isinstance(choice.get("pids"), list):
        return enter_many(choice, procs)
    pid = choice.get("pid")
    if pid is None:
        return
    enter(pid, choice, procs)


def target_state(pid, procs):
    """Check the chosen process: its stage 2 state and its interpreter's path."""
    info = next((p for p in procs if p["pid"] == pid), None)
    if info is None:
        try:
            uptime = float(_read("/proc/uptime").split()[0])
            info = proc_info(pid, uptime)
        except OSError:
            info = None
        if info is None:
            if not os.path.exists("/proc/%d" % pid):
                raise Fail("no-such-process", "no process %d in the target" % pid,
                           "`kubectl wand ps` lists the processes")
            raise Fail("not-python", "process %d is not a Python process" % pid,
                       "`kubectl wand ps` lists the Python processes")
    check_target(info, procs)
    return {"pid": pid, "start": info["start_ticks"], "info": info}, \
        info["exe"].replace(" (deleted)", "")


def enter(pid, choice, procs):
    """Check the chosen process, then become stage 2 in its PID namespace and root."""
    state, exe = target_state(pid, procs)
    cache = open_cache(choice)  # the helper's own directory: before entering the target's root
    if cache:
        state["cache"] = cache
    state["pid"] = enter_pid_namespace(pid)
    become_stage2(pid, exe, state)


def become_stage2(pid, exe, state):
    """chroot into the target's root and exec its interpreter on the same stdin/stdout."""
    try:
        enter_root(pid)
    except PermissionError:
        raise Fail("permission", "cannot enter the root filesystem of process %d" % pid,
                   "the helper needs CAP_SYS_CHROOT and CAP_SYS_PTRACE (run as root), or run "
                   "as the target's user on the same filesystem")
    if not os.path.exists(exe):
        raise Fail("no-exe", "the target's interpreter %s is not reachable" % exe)
    if CODE_CACHE:
        os.set_inheritable(CODE_CACHE["fd"], True)
        state["code"] = CODE_CACHE
    os.execv(exe, [exe, "-I", "-S", "-c", "import os,sys\n" + LOADER + STAGE2,
                   "kubectl-wand-stage2", json.dumps(state), SRC])


def enter_many(choice, procs):
    """Stage 1 of a fan-out. Processes that run one interpreter binary in our PID namespace
    and one root (a server's workers) share one stage 2, which forks a child per process:
    a fork costs ~1 ms where starting an interpreter costs ~20 ms of CPU. Others get a child
    of ours each, which becomes its own stage 2."""
    pids = [p for p in choice["pids"] if isinstance(p, int)]
    states, exes, roots = [], set(), set()
    for pid in pids:
        try:
            state, exe = target_state(pid, procs)
            st = os.stat(PROC + "/%d/root/" % pid)
            exes.add(exe)
            roots.add((st.st_dev, st.st_ino))
            if enter_pid_namespace_needed(pid):
                exes.add(None)
        except Fail as e:
            state = {"pid": pid, "error": [e.code, e.message, e.hint, e.extra]}
        except OSError as e:
            state = {"pid": pid, "error": ["no-such-process", "process %d: %s" % (pid, e),
                                           None, {}]}
        states.append(state)
    ok = [st for st in states if "error" not in st]
    if ok and len(exes) == 1 and None not in exes and len(roots) == 1:
        state = {"fan": states}
        cache = open_cache(choice)
        if cache:
            state["cache"] = cache
        become_stage2(ok[0]["pid"], exes.pop(), state)
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


def enter_pid_namespace_needed(pid):
    try:
        return os.stat("/proc/self/ns/pid").st_ino != os.stat("/proc/%d/ns/pid" % pid).st_ino
    except OSError:
        return False


def enter_pid_namespace(pid):
    """From the host into a container's PID namespace: returns the target's PID there.

    After the chroot, /proc is the target's own procfs, so PIDs must be the ones of its
    namespace, for us too: setns() + fork() puts a child there (the parent only waits).
    """
    try:
        if os.stat("/proc/self/ns/pid").st_ino == os.stat("/proc/%d/ns/pid" % pid).st_ino:
            return pid
        nspid = _status(pid).get("NSpid", "").split()
    except OSError:
        return pid
    if len(nspid) < 2:
        return pid
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/proc/%d/ns/pid" % pid, os.O_RDONLY)
    if libc.setns(fd, 0x20000000) != 0:  # CLONE_NEWPID
        raise Fail("permission", "cannot enter the PID namespace of process %d: %s"
                   % (pid, os.strerror(ctypes.get_errno())),
                   "run as root (CAP_SYS_ADMIN) to inject into a containerised process by "
                   "host PID, or use its docker/ or Kubernetes target form")
    os.close(fd)
    child = os.fork()
    if child:
        _, status = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode")
                 else status >> 8)
    return int(nspid[-1])


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
