"""The real kubectl binaries the tests run, and kubectl's two stream transports."""
import os

KUBECTL_DIR = "/usr/lib/google-cloud-sdk/bin"  # the kubectl package's versioned binaries (dpkg -L kubectl)
DEFAULT_KUBECTL = "1.32"
# exec and port-forward transports of the real kubectl
TRANSPORTS = {"websocket": {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true"},
              "spdy": {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}}
EXTRA_KUBECTL_DIR = os.environ.get("WAND_KUBECTL_CACHE", "/var/tmp/wand-kubectl")  # 1.36/1.37, fetched by tests


def kubectl_versions():
    """version -> path of every real kubectl binary found here (1.27..1.33 from the kubectl
    package; 1.36/1.37 when tests/kube/fetch_kubectl.sh put them in the cache)."""
    import glob
    found = {}
    for d in (KUBECTL_DIR, EXTRA_KUBECTL_DIR):
        for p in glob.glob(os.path.join(d, "kubectl.1.*")):
            found[p.rsplit("kubectl.", 1)[1]] = p
    return dict(sorted(found.items(), key=lambda kv: tuple(int(x) for x in kv[0].split("."))))


def kubectl_binary(version=None):
    """The real kubectl binary for version (default $WAND_TEST_KUBECTL, else 1.32): a path or 1.NN."""
    want = version or os.environ.get("WAND_TEST_KUBECTL") or DEFAULT_KUBECTL
    if os.sep in want:
        return want
    want = want.lstrip("v")
    want = ".".join(want.split(".")[:2])
    path = kubectl_versions().get(want)
    if path is None and not (version or os.environ.get("WAND_TEST_KUBECTL")):
        import shutil
        # no 1.32 here: the one on PATH, else the newest cached (setup.sh fetches 1.37 from
        # PyPI on a machine without any kubectl)
        path = shutil.which("kubectl") or next(reversed(list(kubectl_versions().values())), None)
    if path is None:
        raise RuntimeError("no kubectl %s here (found: %s)" % (want, ", ".join(kubectl_versions()) or "none"))
    return path
