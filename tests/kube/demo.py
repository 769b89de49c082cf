"""The Kubernetes journey as a demo: the real kubectl and `kubectl wand` against a LOCAL
EMULATION of the Kubernetes API (tests/kube/apiserver) whose pods are Docker containers.

Run through tests/demo.sh (which prepares the machine). Every step prints the command
the user would type; nothing here is mocked except the cluster itself.
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from kubectl_wand.dap import DAPClient  # noqa: E402
from tests.kube.apiserver.cluster import Cluster  # noqa: E402


def say(text):
    print("\n\033[1m%s\033[0m" % text, flush=True)


def run(env, *argv):
    print("$ " + shlex.join(argv), flush=True)
    cp = subprocess.run(argv, env=env, text=True, capture_output=True, timeout=180)
    sys.stdout.write(cp.stdout + cp.stderr)
    if cp.returncode:
        raise SystemExit("demo step failed (exit %d)" % cp.returncode)
    return cp.stdout


def main():
    say("A local emulation of the Kubernetes API (pods are Docker containers), real kubectl")
    c = Cluster(tempfile.mkdtemp(prefix="wand-demo-"))
    try:
        t = time.monotonic()
        d = c.deployment("app", replicas=2, ready_line="READY")
        print("deployment/app: %d pods ready in %.1fs; kubectl %s at %s; KUBECONFIG=%s"
              % (len(d.pods), time.monotonic() - t, ".".join(map(str, c.kubectl_version)), c.kubectl,
                 c.kubeconfig))
        env = dict(c.env, PATH=os.path.join(ROOT, ".venv", "bin") + os.pathsep + c.env["PATH"])
        run(env, "kubectl", "get", "pods", "-o", "wide")
        say("1. Which Python processes run there?")
        run(env, "kubectl", "wand", "ps", "deploy/app")
        say("2. Run code inside the live process of every replica")
        run(env, "kubectl", "wand", "exec", "deploy/app", "--all", "-c",
            "import os, threading; print('pid', os.getpid(), 'threads', threading.active_count())")
        say("3. Attach a debugger, hit a breakpoint on a real request, read a local, detach")
        line = next(n for n, s in enumerate(open(os.path.join(ROOT, "tests/bed/apps/http_app.py")), 1)
                    if "# BREAKPOINT-HERE" in s)
        print("$ kubectl wand attach deploy/app -o json", flush=True)
        p = subprocess.Popen(["kubectl", "wand", "attach", "deploy/app", "--local-port", "0", "-o", "json"],
                             env=env, stdout=subprocess.PIPE, text=True)
        try:
            ready = json.loads(p.stdout.readline())
            print("debugpy in %s (pid %s) on 127.0.0.1:%s" % (ready["target"], ready["pid"], ready["port"]))
            dap = DAPClient("127.0.0.1", ready["port"])
            dap.attach(breakpoints={"/app/http_app.py": [line]})
            pod = ready["target"].split("/", 1)[1]
            req = subprocess.Popen(["kubectl", "exec", pod, "--", "python3", "-c",
                                    "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/demo')"
                                    ".read().decode())"], env=env, stdout=subprocess.PIPE, text=True)
            stop = dap.stopped_locals(timeout=60)
            print("stopped at http_app.py:%s, greeting = %s" % (stop["frame"]["line"], stop["locals"]["greeting"]))
            dap.request("continue", threadId=stop["thread"])
            print("the request completes:", req.communicate(timeout=60)[0].strip())
            dap.close()
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=60)
        say("Done: the app containers were never changed; one ephemeral helper per pod used.")
    finally:
        c.close()


if __name__ == "__main__":
    main()
