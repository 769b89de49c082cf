"""Security properties on real containers: the debug server listens on loopback only, staged
files are private, planted symlinks are never followed, no user-controlled text ever enters
generated source, and every injection leaves one audit line in the target's stderr."""

import glob
import json
import os
import re
import subprocess

import pytest

from kubectl_wand.payload.injector import STUB
from tests.conftest import WAND, Attached, wand
from tests.reliability.conftest import HTTP, poll

LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1 (/proc/net)
HOSTILE = "we'ird\" {x} }{ $(id) `id` \\ \n__import__('os').system('touch /tmp/pwned')#"


@pytest.fixture(scope="module")
def web(app_module):
    return app_module(*HTTP)


@pytest.fixture(scope="module")
def blocked(app_module):
    """A main thread that never picks an injection up: its staged files stay for us to see."""
    return app_module("python3", "/app/blocked.py")


def audit_count(c):
    return len(re.findall(r"^\[kubectl-wand\] \S+ pid=\d+ injected op=\w+ id=[0-9a-f]+",
                          c.logs(), re.M))


def test_debug_server_on_loopback_only_and_an_audit_line_per_injection(web):
    before = web.listening()
    base = audit_count(web)
    with Attached(f"docker/{web.name}", "--local-port", "0") as a:
        during = web.listening()
        rc, err = a.stop()
    assert rc == 0, err
    new = during - before
    assert (("0100007F", 5679) in new) and all(addr in LOOPBACK for addr, _ in new), new
    injections = 1  # attach (its detach goes over the session's own connection)
    for args in (["exec", "-c", "print(1)"], ["exec", "-c", "import os\nos._exit(1)"],
                 ["loglevel", "INFO"], ["exec", "-c", "raise ValueError"]):
        cp = wand(args[0], f"docker/{web.name}", *args[1:])
        injections += cp.returncode != 2  # the refused os._exit never reached the target
    assert audit_count(web) - base == injections == 4, web.logs()[-2000:]
    web.assert_healthy(8000)


def _stage_files(c):
    root = f"/proc/{c.host_pid()}/root"
    dirs = glob.glob(root + "/tmp/.kubectl-wand-*")
    return root, dirs


def _watch_blocked(c, argv, inspect):
    """Run argv (an injection that will block), call inspect(stage_dir) while its files are
    staged, then expect the 'blocked' failure."""
    p = subprocess.Popen([WAND, *argv, "--ack-timeout", "3", "--signal", "none"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        root, dirs = poll(lambda: (lambda r, d: (r, d) if d and glob.glob(d[0] + "/*.py")
                                   else None)(*_stage_files(c)), what="staged files")
        inspect(root, dirs[0])
    finally:
        out, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "did not pick up the injection" in out + err, (out, err)


def test_staged_files_are_private_and_the_stub_holds_no_user_text(blocked, tmp_path):
    script = tmp_path / HOSTILE.replace("/", "|")
    script.write_text("print('hi')\n")
    seen = {}

    def inspect(root, d):
        st = os.lstat(d)
        seen["dir"] = (st.st_uid, oct(st.st_mode & 0o7777))
        names = os.listdir(d)
        seen["files"] = {n: (os.lstat(f"{d}/{n}").st_uid, oct(os.lstat(f"{d}/{n}").st_mode & 0o777))
                         for n in names}
        stub = next(n for n in names if n.endswith(".py"))
        ident = stub[:-3]
        path = d[len(root):]
        seen["stub"] = open(f"{d}/{stub}").read()
        seen["expected"] = STUB % (json.dumps(path), json.dumps(ident))
        seen["params"] = json.load(open(f"{d}/{ident}.json"))
        # another user of the target cannot list the directory nor read a file
        other = blocked.sh("sh", "-c", f"ls {path}; cat {path}/{stub}", user="2000")
        seen["other"] = other.returncode, other.stdout
        mine = blocked.sh("cat", f"{path}/{stub}")  # the target's own user can (it must)
        seen["mine"] = mine.returncode

    _watch_blocked(blocked, ["exec", f"docker/{blocked.name}", "-f", str(script)], inspect)
    assert seen["dir"] == (0, "0o711"), seen  # root-owned: the target's user cannot swap it
    # 0600 always; owned by the target's user once handed over (a file is root's for the
    # instant between its O_EXCL creation and fchown, which is just as private)
    assert seen["files"] and all(v[1] == "0o600" and v[0] in (0, 1000)
                                 for v in seen["files"].values()), seen
    assert any(v[0] == 1000 for v in seen["files"].values()), seen
    assert seen["other"][0] != 0 and seen["other"][1] == "", seen["other"]
    assert seen["mine"] == 0
    # the generated source is the fixed stub with our own path and id, nothing else
    assert seen["stub"] == seen["expected"]
    assert re.fullmatch(r'"/tmp/\.kubectl-wand-[0-9a-f]{16}"',
                        json.dumps(seen["params"]["sock"].rsplit("/", 1)[0]))
    assert seen["params"]["filename"] == str(script)  # the user's text: data, in JSON
    assert "pwned" not in seen["stub"] and "{x}" not in seen["stub"]

    # logger names full of quotes and braces: data too
    names = ["a'b\"c", "{x}.}{", "__import__('os').system('id')"]
    seen.clear()
    _watch_blocked(blocked, ["loglevel", f"docker/{blocked.name}", "DEBUG",
                             *sum((["--logger", n] for n in names), [])], inspect)
    assert seen["stub"] == seen["expected"]
    assert seen["params"]["loggers"] == names
    blocked.assert_healthy(8004)


def test_user_text_is_never_executed_as_source(web, tmp_path):
    script = tmp_path / HOSTILE.replace("/", "|")
    script.write_text("print('ran', __file__.count('\\n'))\n")
    cp = wand("exec", f"docker/{web.name}", "-f", str(script))
    assert cp.returncode == 0 and cp.stdout == "ran 1\n", cp.stderr
    names = ["a'b\"c", "{x}.}{", "__import__('os').system('touch /tmp/pwned')"]
    cp = wand("loglevel", f"docker/{web.name}", "INFO",
              *sum((["--logger", n] for n in names), []), "-o", "json")
    assert cp.returncode == 0, cp.stderr
    got = [i["logger"] for i in json.loads(cp.stdout)["results"][0]["loggers"]]
    assert got == names
    assert web.sh("ls", "/tmp/pwned").returncode != 0
    web.assert_healthy(8000)


def test_planted_symlinks_are_not_followed(web):
    # the target's user plants symlinks named like staging directories (the real names are
    # random), one to a root-owned directory, and a directory of its own with such a name
    assert web.sh("mkdir", "-m", "755", "/var/trap", user="0").returncode == 0
    plant = ("import os, secrets\n"
             "for i in range(20):\n"
             "    os.symlink('/var/trap', '/tmp/.kubectl-wand-' + secrets.token_hex(8))\n"
             "os.symlink('/var/trap', '/tmp/.kubectl-wand-0000000000000000')\n"
             "os.symlink('/etc/passwd', '/tmp/.kubectl-wand-1111111111111111')\n"
             "os.mkdir('/tmp/.kubectl-wand-2222222222222222')\n"
             "open('/tmp/.kubectl-wand-2222222222222222/mine', 'w').close()\n")
    assert web.py(plant).returncode == 0
    before = sorted(os.listdir(f"/proc/{web.host_pid()}/root/tmp"))
    passwd = web.sh("stat", "-c", "%U %a %s %Y", "/etc/passwd").stdout
    for _ in range(2):  # each also sweeps /tmp for orphaned staging directories
        cp = wand("exec", f"docker/{web.name}", "-q", "-c", "print('ok')")
        assert cp.returncode == 0 and cp.stdout == "ok\n", cp.stderr
    with Attached(f"docker/{web.name}", "--local-port", "0") as a:
        a.stop()
    assert web.sh("ls", "-A", "/var/trap").stdout == ""  # nothing written through a link
    assert web.sh("stat", "-c", "%U %a %s %Y", "/etc/passwd").stdout == passwd
    # the planted entries are untouched (not ours: never collected either)
    assert sorted(os.listdir(f"/proc/{web.host_pid()}/root/tmp")) == before
    web.py("import glob, os, shutil\n"
           "for p in glob.glob('/tmp/.kubectl-wand-*'):\n"
           "    os.unlink(p) if os.path.islink(p) else shutil.rmtree(p)")
    web.assert_healthy(8000)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: pid/N from the host")
def test_planted_helper_lock_symlink_on_the_host_is_not_followed(web, tmp_path):
    """pid/N runs the injector's first stage on this host, where /tmp is anyone's."""
    lock = "/tmp/kubectl-wand-helper.lock"
    if os.path.lexists(lock):
        pytest.skip(f"{lock} exists on this host")
    trap = tmp_path / "trap"
    trap.write_text("x")
    os.utime(trap, (1_000_000_000, 1_000_000_000))
    os.symlink(trap, lock)
    try:
        cp = wand("ps", "local", "-o", "json")  # stage 1 runs here and holds the lock
    finally:
        os.unlink(lock)
    assert cp.returncode == 0 and json.loads(cp.stdout)[0]["processes"], cp.stderr
    assert os.stat(trap).st_mtime == 1_000_000_000  # not touched through the link
    web.assert_healthy(8000)
