# Part of the injector (payload.INJECTOR_PARTS): shipped and imported as one text with the
# others, so it shares their names; it is not a module of its own.

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
