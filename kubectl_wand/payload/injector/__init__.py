"""The injector as one module: its parts (payload.INJECTOR_PARTS), concatenated exactly as a
helper receives them, run in this namespace — so tests that import it, and monkeypatch its
names (``PROC``…), see one module, as the shipped text is one."""

from kubectl_wand.payload import source as _source

exec(compile(_source("injector"), "kubectl-wand-injector", "exec"), globals())
