"""Reading, never running: what a binary is, which interpreter may inject, paths in a root.

Shipped in front of the injector (payload.source concatenates them), stdlib only. The trust rule
(docs/security.md): the helper never *executes* a file the target can modify — its interpreter,
libraries, stdlib or a probe. Whether a process is Python, its exact version and build flavour
come from the ELF headers of its binary (the ``.PyRuntime`` section starts with CPython's debug
offsets: the ``xdebugpy`` cookie, PY_VERSION_HEX and the free-threading flag), opened read-only.
"""

import os
import re
import stat
import struct

RUNTIME_SECTION = b".PyRuntime"
COOKIE = b"xdebugpy"
PY_NAME = re.compile(r"^python(\d)(?:\.(\d+))?(t?)(?:-[a-z0-9]+)?$")
LIBPY_NAME = re.compile(r"^libpython(\d)\.(\d+)(t?)\.so")
HELPER_PYTHON = re.compile(r"^(?:/[A-Za-z0-9._+-]+)*/?python[0-9.]*t?$")
ELF_MAX = 64 << 20  # headers beyond this offset are not believed (a hostile file)


def _pread(f, off, n):
    if off < 0 or n < 0 or off + n > ELF_MAX:
        raise ValueError("ELF offset out of range")
    f.seek(off)
    data = f.read(n)
    if len(data) != n:
        raise ValueError("truncated ELF")
    return data


def elf_facts(f):
    """What an open binary says of itself: ``runtime`` (version hex, free-threaded) when it
    holds CPython's runtime, ``layout`` (where CPython's remote_exec will look for it, relative
    to the load address), ``build_id``, ``needed`` libraries. None: not a 64-bit ELF."""
    head = f.read(64)
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return None
    (_, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
     shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", head, 16)
    if shnum > 4096 or phnum > 512 or shentsize < 64 or phentsize < 56 or shstrndx >= shnum:
        return None
    load = None
    for i in range(phnum):
        p_type, _, _, p_vaddr, _, _, _, p_align = struct.unpack(
            "<IIQQQQQQ", _pread(f, phoff + i * phentsize, 56))
        if p_type == 1:  # PT_LOAD
            load = p_vaddr - (p_vaddr % p_align if p_align else 0)
            break
    table = _pread(f, shoff, shnum * shentsize)
    secs = [struct.unpack_from("<IIQQQQIIQQ", table, i * shentsize) for i in range(shnum)]
    names = secs[shstrndx]
    strtab = _pread(f, names[4], min(names[5], 1 << 20))

    def name(sec):
        end = strtab.find(b"\0", sec[0])
        return strtab[sec[0]:end if end >= 0 else len(strtab)]

    out = {"runtime": None, "layout": None, "build_id": None, "needed": []}
    by_name = {name(s): s for s in secs}
    rt = by_name.get(RUNTIME_SECTION)
    if rt is not None and rt[1] != 8 and rt[5] >= 24:  # not NOBITS: initialised data
        cookie, version, ft = struct.unpack("<8sQQ", _pread(f, rt[4], 24))
        if cookie == COOKIE:
            out["runtime"] = (version, bool(ft))
            out["layout"] = rt[3] - (load or 0)
    note = by_name.get(b".note.gnu.build-id")
    if note is not None and 16 < note[5] <= 256:
        data = _pread(f, note[4], note[5])
        namesz, descsz = struct.unpack_from("<II", data)
        start = 12 + (namesz + 3) // 4 * 4
        out["build_id"] = data[start:start + descsz].hex()
    dyn, dynstr = by_name.get(b".dynamic"), by_name.get(b".dynstr")
    if dyn is not None and dynstr is not None and dyn[5] <= 1 << 16:
        strs = _pread(f, dynstr[4], min(dynstr[5], 1 << 20))
        raw = _pread(f, dyn[4], dyn[5])
        for i in range(0, len(raw) - 15, 16):
            tag, val = struct.unpack_from("<qQ", raw, i)
            if tag == 0:
                break
            if tag == 1 and val < len(strs):  # DT_NEEDED
                out["needed"].append(strs[val:strs.find(b"\0", val)].decode("utf-8", "replace"))
    return out


def read_facts(path, opener=None):
    """elf_facts of a file (None if unreadable or not ELF); ``opener`` gives the fd."""
    try:
        fd = opener() if opener else os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return elf_facts(f)
    except (OSError, ValueError, struct.error):
        return None
    finally:
        os.close(fd)


def version_text(hexversion):
    """'3.14.0', '3.15.0a2' from PY_VERSION_HEX."""
    major, minor, micro = hexversion >> 24 & 255, hexversion >> 16 & 255, hexversion >> 8 & 255
    level, serial = hexversion >> 4 & 15, hexversion & 15
    text = "%d.%d.%d" % (major, minor, micro)
    if level != 15:
        text += {10: "a", 11: "b", 12: "rc"}.get(level, "?") + str(serial)
    return text


def compatible(a, b):
    """Whether an interpreter of version text ``a`` can inject into one of ``b``: the same
    major.minor, and the exact version when either is a pre-release (CPython's own rule)."""
    pa, pb = a.split("."), b.split(".")
    if pa[:2] != pb[:2]:
        return False
    final = re.compile(r"^\d+$")
    if not (final.match(pa[2] if len(pa) > 2 else "0") and final.match(pb[2] if len(pb) > 2
                                                                        else "0")):
        return a == b
    return True


def open_in(root_fd, path, flags=os.O_RDONLY, dir_only=False):
    """Open ``path`` below ``root_fd`` one component at a time, never following a symlink
    (the target's user may plant one anywhere it can write): an fd, or OSError."""
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise OSError(22, "relative component in " + path)
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            f = (flags if last and not dir_only else os.O_RDONLY | os.O_DIRECTORY)
            nfd = os.open(part, f | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


# ---------------------------------------------------------------- interpreter options

def interpreter_options(argv):
    """(single-letter flags, -X options) given to the interpreter itself, i.e. before the
    script, ``-c`` or ``-m``; empty when argv[0] does not name a Python."""
    flags, xopts = set(), []
    if not argv or not PY_NAME.match(os.path.basename(argv[0]).split(" ")[0]):
        return flags, xopts
    args, i = argv[1:], 0
    while i < len(args):
        a = args[i]
        if a == "--" or a == "-" or not a.startswith("-"):
            break
        if a.startswith("--"):
            i += 2 if a == "--check-hash-based-pycs" else 1
            continue
        for j in range(1, len(a)):
            ch = a[j]
            if ch in "cm":
                return flags, xopts
            if ch in "XW":
                value = a[j + 1:]
                if not value:
                    i += 1
                    value = args[i] if i < len(args) else ""
                if ch == "X":
                    xopts.append(value)
                break
            flags.add(ch)
        i += 1
    return flags, xopts


def remote_debug_off_by(argv, env):
    """Why CPython refuses remote debugging in this process, or None: -X disable-remote-debug,
    or PYTHON_DISABLE_REMOTE_DEBUG in its environment unless -E/-I made it ignore that."""
    flags, xopts = interpreter_options(argv)
    if "disable-remote-debug" in xopts:
        return "interpreter option -X disable-remote-debug"
    if any(item.startswith(b"PYTHON_DISABLE_REMOTE_DEBUG=") for item in env) and \
            not flags & {"E", "I"}:
        return "environment variable PYTHON_DISABLE_REMOTE_DEBUG"
    return None


# ---------------------------------------------------------------- trusting a host interpreter

def writable_by_others(st, me):
    """A file or directory someone other than root and ``me`` could change."""
    if st.st_uid not in (0, me):
        return True
    if stat.S_ISLNK(st.st_mode):
        return False
    return bool(st.st_mode & 0o022)


def trusted_tree(python, me=None, limit=20000):
    """None if the interpreter ``python`` — its file, every directory above it, and its whole
    standard library — can be changed only by root (or ``me``); else why not. Used where the
    helper is this very host (pid/N): a system interpreter may run as root, a user's may not."""
    me = os.geteuid() if me is None else me
    real = os.path.realpath(python)
    seen = 0
    for path in (python, real):
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i]) or "/"
            try:
                st = os.lstat(p)
            except OSError as e:
                return "%s: %s" % (p, e.strerror)
            if writable_by_others(st, me):
                return "%s can be changed by uid %d (owner) or its group/others" % (p, st.st_uid)
    prefix = os.path.dirname(os.path.dirname(real))
    m = PY_NAME.match(os.path.basename(real))
    libs = [os.path.join(prefix, "lib", "python%s.%s%s" % (m.group(1), m.group(2), m.group(3)))
            ] if m and m.group(2) else []
    for lib in libs:
        for top, dirs, files in os.walk(lib):
            for n in dirs + files:
                seen += 1
                if seen > limit:
                    return "%s has more than %d files to check" % (lib, limit)
                p = os.path.join(top, n)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if writable_by_others(st, me):
                    return "%s can be changed by uid %d (owner) or its group/others" % (
                        p, st.st_uid)
            dirs[:] = [d for d in dirs if d != "site-packages"]  # -I -S: never imported
    return None
