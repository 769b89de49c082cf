"""The test API server's model: cluster state in a JSON file, pods as Docker containers.

  pod            = one "sandbox" container (`sleep infinity`, --network none, --ipc shareable)
  pod container  = one container joining the sandbox's network and IPC namespaces, with its own
                   PID namespace (like a pod without shareProcessNamespace)
  ephemeral      = one container joining the sandbox's network/IPC and, with targetContainerName,
                   the PID namespace of the target container (like kubectl debug --target)

Status is rendered live from `docker inspect`. Texts (Pod Security, RBAC) follow the
pod-security-admission and apiserver sources; see README.md next to this file.
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
import subprocess
import time

LABEL = "kubectl-wand-testpod"
DEFAULT_IMAGE = os.environ.get("WAND_TEST_POD_IMAGE", "wand-bed/py314:latest")
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
NODE_NAME = "wand-node"
DEFAULT_SERVER_VERSION = "v1.32.4"
DEFAULT_USER = "wand-user"


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


def parse_version(v):
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", v or "")
    if not m:
        return (1, 32, 4)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def version_info(v):
    """/version's answer for server version v."""
    major, minor, _ = parse_version(v)
    return {"major": str(major), "minor": str(minor), "gitVersion": v,
            "gitCommit": hashlib.sha1(v.encode()).hexdigest(), "gitTreeState": "clean",
            "buildDate": "2025-04-22T16:02:27Z", "goVersion": "go1.23.8", "compiler": "gc",
            "platform": "linux/amd64"}


# ------------------------------------------------------------------------------------------
# state

def state_hash(path):
    return hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:10]


def new_state(path):
    return {
        "version": 1,
        "id": state_hash(path),
        "rv": 1000,
        "user": DEFAULT_USER,
        "server_version": DEFAULT_SERVER_VERSION,
        "namespaces": {},
        "objects": {},
        "forbid": [],
        "no_ephemeral": False,
    }


@contextlib.contextmanager
def locked_state(path, write=True, shared=False):
    """Load the state under a flock (exclusive, or shared for a reader that never writes);
    save it back (atomically) if write."""
    if shared and write:
        raise ValueError("a shared lock is for readers")
    lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        with open(path) as f:
            st = json.load(f)
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


def rbac_resource(rt):
    """The resource word matched against forbid entries: "pods", "deployments", ...;
    Knative services are "services.serving.knative.dev" (plain "services" are core Services)."""
    return rt.key if rt is RT_KSVC else rt.plural


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
    return "wandpod-%s-%s-%s-%s" % (st_id, ns, pod, container)


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
    rt = pod.get("_docker") or {}
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
    rt = p.pop("_docker", {}) or {}
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
        priv = o.pop("_docker", None) or {}
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


def docker_name_of_container(pod, cname):
    rt = pod.get("_docker") or {}
    if cname in (rt.get("containers") or {}):
        return rt["containers"][cname]
    e = (rt.get("ephemeral") or {}).get(cname)
    return e.get("docker") if e else None


from tests.kube.apiserver.rules import (  # noqa: E402,F401 (part of the model's interface)
    match_field_selector, match_selector, merge_patch, parse_selector, psa_violations)
