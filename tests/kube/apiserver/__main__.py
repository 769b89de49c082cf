"""Start the test API server standalone:

    python -m tests.kube.apiserver --kubeconfig /tmp/wand-kubeconfig [--state FILE] [--demo]

Prints `READY <port>` once it listens, then serves until killed (SIGINT/SIGTERM); a state it
created is removed with its containers at exit. `--demo` adds deployment/app (the bed's HTTP
app, 2 replicas). Then: `KUBECONFIG=/tmp/wand-kubeconfig kubectl get pods`.
"""
import argparse
import os
import signal
import sys
import tempfile
import threading


def write_kubeconfig(path, port, token="wand-test-token", namespace="default"):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: 'http://127.0.0.1:%d'}\n"
                "  name: wand-local\ncontexts:\n- context: {cluster: wand-local, user: wand-user, "
                "namespace: %s}\n  name: wand-local\ncurrent-context: wand-local\nusers:\n"
                "- name: wand-user\n  user: {token: %s}\n" % (port, namespace, token))
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.kube.apiserver")
    ap.add_argument("--state", help="state file written by tests/kube/apiserver/cluster.py (default: a new one)")
    ap.add_argument("--kubeconfig", required=True, help="where to write a kubeconfig for this server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--demo", action="store_true", help="add deployment/app with 2 replicas")
    a = ap.parse_args(argv)
    from tests.kube.apiserver.server import serve
    cluster = None
    state = a.state
    if not state:
        from tests.kube.apiserver.cluster import Cluster
        cluster = Cluster(tempfile.mkdtemp(prefix="wand-api-"), serve=False)
        state = cluster.state_path
    httpd = serve(state, a.port)
    port = httpd.server_address[1]
    write_kubeconfig(a.kubeconfig, port)
    if a.demo and cluster is not None:
        cluster.deployment("app", replicas=2, ready_line="READY")
    print("READY %d" % port, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # parent death ends us too (tests start this as a child)
    while not stop.wait(1.0):
        if os.getppid() == 1 and a.state:
            break
    httpd.shutdown()
    if cluster is not None:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
