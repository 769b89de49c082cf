"""Test-side API of the test cluster: its API server (server.py, a child process) for the real
kubectl, and its objects, whose pods are Docker containers.

    from tests.kube.apiserver.cluster import Cluster

    c = Cluster(tmp_path)                        # state file + env for subprocesses
    d = c.deployment("web")                      # Deployment -> ReplicaSet -> Pod "web-<hash>-<5>"
    c.wait_pod_ready(d.pod, ready_line="READY")  # real signals: containers running, line in the logs
    subprocess.run(["kubectl-wand", ...], env=c.env)   # `kubectl` on PATH: a real one, KUBECONFIG: the test API
    c.requests()                                 # every API request the real kubectl made
    c.close()                                    # removes every container (ephemeral ones too)

Default pod container: name "app", image wand-bed/py314:latest, `python3 /app/http_app.py`
(prints "READY 8000", listens on 127.0.0.1:8000 in the pod), uid 1000.
Container dicts: name, image, command, args, env (dict or list), user (-> securityContext.runAsUser),
securityContext, ports.
"""
import concurrent.futures
import copy
import json
import os
import subprocess
import sys
import time
import uuid

from tests.kube.apiserver import model as core

HERE = os.path.dirname(os.path.abspath(__file__))
from tests.kube.apiserver.kubectls import TRANSPORTS, kubectl_binary, kubectl_versions  # noqa: E402,F401

DEFAULT_IMAGE = core.DEFAULT_IMAGE
DEFAULT_CONTAINER = {"name": "app", "command": ["python3", "/app/http_app.py"], "user": 1000}


class Created:
    """What a workload call made: kind, name, namespace and its pods (names, in creation order)."""

    def __init__(self, kind, name, namespace, pods):
        self.kind, self.name, self.namespace, self.pods = kind, name, namespace, pods

    @property
    def pod(self):
        return self.pods[0]

    def __repr__(self):
        return "Created(%s/%s in %s, pods=%s)" % (self.kind, self.name, self.namespace, self.pods)


def docker_available():
    try:
        return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def image_available(image=DEFAULT_IMAGE):
    try:
        return subprocess.run(["docker", "image", "inspect", image], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Cluster:
    def __init__(self, tmpdir, image=DEFAULT_IMAGE, client_version=None, server_version=None, user=None,
                 transport=None, serve=True):
        self.dir = os.path.abspath(str(tmpdir))
        os.makedirs(self.dir, exist_ok=True)
        self.image = image
        self.state_path = os.path.join(self.dir, "cluster-state.json")
        self.requests_path = os.path.join(self.dir, "api-requests.jsonl")
        st = core.new_state(self.state_path)
        now = core.now_rfc3339()
        for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
            st["namespaces"][n] = {"uid": str(uuid.uuid4()), "labels": {}, "creationTimestamp": now}
        if server_version:
            st["server_version"] = server_version
        if user:
            st["user"] = user
        with open(self.state_path, "w") as f:
            json.dump(st, f, indent=1, sort_keys=True)
        self.id = st["id"]
        open(self.requests_path, "a").close()
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.server = None
        env = dict(os.environ)
        env.pop("WAND_KUBECTL", None)
        self.kubectl = kubectl_binary(client_version)
        cp = subprocess.run([self.kubectl, "version", "--client", "-o", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, timeout=30)
        v = json.loads(cp.stdout)["clientVersion"]
        self.kubectl_version = (int(v["major"]), int(v["minor"].rstrip("+")))
        # `kubectl` on PATH is the chosen real binary (the plugin finds it there)
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir, exist_ok=True)
        os.symlink(self.kubectl, os.path.join(bindir, "kubectl"))
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        env["KUBECONFIG"] = self.kubeconfig
        self.transport = transport or os.environ.get("WAND_TEST_TRANSPORT") or "websocket"
        for k, v in TRANSPORTS[self.transport].items():
            env[k] = v
        self.env = env
        self.log_path = os.path.join(self.dir, "apiserver.log")
        if serve:
            self._start_server()
        self._closed = False

    def _start_server(self):
        """The test API server (tests/kube/apiserver) for this state, in its own process."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
        log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONPATH=root, WAND_APISERVER_REQUESTS=self.requests_path)
        self.server = subprocess.Popen([sys.executable, "-m", "tests.kube.apiserver", "--state", self.state_path,
                                        "--kubeconfig", self.kubeconfig], cwd=root, env=env,
                                       stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        line = self.server.stdout.readline().decode()
        if not line.startswith("READY "):
            self.server.kill()
            with open(self.log_path) as f:
                raise RuntimeError("test API server did not start: %s%s" % (line, f.read()[-2000:]))
        self.port = int(line.split()[1])

    # --- plumbing ---------------------------------------------------------------------------

    def _state(self, write=True):
        return core.locked_state(self.state_path, write=write)

    def state(self):
        """A snapshot of the state (read-only copy)."""
        with self._state(write=False) as st:
            return copy.deepcopy(st)

    def run(self, *args, input=None, timeout=60, env=None):
        """Run the real kubectl against this cluster; returns CompletedProcess with bytes stdout/stderr."""
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([self.kubectl] + [str(a) for a in args], input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=e, timeout=timeout)

    def requests(self):
        """Every API request served so far: {"method", "path", "query"} dicts, oldest first."""
        with open(self.requests_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def clear_requests(self):
        open(self.requests_path, "w").close()

    # --- cluster-level settings --------------------------------------------------------------

    def namespace(self, name, labels=None):
        with self._state() as st:
            n = st["namespaces"].setdefault(name, {"uid": str(uuid.uuid4()), "labels": {},
                                                   "creationTimestamp": core.now_rfc3339()})
            if labels is not None:
                n["labels"] = dict(labels)
            n["resourceVersion"] = core.next_rv(st)
        return name

    def context(self, name, namespace="default", current=False):
        with self._state() as st:
            st["contexts"][name] = {"cluster": name, "user": st.get("user", core.DEFAULT_USER), "namespace": namespace}
            if current:
                st["current_context"] = name
        return name

    def use_context(self, name):
        with self._state() as st:
            st["current_context"] = name

    def forbid(self, *resources):
        """e.g. forbid("pods/ephemeralcontainers"), forbid("create pods/exec"), forbid("list pods@prod")."""
        with self._state() as st:
            for r in resources:
                if r not in st["forbid"]:
                    st["forbid"].append(r)

    def allow(self, *resources):
        with self._state() as st:
            st["forbid"] = [r for r in st["forbid"] if r not in resources]

    def set(self, **kw):
        """no_ephemeral=True, user="alice", server_version="v1.29.3", current_context=..."""
        with self._state() as st:
            for k, v in kw.items():
                st[k] = v

    # --- objects ----------------------------------------------------------------------------

    def _container(self, c):
        c = dict(c)
        image = c.get("image") or self.image
        d = {"name": c.get("name") or "app", "image": image,
             "imagePullPolicy": c.get("imagePullPolicy") or (
                 "Always" if (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")) else "IfNotPresent"),
             "resources": {}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
        if c.get("command"):
            d["command"] = list(c["command"])
        if c.get("args"):
            d["args"] = list(c["args"])
        env = c.get("env")
        if env:
            d["env"] = [{"name": k, "value": str(v)} for k, v in env.items()] if isinstance(env, dict) else list(env)
        sc = dict(c.get("securityContext") or {})
        if c.get("user") is not None:
            sc["runAsUser"] = int(c["user"])
        if sc:
            d["securityContext"] = sc
        if c.get("ports"):
            d["ports"] = [{"containerPort": int(p), "protocol": "TCP"} for p in c["ports"]]
        return d

    def _template(self, labels, annotations, containers, pod_security_context, restart_policy="Always"):
        containers = containers or [DEFAULT_CONTAINER]
        meta = {"labels": dict(labels)}
        if annotations:
            meta["annotations"] = dict(annotations)
        return {"metadata": meta,
                "spec": {"containers": [self._container(c) for c in containers],
                         "restartPolicy": restart_policy, "terminationGracePeriodSeconds": 30,
                         "dnsPolicy": "ClusterFirst", "securityContext": dict(pod_security_context or {}),
                         "schedulerName": "default-scheduler"}}

    @staticmethod
    def _meta(name, ns, labels=None, annotations=None, owner=None, rv="1"):
        m = {"name": name, "namespace": ns, "uid": str(uuid.uuid4()), "creationTimestamp": core.now_rfc3339(),
             "resourceVersion": rv, "generation": 1}
        if labels:
            m["labels"] = dict(labels)
        if annotations:
            m["annotations"] = dict(annotations)
        if owner is not None:
            m["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                     "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                     "controller": True, "blockOwnerDeletion": True}]
        return m

    def _pod_object(self, st, name, ns, template, owner=None, extra_labels=None, generate_name=None):
        labels = dict(template["metadata"].get("labels") or {})
        labels.update(extra_labels or {})
        meta = self._meta(name, ns, labels, template["metadata"].get("annotations"), owner, core.next_rv(st))
        meta.pop("generation")
        if generate_name:
            meta["generateName"] = generate_name
        spec = copy.deepcopy(template["spec"])
        spec.update({"nodeName": core.NODE_NAME, "serviceAccountName": "default", "serviceAccount": "default",
                     "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
                     "tolerations": [
                         {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                         {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]})
        n = int(st.get("rv", 1000)) % 250 + 2
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
               "_docker": {"id": self.id, "sandbox": core.docker_name(self.id, ns, name, "sandbox"),
                            "containers": {c["name"]: core.docker_name(self.id, ns, name, c["name"]) for c in spec["containers"]},
                            "ephemeral": {}, "podIP": "10.244.0.%d" % n}}
        st["objects"][core.obj_key(core.RT_POD, ns, name)] = pod
        return pod

    def _start_pods(self, pods, wait=True, ready_line=None, timeout=60):
        """Start the Docker containers of pods (sandbox first), several pods in parallel."""

        def start(pod):
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            # the pod's "pause" container: the bed image whatever the app's image (a kubelet's
            # sandbox never has the app's layout)
            core.run_sandbox(self.id, ns, name, self.image)
            sandbox = pod["_docker"]["sandbox"]
            for c in pod["spec"]["containers"]:
                if not core.image_present(c["image"]):
                    continue  # stays "ContainerStatusUnknown"; tests of pull errors use ephemeral containers
                core.run_pod_container(self.id, ns, name, sandbox, c, pod["spec"].get("securityContext"))

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
            for f in [ex.submit(start, p) for p in pods]:
                f.result()
        if wait:
            for p in pods:
                self.wait_pod_ready(p["metadata"]["name"], p["metadata"]["namespace"], ready_line=ready_line, timeout=timeout)

    def _ns_exists(self, st, ns):
        if ns not in st["namespaces"]:
            st["namespaces"][ns] = {"uid": str(uuid.uuid4()), "labels": {}, "creationTimestamp": core.now_rfc3339()}

    def deployment(self, name, ns="default", replicas=1, containers=None, labels=None, annotations=None,
                   pod_security_context=None, deployment_annotations=None, wait=True, ready_line=None):
        """Deployment -> ReplicaSet "<name>-<hash>" -> pods "<name>-<hash>-<5>". `annotations` go on the pod
        template (e.g. {"kubectl.kubernetes.io/default-container": "app"})."""
        labels = dict(labels or {"app": name})
        template = self._template(labels, annotations, containers, pod_security_context)
        with self._state() as st:
            self._ns_exists(st, ns)
            h = core.rand_suffix(10)
            dmeta = self._meta(name, ns, labels, dict({"deployment.kubernetes.io/revision": "1"}, **(deployment_annotations or {})),
                               rv=core.next_rv(st))
            dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dmeta,
                   "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)}, "template": template,
                            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}}
            dep["_docker"] = {"rs": "%s-%s" % (name, h)}
            st["objects"][core.obj_key(core.RT_DEPLOY, ns, name)] = dep
            rs = self._replicaset(st, dep, h, replicas)
            pods = [self._rs_pod(st, rs) for _ in range(replicas)]
        self._start_pods(pods, wait, ready_line)
        return Created("Deployment", name, ns, [p["metadata"]["name"] for p in pods])

    def _replicaset(self, st, owner, h, replicas, name=None):
        ns = owner["metadata"]["namespace"]
        name = name or "%s-%s" % (owner["metadata"]["name"], h)
        tmpl = copy.deepcopy(owner["spec"]["template"])
        tmpl["metadata"]["labels"]["pod-template-hash"] = h
        sel = dict(owner["spec"]["selector"]["matchLabels"], **{"pod-template-hash": h})
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": self._meta(name, ns, tmpl["metadata"]["labels"],
                                     {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                      "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                                      "deployment.kubernetes.io/revision": "1"}, owner, core.next_rv(st)),
              "spec": {"replicas": replicas, "selector": {"matchLabels": sel}, "template": tmpl}}
        st["objects"][core.obj_key(core.RT_RS, ns, name)] = rs
        return rs

    def _rs_pod(self, st, rs):
        ns = rs["metadata"]["namespace"]
        while True:
            pname = "%s-%s" % (rs["metadata"]["name"], core.rand_suffix(5))
            if core.obj_key(core.RT_POD, ns, pname) not in st["objects"]:
                break
        return self._pod_object(st, pname, ns, rs["spec"]["template"], rs, generate_name=rs["metadata"]["name"] + "-")

    def statefulset(self, name, ns="default", replicas=1, containers=None, labels=None, annotations=None,
                    pod_security_context=None, wait=True, ready_line=None):
        labels = dict(labels or {"app": name})
        template = self._template(labels, annotations, containers, pod_security_context)
        with self._state() as st:
            self._ns_exists(st, ns)
            sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": self._meta(name, ns, labels, rv=core.next_rv(st)),
                   "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)}, "serviceName": name,
                            "template": template, "podManagementPolicy": "OrderedReady",
                            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}}
            st["objects"][core.obj_key(core.RT_STS, ns, name)] = sts
            pods = [self._sts_pod(st, sts, i) for i in range(replicas)]
        self._start_pods(pods, wait, ready_line)
        return Created("StatefulSet", name, ns, [p["metadata"]["name"] for p in pods])

    def _sts_pod(self, st, sts, i):
        name = sts["metadata"]["name"]
        pname = "%s-%d" % (name, i)
        rev = "%s-%s" % (name, sts["metadata"]["uid"].replace("-", "")[:10])
        return self._pod_object(st, pname, sts["metadata"]["namespace"], sts["spec"]["template"], sts,
                                {"controller-revision-hash": rev, "statefulset.kubernetes.io/pod-name": pname,
                                 "apps.kubernetes.io/pod-index": str(i)}, generate_name=name + "-")

    def daemonset(self, name, ns="default", containers=None, labels=None, annotations=None,
                  pod_security_context=None, wait=True, ready_line=None):
        labels = dict(labels or {"app": name})
        template = self._template(labels, annotations, containers, pod_security_context)
        with self._state() as st:
            self._ns_exists(st, ns)
            ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": self._meta(name, ns, labels, rv=core.next_rv(st)),
                  "spec": {"selector": {"matchLabels": dict(labels)}, "template": template,
                           "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}}}
            st["objects"][core.obj_key(core.RT_DS, ns, name)] = ds
            pods = [self._ds_pod(st, ds)]
        self._start_pods(pods, wait, ready_line)
        return Created("DaemonSet", name, ns, [p["metadata"]["name"] for p in pods])

    def _ds_pod(self, st, ds):
        name = ds["metadata"]["name"]
        return self._pod_object(st, "%s-%s" % (name, core.rand_suffix(5)), ds["metadata"]["namespace"], ds["spec"]["template"], ds,
                                {"controller-revision-hash": core.rand_suffix(10), "pod-template-generation": "1"},
                                generate_name=name + "-")

    def job(self, name, ns="default", containers=None, labels=None, annotations=None, pod_security_context=None,
            wait=True, ready_line=None):
        with self._state() as st:
            self._ns_exists(st, ns)
            meta = self._meta(name, ns, None, rv=core.next_rv(st))
            uid = meta["uid"]
            jl = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                  "controller-uid": uid, "job-name": name}
            meta["labels"] = dict(jl, **(labels or {}))
            template = self._template(dict(jl, **(labels or {})), annotations, containers, pod_security_context, "Never")
            job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                   "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}, "template": template,
                            "completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                            "suspend": False, "manualSelector": False, "podReplacementPolicy": "TerminatingOrFailed"}}
            st["objects"][core.obj_key(core.RT_JOB, ns, name)] = job
            pods = [self._job_pod(st, job)]
        self._start_pods(pods, wait, ready_line)
        return Created("Job", name, ns, [p["metadata"]["name"] for p in pods])

    def _job_pod(self, st, job):
        name = job["metadata"]["name"]
        return self._pod_object(st, "%s-%s" % (name, core.rand_suffix(5)), job["metadata"]["namespace"], job["spec"]["template"], job,
                                generate_name=name + "-")

    def pod(self, name, ns="default", containers=None, labels=None, annotations=None, pod_security_context=None,
            restart_policy="Always", wait=True, ready_line=None):
        """A bare pod (no owner)."""
        template = self._template(labels or {}, annotations, containers, pod_security_context, restart_policy)
        if not labels:
            template["metadata"].pop("labels")
        with self._state() as st:
            self._ns_exists(st, ns)
            pod = self._pod_object(st, name, ns, template)
        self._start_pods([pod], wait, ready_line)
        return Created("Pod", name, ns, [name])

    def service(self, name, selector, ns="default", ports=((80, 8000),)):
        """ports: (port, targetPort) pairs."""
        with self._state() as st:
            self._ns_exists(st, ns)
            n = int(st.get("rv", 1000)) % 250 + 2
            svc = {"apiVersion": "v1", "kind": "Service", "metadata": self._meta(name, ns, rv=core.next_rv(st)),
                   "spec": {"selector": dict(selector), "type": "ClusterIP", "clusterIP": "10.96.0.%d" % n,
                            "clusterIPs": ["10.96.0.%d" % n], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                            "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                            "ports": [{"name": "p%d" % p, "port": p, "targetPort": t, "protocol": "TCP"} for p, t in ports]},
                   "status": {"loadBalancer": {}}}
            svc["metadata"].pop("generation")
            st["objects"][core.obj_key(core.RT_SVC, ns, name)] = svc
        return Created("Service", name, ns, [])

    def knative_service(self, name, ns="default", containers=None, annotations=None, pod_security_context=None,
                        wait=True, ready_line=None):
        """serving.knative.dev/v1 Service "name" -> Deployment "<name>-00001-deployment" -> pods labelled
        serving.knative.dev/service=<name>. The default container is named "user-container"."""
        containers = containers or [dict(DEFAULT_CONTAINER, name="user-container")]
        rev = "%s-00001" % name
        with self._state() as st:
            self._ns_exists(st, ns)
            ksvc_meta = self._meta(name, ns, rv=core.next_rv(st))
            ksvc = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": ksvc_meta,
                    "spec": {"template": {"metadata": {"annotations": dict(annotations or {})},
                                          "spec": {"containers": [self._container(c) for c in containers]}},
                             "traffic": [{"latestRevision": True, "percent": 100}]},
                    "status": {"observedGeneration": 1, "url": "http://%s.%s.svc.cluster.local" % (name, ns),
                               "latestCreatedRevisionName": rev, "latestReadyRevisionName": rev,
                               "conditions": [{"type": t, "status": "True", "lastTransitionTime": ksvc_meta["creationTimestamp"]}
                                              for t in ("ConfigurationsReady", "Ready", "RoutesReady")]}}
            st["objects"][core.obj_key(core.RT_KSVC, ns, name)] = ksvc
        labels = {"serving.knative.dev/service": name, "serving.knative.dev/configuration": name,
                  "serving.knative.dev/revision": rev, "serving.knative.dev/revisionUID": ksvc_meta["uid"],
                  "serving.knative.dev/configurationGeneration": "1", "app": rev}
        d = self.deployment("%s-deployment" % rev, ns=ns, containers=containers, labels=labels, annotations=annotations,
                            pod_security_context=pod_security_context, wait=wait, ready_line=ready_line)
        return Created("Service.serving.knative.dev", name, ns, d.pods)

    # --- pod lifecycle ----------------------------------------------------------------------

    def _take_pod(self, st, name, ns):
        key = core.obj_key(core.RT_POD, ns, name)
        pod = st["objects"].pop(key, None)
        if pod is None:
            raise KeyError("no pod %s/%s" % (ns, name))
        return pod

    def delete_pod(self, name, ns="default"):
        """Remove a pod and all its containers (no replacement)."""
        with self._state() as st:
            pod = self._take_pod(st, name, ns)
        core.remove_containers(core.pod_docker_names(pod))

    def replace_pod(self, name, ns="default", wait=True, ready_line=None):
        """A rollout/crash of a managed pod: its containers go away and its controller makes a new pod
        (ReplicaSet/DaemonSet/Job: new random name; StatefulSet: same name). Returns the new pod's name."""
        with self._state() as st:
            pod = self._take_pod(st, name, ns)
            refs = pod["metadata"].get("ownerReferences") or []
            if not refs:
                st["objects"][core.obj_key(core.RT_POD, ns, name)] = pod
                raise ValueError("pod %s/%s has no controller to replace it" % (ns, name))
            ref = refs[0]
            rt = {"ReplicaSet": core.RT_RS, "StatefulSet": core.RT_STS, "DaemonSet": core.RT_DS, "Job": core.RT_JOB}[ref["kind"]]
            owner = st["objects"][core.obj_key(rt, ns, ref["name"])]
        core.remove_containers(core.pod_docker_names(pod))
        with self._state() as st:
            if rt is core.RT_RS:
                new = self._rs_pod(st, owner)
            elif rt is core.RT_STS:
                new = self._sts_pod(st, owner, int(name.rsplit("-", 1)[1]))
            elif rt is core.RT_DS:
                new = self._ds_pod(st, owner)
            else:
                new = self._job_pod(st, owner)
        self._start_pods([new], wait, ready_line)
        return new["metadata"]["name"]

    def pods(self, ns="default", selector=None):
        reqs = core.parse_selector(selector) if selector else []
        with self._state(write=False) as st:
            return [p["metadata"]["name"] for p in core.list_objs(st, core.RT_POD, ns)
                    if core.match_selector(p["metadata"].get("labels"), reqs)]

    def docker_name(self, pod, container=None, ns="default"):
        """The Docker container behind a pod container (default: the first), an ephemeral one, or
        container="sandbox"."""
        with self._state(write=False) as st:
            p = st["objects"][core.obj_key(core.RT_POD, ns, pod)]
        if container == "sandbox":
            return p["_docker"]["sandbox"]
        return core.docker_name_of_container(p, container or p["spec"]["containers"][0]["name"])

    def get_pod(self, pod, ns="default"):
        """The pod as `kubectl get pod -o json` shows it (live status)."""
        with self._state(write=False) as st:
            p = st["objects"][core.obj_key(core.RT_POD, ns, pod)]
        return core.live_pods([p])[0]

    def logs(self, pod, container=None, ns="default"):
        r = subprocess.run(["docker", "logs", self.docker_name(pod, container, ns)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        return r.stdout.decode(errors="replace")

    def wait_pod_ready(self, pod=None, ns="default", ready_line=None, container=None, timeout=60):
        """Poll until the pod's containers run (all pods of ns if pod is None) and, if ready_line is given
        (a string or a compiled regex), until it shows in the logs of `container` (default: the first)."""
        deadline = time.monotonic() + timeout
        names = [pod] if pod else self.pods(ns)
        delay = 0.02
        while True:
            problems = []
            for n in names:
                lp = self.get_pod(n, ns)
                for s in lp["status"]["containerStatuses"]:
                    if "running" not in s["state"]:
                        problems.append("%s/%s: %s" % (n, s["name"], json.dumps(s["state"])))
                if not problems and ready_line is not None:
                    text = self.logs(n, container, ns)
                    ok = ready_line.search(text) if hasattr(ready_line, "search") else (ready_line in text)
                    if not ok:
                        problems.append("%s: %r not yet in the logs (%r)" % (n, getattr(ready_line, "pattern", ready_line), text[-300:]))
            if not problems:
                return names
            if time.monotonic() > deadline:
                raise TimeoutError("pods not ready after %ss: %s" % (timeout, "; ".join(problems)))
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def wait_ephemeral(self, pod, name, state="running", ns="default", timeout=30):
        """Poll until ephemeral container `name` of `pod` is in `state` (running|terminated|waiting)."""
        deadline = time.monotonic() + timeout
        while True:
            lp = self.get_pod(pod, ns)
            for s in lp["status"].get("ephemeralContainerStatuses", []):
                if s["name"] == name and state in s["state"]:
                    return s
            if time.monotonic() > deadline:
                raise TimeoutError("ephemeral container %s of %s not %s: %s" % (
                    name, pod, state, lp["status"].get("ephemeralContainerStatuses")))
            time.sleep(0.05)

    # --- teardown ---------------------------------------------------------------------------

    def containers(self):
        """Names of every Docker container this cluster made (still existing)."""
        r = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}", "--filter",
                            "label=%s.state=%s" % (core.LABEL, self.id)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return [n for n in r.stdout.decode().split() if n]

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        core.remove_containers(self.containers())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
