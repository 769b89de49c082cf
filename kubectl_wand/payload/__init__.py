"""Stdlib-only code that runs beside or inside the target; never imports the CLI.

The CLI only reads these files as text and ships them: ``boot`` starts a helper Python,
``injector`` runs in it (process table, staging, ``sys.remote_exec``, acknowledgement), ``agent``
runs inside the target, ``forward`` relays one TCP connection over stdio.
"""

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The one-liner a helper Python runs: it reads a length-prefixed source from stdin unbuffered
# (so a later exec() of another interpreter can keep reading the same stream) and runs it.
BOOT = (
    "import os,sys\n"
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
    "s=_r(int(h))\n"
    "exec(compile(s,'kubectl-wand-injector','exec'),{'__name__':'__wand__','SRC':s.decode()})\n"
)


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """Text of one payload module, e.g. ``source('agent')`` (read once per CLI run: a fan-out
    ships it to every target)."""
    try:
        return (HERE / f"{name}.py").read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # inside the zipapp: read through its loader
        import pkgutil

        return pkgutil.get_data(__name__, f"{name}.py").decode("utf-8")
