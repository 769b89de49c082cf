"""Stdlib-only code that runs beside or inside the target; never imports the CLI.

The CLI only reads these files as text and ships them: ``boot`` starts a helper Python,
``injector`` runs in it (process table, staging, ``sys.remote_exec``, acknowledgement), ``agent``
runs inside the target, ``forward`` relays one TCP connection over stdio.
"""

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Compiles the injector (~2000 lines: ~10 ms per interpreter) once per
# interpreter build and keeps the code object marshalled in the helper's own cache directory,
# keyed by the source's hash. Only a directory and files of our own uid that nobody else may
# write to are read: marshal data is code.
LOADER = r"""
def _load(s, fd, key):
    import marshal
    n = None
    if fd is not None and key.isalnum():
        n = 'injector-%s-%s%s-%x' % (key, sys.implementation.cache_tag, sys.abiflags, sys.hexversion)
        try:
            f = os.open(n, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
            try:
                st = os.fstat(f)
                if st.st_uid == os.getuid() and not st.st_mode & 0o022 and \
                        st.st_mode & 0o170000 == 0o100000:
                    b = b''
                    while len(b) < st.st_size:
                        c = os.read(f, st.st_size - len(b))
                        if not c:
                            break
                        b += c
                    return marshal.loads(b)
            finally:
                os.close(f)
        except (OSError, ValueError, EOFError, TypeError):
            pass
    c = compile(s, 'kubectl-wand-injector', 'exec')
    if n:
        t = '.%s.%d' % (n, os.getpid())
        try:
            f = os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
            try:
                b = marshal.dumps(c)
                while b:
                    b = b[os.write(f, b):]
            finally:
                os.close(f)
            os.rename(t, n, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError:
            pass
    return c


def _cache_dir(path):
    if not path.startswith('/') or '\0' in path:
        return None
    try:
        os.makedirs(path, 0o700, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        os.close(fd)
        return None
    return fd
"""

# The one-liner a helper Python runs: it reads a length-prefixed source from stdin unbuffered
# (so a later exec() of another interpreter can keep reading the same stream) and runs it.
# The header is ``<length>[ <cache dir> <source hash>]``.
BOOT = (
    "import os,sys\n"
    "L=" + repr(LOADER) + "\n"
    "exec(L)\n"
    "def _r(n):\n"
    " b=b''\n"
    " while len(b)<n:\n"
    "  c=os.read(0,n-len(b))\n"
    "  if not c: raise SystemExit(3)\n"
    "  b+=c\n"
    " return b\n"
    "h=b''\n"
    "while not h.endswith(b'\\n'):\n"
    " c=os.read(0,1)\n"
    " if not c: raise SystemExit(3)\n"
    " h+=c\n"
    "h=h.decode().split()\n"
    "s=_r(int(h[0]))\n"
    "d=_cache_dir(h[1]) if len(h)==3 else None\n"
    "exec(_load(s,d,h[-1]),{'__name__':'__wand__','SRC':s.decode(),'LOADER':L,"
    "'CODE_CACHE':d is not None and {'fd':d,'key':h[2]}})\n"
)

@lru_cache(maxsize=None)
def source_key(name: str) -> str:
    """Hash naming a payload's compiled code in a helper's cache."""
    import zlib  # not a security boundary (the files' ownership is): hashlib costs 3 ms

    data = source(name).encode()
    return "%08x%08x" % (zlib.crc32(data), len(data))


# The injector is one text (it starts as `python -c BOOT` reading its source from stdin, and
# may exec itself into another interpreter with the source in argv), kept as files by concern;
# they share one namespace, in this order. payload/injector/__init__.py runs the same text for
# tests, so `kubectl_wand.payload.injector` is exactly what a helper runs.
INJECTOR_PARTS = ("binaries",) + tuple("injector/" + n for n in (
    "wire", "procs", "interpreter", "checks", "staging", "cache", "stacks", "inject", "fanout",
    "stages"))
# What runs inside the target: agent.py and the debugger parts it uses, as one source (one
# compile, one namespace; the injector caches its code object by this text)
AGENT_PARTS = ("agent", "stopper", "debugger", "dapgate")
SHIPPED = {"injector": INJECTOR_PARTS, "agent": AGENT_PARTS}


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """Text of one payload as shipped, e.g. ``source('agent')`` (read once per CLI run: a
    fan-out ships it to every target)."""
    return "\n".join(_text(part) for part in SHIPPED.get(name, (name,)))


def _text(name: str) -> str:
    try:
        return (HERE / f"{name}.py").read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # inside the zipapp: read through its loader
        import pkgutil

        return pkgutil.get_data(__name__, f"{name}.py").decode("utf-8")


def agent_source() -> str:
    """What runs inside the target (``source("agent")``: all of AGENT_PARTS)."""
    return source("agent")
