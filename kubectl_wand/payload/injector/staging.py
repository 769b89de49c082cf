# Part of the injector (payload.INJECTOR_PARTS): shipped and imported as one text with the
# others, so it shares their names; it is not a module of its own.

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
