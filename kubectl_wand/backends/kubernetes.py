"""Kubernetes, through the user's own kubectl (auth plugins, proxies and contexts, exactly).

Listing runs the injector with `kubectl exec` in the app container (no ephemeral container is
created for `ps`). Attaching adds **one** ephemeral helper per target container with
`kubectl debug --target --profile=general` (SYS_PTRACE for the helper; nothing added to the
app container); it idles for a while and later commands reuse it with `kubectl exec -c`.
"""

import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
from typing import List

from kubectl_wand import payload
from kubectl_wand.backends.base import (HELPER_CACHE, Backend, exec_not_found,
                                        python_candidates, run)
from kubectl_wand.backends.kube_pods import (PYTHON_PATH, KubeBox, box_for, default_container,
                                             pod_ready, remember_python)
from kubectl_wand.backends.forward import Forward
from kubectl_wand.children import die_with_parent
from kubectl_wand.errors import WandError
from kubectl_wand.names import kube_version, kubectl_argv, kubectl_binary
from kubectl_wand.options import Scope, TargetOptions
from kubectl_wand.log import trace

HELPER_PREFIX = "kubectl-wand-"
HELPER_IDLE_SECONDS = 600
WORKLOAD_KINDS = {"deployment": "deployment", "statefulset": "statefulset",
                  "daemonset": "daemonset", "replicaset": "replicaset", "job": "job"}
KSVC_RESOURCE = "services.serving.knative.dev"
KSVC_LABEL = "serving.knative.dev/service"
KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")
FORWARD_LINE = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")


def selector_string(selector: dict) -> str:
    """A LabelSelector object as kubectl -l syntax."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


class KubernetesBackend(Backend):
    name = "kubernetes"
    slow_forward = True  # a kubectl process per forward: engine/attach starts it early
    front_forward = True  # kubectl port-forward cannot add the gate's secret: a Front does

    def __init__(self, where: TargetOptions):
        self.opts = where
        self.kubectl = kubectl_binary()
        self._version = None

    # -------------------------------------------------------------- kubectl plumbing

    def base(self, namespaced=True, ns=None) -> List[str]:
        """kubectl with the user's --kubeconfig/--context and the namespace (names.py builds
        it for completion too)."""
        return kubectl_argv(self.opts.kubeconfig, self.opts.context,
                            (ns or self.opts.namespace) if namespaced else None)

    def kubectl_json(self, *args, ns=None, timeout=30):
        cp = run(self.base(ns=ns) + list(args) + ["-o", "json"], timeout=timeout)
        if cp.returncode != 0:
            raise self.error(cp.stderr.decode("utf-8", "replace"), args)
        return json.loads(cp.stdout)

    def ns_flag(self, ns):
        return ns or self.opts.namespace or "(the context's namespace)"

    def error(self, text: str, args=(), ns=None) -> WandError:
        """kubectl's error text, with what it means and what to do."""
        text = text.strip()
        low = text.lower()
        # klog lines (`E1201 00:03:06.650953 16330 memcache.go:265] ...`) come before the
        # sentence that says what happened (e.g. an unreachable cluster): keep that sentence
        said = [ln for ln in text.splitlines() if not KLOG_LINE.match(ln)]
        if said and len(said) < len(text.splitlines()):
            text = "\n".join(said)
        ns = self.ns_flag(ns)
        if "context was not found" in low or ("context" in low and "does not exist" in low):
            return WandError(f'kubeconfig context "{self.opts.context}" does not exist '
                             f"({text.removeprefix('error: ')})",
                             "`kubectl config get-contexts` lists the contexts", code="context")
        if "(notfound)" in low or "not found" in low:
            m = re.search(r'Error from server \(NotFound\): (.*)', text)
            return WandError((m.group(1) if m else text) + f" (namespace {ns})",
                             "check the name and namespace (-n); `kubectl get "
                             f"{args[1] if len(args) > 1 else 'pods'}` lists what exists",
                             code="not-found")
        if "doesn't have a resource type" in low:
            return WandError(text.removeprefix("error: "),
                             "Knative targets (ksvc/) need Knative Serving installed" if
                             "knative" in low else "see `kubectl api-resources`",
                             code="kind")
        if "violates podsecurity" in low:
            return WandError(
                "Pod Security admission rejected the debug helper: " + text.split(": ", 2)[-1],
                f"namespace {ns} enforces the baseline or restricted Pod Security level, which "
                "forbids the SYS_PTRACE capability the helper needs. A cluster admin can "
                f"label it `pod-security.kubernetes.io/enforce=privileged` (kubectl label ns "
                f"{ns} pod-security.kubernetes.io/enforce=privileged --overwrite) or exempt "
                "debug sessions in the admission configuration.", code="pod-security")
        m = re.search(r'cannot (\w+) resource "([^"]+)"', text)
        if "forbidden" in low and m:
            verb, resource = m.groups()
            res, _, sub = resource.partition("/")
            check = f"kubectl auth can-i {verb} {res}" + (f" --subresource={sub}" if sub else "")
            if ns and not ns.startswith("("):
                check += f" -n {ns}"
            return WandError(f"RBAC forbids {verb} on {resource}: {text}",
                             f"ask for that permission; check it with `{check}`", code="rbac")
        if "unknown flag: --custom" in low and self.client_version() >= (1, 31) and \
                os.environ.get("KUBECTL_DEBUG_CUSTOM_PROFILE"):
            return WandError("this kubectl hides `kubectl debug --custom` "
                             f"(KUBECTL_DEBUG_CUSTOM_PROFILE={os.environ['KUBECTL_DEBUG_CUSTOM_PROFILE']})",
                             "unset KUBECTL_DEBUG_CUSTOM_PROFILE (kubectl 1.31 needs it unset or "
                             "true for --custom)", code="kubectl-old")
        if "unknown flag: --profile" in low or "unknown flag: --custom" in low:
            return WandError("this kubectl is too old for `kubectl debug --profile` "
                             f"({text})", "install kubectl 1.27 or newer", code="kubectl-old")
        if "ephemeral" in low and ("not supported" in low or "could not find the requested"
                                   in low or "disabled" in low):
            return WandError("the cluster does not support ephemeral containers: " + text,
                             "Kubernetes 1.25+ enables them by default; ask the cluster admin",
                             code="no-ephemeral")
        if "unable to connect" in low or "connection refused" in low or "no such host" in low:
            return WandError("cannot reach the cluster: " + text,
                             "check `kubectl cluster-info` and your context", code="cluster")
        return WandError(text or "kubectl failed", "retry with -v to see each kubectl call",
                         code="kubectl")

    def client_version_argv(self) -> List[str]:
        """`version --client` with the same --kubeconfig/--context as every other call: gcloud's
        kubectl is a dispatcher that picks its binary by the *server's* version, so without them
        it reports another binary than the one `debug` will run."""
        return self.base(namespaced=False) + ["version", "--client", "-o", "json"]

    def client_version(self):
        if self._version is None:
            cp = run(self.client_version_argv(), timeout=20)
            try:
                self._version = kube_version(json.loads(cp.stdout)["clientVersion"])
            except (ValueError, KeyError):
                self._version = (0, 0)
            if self._version == (0, 0):
                self._version = (1, 0)  # unreadable: treated as too old, said so
        return self._version

    # -------------------------------------------------------------- resolving

    def pods_for(self, target) -> List[dict]:
        sel = self.opts.selector
        if target is None:
            args = ["get", "pods"] + (["-A"] if self.opts.all_namespaces else [])
            if sel:
                args += ["-l", sel]
            return self.kubectl_json(*args)["items"]
        kind, name = target.kind, target.name
        if kind == "pod":
            return [self.kubectl_json("get", "pod", name)]
        if kind == "ksvc":
            try:
                self.kubectl_json("get", KSVC_RESOURCE, name)
            except WandError as e:
                if e.code != "kind":  # kubectl names only "services": say which ones
                    raise
                raise WandError(f"Knative Serving is not installed in this cluster ({e.message})",
                                "ksvc/ targets need Knative Serving; target the pods or their "
                                "deployment instead", code="kind")
            selector = f"{KSVC_LABEL}={name}"
        else:
            obj = self.kubectl_json("get", WORKLOAD_KINDS.get(kind, kind), name)
            spec_sel = obj["spec"].get("selector") or {}
            if kind == "service":
                if not spec_sel:
                    raise WandError(f"service {name} has no selector, so no pods behind it",
                                    "target the pods or their workload instead",
                                    code="no-pods")
                selector = ",".join(f"{k}={v}" for k, v in sorted(spec_sel.items()))
            else:
                selector = selector_string(spec_sel)
        if sel:
            selector += "," + sel
        pods = self.kubectl_json("get", "pods", "-l", selector)["items"]
        if kind in WORKLOAD_KINDS:
            uid = obj["metadata"].get("uid")
            owned = [p for p in pods if self._owned_by(p, uid, kind)]
            pods = owned or pods
        return pods

    def _owned_by(self, pod, uid, kind):
        refs = pod["metadata"].get("ownerReferences") or []
        if any(r.get("uid") == uid for r in refs):
            return True
        # Deployment → ReplicaSet → Pod: the RS is owned by the deployment.
        return kind == "deployment" and any(r.get("kind") == "ReplicaSet" for r in refs)

    def box(self, pod: dict, container: str) -> KubeBox:
        return box_for(pod, container, self.opts.image)

    def resolve(self, target) -> List[KubeBox]:
        """Pods/containers for the target: every running one for `ps`; one for attach/exec
        (the newest ready pod), or every ready one (Scope.EVERY_READY)."""
        pods = self.pods_for(target)
        if self.opts.pod:
            pods = [p for p in pods if p["metadata"]["name"] == self.opts.pod]
            if not pods:
                raise WandError(f"pod {self.opts.pod} is not part of {target}",
                                f"`kubectl wand ps {target}` lists its pods", code="not-found")
        if not pods:
            raise WandError(f"no pods found for {target or 'the namespace'} in namespace "
                            f"{self.ns_flag(None)}", "is it scaled to zero? check -n",
                            code="no-pods")
        if self.opts.scope is Scope.LIST:
            boxes = []
            for p in pods:
                names = ([self.opts.container] if self.opts.container
                         else [c["name"] for c in p["spec"]["containers"]])
                running = {s["name"] for s in p.get("status", {}).get("containerStatuses", [])
                           if "running" in (s.get("state") or {})}
                boxes += [self.box(p, n) for n in names if n in running or not running]
            return boxes
        ready = [p for p in pods if pod_ready(p)]
        if not ready:
            states = ", ".join(f"{p['metadata']['name']} ({p.get('status', {}).get('phase')})"
                               for p in pods[:5])
            raise WandError(f"no ready pods for {target}: {states}",
                            "wait for the rollout (`kubectl rollout status`) or pick one with "
                            "--pod", code="no-ready-pods")
        if self.opts.scope is Scope.EVERY_READY:  # exec --all and friends
            return [self.box(p, default_container(p, self.opts.container))
                    for p in sorted(ready, key=lambda p: p["metadata"]["name"])]
        newest = max(ready, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        return [self.box(newest, default_container(newest, self.opts.container))]

    # -------------------------------------------------------------- injector

    def preflight(self, target, start_listing):
        from kubectl_wand.backends import kube_preflight

        return kube_preflight.preflight(self, target, start_listing)

    def trust(self, box: KubeBox) -> str:
        # the ephemeral helper is a fresh container of the image; without one the lister runs
        # as the app itself in its own container, and what it says is data
        return "image" if box.helper else "target"

    def python(self, box: KubeBox) -> str:
        """The interpreter to run: the helper's own (its container spec's command), else the
        candidate the app container is being tried with."""
        if box.helper:
            return box.helper_python
        hints = box.python_hints or python_candidates()
        return hints[min(box.python_try, len(hints) - 1)]

    def injector_argv(self, box: KubeBox) -> List[str]:
        container = box.helper or box.container
        return self.base(ns=box.namespace) + [
            "exec", "-i", box.pod, "-c", container, "--",
            self.python(box), "-I", "-S", "-c", payload.BOOT, "kubectl-wand-injector"]

    def explain_failure(self, box, stderr):
        if exec_not_found(stderr):
            where = box.helper or box.container
            tried = (box.python_hints or [])[:box.python_try + 1]
            return WandError(f"no Python interpreter found in container {where} of pod "
                             f"{box.pod} (tried {', '.join(tried)})",
                             "name it in the container's command, or pass --image with an "
                             "image that has the app's Python on PATH", code="no-python")
        return self.error(stderr, ns=box.namespace)

    def find_python(self, box: KubeBox) -> str:
        """The app image's interpreter, as the app container sees it: the first candidate
        that runs there (as the app's own user; its answer is checked, never trusted)."""
        hints = box.python_hints or python_candidates()
        probe = "import sys;print(sys.executable)"
        for i, python in enumerate(hints):
            cp = run(self.base(ns=box.namespace) + [
                "exec", box.pod, "-c", box.container, "--",
                python, "-I", "-S", "-c", probe], timeout=30)
            err = cp.stderr.decode("utf-8", "replace")
            if cp.returncode == 0:
                path = cp.stdout.decode("utf-8", "replace").strip()
                if PYTHON_PATH.match(path):
                    remember_python(box.image_key, path)
                    return path
                continue
            if not exec_not_found(err):
                raise self.error(err, ns=box.namespace)
            box.python_try = i
        raise self.explain_failure(box, "executable file not found")

    def prepare_inject(self, box: KubeBox):
        self.prepare_helper(box)

    def cache_dir(self, box: KubeBox):
        return HELPER_CACHE if box.helper else None  # never the app container

    def recover(self, box: KubeBox, stderr: str) -> bool:
        """The app container has no interpreter of that name: try the next candidate."""
        if exec_not_found(stderr) and not box.helper:
            box.python_try += 1
            return box.python_try < len(box.python_hints)
        return False

    def prepare_helper(self, box: KubeBox, timeout: float = 120.0):
        """Reuse a running helper for this container, or add one ephemeral container."""
        pod = box.pod_json
        target_c = box.container
        specs = {c["name"]: c for c in pod["spec"].get("ephemeralContainers") or []}
        for st in pod.get("status", {}).get("ephemeralContainerStatuses") or []:
            name = st["name"]
            if name.startswith(HELPER_PREFIX) and "running" in (st.get("state") or {}) and \
                    specs.get(name, {}).get("targetContainerName") == target_c and \
                    specs[name].get("image") == box.image and specs[name].get("command"):
                box.helper = name
                box.helper_python = specs[name]["command"][0]
                return name
        name = HELPER_PREFIX + secrets.token_hex(3)
        if self.client_version() < (1, 27):
            raise WandError("this kubectl is too old for `kubectl debug --profile`",
                            "install kubectl 1.27 or newer", code="kubectl-old")
        argv = self.base(ns=box.namespace) + [
            "debug", box.pod, "--target=" + target_c, "--profile=general",
            "--image=" + box.image, "--container=" + name, "--image-pull-policy=IfNotPresent",
            "-q"]
        custom = None
        if self.client_version() >= (1, 31):
            # root in the helper only: staging files for the target's user needs it
            custom = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
            json.dump({"securityContext": {"runAsUser": 0, "runAsNonRoot": False}}, custom)
            custom.close()
            argv.append("--custom=" + custom.name)
        # the app's image: the interpreter the app container has (found by running it there,
        # as the app's own user); another image (--image): its python3 on PATH
        python = "python3" if self.opts.image else self.find_python(box)
        argv += ["--", python, "-I", "-S", "-c", payload.source("idle"),
                 "kubectl-wand-helper", str(HELPER_IDLE_SECONDS)]
        try:
            cp = run(argv, timeout=60)
        finally:
            if custom:
                os.unlink(custom.name)
        if cp.returncode != 0:
            raise self.error(cp.stderr.decode("utf-8", "replace"), ns=box.namespace)
        self.wait_helper(box, name, timeout)
        box.helper = name
        box.helper_python = python
        return name

    def wait_helper(self, box: KubeBox, name: str, timeout: float):
        """Poll the pod until the helper runs; a pull failure ends the wait at once."""
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            pod = self.kubectl_json("get", "pod", box.pod, ns=box.namespace)
            st = next((s for s in pod.get("status", {}).get("ephemeralContainerStatuses") or []
                       if s["name"] == name), None)
            state = (st or {}).get("state") or {}
            if "running" in state:
                box.pod_json = pod
                return
            waiting = state.get("waiting") or {}
            reason = waiting.get("reason", "")
            if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                          "CreateContainerConfigError", "CreateContainerError"):
                raise WandError(f"the helper image {box.image} cannot start in pod "
                                f"{box.pod}: {reason}"
                                + (f" ({waiting['message']})" if waiting.get("message") else ""),
                                "pass --image with an image the node can pull that has python3",
                                code="image-pull")
            if "terminated" in state:
                t = state["terminated"]
                raise WandError(f"the helper container exited at once ({t.get('reason')}, "
                                f"exit code {t.get('exitCode')})",
                                "does the helper image have python3? pass --image",
                                code="helper")
            if time.monotonic() > deadline:
                raise WandError(f"the helper container did not start within {timeout:.0f}s "
                                f"({reason or 'no status yet'})",
                                "check `kubectl describe pod " + box.pod + "`",
                                code="timeout")
            time.sleep(delay)  # polling the API for the container's state (a real signal)
            delay = min(delay * 1.5, 1.0)

    # -------------------------------------------------------------- forwarding

    def forward(self, box: KubeBox, remote_port: int, local_port: int):
        return PortForward(self, box, remote_port, local_port)


class PortForward(Forward):
    """`kubectl port-forward` to 127.0.0.1 inside the pod, restarted if it drops."""

    def __init__(self, backend: KubernetesBackend, box: KubeBox, remote_port: int,
                 local_port: int, timeout: float = 30.0):
        self.backend, self.box, self.remote_port = backend, box, remote_port
        self.closed = False
        self.dead = False
        self.restarts = 0
        self.on_restart = None
        self.proc = None
        self.local_port = self._start(local_port, timeout)
        threading.Thread(target=self._watch, daemon=True).start()

    def _start(self, local_port, timeout):
        argv = self.backend.base(ns=self.box.namespace) + [
            "port-forward", "pod/" + self.box.pod,
            f"{local_port or ''}:{self.remote_port}", "--address", "127.0.0.1"]
        trace(argv)
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         text=True, preexec_fn=die_with_parent())
        except FileNotFoundError:
            raise WandError(f"{argv[0]} not found on PATH", code="no-tool")
        result = {}

        def read():
            for line in self.proc.stdout:
                m = FORWARD_LINE.search(line)
                if m and "port" not in result:
                    result["port"] = int(m.group(1))
                    done.set()
            done.set()

        done = threading.Event()
        threading.Thread(target=read, daemon=True).start()
        if not done.wait(timeout) or "port" not in result:
            self.proc.kill()
            self.proc.wait()  # reaped, so its stderr is all there (poll() could race its exit)
            err = self.proc.stderr.read()
            if "unable to listen" in err.lower() or "address already in use" in err.lower():
                raise WandError(f"local port {local_port} is already in use",
                                "choose another with --local-port, or 0 for a free one",
                                code="local-port-busy")
            raise self.backend.error(err or "kubectl port-forward did not start in time",
                                     ns=self.box.namespace)
        return result["port"]

    def _watch(self):
        while not self.closed:
            self.proc.wait()
            if self.closed:
                return
            try:
                self._start(self.local_port, 30)
                self.restarts += 1
                if self.on_restart:
                    self.on_restart(self.restarts)
            except WandError:
                self.dead = True  # the pod is gone: the attach loop follows to its replacement
                return

    def close(self):
        self.closed = True
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
