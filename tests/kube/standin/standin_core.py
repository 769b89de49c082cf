"""Core of the kubectl stand-in (tests only; stdlib only; runs on the host's Python >= 3.9).

The `kubectl` script next to this file calls main(). cluster.py imports the state and Docker
helpers from here. Pods map to Docker containers:

  pod            = one "sandbox" container (`sleep infinity`, --network none, --ipc shareable)
  pod container  = one container joining the sandbox's network and IPC namespaces, with its own
                   PID namespace (like a pod without shareProcessNamespace)
  ephemeral      = one container joining the sandbox's network/IPC and, with --target, the PID
                   namespace of the target container (like kubectl debug --target)

Every text printed here that imitates kubectl was taken from kubectl v1.32 (the binary at
/usr/bin/kubectl, its strings, or the kubernetes/kubectl + client-go + pod-security-admission
sources); see README.md next to this file for where each one comes from.
"""
import contextlib
import copy
import datetime as _dt
import fcntl
import hashlib
import json
import os
import random
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

LABEL = "kubectl-wand-standin"
DEFAULT_IMAGE = os.environ.get("WAND_STANDIN_IMAGE", "wand-bed/py314:latest")
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
NODE_NAME = "standin-node"
DEFAULT_CLIENT_VERSION = "v1.32.4"
DEFAULT_SERVER_VERSION = "v1.32.4"
DEFAULT_USER = "standin-user"


# ------------------------------------------------------------------------------------------
# small helpers


class Exit(Exception):
    """Terminate the stand-in: print `message` (if any) to stderr and exit with `code`."""

    def __init__(self, message="", code=1):
        super().__init__(message)
        self.message = message
        self.code = code


def unsupported(what):
    return Exit("error: kubectl stand-in does not support: %s" % what, 1)


def rand_suffix(n=5):
    return "".join(random.choice(NAME_ALPHABET) for _ in range(n))


def now_rfc3339(t=None):
    t = time.time() if t is None else t
    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def docker_time(s):
    """Docker's RFC3339Nano -> kubernetes RFC3339 (seconds)."""
    if not s or s.startswith("0001-"):
        return None
    return s[:19] + "Z"


def go_json(obj, indent=4, sort_keys=True):
    """json like Go's encoding/json as kubectl prints it (HTML-escaped, UTF-8 kept)."""
    s = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
             .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def out(text, stream=None):
    stream = stream or sys.stdout
    stream.write(text)
    stream.flush()


def err(text):
    out(text, sys.stderr)


def klog_error(file_line, msg):
    """A klog error line as kubectl 1.32 prints it (structured HandleError)."""
    t = time.time()
    lt = time.localtime(t)
    head = "E%02d%02d %02d:%02d:%02d.%06d %7d %s]" % (
        lt.tm_mon, lt.tm_mday, lt.tm_hour, lt.tm_min, lt.tm_sec, int((t % 1) * 1e6),
        os.getpid(), file_line)
    return "%s %s\n" % (head, msg)


def go_quote(s):
    return json.dumps(s, ensure_ascii=False)


def parse_version(v):
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", v or "")
    if not m:
        return (1, 32, 4)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def client_version():
    return os.environ.get("WAND_STANDIN_VERSION") or DEFAULT_CLIENT_VERSION


# ------------------------------------------------------------------------------------------
# state


def state_path():
    p = os.environ.get("WAND_STANDIN_STATE")
    if not p:
        raise Exit("error: kubectl stand-in: WAND_STANDIN_STATE is not set", 1)
    return p


def state_hash(path):
    return hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:10]


def new_state(path):
    return {
        "version": 1,
        "id": state_hash(path),
        "rv": 1000,
        "user": DEFAULT_USER,
        "current_context": "standin",
        "contexts": {"standin": {"cluster": "standin", "user": DEFAULT_USER, "namespace": "default"}},
        "server_version": DEFAULT_SERVER_VERSION,
        "namespaces": {},
        "objects": {},
        "forbid": [],
        "no_ephemeral": False,
    }


@contextlib.contextmanager
def locked_state(path=None, write=True, shared=False):
    """Load the state under a flock (exclusive, or shared for a reader that never writes);
    save it back (atomically) if write."""
    path = path or state_path()
    if shared and write:
        raise ValueError("a shared lock is for readers")
    lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            with open(path) as f:
                st = json.load(f)
        except FileNotFoundError:
            raise Exit("error: kubectl stand-in: state file %s does not exist" % path, 1)
        yield st
        if write:
            tmp = "%s.tmp.%d" % (path, os.getpid())
            with open(tmp, "w") as f:
                json.dump(st, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)


def next_rv(st):
    st["rv"] = int(st.get("rv", 1000)) + 1
    return str(st["rv"])


# ------------------------------------------------------------------------------------------
# resource types


class RType:
    def __init__(self, plural, kind, group, namespaced, aliases, version="v1"):
        self.plural, self.kind, self.group, self.namespaced = plural, kind, group, namespaced
        self.version = version
        self.aliases = set(aliases)
        self.key = plural + ("." + group if group else "")  # "deployments.apps"

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def qualified(self):  # as in NotFound / Forbidden messages: pods, deployments.apps
        return self.key

    def name_of(self, name):  # as in -o name
        return "%s%s/%s" % (self.kind.lower(), "." + self.group if self.group else "", name)


RTYPES = [
    RType("pods", "Pod", "", True, ["po", "pod", "pods"]),
    RType("deployments", "Deployment", "apps", True, ["deploy", "deployment", "deployments"]),
    RType("replicasets", "ReplicaSet", "apps", True, ["rs", "replicaset", "replicasets"]),
    RType("statefulsets", "StatefulSet", "apps", True, ["sts", "statefulset", "statefulsets"]),
    RType("daemonsets", "DaemonSet", "apps", True, ["ds", "daemonset", "daemonsets"]),
    RType("jobs", "Job", "batch", True, ["job", "jobs"]),
    RType("services", "Service", "", True, ["svc", "service", "services"]),
    RType("services", "Service", "serving.knative.dev", True, ["ksvc", "kservice", "kservices"]),
    RType("namespaces", "Namespace", "", False, ["ns", "namespace", "namespaces"]),
]


def lookup_rtype(word):
    w = word.lower()
    for rt in RTYPES:
        if w in rt.aliases or w == rt.key or w == rt.kind.lower() + ("." + rt.group if rt.group else ""):
            return rt
        if rt.group and w in ("%s.%s.%s" % (rt.plural, rt.version, rt.group),
                              "%s.%s.%s" % (rt.kind.lower(), rt.version, rt.group)):
            return rt
    raise Exit('error: the server doesn\'t have a resource type "%s"' % word, 1)


RT_POD = RTYPES[0]
RT_DEPLOY, RT_RS, RT_STS, RT_DS, RT_JOB, RT_SVC, RT_KSVC, RT_NS = RTYPES[1:]


def obj_key(rt, ns, name):
    return "%s/%s/%s" % (rt.key, ns or "", name)


def get_obj(st, rt, ns, name):
    if rt is RT_NS:
        return ns_object(st, name)
    return st["objects"].get(obj_key(rt, ns, name))


def list_objs(st, rt, ns):
    """All objects of a type in ns (None = all namespaces), sorted like etcd keys."""
    if rt is RT_NS:
        return [ns_object(st, n) for n in sorted(st["namespaces"])]
    prefix = rt.key + "/"
    res = []
    for k, o in st["objects"].items():
        if not k.startswith(prefix):
            continue
        if ns is not None and o["metadata"].get("namespace") != ns:
            continue
        res.append(o)
    res.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return res


def ns_object(st, name):
    n = st["namespaces"].get(name)
    if n is None:
        return None
    labels = {"kubernetes.io/metadata.name": name}
    labels.update(n.get("labels") or {})
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "uid": n["uid"], "labels": labels,
                     "creationTimestamp": n["creationTimestamp"], "resourceVersion": n.get("resourceVersion", "1")},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


# ------------------------------------------------------------------------------------------
# RBAC and API errors


def user_of(st):
    return st.get("user") or DEFAULT_USER


def is_forbidden(st, verb, resource, subresource="", namespace=None):
    """forbid entries: "pods/exec" (any verb), "create pods/exec", "pods", "list pods",
    optionally suffixed "@namespace"."""
    full = resource + ("/" + subresource if subresource else "")
    for entry in st.get("forbid") or []:
        e = entry.strip()
        ens = None
        if "@" in e:
            e, ens = e.rsplit("@", 1)
        if ens is not None and ens != (namespace or ""):
            continue
        parts = e.split()
        if len(parts) == 2:
            ev, er = parts
        else:
            ev, er = "*", parts[0]
        if er not in (full, "*"):
            continue
        if ev in ("*", verb):
            return True
    return False


def forbidden_message(st, verb, rt_key, group, resource, name, namespace, subresource=""):
    res = resource + ("/" + subresource if subresource else "")
    who = '%s "%s"' % (rt_key, name) if name else rt_key
    if namespace:
        where = 'in the namespace "%s"' % namespace
    else:
        where = "at the cluster scope"
    return ('Error from server (Forbidden): %s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s'
            % (who, user_of(st), verb, res, group, where))


def rbac_resource(rt):
    """The resource word matched against forbid entries: "pods", "deployments", ...;
    Knative services are "services.serving.knative.dev" (plain "services" are core Services)."""
    return rt.key if rt is RT_KSVC else rt.plural


def check_rbac(st, verb, rt, name, namespace, subresource=""):
    ns = namespace if rt.namespaced else None
    if is_forbidden(st, verb, rbac_resource(rt), subresource, ns):
        raise Exit(forbidden_message(st, verb, rt.qualified, rt.group, rt.plural, name, ns, subresource), 1)


def not_found(rt, name):
    return Exit('Error from server (NotFound): %s "%s" not found' % (rt.qualified, name), 1)


# ------------------------------------------------------------------------------------------
# Docker


def docker(*args, check=True, input=None, timeout=60):
    p = subprocess.run(["docker"] + list(args), input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("docker %s failed (%d): %s" % (shlex.join(args), p.returncode,
                                                          p.stderr.decode(errors="replace").strip()))
    return p


def docker_inspect(names):
    """name -> inspect dict for those that exist."""
    names = [n for n in names if n]
    if not names:
        return {}
    p = subprocess.run(["docker", "inspect", "--type", "container"] + names, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    try:
        data = json.loads(p.stdout or b"[]")
    except ValueError:
        data = []
    res = {}
    for d in data:
        res[d.get("Name", "").lstrip("/")] = d
    return res


_image_cache = {}


def image_present(image):
    if image not in _image_cache:
        p = subprocess.run(["docker", "image", "inspect", image], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        _image_cache[image] = p.returncode == 0
    return _image_cache[image]


def image_user(image):
    p = subprocess.run(["docker", "image", "inspect", "-f", "{{.Config.User}}", image], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    return p.stdout.decode().strip()


def docker_name(st_id, ns, pod, container):
    return "standin-%s-%s-%s-%s" % (st_id, ns, pod, container)


def labels_args(st_id, ns, pod, role, container=""):
    return ["--label", "%s=1" % LABEL, "--label", "%s.state=%s" % (LABEL, st_id),
            "--label", "%s.pod=%s/%s" % (LABEL, ns, pod), "--label", "%s.role=%s" % (LABEL, role),
            "--label", "%s.container=%s" % (LABEL, container)]


def security_args(sc, pod_sc):
    """docker run flags for a container securityContext (+ the pod-level one)."""
    sc = sc or {}
    pod_sc = pod_sc or {}
    a = []
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if uid is not None:
        a += ["--user", "%d:%d" % (uid, gid) if gid is not None else str(uid)]
    caps = sc.get("capabilities") or {}
    for c in caps.get("drop") or []:
        a += ["--cap-drop", c]
    for c in caps.get("add") or []:
        a += ["--cap-add", c]
    if sc.get("privileged"):
        a += ["--privileged"]
    if sc.get("allowPrivilegeEscalation") is False:
        a += ["--security-opt", "no-new-privileges"]
    if sc.get("readOnlyRootFilesystem"):
        a += ["--read-only"]
    return a


def env_args(env):
    a = []
    for e in env or []:
        if "value" in e:
            a += ["-e", "%s=%s" % (e["name"], e["value"])]
    return a


def container_cmd(c):
    return list(c.get("command") or []) + list(c.get("args") or [])


def run_sandbox(st_id, ns, pod, image):
    name = docker_name(st_id, ns, pod, "sandbox")
    docker("run", "-d", "--name", name, "--hostname", pod[:63], "--network", "none", "--ipc", "shareable",
           *labels_args(st_id, ns, pod, "sandbox"), image, "sleep", "infinity")
    return name


def run_pod_container(st_id, ns, pod, sandbox, c, pod_sc):
    name = docker_name(st_id, ns, pod, c["name"])
    docker("run", "-d", "--name", name, "--network", "container:" + sandbox, "--ipc", "container:" + sandbox,
           *security_args(c.get("securityContext"), pod_sc), *env_args(c.get("env")),
           *labels_args(st_id, ns, pod, "container", c["name"]), c["image"], *container_cmd(c))
    return name


def remove_containers(names):
    names = [n for n in names if n]
    if names:
        subprocess.run(["docker", "rm", "-f"] + names, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pod_docker_names(pod):
    rt = pod.get("_standin") or {}
    names = [rt.get("sandbox")] + list((rt.get("containers") or {}).values())
    names += [e.get("docker") for e in (rt.get("ephemeral") or {}).values()]
    return [n for n in names if n]


# ------------------------------------------------------------------------------------------
# live status


def _cid(info):
    return "containerd://" + info["Id"] if info else ""


def _image_id(info):
    return "docker-pullable://" + (info or {}).get("Image", "") if info else ""


def _terminated(info, reason=None):
    s = info["State"]
    code = s.get("ExitCode", 0)
    t = {"exitCode": code, "reason": reason or ("OOMKilled" if s.get("OOMKilled") else ("Completed" if code == 0 else "Error")),
         "containerID": _cid(info)}
    if docker_time(s.get("StartedAt")):
        t["startedAt"] = docker_time(s.get("StartedAt"))
    if docker_time(s.get("FinishedAt")):
        t["finishedAt"] = docker_time(s.get("FinishedAt"))
    return t


def start_error(info):
    return {"exitCode": 128, "reason": "StartError", "containerID": _cid(info),
            "message": "failed to create containerd task: failed to create shim task: " + info["State"]["Error"]}


def container_status(pod, c, info, restart_policy):
    cs = {"name": c["name"], "image": c["image"], "imageID": _image_id(info), "containerID": _cid(info),
          "ready": False, "restartCount": 0, "started": False, "lastState": {}, "state": {}}
    if info is None:
        cs["state"] = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                      "message": "The container could not be located when the pod was terminated"}}
        cs.pop("containerID")
        return cs
    s = info["State"]
    if s.get("Running"):
        cs["state"] = {"running": {"startedAt": docker_time(s.get("StartedAt"))}}
        cs["ready"] = True
        cs["started"] = True
    elif s.get("Error"):
        cs["state"] = {"terminated": start_error(info)}
    elif s.get("Status") == "created":
        cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
    else:
        term = _terminated(info)
        if restart_policy == "Always" or (restart_policy == "OnFailure" and term["exitCode"] != 0):
            cs["lastState"] = {"terminated": term}
            cs["restartCount"] = 1
            cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container=%s pod=%s_%s(%s)" % (
                c["name"], pod["metadata"]["name"], pod["metadata"]["namespace"], pod["metadata"]["uid"])}}
        else:
            cs["state"] = {"terminated": term}
    return cs


def ephemeral_status(pod, ec, rt_e, info):
    cs = {"name": ec["name"], "image": ec["image"], "imageID": "", "ready": False, "restartCount": 0,
          "lastState": {}, "state": {}}
    if rt_e.get("image_missing"):
        age = time.time() - rt_e.get("created", 0)
        msg = 'Failed to pull image "%s": rpc error: code = NotFound desc = failed to pull and unpack image "%s": not found' % (
            ec["image"], ec["image"])
        if age < 2.0:
            cs["state"] = {"waiting": {"reason": "ErrImagePull", "message": msg}}
        else:
            cs["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "%s"' % ec["image"]}}
        return cs
    if rt_e.get("config_error"):
        cs["state"] = {"waiting": {"reason": "CreateContainerConfigError", "message": rt_e["config_error"]}}
        return cs
    if rt_e.get("start_error"):
        cs["state"] = {"terminated": {"exitCode": 128, "reason": "StartError",
                                      "message": "failed to create containerd task: failed to create shim task: " + rt_e["start_error"]}}
        return cs
    if info is None and not rt_e.get("started"):
        cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
        return cs
    if info is None:
        cs["state"] = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                      "message": "The container could not be located when the pod was terminated"}}
        return cs
    cs["imageID"] = _image_id(info)
    cs["containerID"] = _cid(info)
    s = info["State"]
    if s.get("Running"):
        cs["state"] = {"running": {"startedAt": docker_time(s.get("StartedAt"))}}
    elif s.get("Error"):
        cs["state"] = {"terminated": start_error(info)}
    elif s.get("Status") == "created":
        cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
    else:
        cs["state"] = {"terminated": _terminated(info)}
    return cs


def live_pods(pods):
    """Deep copies of stored pods with status computed from Docker, private fields removed."""
    names = []
    for p in pods:
        names += pod_docker_names(p)
    insp = docker_inspect(names)
    return [render_pod(p, insp) for p in pods]


def render_pod(pod, insp):
    p = copy.deepcopy(pod)
    rt = p.pop("_standin", {}) or {}
    spec = p["spec"]
    rp = spec.get("restartPolicy", "Always")
    statuses = [container_status(p, c, insp.get((rt.get("containers") or {}).get(c["name"])), rp)
                for c in spec["containers"]]
    eph = []
    for ec in spec.get("ephemeralContainers") or []:
        rte = (rt.get("ephemeral") or {}).get(ec["name"], {})
        eph.append(ephemeral_status(p, ec, rte, insp.get(rte.get("docker"))))
    sandbox_up = bool(insp.get(rt.get("sandbox"), {}).get("State", {}).get("Running"))
    states = [list(s["state"].keys())[0] for s in statuses]
    if not sandbox_up:
        phase = "Failed" if states and all(x == "terminated" for x in states) else "Pending"
        if all(x == "terminated" for x in states) and all(s["state"]["terminated"].get("exitCode") == 0 for s in statuses):
            phase = "Succeeded"
    elif any(x == "running" for x in states):
        phase = "Running"
    elif states and all(x == "terminated" for x in states):
        phase = "Succeeded" if all(s["state"]["terminated"].get("exitCode") == 0 for s in statuses) else "Failed"
    elif any(s["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff" for s in statuses):
        phase = "Running"
    else:
        phase = "Pending"
    all_ready = bool(statuses) and all(s["ready"] for s in statuses)
    created = p["metadata"]["creationTimestamp"]

    def cond(t, ok, reason=None):
        c = {"type": t, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": created}
        if not ok and reason:
            c["reason"] = reason
        return c

    p["status"] = {
        "phase": phase,
        "conditions": [
            cond("PodReadyToStartContainers", sandbox_up),
            cond("Initialized", True),
            cond("Ready", all_ready, "ContainersNotReady"),
            cond("ContainersReady", all_ready, "ContainersNotReady"),
            cond("PodScheduled", True),
        ],
        "hostIP": "192.0.2.10",
        "hostIPs": [{"ip": "192.0.2.10"}],
        "podIP": rt.get("podIP", ""),
        "podIPs": [{"ip": rt.get("podIP", "")}],
        "qosClass": "BestEffort",
        "startTime": created,
        "containerStatuses": statuses,
    }
    if eph:
        p["status"]["ephemeralContainerStatuses"] = eph
    return p


def render_objects(st, rt, objs):
    """Objects as the API returns them (live status)."""
    if rt is RT_POD:
        return live_pods(objs)
    res = []
    pods_cache = None
    for o in objs:
        o = copy.deepcopy(o)
        priv = o.pop("_standin", None) or {}
        if rt in (RT_DEPLOY, RT_RS, RT_STS, RT_DS, RT_JOB):
            if pods_cache is None:
                pods_cache = live_pods(list_objs(st, RT_POD, None))
            owned = owned_pods(st, o, pods_cache)
            ready = sum(1 for p in owned if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"]))
            fill_workload_status(rt, o, len(owned), ready, priv.get("rs", ""))
        res.append(o)
    return res


def owned_pods(st, obj, live):
    uid = obj["metadata"]["uid"]
    if obj["kind"] == "Deployment":
        rs_uids = {r["metadata"]["uid"] for r in list_objs(st, RT_RS, obj["metadata"]["namespace"])
                   if any(o["uid"] == uid for o in r["metadata"].get("ownerReferences", []))}
        return [p for p in live if any(o["uid"] in rs_uids for o in p["metadata"].get("ownerReferences", []))]
    return [p for p in live if any(o["uid"] == uid for o in p["metadata"].get("ownerReferences", []))]


def fill_workload_status(rt, o, n, ready, rs_name=""):
    gen = o["metadata"].get("generation", 1)
    if rt is RT_DEPLOY:
        o["status"] = {"observedGeneration": gen, "replicas": n, "updatedReplicas": n, "readyReplicas": ready,
                       "availableReplicas": ready,
                       "conditions": [
                           {"type": "Available", "status": "True" if ready >= o["spec"].get("replicas", 1) else "False",
                            "reason": "MinimumReplicasAvailable" if ready >= o["spec"].get("replicas", 1) else "MinimumReplicasUnavailable",
                            "message": "Deployment has minimum availability." if ready >= o["spec"].get("replicas", 1) else "Deployment does not have minimum availability.",
                            "lastUpdateTime": o["metadata"]["creationTimestamp"], "lastTransitionTime": o["metadata"]["creationTimestamp"]},
                           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                            "message": 'ReplicaSet "%s" has successfully progressed.' % rs_name,
                            "lastUpdateTime": o["metadata"]["creationTimestamp"], "lastTransitionTime": o["metadata"]["creationTimestamp"]}]}
        if ready == 0:
            o["status"].pop("readyReplicas")
            o["status"].pop("availableReplicas")
            o["status"]["unavailableReplicas"] = n
    elif rt is RT_RS:
        o["status"] = {"observedGeneration": gen, "replicas": n, "fullyLabeledReplicas": n, "readyReplicas": ready,
                       "availableReplicas": ready}
    elif rt is RT_STS:
        o["status"] = {"observedGeneration": gen, "replicas": n, "readyReplicas": ready, "availableReplicas": ready,
                       "currentReplicas": n, "updatedReplicas": n, "currentRevision": o["metadata"]["name"] + "-" + o["metadata"]["uid"][:10],
                       "updateRevision": o["metadata"]["name"] + "-" + o["metadata"]["uid"][:10], "collisionCount": 0}
    elif rt is RT_DS:
        o["status"] = {"observedGeneration": gen, "currentNumberScheduled": n, "desiredNumberScheduled": 1,
                       "numberAvailable": ready, "numberReady": ready, "numberMisscheduled": 0, "updatedNumberScheduled": n}
    elif rt is RT_JOB:
        o["status"] = {"active": n, "ready": ready, "startTime": o["metadata"]["creationTimestamp"],
                       "terminating": 0, "uncountedTerminatedPods": {}}


# ------------------------------------------------------------------------------------------
# label / field selectors


def parse_selector(sel):
    reqs = []
    if not sel:
        return reqs
    # split on commas not inside parentheses
    parts, depth, cur = [], 0, ""
    for ch in sel:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for p in parts:
        p = p.strip()
        if not p:
            continue
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\((.*)\)$", p)
        if m:
            vals = {v.strip() for v in m.group(3).split(",")}
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.match(r"^([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)$", p)
        if m:
            op = {"=": "==", "==": "==", "!=": "!="}[m.group(2)]
            reqs.append((m.group(1), op, m.group(3)))
            continue
        m = re.match(r"^(!?)([\w./-]+)$", p)
        if m:
            reqs.append((m.group(2), "!exists" if m.group(1) else "exists", None))
            continue
        raise Exit('error: unable to parse requirement: found \'%s\', expected: identifier' % p, 1)
    return reqs


def match_selector(labels, reqs):
    labels = labels or {}
    for k, op, v in reqs:
        have = k in labels
        val = labels.get(k)
        if op == "==" and val != v:
            return False
        if op == "!=" and have and val == v:
            return False
        if op == "in" and (not have or val not in v):
            return False
        if op == "notin" and have and val in v:
            return False
        if op == "exists" and not have:
            return False
        if op == "!exists" and have:
            return False
    return True


def match_field_selector(obj, sel):
    if not sel:
        return True
    for part in sel.split(","):
        m = re.match(r"^([\w.]+)\s*(==|!=|=)\s*(.*)$", part.strip())
        if not m:
            raise unsupported("field selector %r" % sel)
        path, op, val = m.groups()
        cur = obj
        for seg in path.split("."):
            cur = cur.get(seg) if isinstance(cur, dict) else None
        cur = "" if cur is None else str(cur)
        if (op == "!=") == (cur == val):
            return False
    return True


# ------------------------------------------------------------------------------------------
# flag parsing (pflag-like)


class Flag:
    def __init__(self, name, short=None, value=False, default=None):
        self.name, self.short, self.value, self.default = name, short, value, default


GLOBAL_FLAGS = [
    Flag("as", value=True), Flag("as-group", value=True), Flag("as-uid", value=True), Flag("cache-dir", value=True),
    Flag("certificate-authority", value=True), Flag("client-certificate", value=True), Flag("client-key", value=True),
    Flag("cluster", value=True), Flag("context", value=True), Flag("disable-compression"),
    Flag("insecure-skip-tls-verify"), Flag("kubeconfig", value=True), Flag("log-flush-frequency", value=True),
    Flag("match-server-version"), Flag("namespace", "n", value=True), Flag("password", value=True),
    Flag("profile-output", value=True), Flag("request-timeout", value=True), Flag("server", "s", value=True),
    Flag("tls-server-name", value=True), Flag("token", value=True), Flag("user", value=True),
    Flag("username", value=True), Flag("v", "v", value=True), Flag("vmodule", value=True),
    Flag("warnings-as-errors"),
]
GLOBAL_PROFILE = Flag("profile", value=True)  # the pprof one; debug shadows it


class FlagError(Exception):
    pass


class Parsed:
    def __init__(self):
        self.flags = {}
        self.args = []
        self.dash = -1  # ArgsLenAtDash
        self.changed = set()

    def get(self, name, default=None):
        return self.flags.get(name, default)


def _truthy(v):
    if v in ("true", "True", "TRUE", "1", "t", "T"):
        return True
    if v in ("false", "False", "FALSE", "0", "f", "F"):
        return False
    raise FlagError("invalid argument %r" % v)


def parse_flags(argv, specs, multi=("address", "env")):
    by_long = {f.name: f for f in specs}
    by_short = {f.short: f for f in specs if f.short}
    res = Parsed()

    def setv(f, v):
        if f.name in multi:
            res.flags.setdefault(f.name, []).append(v)
        else:
            res.flags[f.name] = v
        res.changed.add(f.name)

    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            res.dash = len(res.args)
            res.args += argv[i + 1:]
            break
        if a.startswith("--") and len(a) > 2:
            name, eq, val = a[2:].partition("=")
            f = by_long.get(name)
            if f is None:
                raise FlagError("unknown flag: --%s" % name)
            if f.value:
                if not eq:
                    if i + 1 >= len(argv):
                        raise FlagError("flag needs an argument: --%s" % name)
                    i += 1
                    val = argv[i]
                setv(f, val)
            else:
                try:
                    setv(f, _truthy(val) if eq else True)
                except FlagError:
                    raise FlagError('invalid argument "%s" for "--%s" flag: strconv.ParseBool: parsing "%s": invalid syntax' % (val, name, val))
        elif a.startswith("-") and len(a) > 1:
            s = a[1:]
            j = 0
            while j < len(s):
                ch = s[j]
                f = by_short.get(ch)
                if f is None:
                    raise FlagError("unknown shorthand flag: '%s' in -%s" % (ch, s))
                if f.value:
                    rest = s[j + 1:]
                    if rest.startswith("="):
                        rest = rest[1:]
                    if not rest:
                        if i + 1 >= len(argv):
                            raise FlagError("flag needs an argument: '%s' in -%s" % (ch, s))
                        i += 1
                        rest = argv[i]
                    setv(f, rest)
                    break
                if s[j + 1:j + 2] == "=":
                    setv(f, _truthy(s[j + 2:]))
                    break
                setv(f, True)
                j += 1
        else:
            res.args.append(a)
        i += 1
    return res


# ------------------------------------------------------------------------------------------
# context / namespace


class Ctx:
    def __init__(self, st, parsed, cmd_path):
        self.st = st
        self.p = parsed
        self.cmd_path = cmd_path

    def context_name(self):
        return self.p.get("context") or self.st.get("current_context") or ""

    def check_context(self, style="config"):
        """style 'config': 'Error in configuration: ...' (commands that read the namespace first);
        style 'rest': 'error: context "x" does not exist' (auth can-i, version)."""
        name = self.p.get("context")
        if name and name not in self.st["contexts"]:
            if style == "rest":
                raise Exit('error: context "%s" does not exist' % name, 1)
            raise Exit("Error in configuration: context was not found for specified context: %s" % name, 1)
        if not name and not self.st.get("current_context"):
            raise Exit("The connection to the server localhost:8080 was refused - did you specify the right host or port?", 1)

    def namespace(self):
        if self.p.get("namespace"):
            return self.p.get("namespace")
        c = self.st["contexts"].get(self.context_name()) or {}
        return c.get("namespace") or "default"


# ------------------------------------------------------------------------------------------
# commands


def resolve_type_name(args, default_rt=None):
    """["pod/x"] | ["x"] (default type) | ["pods", "x"] -> (rt, name)."""
    if not args:
        raise Exit("error: expected POD, TYPE/NAME, or TYPE NAME", 1)
    if "/" in args[0]:
        t, _, n = args[0].partition("/")
        return lookup_rtype(t), n, args[1:]
    if default_rt is not None:
        return default_rt, args[0], args[1:]
    raise Exit("error: expected TYPE/NAME", 1)


def pod_for_object(st, ctx, rt, name, ns, verb="get"):
    """kubectl's AttachablePodForObject: a pod, or the first active pod of a workload/service."""
    check_rbac(st, verb, rt, name, ns)
    obj = get_obj(st, rt, ns, name)
    if obj is None:
        raise not_found(rt, name)
    if rt is RT_POD:
        return obj
    if rt is RT_SVC:
        sel = [(k, "==", v) for k, v in (obj["spec"].get("selector") or {}).items()]
    elif rt is RT_KSVC:
        sel = [("serving.knative.dev/service", "==", name)]
    else:
        sel = [(k, "==", v) for k, v in (obj["spec"].get("selector", {}).get("matchLabels") or {}).items()]
    check_rbac(st, "list", RT_POD, None, ns)
    pods = [p for p in list_objs(st, RT_POD, ns) if match_selector(p["metadata"].get("labels"), sel)]
    if not pods:
        raise Exit("error: timed out waiting for the condition", 1)
    live = live_pods(pods)
    live.sort(key=lambda p: (p["status"]["phase"] != "Running", p["metadata"]["creationTimestamp"], p["metadata"]["name"]))
    chosen = live[0]["metadata"]["name"]
    return next(p for p in pods if p["metadata"]["name"] == chosen)


def find_container(pod, name):
    for c in pod["spec"]["containers"]:
        if c["name"] == name:
            return c, "containers"
    for c in pod["spec"].get("initContainers") or []:
        if c["name"] == name:
            return c, "initContainers"
    for c in pod["spec"].get("ephemeralContainers") or []:
        if c["name"] == name:
            return c, "ephemeralContainers"
    return None, None


def all_container_names(pod):
    names = [c["name"] for c in pod["spec"]["containers"]]
    names += ["%s (ephem)" % c["name"] for c in pod["spec"].get("ephemeralContainers") or []]
    names += ["%s (init)" % c["name"] for c in pod["spec"].get("initContainers") or []]
    return ", ".join(names)


def default_container(pod, quiet):
    ann = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    if ann:
        c, _ = find_container(pod, ann)
        if c is not None:
            return c
    c = pod["spec"]["containers"][0]
    if not quiet and (len(pod["spec"]["containers"]) > 1 or pod["spec"].get("initContainers") or pod["spec"].get("ephemeralContainers")):
        err('Defaulted container "%s" out of: %s\n' % (c["name"], all_container_names(pod)))
    return c


def docker_name_of_container(pod, cname):
    rt = pod.get("_standin") or {}
    if cname in (rt.get("containers") or {}):
        return rt["containers"][cname]
    e = (rt.get("ephemeral") or {}).get(cname)
    return e.get("docker") if e else None


def live_container_state(pod, cname):
    lp = live_pods([pod])[0]
    for s in lp["status"]["containerStatuses"] + lp["status"].get("ephemeralContainerStatuses", []):
        if s["name"] == cname:
            return lp, s
    return lp, None


def stdin_is_tty():
    try:
        return os.isatty(0)
    except Exception:
        return False


# --- get --------------------------------------------------------------------------------

GET_FLAGS = [Flag("all-namespaces", "A"), Flag("allow-missing-template-keys"), Flag("chunk-size", value=True),
             Flag("field-selector", value=True), Flag("filename", "f", value=True), Flag("ignore-not-found"),
             Flag("kustomize", "k", value=True), Flag("label-columns", "L", value=True), Flag("no-headers"),
             Flag("output", "o", value=True), Flag("output-watch-events"), Flag("raw", value=True),
             Flag("recursive", "R"), Flag("selector", "l", value=True), Flag("server-print"), Flag("show-kind"),
             Flag("show-labels"), Flag("show-managed-fields"), Flag("sort-by", value=True),
             Flag("subresource", value=True), Flag("template", value=True), Flag("watch", "w"), Flag("watch-only")]


def cmd_get(ctx):
    p = ctx.p
    for f in ("filename", "kustomize", "label-columns", "raw", "sort-by", "subresource", "template", "watch",
              "watch-only", "output-watch-events", "show-kind", "show-labels", "recursive"):
        if f in p.changed:
            raise unsupported("get --%s" % f)
    ctx.check_context()
    st = ctx.st
    output = p.get("output") or ""
    if not p.args:
        raise Exit('You must specify the type of resource to get. Use "kubectl api-resources" for a complete list of supported resources.\n\n'
                   'error: Required resource not specified.\nUse "kubectl explain <resource>" for a detailed description of that resource (e.g. kubectl explain pods).\n'
                   "See 'kubectl get -h' for help and examples", 1)
    all_ns = bool(p.get("all-namespaces"))
    ns = None if all_ns else ctx.namespace()
    sel = parse_selector(p.get("selector"))
    fsel = p.get("field-selector")
    # requests: list of (rt, name-or-None)
    reqs = []
    args = p.args
    if any("/" in a for a in args):
        for a in args:
            if "/" not in a:
                raise Exit("error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of 'kubectl get resource resource/<resource_name>'", 1)
            t, _, n = a.partition("/")
            reqs.append((lookup_rtype(t), n))
        single = len(args) == 1
    else:
        rts = [lookup_rtype(t) for t in args[0].split(",")]
        names = args[1:]
        if names:
            for rt in rts:
                for n in names:
                    reqs.append((rt, n))
        else:
            reqs = [(rt, None) for rt in rts]
        single = len(rts) == 1 and len(names) == 1
    if all_ns and any(n for _, n in reqs):
        raise Exit("error: a resource cannot be retrieved by name across all namespaces", 1)
    if (p.get("selector") or fsel) and any(n for _, n in reqs):
        raise Exit("error: name cannot be provided when a selector is specified", 1)
    items, errors = [], []
    for rt, name in reqs:
        rns = ns if rt.namespaced else None
        if name is not None:
            if rt.namespaced and ns is None:
                rns = ctx.namespace()
            try:
                check_rbac(st, "get", rt, name, rns)
            except Exit as e:
                errors.append(e.message)
                continue
            o = get_obj(st, rt, rns, name)
            if o is None:
                if not p.get("ignore-not-found"):
                    errors.append(not_found(rt, name).message)
                continue
            items.append((rt, o))
        else:
            try:
                check_rbac(st, "list", rt, None, rns)
            except Exit as e:
                errors.append(e.message)
                continue
            for o in list_objs(st, rt, rns):
                if match_selector(o["metadata"].get("labels"), sel):
                    items.append((rt, o))
    rendered = []
    i = 0
    while i < len(items):  # a run of one type at once: one `docker inspect` for all its pods
        j = i
        while j < len(items) and items[j][0] is items[i][0]:
            j += 1
        rendered += render_objects(st, items[i][0], [o for _, o in items[i:j]])
        i = j
    if fsel:
        rendered = [o for o in rendered if match_field_selector(o, fsel)]
    as_list = {"apiVersion": "v1", "items": rendered, "kind": "List", "metadata": {"resourceVersion": ""}}
    if output == "json":
        if single:
            if rendered:
                out(go_json(rendered[0]) + "\n")
        else:
            out(go_json(as_list) + "\n")
    elif output == "name":
        for (rt, _), o in zip(items, rendered):
            out(rt.name_of(o["metadata"]["name"]) + "\n")
    elif output.startswith("jsonpath="):
        tmpl = output[len("jsonpath="):]
        if rendered or not single:
            out(render_jsonpath(tmpl, rendered[0] if single else as_list))
    elif output == "" and all(rt is RT_POD for rt, _ in reqs):
        print_pod_table(rendered, all_ns, bool(p.get("no-headers")), ns if not errors else None, bool(errors))
    else:
        raise unsupported("get -o %s" % (output or "<table> for %s" % reqs[0][0].key))
    if errors:
        raise Exit("\n".join(errors), 1)


def print_pod_table(pods, all_ns, no_headers, ns, had_errors):
    if not pods:
        if not had_errors:
            err("No resources found in %s namespace.\n" % ns if ns else "No resources found\n")
        return
    rows = []
    for p in pods:
        sts = p["status"]["containerStatuses"]
        ready = "%d/%d" % (sum(1 for s in sts if s["ready"]), len(sts))
        status = p["status"]["phase"]
        for s in sts:
            w = s["state"].get("waiting")
            if w and w.get("reason"):
                status = w["reason"]
        restarts = sum(s["restartCount"] for s in sts)
        import calendar
        age = "%ds" % max(0, int(time.time() - calendar.timegm(time.strptime(p["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))))
        row = [p["metadata"]["name"], ready, status, str(restarts), age]
        if all_ns:
            row.insert(0, p["metadata"]["namespace"])
        rows.append(row)
    head = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    if all_ns:
        head.insert(0, "NAMESPACE")
    if not no_headers:
        rows.insert(0, head)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        out("   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() + "\n")


def render_jsonpath(tmpl, obj):
    """A small subset of kubectl's JSONPath: {.a.b}, {.a[0]}, {.a[*].b}, {.a['x.y']}, escaped dots."""
    if "range" in tmpl or "?(" in tmpl:
        raise unsupported("jsonpath %r" % tmpl)
    res = []
    pos = 0
    for m in re.finditer(r"\{([^{}]*)\}", tmpl):
        res.append(tmpl[pos:m.start()])
        pos = m.end()
        expr = m.group(1).strip()
        vals = jsonpath_eval(expr, obj)
        res.append(" ".join(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for v in vals))
    res.append(tmpl[pos:])
    return "".join(res).replace("\\n", "\n").replace("\\t", "\t")


def jsonpath_eval(expr, obj):
    if expr in ("", "."):
        return [obj]
    if not expr.startswith("."):
        expr = "." + expr
    toks = re.findall(r"\.((?:\\\.|[^.\[])+)|\[(\*|\d+|'[^']*'|\"[^\"]*\")\]", expr)
    cur = [obj]
    for name, idx in toks:
        nxt = []
        for c in cur:
            if name:
                key = name.replace("\\.", ".")
                if key == "*":
                    nxt += list(c.values()) if isinstance(c, dict) else list(c) if isinstance(c, list) else []
                elif isinstance(c, dict) and key in c:
                    nxt.append(c[key])
            elif idx == "*":
                nxt += list(c) if isinstance(c, list) else list(c.values()) if isinstance(c, dict) else []
            elif idx[0] in "'\"":
                if isinstance(c, dict) and idx[1:-1] in c:
                    nxt.append(c[idx[1:-1]])
            else:
                if isinstance(c, list) and int(idx) < len(c):
                    nxt.append(c[int(idx)])
        cur = nxt
    return cur


# --- version ------------------------------------------------------------------------------


def version_info(v, client=True):
    major, minor, patch = parse_version(v)
    d = {"major": str(major), "minor": str(minor) + ("+" if client and "-" in v else ""), "gitVersion": v,
         "gitCommit": hashlib.sha1(v.encode()).hexdigest(), "gitTreeState": "clean",
         "buildDate": "2025-04-22T16:02:27Z", "goVersion": "go1.23.8", "compiler": "gc", "platform": "linux/amd64"}
    return d


def cmd_version(ctx):
    p = ctx.p
    o = p.get("output") or ""
    if o not in ("", "json"):
        raise unsupported("version -o %s" % o)
    cv = client_version()
    res = {"clientVersion": version_info(cv), "kustomizeVersion": "v5.5.0"}
    if not p.get("client"):
        ctx.check_context(style="rest")
        res["serverVersion"] = version_info(ctx.st.get("server_version") or DEFAULT_SERVER_VERSION, client=False)
    if o == "json":
        out(json.dumps(res, indent=2) + "\n")
    else:
        out("Client Version: %s\nKustomize Version: v5.5.0\n" % cv)
        if "serverVersion" in res:
            out("Server Version: %s\n" % res["serverVersion"]["gitVersion"])
    if "serverVersion" in res:
        cmaj, cmin, _ = parse_version(cv)
        smaj, smin, _ = parse_version(res["serverVersion"]["gitVersion"])
        if cmaj == smaj and abs(cmin - smin) > 1:
            err("WARNING: version difference between client (%d.%d) and server (%d.%d) exceeds the supported minor version skew of +/-1\n"
                % (cmaj, cmin, smaj, smin))


# --- config -------------------------------------------------------------------------------


def cmd_config(ctx, sub):
    st, p = ctx.st, ctx.p
    if sub == "current-context":
        if not st.get("current_context"):
            raise Exit("error: current-context is not set", 1)
        out(st["current_context"] + "\n")
    elif sub == "get-contexts":
        o = p.get("output") or ""
        if o != "name":
            raise unsupported("config get-contexts -o %s" % (o or "<table>"))
        names = p.args or sorted(st["contexts"])
        for n in names:
            if n not in st["contexts"]:
                raise Exit("error: context %s not found" % n, 1)
            out(n + "\n")
    elif sub == "use-context":
        if len(p.args) != 1:
            raise Exit("error: Unexpected args: %s" % p.args, 1)
        n = p.args[0]
        if n not in st["contexts"]:
            raise Exit('error: no context exists with the name: "%s"' % n, 1)
        st["current_context"] = n
        ctx.dirty = True
        out('Switched to context "%s".\n' % n)
    elif sub == "view":
        if (p.get("output") or "yaml") != "json":
            raise unsupported("config view -o %s" % (p.get("output") or "yaml"))
        names = sorted(st["contexts"])
        if p.get("minify"):
            cur = p.get("context") or st.get("current_context")
            if not cur:
                raise Exit("error: current-context must exist in order to minify", 1)
            if cur not in st["contexts"]:
                raise Exit("error: cannot locate context %s" % cur, 1)
            names = [cur]
        ctxs, clusters, users = [], {}, {}
        for n in names:
            c = st["contexts"][n]
            cc = {"cluster": c.get("cluster", n), "user": c.get("user", user_of(st))}
            if c.get("namespace"):
                cc["namespace"] = c["namespace"]
            ctxs.append({"name": n, "context": cc})
            clusters[cc["cluster"]] = {"name": cc["cluster"], "cluster": {"server": "https://127.0.0.1:6443"}}
            users[cc["user"]] = {"name": cc["user"], "user": {"token": "REDACTED"}}
        cfg = {"kind": "Config", "apiVersion": "v1", "preferences": {},
               "clusters": [clusters[k] for k in sorted(clusters)],
               "users": [users[k] for k in sorted(users)],
               "contexts": ctxs,
               "current-context": (names[0] if p.get("minify") else st.get("current_context", ""))}
        out(go_json(cfg, sort_keys=False) + "\n")
    else:
        raise unsupported("config %s" % sub)


# --- auth can-i ---------------------------------------------------------------------------


def cmd_auth(ctx, sub):
    if sub != "can-i":
        raise unsupported("auth %s" % sub)
    p = ctx.p
    if p.get("list"):
        raise unsupported("auth can-i --list")
    ctx.check_context(style="rest")
    if len(p.args) < 2:
        raise Exit("error: you must specify two arguments: verb resource or verb resource/resourceName.\nSee 'kubectl auth can-i -h' for help and examples", 1)
    verb, res = p.args[0], p.args[1]
    if res.startswith("/"):
        raise unsupported("auth can-i on non-resource URLs")
    res, _, _name = res.partition("/")
    try:
        resource = rbac_resource(lookup_rtype(res))
    except Exit:
        err("Warning: the server doesn't have a resource type '%s'\n\n" % res)
        resource = res
    ns = None if p.get("all-namespaces") else ctx.namespace()
    allowed = not is_forbidden(ctx.st, verb, resource, p.get("subresource") or "", ns)
    if not p.get("quiet"):
        out("yes\n" if allowed else "no\n")
    if not allowed:
        raise Exit("", 1)


# --- exec ---------------------------------------------------------------------------------

EXEC_FLAGS = [Flag("container", "c", value=True), Flag("filename", "f", value=True),
              Flag("pod-running-timeout", value=True), Flag("quiet", "q"), Flag("stdin", "i"), Flag("tty", "t")]


def cmd_exec(ctx):
    p = ctx.p
    if "filename" in p.changed:
        raise unsupported("exec -f")
    if p.dash < 0 and len(p.args) > 1:
        raise Exit("error: exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead\n"
                   "See 'kubectl exec -h' for help and examples", 1)
    target = p.args[:p.dash] if p.dash >= 0 else p.args
    command = p.args[p.dash:] if p.dash >= 0 else []
    if not target:
        raise Exit("error: pod, type/name or --filename must be specified\nSee 'kubectl exec -h' for help and examples", 1)
    if not command:
        raise Exit("error: you must specify at least one command for the container\nSee 'kubectl exec -h' for help and examples", 1)
    ctx.check_context()
    st = ctx.st
    ns = ctx.namespace()
    rt, name, rest = resolve_type_name(target if len(target) == 1 else ["%s/%s" % (target[0], target[1])], RT_POD)
    pod = pod_for_object(st, ctx, rt, name, ns)
    lp = live_pods([pod])[0]
    if lp["status"]["phase"] in ("Succeeded", "Failed"):
        raise Exit("error: cannot exec into a container in a completed pod; current phase is %s" % lp["status"]["phase"], 1)
    cname = p.get("container")
    if not cname:
        cname = default_container(pod, bool(p.get("quiet")))["name"]
    tty = bool(p.get("tty"))
    stdin = bool(p.get("stdin"))
    if tty and not stdin_is_tty():
        if not p.get("quiet"):
            err("Unable to use a TTY - input is not a terminal or the right kind of file\n")
        tty = False
    pname = pod["metadata"]["name"]
    check_rbac(st, "create", RT_POD, pname, ns, "exec")
    c, _ = find_container(pod, cname)
    status = None
    for s in lp["status"]["containerStatuses"] + lp["status"].get("ephemeralContainerStatuses", []):
        if s["name"] == cname:
            status = s
    if c is None or status is None or "running" not in status["state"]:
        raise Exit('error: unable to upgrade connection: container not found ("%s")' % cname, 1)
    dname = docker_name_of_container(pod, cname)
    return ("exec", dname, cname, command, stdin, tty)


def run_exec(dname, cname, command, stdin, tty):
    args = ["docker", "exec"]
    if stdin:
        args.append("-i")
    if tty:
        args.append("-t")
    args += [dname] + command
    proc = subprocess.Popen(args, stdin=None if stdin else subprocess.DEVNULL, stdout=None, stderr=subprocess.PIPE,
                            bufsize=0, start_new_session=not tty, preexec_fn=die_with_me)
    held = bytearray()
    first = [True]

    def pump():
        fd = proc.stderr.fileno()
        while True:
            try:
                d = os.read(fd, 65536)
            except OSError:
                break
            if not d:
                break
            if first[0] and (d.startswith(b"OCI runtime exec failed") or d.startswith(b"Error response from daemon")):
                held.extend(d)
                continue
            first[0] = False
            if held:
                continue
            os.write(2, d)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    _forward_signals([proc])
    # `docker exec -i` outlives a removed container (it waits on stdin); real kubectl's
    # stream ends when the pod goes away, with the process killed (137).
    watch = end_streams_when_stopped(dname, [proc], grace=0.5)
    rc = proc.wait()
    stop_waiter(watch)
    if watch["dead"] and rc != 0:
        rc = 137
    t.join(5)
    if held:
        msg = held.decode(errors="replace").strip()
        if msg.startswith("Error response from daemon"):
            raise Exit('error: unable to upgrade connection: container not found ("%s")' % cname, 1)
        raise Exit('error: Internal error occurred: Internal error occurred: error executing command in container: '
                   'failed to exec in container: failed to start exec "%s": %s' % (uuid.uuid4().hex * 2, msg), 1)
    if rc != 0:
        raise Exit("command terminated with exit code %d" % rc, rc)


_children = []


try:
    import ctypes as _ctypes

    _prctl = _ctypes.CDLL(None).prctl
except (ImportError, OSError, AttributeError):
    _prctl = None


def die_with_me():
    """preexec_fn: the child gets SIGKILL when the thread that started it ends (Linux
    PR_SET_PDEATHSIG), so a killed stand-in leaves no docker client behind, as a killed real
    kubectl (one process) leaves nothing."""
    if _prctl is not None:
        _prctl(1, 9, 0, 0, 0)


def end_streams_when_stopped(container, procs, grace=1.0, wait_running=False, on_dead=None):
    """What the kubelet does to exec/attach/port-forward streams: when `container` stops or is removed,
    they end (a docker exec/attach client whose container is force-removed hangs on stdin instead).
    The `docker wait` helper is tracked so that it never outlives this process (stop_waiter).
    Returns a state dict: "dead" once the container stopped."""
    state = {"dead": False, "waiter": None}

    def run():
        if wait_running:  # `docker wait` returns at once for a created-but-not-started container
            while all(p.poll() is None for p in procs):
                r = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", container],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                if r.stdout.strip() == b"true" or r.returncode != 0:
                    break
                time.sleep(0.05)
        try:
            w = subprocess.Popen(["docker", "wait", container], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True,
                                 preexec_fn=die_with_me)
        except OSError:
            return
        state["waiter"] = w
        _children.append(w)
        w.wait()
        if state.get("stopped"):
            return
        state["dead"] = True
        if on_dead:
            on_dead()
        deadline = time.monotonic() + grace
        for p in list(procs):
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if p.poll() is None:
                with contextlib.suppress(Exception):
                    p.kill()

    threading.Thread(target=run, daemon=True).start()
    return state


def stop_waiter(state):
    state["stopped"] = True
    w = state.get("waiter")
    if w is not None and w.poll() is None:
        with contextlib.suppress(Exception):
            w.kill()
            w.wait()


def _forward_signals(procs):
    for p in procs:
        if p not in _children:
            _children.append(p)

    def on_term(signum, frame):
        for pr in _children:
            with contextlib.suppress(Exception):
                pr.kill()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_term)


# --- logs ---------------------------------------------------------------------------------

LOGS_FLAGS = [Flag("container", "c", value=True), Flag("tail", value=True), Flag("follow", "f"),
              Flag("timestamps"), Flag("previous", "p"), Flag("all-containers"), Flag("since", value=True),
              Flag("prefix"), Flag("selector", "l", value=True), Flag("pod-running-timeout", value=True),
              Flag("limit-bytes", value=True), Flag("ignore-errors"), Flag("since-time", value=True),
              Flag("max-log-requests", value=True), Flag("insecure-skip-tls-verify-backend")]


def cmd_logs(ctx):
    p = ctx.p
    for f in ("previous", "all-containers", "selector", "since", "since-time", "prefix", "limit-bytes", "timestamps"):
        if f in p.changed:
            raise unsupported("logs --%s" % f)
    ctx.check_context()
    st = ctx.st
    ns = ctx.namespace()
    rt, name, rest = resolve_type_name(p.args[:1], RT_POD)
    pod = pod_for_object(st, ctx, rt, name, ns)
    cname = p.get("container") or (rest[0] if rest else None) or default_container(pod, False)["name"]
    check_rbac(st, "get", RT_POD, pod["metadata"]["name"], ns, "log")
    c, _ = find_container(pod, cname)
    if c is None:
        raise Exit('error: container %s is not valid for pod %s' % (cname, pod["metadata"]["name"]), 1)
    dname = docker_name_of_container(pod, cname)
    args = ["docker", "logs"]
    if p.get("tail") is not None and p.get("tail") != "-1":
        args += ["--tail", p.get("tail")]
    if p.get("follow"):
        args.append("-f")
    return ("logs", args + [dname])


def run_logs(args):
    proc = subprocess.Popen(args, stdout=None, stderr=subprocess.STDOUT, start_new_session=True)
    _forward_signals([proc])
    proc.wait()


# --- debug --------------------------------------------------------------------------------

DEBUG_FLAGS = [Flag("arguments-only"), Flag("attach"), Flag("container", "c", value=True), Flag("copy-to", value=True),
               Flag("replace"), Flag("env", value=True), Flag("filename", "f", value=True), Flag("image", value=True),
               Flag("keep-annotations"), Flag("keep-init-containers"), Flag("keep-labels"), Flag("keep-liveness"),
               Flag("keep-readiness"), Flag("keep-startup"), Flag("set-image", value=True),
               Flag("image-pull-policy", value=True), Flag("stdin", "i"), Flag("quiet", "q"), Flag("same-node"),
               Flag("share-processes"), Flag("target", value=True), Flag("tty", "t"), Flag("profile", value=True),
               Flag("custom", value=True)]

def debug_flags_for_version(v):
    major, minor, _ = parse_version(v)
    flags = list(DEBUG_FLAGS)
    if (major, minor) < (1, 25):  # debug --profile came with 1.25 (kubernetes#105008, "legacy" only)
        flags = [f for f in flags if f.name != "profile"] + [GLOBAL_PROFILE]
    if (major, minor) < (1, 31):
        flags = [f for f in flags if f.name != "custom"]
    return flags


def known_profiles(v):
    """general/baseline/restricted: 1.27 (kubernetes#114280), netadmin: 1.27 (#115712), sysadmin: 1.30 (#119200)."""
    major, minor, _ = parse_version(v)
    if (major, minor) < (1, 27):
        return ["legacy"]
    if (major, minor) < (1, 30):
        return ["legacy", "general", "baseline", "restricted", "netadmin"]
    return ["legacy", "general", "baseline", "restricted", "netadmin", "sysadmin"]


def apply_profile(profile, ec):
    sc = ec.setdefault("securityContext", {})
    if profile == "general":
        sc.setdefault("capabilities", {}).setdefault("add", []).append("SYS_PTRACE")
    elif profile == "netadmin":
        sc.setdefault("capabilities", {}).setdefault("add", []).extend(["NET_ADMIN", "NET_RAW"])
    elif profile == "sysadmin":
        sc["privileged"] = True
    elif profile == "restricted":
        sc["runAsNonRoot"] = True
        sc["capabilities"] = {"drop": ["ALL"]}
        sc["allowPrivilegeEscalation"] = False
        sc["seccompProfile"] = {"type": "RuntimeDefault"}
    if not sc:
        ec.pop("securityContext")


def merge_patch(base, patch):
    """Strategic-merge-ish: dicts merge recursively, env merges by name, other lists/scalars replace."""
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge_patch(base[k], v)
        elif k == "env" and isinstance(v, list) and isinstance(base.get(k), list):
            names = {e["name"]: i for i, e in enumerate(base[k])}
            for e in v:
                if e.get("name") in names:
                    base[k][names[e["name"]]] = e
                else:
                    base[k].append(e)
        else:
            base[k] = v
    return base


def psa_violations(level, pod_spec):
    """pod-security-admission: the checks relevant to debug containers, in check-ID order."""
    pod_sc = pod_spec.get("securityContext") or {}
    containers = list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or []) + \
        list(pod_spec.get("ephemeralContainers") or [])

    def plural(names):
        return ("container" if len(names) == 1 else "containers") + " " + ", ".join(go_quote(n) for n in names)

    res = []
    if level == "restricted":
        bad = [c["name"] for c in containers if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False]
        if bad:
            res.append("allowPrivilegeEscalation != false (%s must set securityContext.allowPrivilegeEscalation=false)" % plural(bad))
    caps_details = []
    if level == "baseline":
        allowed = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                   "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
        bad, capset = [], set()
        for c in containers:
            add = ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
            extra = [x for x in add if x not in allowed]
            if extra:
                bad.append(c["name"])
                capset.update(extra)
        if bad:
            res.append("non-default capabilities (%s must not include %s in securityContext.capabilities.add)"
                       % (plural(bad), ", ".join(go_quote(x) for x in sorted(capset))))
    else:
        missing_drop, adding, capset = [], [], set()
        for c in containers:
            caps = (c.get("securityContext") or {}).get("capabilities")
            if caps is None:
                missing_drop.append(c["name"])
                continue
            if "ALL" not in (caps.get("drop") or []):
                missing_drop.append(c["name"])
            extra = [x for x in caps.get("add") or [] if x != "NET_BIND_SERVICE"]
            if extra:
                adding.append(c["name"])
                capset.update(extra)
        if missing_drop:
            caps_details.append('%s must set securityContext.capabilities.drop=["ALL"]' % plural(missing_drop))
        if adding:
            caps_details.append("%s must not include %s in securityContext.capabilities.add"
                                % (plural(adding), ", ".join(go_quote(x) for x in sorted(capset))))
        if caps_details:
            res.append("unrestricted capabilities (%s)" % "; ".join(caps_details))
    bad = [c["name"] for c in containers if (c.get("securityContext") or {}).get("privileged")]
    if bad:
        res.append("privileged (%s must not set securityContext.privileged=true)" % plural(bad))
    if level == "restricted":
        pod_nonroot = pod_sc.get("runAsNonRoot") is True
        explicit_false = [c["name"] for c in containers if (c.get("securityContext") or {}).get("runAsNonRoot") is False]
        unset = [c["name"] for c in containers if (c.get("securityContext") or {}).get("runAsNonRoot") is None]
        if explicit_false or (unset and not pod_nonroot):
            parts = []
            if explicit_false:
                parts.append("%s must not set securityContext.runAsNonRoot=false" % plural(explicit_false))
            if unset and not pod_nonroot:
                parts.append("pod or %s must set securityContext.runAsNonRoot=true" % plural(unset))
            res.append("runAsNonRoot != true (%s)" % "; ".join(parts))
        bad = [c["name"] for c in containers if (c.get("securityContext") or {}).get("runAsUser") == 0]
        if bad:
            res.append("runAsUser=0 (%s must not set runAsUser=0)" % plural(bad))
        pod_secc = (pod_sc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
        unset = [c["name"] for c in containers
                 if ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost")]
        if unset and not pod_secc:
            res.append('seccompProfile (pod or %s must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
                       % plural(unset))
    return res


def cmd_debug(ctx):
    p = ctx.p
    st = ctx.st
    cv = client_version()
    for f in ("copy-to", "replace", "same-node", "set-image", "share-processes", "filename", "keep-labels",
              "keep-annotations", "keep-liveness", "keep-readiness", "keep-startup", "keep-init-containers"):
        if f in p.changed:
            raise unsupported("debug --%s" % f)
    major, minor, _ = parse_version(cv)
    if "profile" in p.changed and (major, minor) < (1, 25):
        # no debug --profile: the global pprof --profile flag gets the value
        if p.get("profile") not in ("none", "cpu", "heap", "goroutine", "threadcreate", "block", "mutex", "allocs"):
            raise Exit(klog_error("run.go:72", '"command failed" err="unknown profile \'%s\'"' % p.get("profile")).rstrip("\n"), 1)
        profile = "legacy"
    else:
        profile = p.get("profile") or ("general" if (major, minor) >= (1, 36) else "legacy")
    # Complete
    target = p.args[:p.dash] if p.dash >= 0 else p.args
    command = p.args[p.dash:] if p.dash >= 0 else []
    interactive = bool(p.get("stdin"))
    attach = p.get("attach") if "attach" in p.changed else interactive
    ctx.check_context()
    ns = ctx.namespace()
    if profile not in known_profiles(cv):
        raise Exit("error: unknown profile: %s" % profile, 1)
    custom = None
    if p.get("custom"):
        try:
            with open(p.get("custom")) as f:
                raw = f.read()
        except OSError as e:
            raise Exit("error: must pass a container spec json file for custom profile: open %s: %s"
                       % (p.get("custom"), (e.strerror or str(e)).lower()), 1)
        try:
            custom = json.loads(raw)
        except ValueError:
            raise unsupported("--custom in YAML (use JSON)")
    # Validate
    image = p.get("image") or ""
    if attach and "attach" in p.changed and not image and not p.get("container"):
        raise Exit("error: you must specify --container or create a new container using --image in order to attach.", 1)
    if not image:
        raise Exit("error: you must specify --image when not using --copy-to.", 1)
    if not re.match(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$", image):
        raise Exit('error: invalid image name "%s": invalid reference format' % image, 1)
    if not target:
        raise Exit("error: NAME or filename is required for debug", 1)
    pull = p.get("image-pull-policy") or ""
    if pull not in ("", "Always", "IfNotPresent", "Never"):
        raise Exit("error: invalid image pull policy: %s" % pull, 1)
    tgt = p.get("target") or ""
    quiet = bool(p.get("quiet"))
    if tgt and not quiet:
        out('Targeting container "%s". If you don\'t see processes from this container it may be because the container runtime doesn\'t support this feature.\n' % tgt)
    if p.get("tty") and not interactive:
        raise Exit("error: -i/--stdin is required for containers with -t/--tty=true", 1)
    if custom is not None and (custom.get("name") or custom.get("command") or custom.get("image")
                               or custom.get("lifecycle") or custom.get("volumeDevices")):
        raise Exit("error: name, command, image, lifecycle and volume devices are not modifiable via custom profile", 1)
    if profile == "legacy" and (major, minor) >= (1, 36):
        err('--profile=legacy is deprecated and planned to be removed in v1.39. It is recommended to specify other profile, for example "--profile=general".\n')
    elif profile == "legacy" and (major, minor) >= (1, 32):  # kubernetes#127230
        err('--profile=legacy is deprecated and will be removed in the future. It is recommended to explicitly specify a profile, for example "--profile=general".\n')
    # Run
    results = []
    for t in target:
        rt, name, _ = resolve_type_name([t], RT_POD)
        check_rbac(st, "get", rt, name, ns)
        obj = get_obj(st, rt, ns, name)
        if obj is None:
            raise not_found(rt, name)
        if rt is not RT_POD:
            raise Exit('error: "%s, Kind=%s" not supported by debug' % (rt.api_version, rt.kind), 1)
        results.append(debug_one(ctx, obj, ns, image, pull, command, bool(p.get("arguments-only")), interactive,
                                 bool(p.get("tty")), tgt, profile, custom, p.get("env") or [], p.get("container"), quiet, attach))
    return results


def debug_one(ctx, pod, ns, image, pull, command, args_only, interactive, tty, tgt, profile, custom, env, cname, quiet, attach):
    st = ctx.st
    pname = pod["metadata"]["name"]
    existing = {c["name"] for c in pod["spec"]["containers"]} | {c["name"] for c in pod["spec"].get("initContainers") or []} | \
        {c["name"] for c in pod["spec"].get("ephemeralContainers") or []}
    if cname:
        name = cname
    else:
        name = ""
        while not name or name in existing:
            name = "debugger-" + rand_suffix(5)
        if not quiet:
            out("Defaulting debug container name to %s.\n" % name)
    ec = {"name": name, "image": image, "resources": {}, "terminationMessagePolicy": "File",
          "terminationMessagePath": "/dev/termination-log"}
    if env:
        pairs = [kv for e in env for kv in e.split(",") if kv]
        ec["env"] = [{"name": k, "value": v} for k, v in sorted(dict(kv.split("=", 1) for kv in pairs).items())]
    if pull:
        ec["imagePullPolicy"] = pull
    else:
        ec["imagePullPolicy"] = "Always" if (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")) else "IfNotPresent"
    if interactive:
        ec["stdin"] = True
    if tty:
        ec["tty"] = True
    if tgt:
        ec["targetContainerName"] = tgt
    if command:
        ec["args" if args_only else "command"] = command
    apply_profile(profile, ec)
    if custom:
        merge_patch(ec, custom)
    # displayWarning
    pod_uid = (pod["spec"].get("securityContext") or {}).get("runAsUser")
    sc = ec.get("securityContext") or {}
    if pod_uid and sc and sc.get("runAsUser") != 0 and (sc.get("privileged") or (sc.get("capabilities") or {}).get("add")):
        err('Warning: Non-root user is configured for the entire target Pod, and some capabilities granted by debug profile may not work. Please consider using "--custom" with a custom profile that specifies "securityContext.runAsUser: 0".\n')
    # --- "server side"
    check_rbac(st, "patch", RT_POD, pname, ns, "ephemeralcontainers")
    if st.get("no_ephemeral"):
        raise Exit('error: ephemeral containers are disabled for this cluster (error from server: "the server could not find the requested resource")', 1)
    idx = len(pod["spec"].get("ephemeralContainers") or [])
    if name in existing:
        raise Exit('The Pod "%s" is invalid: spec.ephemeralContainers[%d].name: Duplicate value: "%s"' % (pname, idx, name), 1)
    if tgt and tgt not in {c["name"] for c in pod["spec"]["containers"]}:
        raise Exit('The Pod "%s" is invalid: spec.ephemeralContainers[%d].targetContainerName: Not found: "%s"' % (pname, idx, tgt), 1)
    nslabels = (st["namespaces"].get(ns) or {}).get("labels") or {}
    level = nslabels.get("pod-security.kubernetes.io/enforce", "privileged")
    if level in ("baseline", "restricted"):
        spec = copy.deepcopy(pod["spec"])
        spec.setdefault("ephemeralContainers", []).append(ec)
        v = psa_violations(level, spec)
        if v:
            ver = nslabels.get("pod-security.kubernetes.io/enforce-version", "latest")
            raise Exit('Error from server (Forbidden): pods "%s" is forbidden: violates PodSecurity "%s:%s": %s'
                       % (pname, level, ver, ", ".join(v)), 1)
    # record
    dname = docker_name(st["id"], ns, pname, name)
    rte = {"docker": dname, "created": time.time(), "started": False}
    if not image_present(image):
        rte["image_missing"] = True
    else:
        uid = sc.get("runAsUser", (pod["spec"].get("securityContext") or {}).get("runAsUser"))
        nonroot = sc.get("runAsNonRoot", (pod["spec"].get("securityContext") or {}).get("runAsNonRoot"))
        if nonroot and uid is None and image_user(image) in ("", "root", "0"):
            rte["config_error"] = 'container has runAsNonRoot and image will run as root (pod: "%s_%s(%s)", container: %s)' % (
                pname, ns, pod["metadata"]["uid"], name)
        elif nonroot and uid == 0:
            rte["config_error"] = "container's runAsUser breaks non-root policy (pod: \"%s_%s(%s)\", container: %s)" % (
                pname, ns, pod["metadata"]["uid"], name)
    pod["spec"].setdefault("ephemeralContainers", []).append(ec)
    pod["_standin"].setdefault("ephemeral", {})[name] = rte
    pod["metadata"]["resourceVersion"] = next_rv(st)
    return {"pod": pname, "ns": ns, "name": name, "ec": ec, "rte": rte, "interactive": interactive,
            "tty": tty, "attach": attach, "quiet": quiet}


def debug_start(job):
    """After the state is saved: start the ephemeral container, attach if asked. kubectl exits 0
    whatever the command in the container does."""
    ns, pname, name, ec, rte = job["ns"], job["pod"], job["name"], job["ec"], job["rte"]
    with locked_state(write=False) as st:
        pod = st["objects"].get(obj_key(RT_POD, ns, pname))
        forbid_attach = is_forbidden(st, "create", "pods", "attach", ns)
        user = user_of(st)
    if pod is None:
        return 0
    if rte.get("image_missing") or rte.get("config_error"):
        if job["attach"]:
            wait_forever_waiting(job)
        return 0
    sandbox = pod["_standin"]["sandbox"]
    args = ["--name", rte["docker"], "--network", "container:" + sandbox, "--ipc", "container:" + sandbox]
    if ec.get("targetContainerName"):
        args += ["--pid", "container:" + pod["_standin"]["containers"][ec["targetContainerName"]]]
    args += security_args(ec.get("securityContext"), pod["spec"].get("securityContext"))
    args += env_args(ec.get("env"))
    args += labels_args(pod["_standin"]["id"], ns, pname, "ephemeral", name)
    if job["interactive"]:
        args += ["-i"]
    attach_now = job["attach"] and not forbid_attach
    tty = bool(job["tty"] and attach_now and job["interactive"] and stdin_is_tty())
    if attach_now and job["tty"] and not tty and not job["quiet"]:
        err("Unable to use a TTY - input is not a terminal or the right kind of file\n")
    if tty:
        args += ["-t"]
    args += [ec["image"]] + container_cmd(ec)
    created = subprocess.run(["docker", "create"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    mark_started(ns, pname, name)
    if created.returncode != 0:
        # e.g. an invalid capability: the kubelet would report a failed start
        record_start_error(ns, pname, name, created.stderr.decode(errors="replace").strip())
        return 0
    if not attach_now:
        subprocess.run(["docker", "start", rte["docker"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if job["attach"] and forbid_attach:
            err('warning: couldn\'t attach to pod/%s, falling back to streaming logs: pods "%s" is forbidden: '
                'User "%s" cannot create resource "pods/attach" in API group "" in the namespace "%s"\n'
                % (pname, pname, user, ns))
            lp = subprocess.run(["docker", "logs", rte["docker"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out(lp.stdout.decode(errors="replace"))
        return 0
    if not job["quiet"]:
        err("If you don't see a command prompt, try pressing enter.\n")
    # `docker start -a` forwards the signals it gets to the container: keep it out of our process group
    # (killing kubectl never kills the ephemeral container)
    start = ["docker", "start", "--attach"] + (["--interactive"] if job["interactive"] else [])
    proc = subprocess.Popen(start + [rte["docker"]], stdin=None if job["interactive"] else subprocess.DEVNULL,
                            stdout=None, stderr=subprocess.PIPE, bufsize=0, start_new_session=True)
    _forward_signals([proc])
    watch = end_streams_when_stopped(rte["docker"], [proc], grace=2.0, wait_running=True)
    held = bytearray()
    while True:
        d = os.read(proc.stderr.fileno(), 65536)
        if not d:
            break
        if not held and d.startswith(b"Error response from daemon"):
            held.extend(d)  # a failed start: reported through the container status, as the kubelet does
            continue
        if held:
            held.extend(d)
            continue
        os.write(2, d)
    proc.wait()
    stop_waiter(watch)
    if tty and not job["quiet"]:
        out("Session ended, the ephemeral container will not be restarted but may be reattached using "
            "'kubectl attach %s -c %s -i -t' if it is still running\n" % (pname, name))
    return 0


def wait_forever_waiting(job):
    """kubectl debug --attach waits for Running with no timeout, printing waiting messages as warnings."""
    ns, pname, name = job["ns"], job["pod"], job["name"]
    last = None
    while True:
        with locked_state(write=False) as st:
            pod = st["objects"].get(obj_key(RT_POD, ns, pname))
        if pod is None:
            raise Exit('Error from server (NotFound): pods "" not found', 1)
        _, s = live_container_state(pod, name)
        w = (s or {}).get("state", {}).get("waiting") or {}
        key = (w.get("reason"), w.get("message"))
        if not job["quiet"] and w.get("message") and key != last:
            err("Warning: container %s: %s\n" % (name, w["message"]))
        last = key
        time.sleep(0.5)


def mark_started(ns, pname, name):
    with locked_state() as st:
        pod = st["objects"].get(obj_key(RT_POD, ns, pname))
        if pod is not None and name in pod["_standin"].get("ephemeral", {}):
            pod["_standin"]["ephemeral"][name]["started"] = True


def record_start_error(ns, pname, name, msg):
    msg = re.sub(r"^(docker: )?Error response from daemon: ", "", msg).split("\nSee 'docker")[0]
    with locked_state() as st:
        pod = st["objects"].get(obj_key(RT_POD, ns, pname))
        if pod is not None and name in pod["_standin"].get("ephemeral", {}):
            pod["_standin"]["ephemeral"][name]["start_error"] = msg


# --- port-forward -------------------------------------------------------------------------

PF_FLAGS = [Flag("address", value=True), Flag("pod-running-timeout", value=True)]

RELAY = r"""
import os, socket, sys, threading
port = int(sys.argv[1])
errs, s = [], None
for fam, host, label in ((socket.AF_INET, "127.0.0.1", "IPv4: dial tcp4 127.0.0.1:%d"),
                         (socket.AF_INET6, "::1", "IPv6 dial tcp6 [::1]:%d")):
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.connect((host, port))
        break
    except OSError as e:
        errs.append((label % port) + ": connect: " + (e.strerror or str(e)).lower())
        s = None
if s is None:
    sys.stderr.write(" ".join(errs))
    sys.stderr.flush()
    os._exit(2)
os.write(1, b"+")
def up():
    while True:
        try:
            d = os.read(0, 65536)
        except OSError:
            d = b""
        if not d:
            break
        try:
            s.sendall(d)
        except OSError:
            break
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
threading.Thread(target=up, daemon=True).start()
while True:
    try:
        d = s.recv(65536)
    except OSError:
        d = b""
    if not d:
        break
    v = memoryview(d)
    while v:
        n = os.write(1, v)
        v = v[n:]
os._exit(0)
"""


def parse_ports(args):
    ports = []
    for a in args:
        local, sep, remote = a.partition(":")
        if not sep:
            remote = local
        try:
            r = int(remote)
            l = int(local) if local else 0
            if not (0 < r < 65536 and 0 <= l < 65536):
                raise ValueError
        except ValueError:
            if not sep:
                raise Exit('error: Error parsing local port \'%s\': strconv.ParseUint: parsing "%s": invalid syntax' % (local, local), 1)
            if local:
                try:
                    int(local)
                except ValueError:
                    raise Exit('error: Error parsing local port \'%s\': strconv.ParseUint: parsing "%s": invalid syntax' % (local, local), 1)
            raise Exit('error: Error parsing remote port \'%s\': strconv.ParseUint: parsing "%s": invalid syntax' % (remote, remote), 1)
        ports.append([l, r])
    return ports


def cmd_port_forward(ctx):
    p = ctx.p
    if len(p.args) < 2:
        raise Exit("error: TYPE/NAME and list of ports are required for port-forward\nSee 'kubectl port-forward -h' for help and examples", 1)
    ctx.check_context()
    st = ctx.st
    ns = ctx.namespace()
    rt, name, _ = resolve_type_name(p.args[:1], RT_POD)
    ports = parse_ports(p.args[1:])
    pod = pod_for_object(st, ctx, rt, name, ns)
    if rt is RT_SVC:
        svc = get_obj(st, RT_SVC, ns, name)
        for pr in ports:
            for sp in svc["spec"].get("ports") or []:
                if sp.get("port") == pr[1]:
                    tp = sp.get("targetPort", pr[1])
                    if isinstance(tp, int):
                        pr[1] = tp
    lp = live_pods([pod])[0]
    if lp["status"]["phase"] != "Running":
        raise Exit("error: unable to forward port because pod is not running. Current status=%s" % lp["status"]["phase"], 1)
    pname = pod["metadata"]["name"]
    try:
        check_rbac(st, "create", RT_POD, pname, ns, "portforward")
    except Exit as e:  # the dialer wraps it: "error upgrading connection: <status message>"
        raise Exit("error: error upgrading connection: " + e.message.split(": ", 1)[1], 1)
    addrs = p.get("address") or ["localhost"]
    listen = {}
    for a in ",".join(addrs).split(","):
        a = a.strip()
        if a == "localhost":
            listen["127.0.0.1"] = ("tcp4", "all")
            listen["::1"] = ("tcp6", "all")
        else:
            try:
                socket.inet_pton(socket.AF_INET, a)
                listen[a] = ("tcp4", "any")
            except OSError:
                try:
                    socket.inet_pton(socket.AF_INET6, a)
                    listen[a] = ("tcp6", "any")
                except OSError:
                    raise Exit("error: %s is not a valid IP" % a, 1)
    return ("port-forward", pod, ports, sorted(listen.items()))


def relay_error_message(sandbox_id, remote, detail):
    return ('error forwarding port %d to pod %s, uid : failed to execute portforward in network namespace "/var/run/netns/cni-%s": '
            'failed to connect to localhost:%d inside namespace "%s", %s ' % (remote, sandbox_id, str(uuid.UUID(sandbox_id[:32])), remote, sandbox_id, detail))


def run_port_forward(pod, ports, addrs):
    sandbox = pod["_standin"]["sandbox"]
    insp = docker_inspect([sandbox]).get(sandbox)
    sandbox_id = insp["Id"] if insp else hashlib.sha256(sandbox.encode()).hexdigest()
    listeners = []  # (sock, port)
    ok_any = False
    for port in ports:
        errors = []
        fails = {"all": 0, "any": 0}
        succ = {"all": 0, "any": 0}
        for addr, (proto, mode) in addrs:
            fam = socket.AF_INET if proto == "tcp4" else socket.AF_INET6
            hostport = ("[%s]:%d" if fam == socket.AF_INET6 else "%s:%d") % (addr, port[0])
            try:
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((addr, port[0]))
                s.listen(128)
            except OSError as e:
                with contextlib.suppress(Exception):
                    s.close()
                errors.append("unable to create listener: Error listen %s %s: bind: %s" % (proto, hostport, (e.strerror or str(e)).lower()))
                fails[mode] += 1
                continue
            port[0] = s.getsockname()[1]
            shown = ("[%s]:%d" if fam == socket.AF_INET6 else "%s:%d") % (addr, port[0])
            out("Forwarding from %s -> %d\n" % (shown, port[1]))
            listeners.append((s, tuple(port)))
            succ[mode] += 1
        failed = (succ["all"] == 0 and fails["all"] > 0) or fails["any"] > 0
        if failed:
            err("Unable to listen on port %d: Listeners failed to create with the following errors: [%s]\n" % (port[0], " ".join(errors)))
        else:
            ok_any = True
    if not ok_any:
        for s, _ in listeners:
            s.close()
        raise Exit("error: unable to listen on any of the requested ports: [%s]" % " ".join("{%d %d}" % (l, r) for l, r in ports), 1)

    lost = threading.Event()
    procs = []
    lock = threading.Lock()

    # The pod going away ends the stream: kubectl exits with "lost connection to pod".
    pod_watch = end_streams_when_stopped(sandbox, procs, grace=0.2, on_dead=lost.set)

    def handle(conn, local, remote):
        out("Handling connection for %d\n" % local)
        try:
            proc = subprocess.Popen(["docker", "exec", "-i", sandbox, "python3", "-c", RELAY, str(remote)],
                                    preexec_fn=die_with_me,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                                    start_new_session=True)
        except OSError as e:
            err(klog_error("portforward.go:424", '"Unhandled Error" err="an error occurred forwarding %d -> %d: %s"' % (local, remote, e)))
            conn.close()
            lost.set()
            return
        with lock:
            procs.append(proc)
        _children.append(proc)
        first = proc.stdout.read(1)
        if first != b"+":
            proc.wait()
            emsg = proc.stderr.read().decode(errors="replace").strip()
            if "No such container" in emsg or "is not running" in emsg:
                detail = 'failed to find sandbox "%s" in store: not found' % sandbox_id
                msg = "error forwarding port %d to pod %s, uid : %s" % (remote, sandbox_id, detail)
            else:
                msg = relay_error_message(sandbox_id, remote, emsg)
            conn.close()
            err(klog_error("portforward.go:424", '"Unhandled Error" err=%s' % go_quote(
                "an error occurred forwarding %d -> %d: %s" % (local, remote, msg))))
            lost.set()
            return

        def up():
            try:
                while True:
                    d = conn.recv(65536)
                    if not d:
                        break
                    proc.stdin.write(d)
            except OSError:
                pass
            with contextlib.suppress(Exception):
                proc.stdin.close()

        t = threading.Thread(target=up, daemon=True)
        t.start()
        try:
            while True:
                d = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else os.read(proc.stdout.fileno(), 65536)
                if not d:
                    break
                conn.sendall(d)
        except OSError:
            with contextlib.suppress(Exception):
                proc.kill()
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)
        proc.wait()
        conn.close()

    def accept_loop():
        socks = {s.fileno(): (s, port) for s, port in listeners}
        while not lost.is_set():
            try:
                r, _, _ = select.select(list(socks), [], [], 0.2)
            except (OSError, ValueError):
                return
            for fd in r:
                s, (local, remote) = socks[fd]
                try:
                    conn, _ = s.accept()
                except OSError:
                    continue
                threading.Thread(target=handle, args=(conn, local, remote), daemon=True).start()

    def on_int(signum, frame):
        stop_waiter(pod_watch)
        for pr in list(procs):
            with contextlib.suppress(Exception):
                pr.kill()
        os._exit(0)

    signal.signal(signal.SIGINT, on_int)
    _forward_signals(procs)
    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    lost.wait()
    stop_waiter(pod_watch)
    for s, _ in listeners:
        with contextlib.suppress(Exception):
            s.close()
    for pr in list(procs):
        with contextlib.suppress(Exception):
            pr.kill()
    raise Exit("error: lost connection to pod", 1)


# ------------------------------------------------------------------------------------------
# dispatcher

COMMANDS = {
    "get": GET_FLAGS,
    "exec": EXEC_FLAGS,
    "debug": DEBUG_FLAGS,
    "port-forward": PF_FLAGS,
    "logs": LOGS_FLAGS,
    "version": [Flag("client"), Flag("output", "o", value=True)],
    ("config", "current-context"): [],
    ("config", "view"): [Flag("allow-missing-template-keys"), Flag("flatten"), Flag("merge"), Flag("minify"),
                         Flag("output", "o", value=True), Flag("raw"), Flag("show-managed-fields"), Flag("template", value=True)],
    ("config", "get-contexts"): [Flag("no-headers"), Flag("output", "o", value=True)],
    ("config", "use-context"): [],
    ("auth", "can-i"): [Flag("all-namespaces", "A"), Flag("list"), Flag("no-headers"), Flag("quiet", "q"),
                        Flag("subresource", value=True)],
}

REAL_ONLY = {"apply", "create", "delete", "describe", "edit", "patch", "label", "annotate", "rollout", "scale",
             "attach", "cp", "top", "run", "expose", "set", "wait", "events", "explain", "api-resources",
             "api-versions", "cluster-info", "plugin", "completion", "options", "diff", "kustomize", "replace",
             "autoscale", "certificate", "cordon", "uncordon", "drain", "taint", "proxy", "alpha", "help"}


def log_argv(argv):
    path = os.environ.get("WAND_STANDIN_LOG")
    if not path:
        return
    line = json.dumps(argv) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def split_command(argv):
    """Leading global flags, then the command words. Returns (cmd key, display path, remaining args)."""
    gl = {f.name: f for f in GLOBAL_FLAGS + [GLOBAL_PROFILE]}
    gs = {f.short: f for f in GLOBAL_FLAGS if f.short}
    i = 0
    pre = []
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and len(a) > 2:
            name, eq, _ = a[2:].partition("=")
            f = gl.get(name)
            if f is None:
                raise Exit("Error: flags cannot be placed before plugin name: %s" % a, 1)
            pre.append(a)
            if f.value and not eq:
                i += 1
                if i < len(argv):
                    pre.append(argv[i])
            i += 1
            continue
        if a.startswith("-") and len(a) > 1:
            f = gs.get(a[1])
            if f is None:
                raise Exit("Error: flags cannot be placed before plugin name: %s" % a, 1)
            pre.append(a)
            if f.value and len(a) == 2:
                i += 1
                if i < len(argv):
                    pre.append(argv[i])
            i += 1
            continue
        break
    if i >= len(argv):
        raise unsupported("kubectl without a command")
    word = argv[i]
    rest = argv[i + 1:]
    if word in ("config", "auth"):
        # the sub-command is the first non-flag word after it (global flags may come between)
        j = 0
        while j < len(rest) and rest[j].startswith("-"):
            j += 1
        if j >= len(rest):
            raise unsupported("%s without a sub-command" % word)
        sub = rest[j]
        key = (word, sub)
        if key not in COMMANDS:
            raise unsupported("%s %s" % (word, sub))
        return key, "kubectl %s %s" % (word, sub), pre + rest[:j] + rest[j + 1:]
    if word in COMMANDS:
        return word, "kubectl " + word, pre + rest
    if word in REAL_ONLY:
        raise unsupported(word)
    raise Exit('error: unknown command "%s" for "kubectl"' % word, 1)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    log_argv(argv)
    try:
        return _main(argv)
    except Exit as e:
        if e.message:
            err(e.message if e.message.endswith("\n") else e.message + "\n")
        return e.code
    except BrokenPipeError:
        return 1


def _main(argv):
    key, path, rest = split_command(argv)
    specs = list(COMMANDS[key]) + list(GLOBAL_FLAGS)
    if key == "debug":
        specs = debug_flags_for_version(client_version()) + list(GLOBAL_FLAGS)
    elif not any(f.name == "profile" for f in specs):
        specs.append(GLOBAL_PROFILE)
    try:
        parsed = parse_flags(rest, specs)
    except FlagError as e:
        raise Exit("Error: %s\nSee '%s --help' for usage." % (e, path), 1)
    if key != "debug" and parsed.get("profile") not in (None, "none", "cpu", "heap", "goroutine", "threadcreate", "block", "mutex", "allocs"):
        raise Exit(klog_error("run.go:72", '"command failed" err="unknown profile \'%s\'"' % parsed.get("profile")).rstrip("\n"), 1)
    if key == "version" and parsed.get("client"):
        ctx = Ctx({"contexts": {}, "current_context": ""}, parsed, path)
        cmd_version(ctx)
        return 0
    post = None
    # only these change the state; every other command reads it under a shared lock, so
    # concurrent calls (a fan-out) neither queue behind each other nor rewrite the file
    writes = key in ("debug", ("config", "use-context"))
    with locked_state(write=writes, shared=not writes) as st:
        ctx = Ctx(st, parsed, path)
        if key == "get":
            cmd_get(ctx)
        elif key == "version":
            cmd_version(ctx)
        elif isinstance(key, tuple) and key[0] == "config":
            cmd_config(ctx, key[1])
        elif isinstance(key, tuple) and key[0] == "auth":
            cmd_auth(ctx, key[1])
        elif key == "exec":
            post = cmd_exec(ctx)
        elif key == "logs":
            post = cmd_logs(ctx)
        elif key == "debug":
            post = ("debug", cmd_debug(ctx))
        elif key == "port-forward":
            post = cmd_port_forward(ctx)
    # the long-running parts run without the state lock
    if post is None:
        return 0
    if post[0] == "exec":
        run_exec(*post[1:])
    elif post[0] == "logs":
        run_logs(post[1])
    elif post[0] == "debug":
        rc = 0
        for job in post[1]:
            rc = debug_start(job) or rc
        return rc
    elif post[0] == "port-forward":
        run_port_forward(*post[1:])
    return 0
