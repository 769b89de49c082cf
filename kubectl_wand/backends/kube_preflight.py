"""`validate` for Kubernetes: what the cluster and kubectl must allow before any process is
looked at (kubectl version, the cluster, ephemeral containers, RBAC, Pod Security, the helper
image). The process checks are the engine's (engine/validate.py)."""

import json
from concurrent.futures import ThreadPoolExecutor
from typing import List

from kubectl_wand.backends.base import run
from kubectl_wand.checks import Check, Preflight
from kubectl_wand.errors import WandError
from kubectl_wand.names import kube_version

MIN_KUBECTL = (1, 27)
RBAC = [("get", "pods", None), ("list", "pods", None), ("patch", "pods", "ephemeralcontainers"),
        ("create", "pods", "exec"), ("create", "pods", "portforward")]
PSA_LABEL = "pod-security.kubernetes.io/enforce"


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


def preflight(backend, target, start_listing) -> Preflight:
    """kubectl, the cluster, RBAC, the target pod, Pod Security and the helper image; the
    process listing (``start_listing``) runs meanwhile."""
    checks: List[Check] = []
    sec = "kubectl and cluster"
    ns_opt = backend.opts.namespace
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
            client = kube_version(cv)
            ok = client >= MIN_KUBECTL
            checks.append(Check(sec, "kubectl client", ok,
                                f"{cv.get('gitVersion', '?')}" + ("" if ok else
                                                                  " is older than 1.27"),
                                None if ok else "install kubectl 1.27 or newer "
                                "(`kubectl debug --profile` is needed)"))
        except WandError as e:
            checks.append(Check(sec, "kubectl client", False, e.message, e.hint))
            return Preflight(checks, stop="kubectl is not usable")
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
                server = kube_version(sv)
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
            return Preflight(checks, stop="the cluster is not reachable")
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
            return Preflight(checks, stop=e.message)
    box = boxes[0]
    ns = box.namespace
    checks.append(Check("target", str(target), True,
                        f"{box.display} in namespace {ns} (the pod attach would use), "
                        f"container {box.container}"))
    f_list = start_listing(box)
    labels, err = _namespace_labels(backend, ns)
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
    return Preflight(checks, box=box, listing=f_list, psa_ok=psa_ok)


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
    pod = box.pod_json
    container = box.container
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
