"""Every image layout of tests/bed/layouts.py x every command, on Docker, with no flags: the
helper finds its own interpreter (never the target's) or says precisely why it cannot."""

import json
import subprocess
import uuid

import pytest

from kubectl_wand.dap import DAPClient
from tests.bed import layouts as L
from tests.conftest import Attached, breakpoint_line, remove_container, wait_for_line, wand

BY_NAME = {lay.name: lay for lay in L.LAYOUTS}


@pytest.fixture(scope="session")
def layout_images(docker):
    bid = L.base_id()
    return {lay.name: L.build(lay, bid) for lay in L.LAYOUTS}


class Target:
    def __init__(self, layout, image, user=None):
        self.layout = layout
        self.name = "wand-layout-" + uuid.uuid4().hex[:10]
        argv = ["docker", "run", "-d", "--rm", "--name", self.name, "--network", "none",
                "--user", user or layout.user, "--cap-drop", "ALL", *layout.run, image,
                *layout.argv]
        subprocess.run(argv, check=True, capture_output=True)
        logs = subprocess.Popen(["docker", "logs", "-f", self.name], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            wait_for_line(logs.stdout, lambda line: "READY" in line, 60)
        finally:
            logs.kill()
            logs.wait()
        self.target = "docker/" + self.name

    def py(self, code, user=None):
        argv = ["docker", "exec"] + (["-u", user] if user else []) + [
            self.name, self.layout.python, "-c", code]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    def get(self, path="/x"):
        return self.py("import urllib.request as u;print(u.urlopen('http://127.0.0.1:8000"
                       + path + "', timeout=25).read().decode(), end='')")

    def app_row(self):
        cp = wand("ps", self.target, "-o", "json")
        assert cp.returncode == 0, cp.stderr
        rows = [p for p in json.loads(cp.stdout)[0]["processes"]
                if any("http_app" in a for a in p["argv"])]
        assert len(rows) == 1, cp.stdout
        return rows[0]

    def remove(self):
        remove_container(self.name)


@pytest.fixture
def target(layout_images, request):
    made = []

    def start(name, **kw):
        t = Target(BY_NAME[name], layout_images[name], **kw)
        made.append(t)
        return t

    yield start
    for t in made:
        t.remove()


# Every layout gets ps and exec by default; every command (stacks, loglevel, validate, attach
# with a breakpoint) runs on these by default and on all of them with `-m layout_matrix`.
FULL_BY_DEFAULT = ("off-path-user", "distroless", "venv-copies", "debug-env-off")


def _layouts():
    for lay in L.LAYOUTS:
        if lay.copy_from:
            continue
        if lay.name in FULL_BY_DEFAULT:
            yield pytest.param(lay.name, True, id=lay.name + "-full")
        else:
            yield pytest.param(lay.name, False, id=lay.name + "-short")
            yield pytest.param(lay.name, True, id=lay.name + "-full",
                               marks=pytest.mark.layout_matrix)


@pytest.mark.parametrize("name,full", list(_layouts()))
def test_every_command_on_every_layout(target, name, full):
    t = target(name)
    row = t.app_row()
    assert row["python"].startswith("3.14."), row
    if t.layout.refused:
        assert not row["attachable"] and t.layout.refused in row["reason"]
        cp = wand("exec", t.target, "-c", "print(1)")
        assert cp.returncode == 1 and t.layout.refused in cp.stderr, cp.stderr
        if not full:
            return
        # memory is read without running code: stacks work with remote debugging off
        assert wand("stacks", t.target).returncode == 0
        assert wand("validate", t.target).returncode != 0
        return
    assert row["attachable"], row
    cp = wand("exec", t.target, "-c", "import sys; print(sys.executable)")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip().endswith(("python3", "python3.14", "python")), cp.stdout
    if not full:
        return
    cp = wand("stacks", t.target, "-o", "json")
    assert cp.returncode == 0, cp.stderr
    main = next(th for th in json.loads(cp.stdout)["threads"] if th["main"])
    assert any("serve_forever" in f[2] for f in main["frames"])
    cp = wand("loglevel", t.target, "DEBUG", "--pid", str(row["pid"]))
    assert cp.returncode == 0, cp.stderr
    cp = wand("validate", t.target)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    line = breakpoint_line("http_app.py")
    with Attached(t.target, "--local-port", "0") as a:
        dap = DAPClient("127.0.0.1", a.port)
        dap.attach(breakpoints={L.APP: [line]})
        req = subprocess.Popen(["docker", "exec", t.name, t.layout.python, "-c",
                                "import urllib.request as u;"
                                "u.urlopen('http://127.0.0.1:8000/p', timeout=30)"])
        stop = dap.stopped_locals(timeout=30)
        assert stop["locals"]["greeting"] == "'hello /p'"
        dap.request("continue", threadId=stop["thread"])
        assert req.wait(timeout=30) == 0
        dap.close()
        rc, err = a.stop()
    assert rc == 0, err
    assert t.get("/after").stdout.startswith("hello /after")


# Code the app's user plants where the old design ran files as root: it leaves a mark if it
# ever runs with uid 0 — in the helper (its own /tmp, or the target's through /proc/1/root) or
# in the target.
PLANT = ("\nimport os as _o\nif _o.geteuid() == 0:\n"
         "    for _p in ('/tmp/pwned-root', '/proc/1/root/tmp/pwned-root'):\n"
         "        try:\n            open(_p, 'w').close()\n        except OSError:\n"
         "            pass\n")
PLANTS = r"""
import os, sys
plant = sys.argv[1]
lib = '/opt/py/lib/python3.14'
for f in ('encodings/__init__.py', 'site.py', 'json/__init__.py', 'socket.py', 'os.py'):
    with open(os.path.join(lib, f), 'a') as fh:
        fh.write(plant)
with open(os.path.join(lib, 'sitecustomize.py'), 'w') as fh:
    fh.write(plant)
# a decoy interpreter named like an older Python, and a fake shared library
with open('/opt/py/bin/python3.13', 'w') as fh:
    fh.write(MARK)
os.chmod('/opt/py/bin/python3.13', 0o755)
with open('/opt/py/lib/libpython3.14.so.1.0', 'w') as fh:
    fh.write('not a library')
print('PLANTED')
"""
MARK = '#!/bin/sh\n[ "$(id -u)" = 0 ] && touch /tmp/pwned-root\n'
# A bystander whose exe looks like an older Python: a copy of sleep named python3.13, which
# is then deleted and replaced by a script (the old design stripped " (deleted)" and ran it)
DECOY = ("import os, shutil, subprocess, sys\n"
         "shutil.copy('/usr/bin/sleep', '/tmp/python3.13')\n"
         "p = subprocess.Popen(['/tmp/python3.13', '600'])\n"
         "os.unlink('/tmp/python3.13')\n"
         "open('/tmp/python3.13', 'w').write(sys.argv[1])\n"
         "os.chmod('/tmp/python3.13', 0o755)\n"
         "print(p.pid, flush=True)\n"
         "p.wait()\n")


def marks(t):
    """pwned marks in the target and in its helper(s)."""
    found = t.py("import glob; print(glob.glob('/tmp/pwned*'))").stdout.strip()
    helpers = subprocess.run(["docker", "ps", "-q", "--filter", "label=kubectl-wand.helper-for="
                              + subprocess.run(["docker", "inspect", "-f", "{{.Id}}", t.name],
                                               capture_output=True, text=True).stdout.strip()],
                             capture_output=True, text=True).stdout.split()
    for h in helpers:
        found += subprocess.run(["docker", "exec", h, "/tmp/kubectl-wand-python", "-c",
                                 "import glob; print(glob.glob('/tmp/pwned*'))"],
                                capture_output=True, text=True).stdout.strip()
    return found.replace("[]", "")


def test_code_planted_by_the_app_user_never_runs_as_root(target):
    t = target("off-path-user")
    cp = subprocess.run(["docker", "exec", "-u", "1000", t.name, t.layout.python, "-c",
                         "MARK = %r\n" % MARK + PLANTS, PLANT], capture_output=True, text=True)
    assert "PLANTED" in cp.stdout, cp.stderr
    # the decoy is listed for what it is, never run to ask
    decoy = subprocess.Popen(["docker", "exec", "-u", "1000", t.name, t.layout.python, "-c",
                              DECOY, MARK], stdout=subprocess.PIPE, text=True)
    decoy_pid = int(decoy.stdout.readline())
    app = t.app_row()
    assert app["attachable"]
    pid = str(app["pid"])
    data = json.loads(wand("ps", t.target, "--all", "-o", "json").stdout)
    row = {p["pid"]: p for p in data[0]["processes"]}[decoy_pid]
    assert row["python"] == "3.13" and not row["attachable"]
    cp = wand("exec", t.target, "--pid", pid, "-c", "import sys; print(sys.executable)")
    assert cp.returncode == 0 and cp.stdout.strip() == "/opt/py/bin/python3.14", cp.stderr
    for args in (["stacks", t.target, "--pid", pid], ["loglevel", t.target, "INFO", "--pid", pid],
                 ["validate", t.target, "--pid", pid],
                 ["ps", t.target, "--all"]):
        assert wand(*args).returncode == 0, args
    decoy.kill()
    assert marks(t) == ""


def test_deleted_and_replaced_interpreter_is_reported_not_reopened(target):
    t = target("off-path-user")
    swap = ("import os\nos.unlink('/opt/py/bin/python3.14')\n"
            "open('/opt/py/bin/python3.14', 'w').write('#!/bin/sh\\ntouch /tmp/pwned-root\\n')\n"
            "os.chmod('/opt/py/bin/python3.14', 0o755)\n")
    # the copy of the interpreter that still runs does the swap (it has no shell)
    subprocess.run(["docker", "exec", "-u", "1000", t.name, "/opt/py/bin/python3.14", "-c",
                    swap], check=True, capture_output=True)
    row = t.app_row()
    assert not row["attachable"] and "deleted or replaced" in row["reason"], row
    cp = wand("exec", t.target, "-c", "print(1)")
    assert cp.returncode == 1 and "deleted or replaced" in cp.stderr, cp.stderr
    assert marks(t) == ""


def test_image_flag_takes_effect_and_is_reported(target):
    """--image always picks the helper (one helper per target and image), validate names it
    as the user did, and a helper image without the target's Python says so precisely."""
    t = target("off-path-user")
    cp = wand("exec", t.target, "--image", L.BASE, "-c", "import sys; print(sys.executable)")
    assert cp.returncode == 0 and cp.stdout.strip() == "/opt/py/bin/python3.14", cp.stderr
    cp = wand("validate", t.target, "--image", L.BASE)
    assert cp.returncode == 0 and L.BASE in cp.stdout, cp.stdout
    old = "wand-bed/py313:latest"
    cp = wand("exec", t.target, "--image", old, "-c", "print(1)")
    assert cp.returncode == 1, cp.stdout
    assert "no Python 3.14" in cp.stderr and "--image" in cp.stderr, cp.stderr
    cp = wand("exec", t.target, "-c", "print(2)")  # the app's own image again: its own helper
    assert cp.returncode == 0 and cp.stdout == "2\n", cp.stderr
    helpers = subprocess.run(["docker", "ps", "--filter", "label=kubectl-wand.helper-for=" +
                              subprocess.run(["docker", "inspect", "-f", "{{.Id}}", t.name],
                                             capture_output=True, text=True).stdout.strip(),
                              "--format", "{{.Label \"kubectl-wand.image\"}}"],
                             capture_output=True, text=True).stdout.split()
    assert sorted(helpers) == sorted([L.BASE, old, BY_NAME["off-path-user"].image(L.base_id())])


def test_helper_image_whose_python3_is_older_runs_its_own_matching_interpreter(target,
                                                                                layout_images):
    """--image whose `python3` is 3.13 beside a python3.14: stage 1 runs in 3.13, stage 2
    becomes the image's own python3.14 (never the target's), which reads the target's
    off-PATH interpreter through a link to /proc/PID/exe."""
    t = target("off-path-user")
    image = layout_images["two-pythons"]
    cp = wand("exec", t.target, "--image", image, "-v", "-c", "import sys; print(sys.executable)")
    assert cp.returncode == 0 and cp.stdout.strip() == "/opt/py/bin/python3.14", cp.stderr
    cp = wand("stacks", t.target, "--image", image)
    assert cp.returncode == 0, cp.stderr
