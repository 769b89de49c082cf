"""`validate`: would `attach` work on this target? Each check says ✓, ✗ (with a remedy) or why
it was skipped. Listing uses the lister only (for Kubernetes: `kubectl exec` in the app
container), so validating never adds an ephemeral container to a pod."""

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import List, Optional

from kubectl_wand.backends.base import run
from kubectl_wand.engine.procs import MIN_PYTHON, Proc, choose
from kubectl_wand.engine.session import CLOSED, Session
from kubectl_wand.errors import WandError

MIN_KUBECTL = (1, 27)
RBAC = [("get", "pods", None), ("list", "pods", None), ("patch", "pods", "ephemeralcontainers"),
        ("create", "pods", "exec"), ("create", "pods", "portforward")]
PSA_LABEL = "pod-security.kubernetes.io/enforce"


@dataclass
class Check:
    section: str
    name: str
    ok: Optional[bool]  # None: skipped or unknown, never blocking
    detail: str
    remedy: Optional[str] = None
    pid: Optional[int] = None  # set on the checks of one process


@dataclass
class Report:
    target: str
    checks: List[Check]
    pid: Optional[int] = None  # the process attach would pick
    verdict: bool = False
    why: str = ""

    def to_json(self):
        return {"target": self.target, "attach_would_work": self.verdict, "why": self.why,
                "pid": self.pid, "checks": [asdict(c) for c in self.checks]}


def _version(v: dict) -> tuple:
    try:
        return int(v["major"]), int(re.sub(r"\D.*", "", v["minor"]))
    except (KeyError, ValueError, TypeError):
        return (0, 0)


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
        out.append(Check(section, "python", True,
                         f"CPython {p.python}, {flavour}; injected with its own interpreter, so "
                         "version and flavour always match"))
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


# ---------------------------------------------------------------- Kubernetes

def _can_i(backend, verb, resource, sub):
    argv = backend.base() + ["auth", "can-i", verb, resource]
    if sub:
        argv.append("--subresource=" + sub)
    try:
        cp = run(argv, timeout=30)
    except WandError as e:
        return None, e.message
    out = cp.stdout.decode("utf-8", "replace").strip()
    if cp.returncode == 0 and out.startswith("yes"):
        return True, out
    if out.startswith("no"):
        return False, out
    return None, cp.stderr.decode("utf-8", "replace").strip() or f"exit {cp.returncode}"


def kubernetes(backend, target, pid=None) -> Report:
    checks: List[Check] = []
    sec = "kubectl and cluster"
    ns_opt = backend.opts.get("namespace")
    with ThreadPoolExecutor(max_workers=8) as pool:
        f_client = pool.submit(run, backend.client_version_argv(), 20)
        f_server = pool.submit(run, backend.base(namespaced=False) + ["version", "-o", "json"],
                               30)
        f_rbac = [(v, r, s, pool.submit(_can_i, backend, v, r, s)) for v, r, s in RBAC]
        f_boxes = pool.submit(backend.resolve, target)
        # client
        try:
            cp = f_client.result()
            cv = json.loads(cp.stdout)["clientVersion"]
            client = _version(cv)
            ok = client >= MIN_KUBECTL
            checks.append(Check(sec, "kubectl client", ok,
                                f"{cv.get('gitVersion', '?')}" + ("" if ok else
                                                                  " is older than 1.27"),
                                None if ok else "install kubectl 1.27 or newer "
                                "(`kubectl debug --profile` is needed)"))
        except WandError as e:
            checks.append(Check(sec, "kubectl client", False, e.message, e.hint))
            return _finish(Report(str(target), checks), "kubectl is not usable")
        except (ValueError, KeyError):
            checks.append(Check(sec, "kubectl client", None, "version not readable"))
        # server
        server = None
        try:
            cp = f_server.result()
            data = json.loads(cp.stdout or b"{}")
            sv = data.get("serverVersion")
            if cp.returncode != 0 or not sv:
                err = backend.error(cp.stderr.decode("utf-8", "replace"))
                checks.append(Check(sec, "cluster", False, err.message, err.hint))
            else:
                server = _version(sv)
                checks.append(Check(sec, "cluster", True,
                                    f"reachable, server {sv.get('gitVersion', '?')}"))
        except WandError as e:
            checks.append(Check(sec, "cluster", False, e.message, e.hint))
        except ValueError:
            checks.append(Check(sec, "cluster", False, "unreadable answer to `kubectl version`",
                                "check `kubectl cluster-info`"))
        if server is None:
            for _, _, _, f in f_rbac:
                f.cancel()
            return _finish(Report(str(target), checks), "the cluster is not reachable")
        if server >= (1, 25):
            checks.append(Check(sec, "ephemeral containers", True,
                                f"supported (GA since Kubernetes 1.25; server "
                                f"{server[0]}.{server[1]})"))
        elif server >= (1, 23):
            checks.append(Check(sec, "ephemeral containers", True,
                                f"beta in {server[0]}.{server[1]}, enabled by default"))
        else:
            checks.append(Check(sec, "ephemeral containers", False,
                                f"server {server[0]}.{server[1]} predates them (1.23+)",
                                "upgrade the cluster to Kubernetes 1.25 or newer"))
        # RBAC
        where = f" -n {ns_opt}" if ns_opt else ""
        for verb, res, sub, f in f_rbac:
            allowed, text = f.result()
            what = f"{verb} {res}" + (f"/{sub}" if sub else "")
            cmd = f"kubectl auth can-i {verb} {res}" + (f" --subresource={sub}" if sub else "") \
                + where
            if allowed:
                checks.append(Check("RBAC", what, True, "allowed"))
            elif allowed is False:
                checks.append(Check("RBAC", what, False, "forbidden",
                                    f"ask for that permission (a Role with {verb} on "
                                    f"{res}{'/' + sub if sub else ''}); check with `{cmd}`"))
            else:
                checks.append(Check("RBAC", what, None, f"could not check: {text}"))
        # target
        try:
            boxes = f_boxes.result()
        except WandError as e:
            checks.append(Check("target", str(target), False, e.message, e.hint))
            return _finish(Report(str(target), checks), e.message)
    box = boxes[0]
    ns = box.extra["namespace"]
    checks.append(Check("target", str(target), True,
                        f"{box.display} in namespace {ns} (the pod attach would use), "
                        f"container {box.extra['container']}"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        f_ns = pool.submit(_namespace_labels, backend, ns)
        f_list = pool.submit(list_with_checks, backend, box)
        labels, err = f_ns.result()
        f_list.exception()
    psa_ok = None
    if labels is None:
        checks.append(Check("target", "Pod Security", None,
                            f"cannot read namespace {ns}: {err}; attach reports a rejection "
                            "with its remedy"))
    else:
        level = labels.get(PSA_LABEL)
        if level in ("baseline", "restricted"):
            psa_ok = False
            checks.append(Check("target", "Pod Security", False,
                                f"namespace {ns} enforces {level!r}, which forbids the "
                                "SYS_PTRACE capability the helper needs",
                                f"a cluster admin can run `kubectl label ns {ns} "
                                f"{PSA_LABEL}=privileged --overwrite`, or exempt debug "
                                "sessions in the admission configuration"))
        else:
            psa_ok = True
            checks.append(Check("target", "Pod Security", True,
                                f"namespace {ns}: enforce={level}" if level else
                                f"namespace {ns} has no enforce label (privileged unless the "
                                "cluster's admission default says otherwise)"))
    checks.append(_helper_image(backend, box))
    proc_checks, picked, why = processes(backend, box, "kubernetes", pid, psa_ok, f_list)
    checks += proc_checks
    rep = Report(str(target), checks, picked)
    return _finish(rep, why)


def _namespace_labels(backend, ns):
    cp = run(backend.base(namespaced=False) + ["get", "namespace", ns, "-o", "json"],
             timeout=30)
    if cp.returncode != 0:
        return None, backend.error(cp.stderr.decode("utf-8", "replace")).message
    try:
        return json.loads(cp.stdout)["metadata"].get("labels") or {}, None
    except (ValueError, KeyError):
        return None, "unreadable answer"


def _helper_image(backend, box) -> Check:
    pod = box.extra["pod_json"]
    container = box.extra["container"]
    for st in pod.get("status", {}).get("ephemeralContainerStatuses") or []:
        spec = next((c for c in pod["spec"].get("ephemeralContainers") or []
                     if c["name"] == st["name"]), {})
        if st["name"].startswith("kubectl-wand-") and "running" in (st.get("state") or {}) and \
                spec.get("targetContainerName") == container and spec.get("image") == box.image:
            return Check("target", "helper image", True,
                         f"a kubectl-wand helper ({st['name']}) already runs here; it is reused")
    app_image = next((c.get("image") for c in pod["spec"]["containers"]
                      if c["name"] == container), None)
    status = next((s for s in pod.get("status", {}).get("containerStatuses") or []
                   if s["name"] == container), {})
    if box.image == app_image and status.get("imageID"):
        return Check("target", "helper image", True,
                     f"{box.image}: the app container's own image, already on node "
                     f"{pod['spec'].get('nodeName') or '?'}")
    return Check("target", "helper image", None,
                 f"{box.image}: whether the node can pull it is unknown until a helper starts "
                 "(attach reports ErrImagePull at once)")


# ---------------------------------------------------------------- Docker / Podman / local

def docker(backend, target, pid=None) -> Report:
    checks: List[Check] = []
    sec = f"{backend.runtime} engine"
    cp = None
    try:
        cp = run([backend.runtime, "version", "--format", "{{.Server.Version}}"], timeout=20)
    except WandError as e:
        checks.append(Check(sec, backend.runtime, False, e.message, e.hint))
        return _finish(Report(str(target), checks), e.message)
    if cp.returncode != 0:
        text = cp.stderr.decode("utf-8", "replace").strip()
        checks.append(Check(sec, "engine", False, f"not reachable: {text}",
                            "start it (e.g. `dockerd`) or check access to its socket"))
        return _finish(Report(str(target), checks), "engine not reachable")
    checks.append(Check(sec, "engine", True,
                        f"reachable, server {cp.stdout.decode().strip() or '?'}"))
    try:
        box = backend.resolve(target)[0]
    except WandError as e:
        checks.append(Check("target", str(target), False, e.message, e.hint))
        return _finish(Report(str(target), checks), e.message)
    checks.append(Check("target", str(target), True, f"container {box.id[:12]} is running"))
    proc_checks, picked, why = processes(backend, box, "docker", pid, None)
    if not (proc_checks and proc_checks[0].name == "process list" and proc_checks[0].ok is False):
        checks.append(Check("target", "helper", True,
                            f"helper container {backend.helper_name(box)} runs beside it "
                            f"(image {box.extra.get('image_name') or box.image[:19]}, "
                            "CAP_SYS_PTRACE, shared PID namespace)"))
    checks += proc_checks
    return _finish(Report(str(target), checks, picked), why)


def local(backend, target, pid=None) -> Report:
    checks: List[Check] = []
    try:
        box = backend.resolve(target)[0]
    except WandError as e:
        checks.append(Check("target", str(target), False, e.message, e.hint))
        return _finish(Report(str(target), checks), e.message)
    proc_checks, picked, why = processes(backend, box, "local",
                                         pid if pid is not None else box.extra.get("pid"),
                                         None)
    checks += proc_checks
    return _finish(Report(str(target), checks, picked), why)


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


def validate(backend, target, pid=None) -> Report:
    if backend.name == "kubernetes":
        return kubernetes(backend, target, pid)
    if backend.name == "local":
        return local(backend, target, pid)
    return docker(backend, target, pid)
