"""Child processes that must not outlive the CLI."""

import os
import sys


def die_with_parent():
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies (Linux), or
    None elsewhere. Without it a killed CLI would leave a `kubectl port-forward` running for
    good, and a `docker exec` client to a container that is gone hangs forever.

    The kernel sends the signal when the *thread* that started the child ends, so only use
    it from threads that outlive their children (the main thread, a watcher, a session's)."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def fn():
        prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
        if os.getppid() != parent:  # the CLI died before the prctl took effect
            os._exit(1)

    return fn


_cache = []


def _prctl():
    if not _cache:
        fn = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError, ImportError):
                fn = None
        _cache.append(fn)
    return _cache[0]
