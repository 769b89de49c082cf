"""A Kubernetes API on 127.0.0.1 for the real kubectl (tests only), pods backed by Docker.

State is the JSON file that tests/kube/apiserver/cluster.py's Cluster writes (objects, namespace
labels, denied permissions, server version); every request reads it under its lock, so the
test side and the server never disagree. Served: /version, legacy discovery, get/list of the
kinds in core.RTYPES (labelSelector, fieldSelector, all namespaces), PATCH
pods/ephemeralcontainers (the container starts asynchronously, like a kubelet), pods/exec
(websocket v5/v4 or SPDY), pods/portforward (SPDY or SPDY in websocket), pods/log,
SelfSubjectAccessReview (protobuf or JSON), Pod Security admission on the ephemeral container.
"""
import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.kube.apiserver import controller, streams
from tests.kube.apiserver.protobuf import namespace_from_protobuf, pb_fields, ssar_from_protobuf, ssar_to_protobuf
from tests.kube.apiserver.wire import WebSocket, ws_accept
from tests.kube.apiserver import model as core

RT_BY_PATH = {(rt.group, rt.plural): rt for rt in core.RTYPES}
SUBRESOURCES = {"pods": ["exec", "portforward", "attach", "log", "ephemeralcontainers", "status"]}
SHORT = {("", "pods"): ["po"], ("", "services"): ["svc"], ("", "namespaces"): ["ns"],
         ("apps", "deployments"): ["deploy"], ("apps", "replicasets"): ["rs"],
         ("apps", "statefulsets"): ["sts"], ("apps", "daemonsets"): ["ds"],
         ("serving.knative.dev", "services"): ["kservice", "ksvc"]}
GROUPS = [("apps", "v1"), ("batch", "v1"), ("authorization.k8s.io", "v1"), ("serving.knative.dev", "v1")]


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            s["details"] = self.details
        return s


def not_found(rt, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (rt.qualified, name),
                    {"name": name, "group": rt.group, "kind": rt.plural} if rt.group else
                    {"name": name, "kind": rt.plural})


def forbidden(user, verb, rt, name, ns, sub=""):
    res = rt.plural + ("/" + sub if sub else "")
    who = '%s "%s"' % (rt.qualified, name) if name else rt.qualified
    where = 'in the namespace "%s"' % ns if ns else "at the cluster scope"
    return ApiError(403, "Forbidden", '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s'
                    % (who, user, verb, res, rt.group, where), {"name": name, "kind": rt.plural})


def resource_list(group_version, rts):
    res = []
    for rt in rts:
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        res.append({"name": rt.plural, "singularName": rt.kind.lower(), "namespaced": rt.namespaced,
                    "kind": rt.kind, "verbs": verbs, "shortNames": SHORT.get((rt.group, rt.plural), [])})
        for sub in SUBRESOURCES.get(rt.plural, []) if not rt.group else []:
            res.append({"name": rt.plural + "/" + sub, "singularName": "", "namespaced": True,
                        "kind": {"exec": "PodExecOptions", "portforward": "PodPortForwardOptions",
                                 "attach": "PodAttachOptions", "log": "Pod"}.get(sub, "Pod"),
                        "verbs": {"exec": ["create", "get"], "portforward": ["create", "get"],
                                  "attach": ["create", "get"], "log": ["get"]}.get(sub, ["get", "patch", "update"])})
    if group_version == "authorization.k8s.io/v1":
        res = [{"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview",
                "namespaced": False, "kind": "SelfSubjectAccessReview", "verbs": ["create"]}]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": res}


# --- the API --------------------------------------------------------------------------------

class Api:
    def __init__(self, state_path):
        self.state_path = state_path

    def state(self, write=False):
        return core.locked_state(self.state_path, write=write)

    def user(self, st, token):
        return (st.get("tokens") or {}).get(token or "", core.user_of(st))

    def check(self, st, user, verb, rt, name, ns, sub=""):
        if core.is_forbidden(st, verb, core.rbac_resource(rt), sub, ns if rt.namespaced else None):
            raise forbidden(user, verb, rt, name, ns if rt.namespaced else None, sub)

    def get(self, st, rt, ns, name):
        obj = core.get_obj(st, rt, ns, name)
        if obj is None:
            raise not_found(rt, name)
        return core.render_objects(st, rt, [obj])[0]

    def list(self, st, rt, ns, query):
        objs = core.list_objs(st, rt, ns)
        sel = query.get("labelSelector", [""])[0]
        if sel:
            reqs = core.parse_selector(sel)
            objs = [o for o in objs if core.match_selector(o["metadata"].get("labels"), reqs)]
        items = core.render_objects(st, rt, objs)
        fsel = query.get("fieldSelector", [""])[0]
        if fsel:
            items = [o for o in items if core.match_field_selector(o, fsel)]
        return {"kind": rt.kind + "List", "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(st.get("rv", 1))}, "items": items}

    # PATCH pods/ephemeralcontainers: strategic merge of spec.ephemeralContainers by name
    def patch_ephemeral(self, st, user, ns, name, patch):
        if st.get("no_ephemeral"):
            # empty details, as a real apiserver sends: kubectl tells this 404 from a missing
            # pod's by details.name == "" (and dereferences details: nil would panic it)
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        pod = core.get_obj(st, core.RT_POD, ns, name)
        if pod is None:
            raise not_found(core.RT_POD, name)
        spec = pod["spec"]
        current = spec.setdefault("ephemeralContainers", [])
        new = []
        for ec in (patch.get("spec") or {}).get("ephemeralContainers") or []:
            ec = {k: v for k, v in ec.items() if not k.startswith("$")}
            old = next((c for c in current if c["name"] == ec.get("name")), None)
            if old is not None:
                if old != core.merge_patch(copy.deepcopy(old), ec):
                    raise ApiError(422, "Invalid", 'Pod "%s" is invalid: spec.ephemeralContainers: Forbidden: '
                                   "existing ephemeral containers may not be changed" % name)
                continue
            ec.setdefault("resources", {})
            ec.setdefault("terminationMessagePath", "/dev/termination-log")
            ec.setdefault("terminationMessagePolicy", "File")
            if "imagePullPolicy" not in ec:
                img = ec.get("image", "")
                ec["imagePullPolicy"] = "Always" if (":" not in img.rsplit("/", 1)[-1] or img.endswith(":latest")) \
                    else "IfNotPresent"
            idx = len(current) + len(new)
            tgt = ec.get("targetContainerName")
            if tgt and tgt not in {c["name"] for c in spec["containers"]}:
                raise ApiError(422, "Invalid", 'Pod "%s" is invalid: spec.ephemeralContainers[%d].targetContainerName: '
                               'Not found: "%s"' % (name, idx, tgt))
            new.append(ec)
        nslabels = (st["namespaces"].get(ns) or {}).get("labels") or {}
        level = nslabels.get("pod-security.kubernetes.io/enforce", "privileged")
        if new and level in ("baseline", "restricted"):
            v = core.psa_violations(level, dict(spec, ephemeralContainers=current + new))
            if v:
                ver = nslabels.get("pod-security.kubernetes.io/enforce-version", "latest")
                raise ApiError(403, "Forbidden", 'pods "%s" is forbidden: violates PodSecurity "%s:%s": %s'
                               % (name, level, ver, ", ".join(v)), {"name": name, "kind": "pods"})
        jobs = []
        for ec in new:
            rte = {"docker": core.docker_name(st["id"], ns, name, ec["name"]), "created": time.time(),
                   "started": False}
            if not core.image_present(ec["image"]):
                rte["image_missing"] = True
            current.append(ec)
            pod["_docker"].setdefault("ephemeral", {})[ec["name"]] = rte
            if not rte.get("image_missing"):
                jobs.append((ns, name, ec, rte))
        pod["metadata"]["resourceVersion"] = core.next_rv(st)
        return jobs

    def start_ephemeral(self, ns, pname, ec, rte):
        """The kubelet's part, after the PATCH answered: create and start the container."""
        with self.state() as st:
            pod = copy.deepcopy(core.get_obj(st, core.RT_POD, ns, pname))
        if pod is None:
            return
        sandbox = pod["_docker"]["sandbox"]
        args = ["--name", rte["docker"], "--network", "container:" + sandbox, "--ipc", "container:" + sandbox]
        if ec.get("targetContainerName"):
            args += ["--pid", "container:" + pod["_docker"]["containers"][ec["targetContainerName"]]]
        args += core.security_args(ec.get("securityContext"), pod["spec"].get("securityContext"))
        args += core.env_args(ec.get("env"))
        args += core.labels_args(pod["_docker"]["id"], ns, pname, "ephemeral", ec["name"])
        if ec.get("stdin"):
            args += ["-i"]
        created = subprocess.run(["docker", "create"] + args + [ec["image"]] + core.container_cmd(ec),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with self.state(write=True) as st:
            p = core.get_obj(st, core.RT_POD, ns, pname)
            if p is None:
                return
            e = p["_docker"].get("ephemeral", {}).get(ec["name"])
            if e is not None:
                e["started"] = True
                if created.returncode != 0:
                    e["start_error"] = re.sub(r"^(docker: )?Error response from daemon: ", "",
                                              created.stderr.decode(errors="replace").strip())
            p["metadata"]["resourceVersion"] = core.next_rv(st)
        if created.returncode == 0:
            subprocess.run(["docker", "start", rte["docker"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def container_target(self, st, ns, name, container):
        """(docker name, pod) for exec/attach/log, or an ApiError."""
        pod = core.get_obj(st, core.RT_POD, ns, name)
        if pod is None:
            raise not_found(core.RT_POD, name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = container or names[0]
        live = core.live_pods([pod])[0]
        statuses = live["status"]["containerStatuses"] + live["status"].get("ephemeralContainerStatuses", [])
        s = next((x for x in statuses if x["name"] == container), None)
        if s is None or "running" not in s["state"]:
            raise ApiError(400, "BadRequest", 'container %s is not valid for pod %s' % (container, name)
                           if s is None else 'container not found ("%s")' % container)
        return core.docker_name_of_container(pod, container), pod


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None  # set on the class by serve()

    def log_message(self, fmt, *args):
        if os.environ.get("WAND_APISERVER_LOG"):
            sys.stderr.write("apiserver: %s\n" % (fmt % args))

    # ---- plumbing
    def send_json(self, code, obj, ctype="application/json"):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def token(self):
        auth = self.headers.get("Authorization") or ""
        return auth[7:] if auth.startswith("Bearer ") else ""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        segs = [s for s in url.path.split("/") if s]
        log = os.environ.get("WAND_APISERVER_REQUESTS")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"method": method, "path": url.path, "query": query,
                                    "upgrade": self.headers.get("Upgrade") or ""}) + "\n")
        try:
            self.dispatch(method, segs, query)
        except ApiError as e:
            self.send_json(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def dispatch(self, method, segs, query):
        api = self.api
        if segs == ["version"]:
            with api.state() as st:
                v = core.version_info(st.get("server_version") or core.DEFAULT_SERVER_VERSION)
            return self.send_json(200, v)
        if segs == ["api"]:
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:%d" % self.server.server_address[1]}]})
        if segs == ["apis"]:
            with api.state() as st:
                skip = {"serving.knative.dev"} if st.get("no_knative") else set()
            groups = [{"name": g, "versions": [{"groupVersion": "%s/%s" % (g, v), "version": v}],
                       "preferredVersion": {"groupVersion": "%s/%s" % (g, v), "version": v}}
                      for g, v in GROUPS if g not in skip]
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if segs[:2] == ["openapi", "v3"]:
            doc = controller.openapi_root() if len(segs) == 2 else controller.openapi_gv("/".join(segs[2:]))
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
            return self.send_json(200, doc)
        if segs[:2] == ["api", "v1"]:
            group, rest = "", segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, rest = segs[1], segs[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        gv = "%s/%s" % (group, "v1") if group else "v1"
        if not rest:
            with api.state() as st:
                if group == "serving.knative.dev" and st.get("no_knative"):
                    raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
            return self.send_json(200, resource_list(gv, [rt for rt in core.RTYPES if rt.group == group]))
        if group == "authorization.k8s.io" and rest == ["selfsubjectaccessreviews"] and method == "POST":
            return self.access_review()
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        rt = RT_BY_PATH.get((group, rest[0]))
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        with api.state() as st:
            user = api.user(st, self.token())
        if sub:
            return self.subresource(method, rt, ns, name, sub, query, user)
        verb = {"GET": "get" if name else ("watch" if query.get("watch") else "list"),
                "DELETE": "delete", "PATCH": "patch", "POST": "create"}[method]
        if method == "DELETE" and name:
            self.body()  # DeleteOptions: read, so the connection stays in step
            with api.state() as st:
                api.check(st, user, "delete", rt, name, ns)
            if not controller.delete(api.state_path, rt, ns, name):
                raise not_found(rt, name)
            return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                        "details": {"name": name, "group": rt.group, "kind": rt.plural}})
        if method == "POST" and not name:
            return self.create(user, rt, ns or "default", query)
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", "%s is not supported by this test API server" % method)
        with api.state() as st:
            api.check(st, user, verb, rt, name, ns)
            if name:
                obj = api.get(st, rt, ns, name)
            else:
                obj = api.list(st, rt, ns, query)
        if query.get("watch"):
            return self.watch(rt, ns, name, query)
        if "as=Table" in (self.headers.get("Accept") or ""):
            items = [obj] if name else obj["items"]
            obj = controller.table(rt, items, query.get("includeObject", [""])[0] == "Object")
        self.send_json(200, obj)

    def watch(self, rt, ns, name, query):
        """Chunked watch events: ADDED for what exists, MODIFIED when its rendering changes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        seen = {}
        deadline = time.monotonic() + int(query.get("timeoutSeconds", ["1800"])[0])
        while time.monotonic() < deadline:
            with self.api.state() as st:
                items = self.api.list(st, rt, ns, query)["items"]
            for o in items:
                key = o["metadata"]["name"]
                if name and key != name:
                    continue
                text = json.dumps(o, sort_keys=True)
                if seen.get(key) != text:
                    ev = json.dumps({"type": "MODIFIED" if key in seen else "ADDED", "object": o}).encode() + b"\n"
                    seen[key] = text
                    try:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                        self.wfile.flush()
                    except OSError:
                        return
            time.sleep(0.2)  # re-render from Docker: the emulation has no event source
        self.wfile.write(b"0\r\n\r\n")

    def create(self, user, rt, ns, query):
        raw = self.body()
        if raw.startswith(b"k8s\x00"):  # typed clients (e.g. `kubectl create namespace`) send protobuf
            if rt is not core.RT_NS:
                raise ApiError(415, "UnsupportedMediaType", "protobuf bodies are served for namespaces only")
            body = {"metadata": namespace_from_protobuf(raw)}
        else:
            body = json.loads(raw or b"{}")
        if rt is core.RT_NS:
            ns = None
        with self.api.state() as st:
            self.api.check(st, user, "create", rt, "", ns)
        name = (body.get("metadata") or {}).get("name", "")
        try:
            controller.create(self.api.state_path, rt, ns, body)
        except FileExistsError as e:
            raise ApiError(409, "AlreadyExists", str(e), {"name": name, "group": rt.group, "kind": rt.plural})
        except ValueError as e:
            raise ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (rt.kind, name, e))
        except NotImplementedError as e:
            raise ApiError(405, "MethodNotAllowed", str(e))
        if query.get("dryRun"):
            raise ApiError(400, "BadRequest", "dry run is not served by the test API")
        with self.api.state() as st:
            self.send_json(201, self.api.get(st, rt, ns, name))

    def access_review(self):
        body = self.body()
        proto = body.startswith(b"k8s\x00")
        if proto:
            ra = ssar_from_protobuf(body)
        else:
            ra = (json.loads(body).get("spec") or {}).get("resourceAttributes") or {}
        with self.api.state() as st:
            res = ra.get("resource", "")
            if ra.get("group") == "serving.knative.dev":
                res += ".serving.knative.dev"
            denied = core.is_forbidden(st, ra.get("verb", ""), res, ra.get("subresource", ""),
                                       ra.get("namespace") or None)
        allowed = not denied
        reason = "" if denied else "RBAC: allowed by the test API server"
        if proto:
            raw_ra = pb_fields(pb_fields(pb_fields(body[4:])[2]).get(2, b"")).get(1, b"")
            return self.send_json(201, ssar_to_protobuf(raw_ra, allowed, reason),
                                  ctype="application/vnd.kubernetes.protobuf")
        self.send_json(201, {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                             "metadata": {}, "spec": {"resourceAttributes": ra},
                             "status": {"allowed": allowed, **({"reason": reason} if reason else {})}})

    # ---- subresources
    def subresource(self, method, rt, ns, name, sub, query, user):
        api = self.api
        if rt is not core.RT_POD:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if sub == "ephemeralcontainers":
            if method == "GET":
                with api.state() as st:
                    api.check(st, user, "get", rt, name, ns, sub)
                    return self.send_json(200, api.get(st, rt, ns, name))
            patch = json.loads(self.body() or b"{}")
            with api.state(write=True) as st:
                api.check(st, user, "patch", rt, name, ns, sub)
                jobs = api.patch_ephemeral(st, user, ns, name, patch)
                pod = copy.deepcopy(core.get_obj(st, rt, ns, name))
            for job in jobs:
                threading.Thread(target=api.start_ephemeral, args=job, daemon=True).start()
            return self.send_json(200, core.live_pods([pod])[0])
        if sub == "log":
            with api.state() as st:
                api.check(st, user, "get", rt, name, ns, sub)
                dname, _ = api.container_target(st, ns, name, query.get("container", [""])[0])
            out = subprocess.run(["docker", "logs", dname], stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
            return self.send_json(200, out, ctype="text/plain")
        if sub not in ("exec", "portforward"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        with api.state() as st:
            api.check(st, user, "create", rt, name, ns, sub)
            if sub == "exec":
                dname, pod = api.container_target(st, ns, name, query.get("container", [""])[0])
            else:
                pod = core.get_obj(st, rt, ns, name)
                if pod is None:
                    raise not_found(rt, name)
        upgrade = (self.headers.get("Upgrade") or "").lower()
        if upgrade == "websocket":
            offered = [p.strip() for h in self.headers.get_all("Sec-WebSocket-Protocol") or [] for p in h.split(",")]
            ok = ["v5.channel.k8s.io", "v4.channel.k8s.io"] if sub == "exec" else ["SPDY/3.1+portforward.k8s.io"]
            proto = next((p for p in ok if p in offered), None)
            if proto is None or os.environ.get("WAND_APISERVER_NO_WEBSOCKET"):
                raise ApiError(400, "BadRequest", "no supported websocket subprotocol in %s" % offered)
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", ws_accept(self.headers["Sec-WebSocket-Key"]))
            self.send_header("Sec-WebSocket-Protocol", proto)
            self.end_headers()
            self.wfile.flush()
            ws = WebSocket(self.rfile, self.wfile)
            self.close_connection = True
            if sub == "exec":
                return streams.exec_websocket(ws, proto, dname, query.get("command", []),
                                              query.get("stdin", ["false"])[0] == "true")
            buf = bytearray()

            def read(n):
                while not buf:
                    m = ws.recv()
                    if m is None:
                        return b""
                    buf.extend(m)
                out = bytes(buf[:n])
                del buf[:n]
                return out

            return streams.portforward(read, ws.send, "%s_%s" % (name, ns), self.netns_pid(ns, name))
        if upgrade.startswith("spdy/3.1"):
            versions = [p.strip() for h in self.headers.get_all("X-Stream-Protocol-Version") or []
                        for p in h.split(",")]
            if sub == "exec" and "v4.channel.k8s.io" not in versions:
                raise ApiError(400, "BadRequest", "unsupported stream protocols %s" % versions)
            self.send_response(101)
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", "SPDY/3.1")
            if sub == "exec":
                self.send_header("X-Stream-Protocol-Version", "v4.channel.k8s.io")
            else:
                self.send_header("X-Stream-Protocol-Version", "portforward.k8s.io")
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            sock = self.connection
            read = self.rfile.read1 if hasattr(self.rfile, "read1") else self.rfile.read

            def write(b):
                sock.sendall(b)

            if sub == "exec":
                q = lambda k: query.get(k, ["false"])[0] in ("true", "1")  # noqa: E731
                return streams.exec_spdy(read, write, dname, query.get("command", []), q("stdin"), q("stderr"), q("tty"))
            return streams.portforward(read, write, "%s_%s" % (name, ns), self.netns_pid(ns, name))
        raise ApiError(400, "BadRequest", "Upgrade request required")

    def netns_pid(self, ns, name):
        def pid():
            with self.api.state() as st:
                pod = core.get_obj(st, core.RT_POD, ns, name)
            if pod is None:
                return None
            info = core.docker_inspect([pod["_docker"]["sandbox"]]).get(pod["_docker"]["sandbox"])
            return (info or {}).get("State", {}).get("Pid") or None
        return pid


def serve(state_path, port=0):
    """Start the server in a thread; returns the ThreadingHTTPServer (server_address has the port)."""
    handler = type("BoundHandler", (Handler,), {"api": Api(state_path)})
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    httpd.daemon_threads = True
    httpd.controller_stop = controller.start_controller(state_path)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd
