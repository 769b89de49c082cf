"""Code that would end the target process (not just the injected thread) is found statically
before anything is sent; output text is made printable. Pure functions."""

import pytest

from kubectl_wand.engine import runcode
from kubectl_wand.errors import WandError


@pytest.mark.parametrize("code, found", [
    ("import os\nos._exit(0)", "line 2: os._exit()"),
    ("import os as o\no._exit(1)", "os._exit()"),
    ("from os import _exit\n_exit(0)", "os._exit()"),
    ("from os import _exit as bye\nbye(2)", "os._exit()"),
    ("import posix\nposix._exit(0)", "os._exit()"),
    ("import os\nos.abort()", "os.abort()"),
    ("import os\nos.execvp('sh', ['sh'])", "os.execvp()"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", "os.kill()"),
    ("import os\nos.kill(0, 9)", "os.kill()"),  # its whole process group
    ("import os\nos.killpg(os.getpgrp(), 15)", "os.killpg()"),
    ("from os import kill, getpid\nkill(getpid(), 9)", "os.kill()"),
    ("import signal\nsignal.raise_signal(signal.SIGINT)", "signal.raise_signal()"),
    ("import signal as s, threading\ns.pthread_kill(threading.main_thread().ident, 2)",
     "signal.pthread_kill()"),
    ("def f():\n    import os\n    if True:\n        os._exit(3)\nf()", "line 4: os._exit()"),
])
def test_found(code, found):
    got = runcode.fatal_calls(code.encode())
    assert len(got) == 1 and found in got[0], got


@pytest.mark.parametrize("code", [
    "import sys\nsys.exit(3)",  # ends the injected code only
    "raise SystemExit",
    "import os\nos.kill(os.getpid(), 0)",  # signal 0 only checks
    "import os\nos.kill(12345, 9)",  # another process: the user's business
    "import os\nos.kill(os.getppid(), 1)",
    "import subprocess\np = subprocess.Popen(['sleep', '1'])\np.kill()",
    "print('os._exit(0) is only text here')",
    "x = {'_exit': 1}\nprint(x['_exit'])",
    "class O:\n    def _exit(self): pass\nO()._exit()",
])
def test_not_found(code):
    assert runcode.fatal_calls(code.encode()) == []


def test_unparsable_code_is_checked_by_name():
    got = runcode.fatal_calls(b"import os\nos._exit(0)\ndef broken(:\n")
    assert got and "line 2" in got[0] and "by name" in got[0]
    assert runcode.fatal_calls(b"def broken(:\n    pass\n") == []


def test_refuse_fatal_unless_forced():
    with pytest.raises(WandError) as ei:
        runcode.refuse_fatal(b"import os\nos._exit(0)", force=False)
    assert ei.value.exit_code == 2 and ei.value.code == "would-kill"
    assert "--force" in ei.value.hint and "os._exit()" in ei.value.message
    runcode.refuse_fatal(b"import os\nos._exit(0)", force=True)
    runcode.refuse_fatal(b"print(1)", force=False)


def test_clean_text_turns_undecodable_bytes_into_replacement_characters():
    assert runcode.clean_text("caf\udce9 ok") == "caf\ufffd ok"
    assert runcode.clean_text("\ud800x\udfff") == "\ufffdx\ufffd"
    assert runcode.clean_text("plain €") == "plain €"
    runcode.clean_text("caf\udce9").encode("utf-8")  # strict: no error
