"""Where this user's kubectl-wand files live on the operator's machine (one place)."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """~/.cache/kubectl-wand (or $XDG_CACHE_HOME/kubectl-wand): debugpy archives, compiled
    trees for pid/N, interpreters found per image, completion tables, shell history."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kubectl-wand"
