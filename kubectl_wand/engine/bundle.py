"""debugpy, shipped to targets that lack it: its pure-Python tree as a deterministic .tgz."""

import importlib.util
import io
import os
import re
import threading
from pathlib import Path

from kubectl_wand.errors import WandError
from kubectl_wand.paths import cache_dir

# Compiled parts and the ptrace-based attach helper: the target neither needs nor should get them.
SKIP_DIRS = {"__pycache__", "pydevd_attach_to_process", "_pydevd_frame_eval_ext"}
SKIP_SUFFIXES = (".so", ".pyd", ".dll", ".dylib", ".pyx", ".pxd", ".c", ".cpp", ".h", ".exe",
                 ".pdb", ".pyc")


# The single-file zipapp (krew/build.py) carries this archive prebuilt instead of debugpy itself
# (debugpy's wheel has compiled parts; the targets only need its pure-Python tree).
BUNDLED = "debugpy.tgz"


def bundled_tgz():
    """The prebuilt archive shipped inside the zipapp, or None (a normal install)."""
    import pkgutil

    try:
        return pkgutil.get_data(__name__.rpartition(".")[0], BUNDLED)
    except (OSError, ValueError):
        return None


def _extract_bundled(data: bytes) -> Path:
    """The zipapp's debugpy tree, unpacked once into the cache (keyed by its hash)."""
    import hashlib
    import shutil
    import tarfile
    import tempfile

    dest = cache_dir() / f"debugpy-tree-{hashlib.sha256(data).hexdigest()[:16]}"
    if (dest / "debugpy" / "__init__.py").is_file():
        return dest / "debugpy"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".debugpy-tree-", dir=str(dest.parent)))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
            for m in tf.getmembers():  # our own archive: plain files under debugpy/ only
                if not m.isfile() or m.name.startswith("/") or ".." in m.name.split("/"):
                    raise WandError("the bundled debugpy archive is damaged", code="no-debugpy")
            tf.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        try:
            tmp.rename(dest)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest / "debugpy"


def debugpy_dir() -> Path:
    spec = importlib.util.find_spec("debugpy")
    if spec is None or not spec.submodule_search_locations or \
            not os.path.isdir(list(spec.submodule_search_locations)[0]):
        data = bundled_tgz()
        if data is not None:
            return _extract_bundled(data)
        raise WandError("debugpy is not installed beside kubectl-wand",
                        "pip install debugpy (it is a dependency of kubectl-wand)",
                        code="no-debugpy")
    return Path(list(spec.submodule_search_locations)[0])


def build(src: Path) -> bytes:
    import gzip
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for root, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(files):
                if name.endswith(SKIP_SUFFIXES):
                    continue
                path = Path(root) / name
                arc = "debugpy/" + str(path.relative_to(src))
                info = tarfile.TarInfo(arc)
                data = path.read_bytes()
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def _version(src: Path) -> str:
    """debugpy's version from its own _version.py (importlib.metadata costs ~20 ms)."""
    try:
        m = re.search(r'"version":\s*"([^"]+)"', (src / "_version.py").read_text("utf-8"))
        if m:
            return m.group(1)
    except OSError:
        pass
    try:
        from importlib.metadata import version as dist_version

        return dist_version("debugpy")
    except Exception:
        return "unknown"


_archive: dict = {}
_archive_lock = threading.Lock()


def _load():
    with _archive_lock:
        if "data" not in _archive:
            import hashlib

            data = debugpy_tgz()
            _archive["key"] = hashlib.sha256(data).hexdigest()[:32]
            _archive["data"] = data


def prefetch():
    """Read the archive and its key in a thread (an attach starts this while the injector
    starts); archive() and archive_key() then wait for it. Errors surface there."""
    def run():
        try:
            _load()
        except Exception:
            pass

    threading.Thread(target=run, daemon=True, name="wand-bundle").start()


def archive() -> bytes:
    _load()
    return _archive["data"]


def archive_key() -> str:
    """What names this archive in a helper's cache of compiled trees (its sha256, shortened)."""
    _load()
    return _archive["key"]


def debugpy_tgz() -> bytes:
    """The archive, built once per debugpy version and cached (or the zipapp's prebuilt one)."""
    data = bundled_tgz()
    if data is not None:
        return data
    src = debugpy_dir()
    version = _version(src)
    cache = cache_dir() / f"debugpy-{version}.tgz"
    try:
        return cache.read_bytes()
    except OSError:
        pass
    data = build(src)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp%d" % os.getpid())
        tmp.write_bytes(data)
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home still works, just slower
    return data
