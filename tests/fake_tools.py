"""Fake `kubectl` and `docker` for completion tests: canned answers, every call logged.

    bindir = fake_tools.install(tmp_path)   # bindir/kubectl, bindir/docker
    env = fake_tools.env(bindir)            # WAND_KUBECTL → the fake; bindir first on PATH

The fakes answer only what completion asks (`get … -o name`, `config get-contexts -o name`,
`get KIND/NAME -o jsonpath=…`, `docker ps --format …`); FAKE_SLEEP=N makes them hang N seconds,
FAKE_FAIL=1 makes them fail like an unreachable cluster.
"""

import os
from pathlib import Path

KUBECTL = r'''#!/bin/sh
echo "kubectl $*" >> "${FAKE_LOG:-/dev/null}"
[ -n "$FAKE_SLEEP" ] && sleep "$FAKE_SLEEP"
if [ -n "$FAKE_FAIL" ]; then
    echo 'The connection to the server 127.0.0.1:6443 was refused' >&2
    exit 1
fi
ns=default
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--namespace) ns=$2; shift 2 ;;
        --context|--kubeconfig) shift 2 ;;
        --request-timeout=*) shift ;;
        *) break ;;
    esac
done
case "$*" in
    "get namespaces -o name") printf 'namespace/default\nnamespace/kube-system\nnamespace/shop\n' ;;
    "config get-contexts -o name") printf 'kind-wand\narn:aws:eks:eu-west-1:1:cluster/prod\n' ;;
    "get deployments -o name")
        if [ "$ns" = shop ]; then printf 'deployment.apps/cart\n'
        else printf 'deployment.apps/web\ndeployment.apps/worker\n'; fi ;;
    "get statefulsets -o name") printf 'statefulset.apps/db\n' ;;
    "get pods -o name") printf 'pod/web-7d9c-abcde\npod/db-0\n' ;;
    "get services.serving.knative.dev -o name") printf 'service.serving.knative.dev/hello\n' ;;
    "get deployments/web -o jsonpath={.spec.template.spec.containers[*].name}") printf 'app sidecar' ;;
    "get pods/db-0 -o jsonpath={.spec.containers[*].name}") printf 'postgres' ;;
    *) echo "error: the server doesn't have a resource type \"$2\"" >&2; exit 1 ;;
esac
'''

DOCKER = r'''#!/bin/sh
echo "$(basename "$0") $*" >> "${FAKE_LOG:-/dev/null}"
[ -n "$FAKE_SLEEP" ] && sleep "$FAKE_SLEEP"
[ -n "$FAKE_FAIL" ] && { echo 'Cannot connect to the Docker daemon' >&2; exit 1; }
case "$*" in
    "ps --format {{.Names}}	{{.Image}}")
        printf 'web\twand-bed/py314\nkubectl-wand-helper-0123456789ab\twand-bed/py314\napi-1\tpython:3.14-slim\n' ;;
    *) exit 1 ;;
esac
'''


def install(where: Path) -> Path:
    bindir = Path(where) / "fakebin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name, text in (("kubectl", KUBECTL), ("docker", DOCKER), ("podman", DOCKER)):
        p = bindir / name
        p.write_text(text)
        p.chmod(0o755)
    return bindir


def env(bindir: Path, base=None, **extra) -> dict:
    e = dict(os.environ if base is None else base)
    e["PATH"] = f"{bindir}{os.pathsep}{e.get('PATH', '')}"
    e["WAND_KUBECTL"] = str(Path(bindir) / "kubectl")
    e.update({k: str(v) for k, v in extra.items()})
    return e
