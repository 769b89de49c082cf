"""-v: every external command is echoed to stderr as a shell line, before it runs."""

import shlex
import sys

VERBOSE = False


def trace(argv):
    if VERBOSE:
        from kubectl_wand.safe_text import safe

        shown = [a if len(a) < 200 else a[:60] + "…" for a in argv]
        print("+ " + safe(shlex.join(shown), 0), file=sys.stderr, flush=True)
