"""`validate`: would `attach` work on this target? Each check says ✓, ✗ (with a remedy) or why
it was skipped. Listing uses the lister only (for Kubernetes: `kubectl exec` in the app
container), so validating never adds an ephemeral container to a pod."""

from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional

from kubectl_wand.checks import Check, Report
from kubectl_wand.engine.procs import MIN_PYTHON, Proc, choose
from kubectl_wand.engine.session import CLOSED, Session
from kubectl_wand.errors import WandError

def debugpy_check(section: str) -> Check:
    from kubectl_wand.engine import bundle

    try:
        bundle.debugpy_dir()
    except WandError as e:
        return Check(section, "debugpy", False, e.message, e.hint)
    try:
        from importlib.metadata import version

        ver = version("debugpy")
    except Exception:
        ver = "bundled"
    return Check(section, "debugpy", True,
                 f"shipped by kubectl-wand (debugpy {ver}, its pure-Python tree); the image "
                 "needs none")


# ---------------------------------------------------------------- processes

def list_with_checks(backend, box) -> (List[Proc], dict):
    """The lister's process table plus the injector's environment facts (see
    payload/injector.py ``environment_checks``)."""
    s = Session(backend, box, timeout=60)
    procs = s.open("check")
    try:
        ev = s.chan.next(30)
    finally:
        s.chan.close()
    facts = ev if ev is not CLOSED and ev.get("event") == "checks" else {}
    return procs, facts


def ptrace_check(section: str, p: Proc, facts: dict, kind: str, psa_ok: Optional[bool]) -> Check:
    scope = facts.get("ptrace_scope")
    if scope == 3:
        return Check(section, "ptrace", False,
                     "kernel.yama.ptrace_scope=3 forbids ptrace attach on this node, even with "
                     "CAP_SYS_PTRACE", "an admin must set kernel.yama.ptrace_scope to 2 or less "
                     "(it cannot be lowered from 3 without a reboot)")
    if kind == "kubernetes":
        if psa_ok is False:
            return Check(section, "ptrace", False,
                         "the helper cannot get CAP_SYS_PTRACE: the namespace's Pod Security "
                         "level forbids it (see above)", "see the Pod Security remedy above")
        return Check(section, "ptrace", True,
                     "the helper gets CAP_SYS_PTRACE (kubectl debug --profile=general)")
    if not p.readable:
        return Check(section, "ptrace", False,
                     f"no ptrace access to PID {p.pid} (its /proc links are unreadable)",
                     "the helper needs CAP_SYS_PTRACE, or the same user as the target with "
                     "kernel.yama.ptrace_scope=0" if kind != "local" else
                     "run as root (sudo) or as the target's user with kernel.yama.ptrace_scope=0")
    cap = facts.get("cap_sys_ptrace")
    same_uid = facts.get("uid") == p.uid
    if cap and scope in (None, 0, 1, 2):
        how = "CAP_SYS_PTRACE"
        if kind == "docker":
            how += " in the helper container (--cap-add SYS_PTRACE)"
        return Check(section, "ptrace", True, how)
    if same_uid and scope in (None, 0):
        return Check(section, "ptrace", True, f"same user as the target (uid {p.uid}), "
                     f"kernel.yama.ptrace_scope={scope if scope is not None else 'absent'}")
    return Check(section, "ptrace", False,
                 f"no CAP_SYS_PTRACE and ptrace_scope={scope}: attaching to uid {p.uid} is "
                 "refused", "run as root (sudo), or as the target's user with "
                 "kernel.yama.ptrace_scope=0")


def process_checks(p: Proc, facts: dict, kind: str, psa_ok: Optional[bool],
                   picked: bool) -> List[Check]:
    cmd = " ".join(p.command.split())
    section = f"process {p.pid}: {cmd[:70]}" + ("  (attach picks this one)" if picked else "")
    out = []
    if p.python in (None, "?"):
        out.append(Check(section, "python", None, "the Python version could not be read"))
    elif p.version_tuple < MIN_PYTHON:
        out.append(Check(section, "python", False,
                         f"Python {p.python}: sys.remote_exec needs CPython 3.14 or newer",
                         "upgrade the app's interpreter to 3.14+ (the image's python)"))
    else:
        flavour = "free-threaded build" if p.free_threaded else "default (GIL) build"
        out.append(Check(section, "python", True, f"CPython {p.python}, {flavour} (read from "
                         "its binary)"))
        blocker = p.extra.get("inject_blocker") or p.extra.get("helper_blocker")
        if blocker:
            out.append(Check(section, "helper interpreter", False, blocker,
                             "target its container instead (docker/NAME, or its pod): its "
                             "helper runs a pristine copy of the image" if
                             blocker.startswith("runs in a container") else
                             "pass --image with an image that has this Python version; the "
                             "helper runs its own interpreter, never the target's"))
        elif kind == "kubernetes":
            out.append(Check(section, "helper interpreter", None,
                             "the helper runs the app image's own copy of this interpreter "
                             "(decided when it starts)"))
        else:
            out.append(Check(section, "helper interpreter", True,
                             "a pristine interpreter of the helper's own of this version "
                             "injects (the target's files are read, never run)"
                             if kind != "local" else "an interpreter of this host that only "
                             "root (or you) can change injects"))
    if p.remote_debug is False:
        out.append(Check(section, "remote debugging", False,
                         f"disabled by {p.remote_debug_off_by}",
                         "restart the app without PYTHON_DISABLE_REMOTE_DEBUG / "
                         "-X disable-remote-debug (`stacks` still works: it only reads memory)"))
    else:
        out.append(Check(section, "remote debugging", True, "enabled"))
    out.append(ptrace_check(section, p, facts, kind, psa_ok))
    st = (facts.get("staging") or {}).get(str(p.pid))
    if not st:
        out.append(Check(section, "staging directory", None, "not checked"))
    elif st.get("ok"):
        out.append(Check(section, "staging directory", True,
                         f"{st['dir']} is usable (a private 0700 directory is made there)"))
    elif st.get("ok") is None:
        out.append(Check(section, "staging directory", None, "; ".join(st.get("tried") or [])))
    else:
        out.append(Check(section, "staging directory", False,
                         "no writable directory: " + "; ".join(st.get("tried") or []),
                         "mount a writable emptyDir/tmpfs at /tmp (or set TMPDIR) in the target"))
    out.append(debugpy_check(section))
    for c in out:
        c.pid = p.pid
    return out


def processes(backend, box, kind: str, pid: Optional[int], psa_ok: Optional[bool],
              listing=None):
    """(checks, picked pid or None, why-not text). ``listing``: a future of
    list_with_checks() already under way."""
    section = f"processes in {box.display}"
    try:
        procs, facts = listing.result() if listing is not None else list_with_checks(backend,
                                                                                      box)
    except WandError as e:
        return [Check(section, "process list", False, e.message, e.hint)], None, e.message
    pythons = [p for p in procs if p.python]
    if pid is not None:
        pythons = [p for p in pythons if p.pid == pid]
    if not pythons:
        what = f"no Python process with PID {pid}" if pid is not None else "no Python process"
        return [Check(section, "process list", False, f"{what} in {box.display}",
                      "is the app running? `kubectl wand ps` shows what is there")], None, what
    picked, why = None, ""
    try:
        c = choose(procs, pid)
        picked = c.proc.pid if c.proc is not None else None
        if picked is None:
            why = ("several Python processes could be meant; attach asks (or needs --pid): "
                   + ", ".join(str(p.pid) for p in c.candidates))
    except WandError as e:
        why = e.message
    checks = []
    for p in pythons:
        if p.role == "helper":
            continue
        checks += process_checks(p, facts, kind, psa_ok, p.pid == picked)
    return checks, picked, why


def _finish(rep: Report, why: str = "") -> Report:
    """attach works when nothing global failed and the picked process passes every check."""
    failed = [c for c in rep.checks if c.ok is False and c.pid is None]
    mine = [c for c in rep.checks if c.ok is False and c.pid is not None and c.pid == rep.pid]
    rep.verdict = rep.pid is not None and not failed and not mine
    if rep.verdict:
        rep.why = f"attach would work (PID {rep.pid})"
    elif failed or mine:
        rep.why = f"attach would fail: {len(failed) + len(mine)} problem(s) marked ✗"
    else:
        rep.why = f"attach would fail: {why or 'no process to attach to'}"
    return rep


def run(target_text: str, where, pid=None) -> Report:
    """validate's façade: what the user typed, checked on the backend it names."""
    from kubectl_wand.backends import backend_for
    from kubectl_wand.targets import parse_target

    target = parse_target(target_text)
    return validate(backend_for(target, where), target, pid)


def validate(backend, target, pid=None) -> Report:
    """The backend's own checks (tools, cluster, permissions), then the process checks."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        pre = backend.preflight(target, lambda box: pool.submit(list_with_checks, backend, box))
        if pre.stop is not None:
            return _finish(Report(str(target), pre.checks), pre.stop)
        box = pre.box
        if pid is None:
            pid = box.pid  # pid/N names the process itself
        proc_checks, picked, why = processes(backend, box, backend.name, pid, pre.psa_ok,
                                             pre.listing)
    after = pre.after if not (proc_checks and proc_checks[0].name == "process list"
                              and proc_checks[0].ok is False) else []
    return _finish(Report(str(target), pre.checks + after + proc_checks, picked), why)
