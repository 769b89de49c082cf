"""Creating and deleting objects through the API (`kubectl create -f`, `kubectl delete`), the
OpenAPI v3 just big enough for kubectl to leave validation to the server, and a ReplicaSet
controller for Deployments created that way (it replaces their deleted pods).

Objects are built by the same code as the tests' Cluster (cluster.py), on the server's state.
"""
import os
import threading
import time

from tests.kube.apiserver import model as core

GVS = {"api/v1": ("", "v1", ["Pod", "Service", "Namespace"]),
       "apis/apps/v1": ("apps", "v1", ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"]),
       "apis/batch/v1": ("batch", "v1", ["Job"]),
       "apis/serving.knative.dev/v1": ("serving.knative.dev", "v1", ["Service"])}


def openapi_root():
    return {"paths": {gv: {"serverRelativeURL": "/openapi/v3/%s?hash=1" % gv} for gv in GVS}}


def openapi_gv(gv):
    """A PATCH operation per kind that declares the fieldValidation query parameter: kubectl
    then sends fieldValidation=Strict instead of validating against a schema itself."""
    if gv not in GVS:
        return None
    group, version, kinds = GVS[gv]
    paths = {}
    for kind in kinds:
        paths["/%s/%s/{name}" % (gv, kind.lower() + "s")] = {"patch": {
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"}, "paths": paths}


def cluster_on(state_path):
    """A Cluster (the test-side builder) on an existing state, owning nothing (close() is a no-op)."""
    from tests.kube.apiserver.cluster import DEFAULT_IMAGE, Cluster

    c = Cluster.__new__(Cluster)
    c.state_path, c.image, c.dir = state_path, DEFAULT_IMAGE, os.path.dirname(state_path)
    c.server, c._closed = None, True
    with core.locked_state(state_path, write=False) as st:
        c.id = st["id"]
    return c


def _containers(spec):
    out = []
    for x in spec.get("containers") or []:
        c = {k: x[k] for k in ("name", "image", "command", "args", "env", "securityContext") if x.get(k)}
        if x.get("ports"):
            c["ports"] = [p["containerPort"] for p in x["ports"]]
        out.append(c)
    return out


def create(state_path, rt, ns, body):
    """Create the object of a manifest; returns (kind, name) or raises ValueError(message)."""
    c = cluster_on(state_path)
    meta = body.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        raise ValueError("metadata.name: Required value: name or generateName is required")
    with core.locked_state(state_path, write=False) as st:
        exists = core.get_obj(st, rt, ns, name) is not None
    if exists:
        raise FileExistsError('%s "%s" already exists' % (rt.qualified, name))
    spec = body.get("spec") or {}
    if rt is core.RT_NS:
        c.namespace(name, labels=meta.get("labels") or {})
    elif rt is core.RT_DEPLOY:
        tmpl = spec.get("template") or {}
        tmeta, tspec = tmpl.get("metadata") or {}, tmpl.get("spec") or {}
        c.deployment(name, ns=ns, replicas=int(spec.get("replicas", 1)), containers=_containers(tspec),
                     labels=(spec.get("selector") or {}).get("matchLabels") or tmeta.get("labels"),
                     annotations=tmeta.get("annotations"), pod_security_context=tspec.get("securityContext"),
                     wait=False)
        with core.locked_state(state_path) as st:
            core.get_obj(st, rt, ns, name)["_docker"]["managed"] = True
    elif rt is core.RT_POD:
        c.pod(name, ns=ns, containers=_containers(spec), labels=meta.get("labels"),
              annotations=meta.get("annotations"), pod_security_context=spec.get("securityContext"),
              restart_policy=spec.get("restartPolicy", "Always"), wait=False)
    elif rt is core.RT_SVC:
        ports = [(p["port"], p.get("targetPort", p["port"])) for p in spec.get("ports") or []]
        c.service(name, spec.get("selector") or {}, ns=ns, ports=ports or ((80, 80),))
    else:
        raise NotImplementedError("creating %s is not served by the test API" % rt.qualified)


def delete(state_path, rt, ns, name):
    """Delete an object and what it owns (pods' containers included); False if it didn't exist."""
    with core.locked_state(state_path) as st:
        obj = core.get_obj(st, rt, ns, name)
        if obj is None:
            return False
        if rt is core.RT_NS:
            st["namespaces"].pop(name)
            doomed = [o for o in list(st["objects"].values()) if o["metadata"].get("namespace") == name]
        else:
            doomed = [obj]
        uids = {obj["metadata"]["uid"]}
        changed = True
        while changed:  # owner chains: Deployment -> ReplicaSet -> Pod
            changed = False
            for o in st["objects"].values():
                if o not in doomed and any(r["uid"] in uids for r in o["metadata"].get("ownerReferences") or []):
                    doomed.append(o)
                    uids.add(o["metadata"]["uid"])
                    changed = True
        names = []
        for o in doomed:
            names += core.pod_docker_names(o) if o["kind"] == "Pod" else []
            for k, v in list(st["objects"].items()):
                if v is o:
                    del st["objects"][k]
    core.remove_containers(names)
    return True


def reconcile_forever(state_path, stop):
    """ReplicaSets of API-created Deployments: as many pods as spec.replicas (a deleted pod is
    replaced by a new one with a new name), checked twice a second."""
    c = cluster_on(state_path)
    while not stop.wait(0.5):
        new = []
        try:
            with core.locked_state(state_path) as st:
                for dep in core.list_objs(st, core.RT_DEPLOY, None):
                    if not dep.get("_docker", {}).get("managed"):
                        continue
                    ns = dep["metadata"]["namespace"]
                    rs = core.get_obj(st, core.RT_RS, ns, dep["_docker"]["rs"])
                    if rs is None:
                        continue
                    uid = rs["metadata"]["uid"]
                    have = [p for p in core.list_objs(st, core.RT_POD, ns)
                            if any(r["uid"] == uid for r in p["metadata"].get("ownerReferences") or [])]
                    for _ in range(int(rs["spec"].get("replicas", 1)) - len(have)):
                        new.append(c._rs_pod(st, rs))
        except (OSError, ValueError):
            continue
        if new:
            c._start_pods(new, wait=False)


def start_controller(state_path):
    stop = threading.Event()
    threading.Thread(target=reconcile_forever, args=(state_path, stop), daemon=True).start()
    return stop



def _age(ts):
    import calendar
    s = max(0, int(time.time() - calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= 2 * n:  # like kubectl's HumanDuration, coarser
            return "%d%s" % (s // n, unit)
    return "%ds" % s


def _col(name, priority=0, fmt=""):
    return {"name": name, "type": "string", "format": fmt, "description": "", "priority": priority}


def table(rt, items, include_object):
    """The server-side printing `kubectl get` asks for (meta.k8s.io/v1 Table)."""
    cols, rows = [_col("Name", fmt="name")], []
    if rt is core.RT_POD:
        cols += [_col("Ready"), _col("Status"), _col("Restarts"), _col("Age"), _col("IP", 1), _col("Node", 1)]
    elif rt is core.RT_DEPLOY:
        cols += [_col("Ready"), _col("Up-to-date"), _col("Available"), _col("Age")]
    else:
        cols += [_col("Age")]
    for o in items:
        m, st = o["metadata"], o.get("status") or {}
        cells = [m["name"]]
        if rt is core.RT_POD:
            cs = st.get("containerStatuses") or []
            waiting = [s["state"]["waiting"].get("reason") for s in cs if "waiting" in s.get("state", {})]
            cells += ["%d/%d" % (sum(1 for s in cs if s.get("ready")), len(o["spec"]["containers"])),
                      waiting[0] if waiting else st.get("phase", ""), sum(s.get("restartCount", 0) for s in cs),
                      _age(m["creationTimestamp"]), st.get("podIP") or "<none>", o["spec"].get("nodeName", "")]
        elif rt is core.RT_DEPLOY:
            cells += ["%d/%d" % (st.get("readyReplicas", 0), o["spec"].get("replicas", 1)),
                      st.get("updatedReplicas", 0), st.get("availableReplicas", 0), _age(m["creationTimestamp"])]
        else:
            cells += [_age(m["creationTimestamp"])]
        obj = o if include_object else {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                        "metadata": m}
        rows.append({"cells": cells, "object": obj})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols, "rows": rows}
