"""Names shared by the CLI, completion and the backends, in one place (a leaf: imports only
the standard library, so TAB completion stays fast)."""

import os
import re
from typing import List, Optional, Tuple

# Signals that may wake a main thread blocked in a system call (--signal)
SIGNALS = ("USR1", "USR2", "WINCH", "HUP", "URG", "PWR")
NUDGE_CHOICES = ("auto", "none") + SIGNALS
# Log levels `loglevel` accepts by name (or any number)
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def kubectl_binary() -> str:
    return os.environ.get("WAND_KUBECTL", "kubectl")


def kubectl_argv(kubeconfig: Optional[str] = None, context: Optional[str] = None,
                 namespace: Optional[str] = None) -> List[str]:
    """kubectl with the user's own --kubeconfig/--context/-n (kubectl refuses them before a
    plugin's name, so the plugin passes them on): the one builder for every kubectl call."""
    argv = [kubectl_binary()]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if context:
        argv += ["--context", context]
    if namespace:
        argv += ["-n", namespace]
    return argv


def kube_version(v: dict) -> Tuple[int, int]:
    """(major, minor) of a `kubectl version -o json` entry ("1", "32+" → (1, 32)); (0, 0) if
    unreadable."""
    try:
        return int(v["major"]), int(re.sub(r"\D.*", "", v["minor"]))
    except (KeyError, ValueError, TypeError):
        return (0, 0)
