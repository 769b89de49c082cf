"""Shell completion, implemented once; it runs on every TAB, so click is imported only to
(re)build the cached command table (see ``table()``).

Served two ways, with kubectl's plugin protocol (kubectl >= 1.26, cobra's `__complete`):

* ``kubectl_complete-wand WORD… CURRENT`` — kubectl runs it for ``kubectl wand …<TAB>``;
* ``kubectl-wand __complete WORD… CURRENT`` — what ``kubectl wand completion bash|zsh|fish``
  scripts call when ``kubectl-wand`` is used on its own.

Output: one candidate per line (``value<TAB>description``), then ``:<directive>`` (cobra's bits:
2 = no space after the candidate, 4 = no file completion; 0 = the shell may complete files).
Names come from ``kubectl`` (``$WAND_KUBECTL``), ``docker``/``podman`` and ``/proc``, each call
bounded by a short timeout; any failure just means fewer candidates.
"""

import os
import subprocess
import sys

from kubectl_wand.names import LEVELS as LEVEL_VALUES
from kubectl_wand.names import NUDGE_CHOICES, kubectl_argv

NO_SPACE = 2
NO_FILE = 4
DEFAULT = 0
TIMEOUT = float(os.environ.get("WAND_COMPLETION_TIMEOUT", "2"))

SIGNALS = list(NUDGE_CHOICES)
LEVELS = list(LEVEL_VALUES)
COMMON = {"-h": (None, "show help"), "--help": (None, None)}
TOP = {"--version": (None, "show the version"), **COMMON}
SHELLS = ["bash", "zsh", "fish"]

# Target kinds offered first, as kubectl users type them.
KINDS = [
    ("deploy/", "Deployment"), ("pod/", "Pod (or just NAME)"), ("sts/", "StatefulSet"),
    ("ds/", "DaemonSet"), ("rs/", "ReplicaSet"), ("job/", "Job"),
    ("svc/", "pods behind a Service"), ("ksvc/", "Knative Service"),
    ("docker/", "Docker container"), ("podman/", "Podman container"),
    ("pid/", "process on this host"),
]
# What `kubectl get` calls each kind (short names and plurals typed by users map through
# kubectl_wand.targets.KUBE_KINDS first).
RESOURCE = {"pod": "pods", "deployment": "deployments", "statefulset": "statefulsets",
            "daemonset": "daemonsets", "replicaset": "replicasets", "job": "jobs",
            "service": "services", "ksvc": "services.serving.knative.dev"}
CONTAINERS_PATH = {"pod": "{.spec.containers[*].name}",
                   "deployment": "{.spec.template.spec.containers[*].name}",
                   "statefulset": "{.spec.template.spec.containers[*].name}",
                   "daemonset": "{.spec.template.spec.containers[*].name}",
                   "replicaset": "{.spec.template.spec.containers[*].name}",
                   "job": "{.spec.template.spec.containers[*].name}"}


def _described(opts):
    """(option, description) pairs; a spelling without one borrows the previous spelling's."""
    out, last = [], None
    for name, (_, desc) in opts.items():
        last = desc if desc is not None else last
        out.append((name, last))
    return out


# ------------------------------------------------------------------ external look-ups

def _run(argv):
    """stdout of a short external call, or '' on any failure (completion stays silent)."""
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, timeout=TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return ""
    return cp.stdout.decode("utf-8", "replace") if cp.returncode == 0 else ""


def _kubectl(state, *args, namespaced=True):
    argv = kubectl_argv(state.get("kubeconfig"), state.get("context"),
                        state.get("namespace") if namespaced else None)
    return _run(argv + [f"--request-timeout={max(1, round(TIMEOUT))}s"] + list(args))


def _names(text):
    """`kubectl get … -o name` lines (kind/name) → names."""
    return [line.rpartition("/")[2] for line in text.splitlines() if line.strip()]


def kube_names(state, kind):
    return _names(_kubectl(state, "get", RESOURCE.get(kind, kind), "-o", "name"))


def namespaces(state):
    return _names(_kubectl(state, "get", "namespaces", "-o", "name", namespaced=False))


def contexts(state):
    args = kubectl_argv(state.get("kubeconfig"))
    return [c for c in _run(args + ["config", "get-contexts", "-o", "name"]).splitlines() if c]


def containers(state, target):
    """Containers of the target typed earlier (pods and workloads), else none."""
    if not target:
        return []
    kind, name = _kube_kind(target)
    path = CONTAINERS_PATH.get(kind)
    if not path or not name:
        return []
    out = _kubectl(state, "get", f"{RESOURCE[kind]}/{name}", "-o", "jsonpath=" + path)
    return out.split()


def engine_containers(runtime):
    """Running containers of docker/podman, minus kubectl-wand's own helpers."""
    out = _run([runtime, "ps", "--format", "{{.Names}}\t{{.Image}}"])
    result = []
    for line in out.splitlines():
        name, _, image = line.partition("\t")
        for n in name.split(","):
            if n and not n.startswith("kubectl-wand-helper-"):
                result.append((n, image))
    return result


def local_pythons(proc="/proc"):
    """(pid, command) of the Python processes on this host that we can see."""
    result = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return result
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as f:
                argv = f.read(4096).split(b"\0")
        except OSError:
            continue
        exe = os.path.basename(argv[0].decode("utf-8", "replace")) if argv else ""
        if exe.startswith("python") or exe in ("uvicorn", "gunicorn", "celery"):
            cmd = " ".join(a.decode("utf-8", "replace") for a in argv if a)
            result.append((int(entry), cmd[:80]))
    return sorted(result)


def _kube_kind(target):
    """(canonical kind, name) of a typed kubernetes target, else (None, None)."""
    from kubectl_wand.targets import KUBE_KINDS

    prefix, sep, rest = target.partition("/")
    if not sep:
        return "pod", prefix
    return KUBE_KINDS.get(prefix.lower()), rest


# ------------------------------------------------------------------ the completer

def complete_target(cur, state, allow_local=False):
    """(candidates, directive) for a TARGET word."""
    prefix, sep, rest = cur.partition("/")
    if sep:
        low = prefix.lower()
        if low in ("docker", "podman"):
            return [(f"{prefix}/{n}", img) for n, img in engine_containers(low)], NO_FILE
        if low == "pid":
            return [(f"{prefix}/{pid}", cmd) for pid, cmd in local_pythons()], NO_FILE
        kind, _ = _kube_kind(cur)
        if kind is None:
            return [], NO_FILE
        return [(f"{prefix}/{n}", None) for n in kube_names(state, kind)], NO_FILE
    kinds = [(k, d) for k, d in KINDS if k.startswith(cur)]
    if allow_local and "local".startswith(cur):
        kinds.append(("local", "every process on this host"))
    if not cur:
        return kinds, NO_SPACE | NO_FILE
    # A bare NAME is a pod, as in kubectl.
    pods = [(n, "Pod") for n in kube_names(state, "pod") if n.startswith(cur)]
    if any(k.endswith("/") for k, _ in kinds):
        return kinds + pods, NO_SPACE | NO_FILE
    return kinds + pods, NO_FILE


def complete_value(kind, cur, state):
    if isinstance(kind, list):
        return [(c, None) for c in kind], NO_FILE
    if kind == "namespace":
        return [(n, None) for n in namespaces(state)], NO_FILE
    if kind == "context":
        return [(c, None) for c in contexts(state)], NO_FILE
    if kind == "pod":
        return [(n, None) for n in kube_names(state, "pod")], NO_FILE
    if kind == "container":
        return [(c, None) for c in containers(state, state.get("target"))], NO_FILE
    if kind == "signal":
        return [(s, None) for s in SIGNALS], NO_FILE
    if kind == "file":
        return [], DEFAULT
    return [], NO_FILE


# ------------------------------------------------------------------ the command table
#
# Read from the click commands themselves (so it never drifts), once per version of the CLI's
# code, and cached as JSON: a TAB then costs no click import. Value kinds come from parameter
# names and types (namespace, context, container, pod, file, choices…).

_PARAM_KINDS = {"namespace": "namespace", "context": "context", "kubeconfig": "file",
                "container": "container", "pod": "pod", "nudge": SIGNALS, "path": "file",
                "launch_json": "file"}
_ARG_KINDS = {"level": LEVELS, "shell": SHELLS}


def _sentence(text, limit=60):
    text = " ".join((text or "").split())
    text = text.split(". ")[0].rstrip(".")
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    return text


def spec_of(cmd):
    """One command's entry: [description, positional kinds, {option: [kind, description]}].

    Kinds: None (a flag), a list (choices), or namespace | context | container | pod | file |
    target | target-ps (a target, or `local`) | value (free text)."""
    import click

    positionals, options = [], {}
    for p in cmd.params:
        if isinstance(p, click.Argument):
            if p.name == "target":
                positionals.append("target" if p.required else "target-ps")
            elif isinstance(p.type, click.Choice):
                positionals.append(list(p.type.choices))
            else:
                positionals.append(_ARG_KINDS.get(p.name, "value"))
            continue
        if getattr(p, "hidden", False):
            continue
        if p.is_flag and not getattr(p, "_flag_needs_value", False):
            kind = None
        elif p.name in _PARAM_KINDS:
            kind = _PARAM_KINDS[p.name]
        elif isinstance(p.type, click.Choice):
            kind = list(p.type.choices)
        elif isinstance(p.type, (click.Path, click.File)):
            kind = "file"
        else:
            kind = "value"
        desc = _sentence(p.help) or None
        for o in p.opts + p.secondary_opts:
            options[o] = [kind, desc]
            desc = None  # later spellings borrow it (see _described)
    return [_sentence(cmd.get_short_help_str(200)), positionals, options]


def build_table():
    """{command: spec} for every subcommand of the CLI (imports click and the commands)."""
    import importlib

    from kubectl_wand.commands import COMMANDS

    table = {}
    for name, module in COMMANDS.items():
        try:
            table[name] = spec_of(importlib.import_module(module).command)
        except Exception:  # a command that cannot load is simply not offered
            continue
    return table


def _code_stamp():
    """Something that changes whenever the CLI's code does (installed, editable or zipapp)."""
    from kubectl_wand import __version__

    here = os.path.dirname(os.path.abspath(__file__))
    parts = [__version__, here]
    try:
        for name in sorted(os.listdir(os.path.join(here, "cli"))):
            st = os.stat(os.path.join(here, "cli", name))
            parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
    except OSError:  # inside a zipapp: the archive's own stamp
        archive = getattr(globals().get("__loader__"), "archive", None)
        try:
            st = os.stat(archive)
            parts.append(f"{archive}:{st.st_mtime_ns}:{st.st_size}")
        except (OSError, TypeError):
            return None
    import hashlib

    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _cache_path(stamp):
    from kubectl_wand.paths import cache_dir

    return str(cache_dir() / f"completion-{stamp}.json")


_TABLE = None


def table():
    global _TABLE
    if _TABLE is not None:
        return _TABLE
    import json

    stamp = _code_stamp()
    path = _cache_path(stamp) if stamp else None
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                _TABLE = json.load(f)
            return _TABLE
        except (OSError, ValueError):
            pass
    _TABLE = build_table()
    if path:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(_TABLE, f)
            os.replace(tmp, path)
            for old in os.listdir(os.path.dirname(path)):  # tables of older code
                if old.startswith("completion-") and old != os.path.basename(path):
                    os.unlink(os.path.join(os.path.dirname(path), old))
        except OSError:
            pass  # a read-only home works, just slower
    return _TABLE


def command_spec(name):
    return table().get(name) if name and not name.startswith("_") else None


STATE_KEYS = {"-n": "namespace", "--namespace": "namespace", "--context": "context",
              "--kubeconfig": "kubeconfig"}


def complete(words, cur):
    """Candidates for ``cur`` after ``words`` (the words after `wand`): ([(value, desc)], directive)."""
    command = None
    opts = TOP
    positionals = []
    state = {}
    pending = None  # option waiting for its value
    dashdash = False
    for w in words:
        if pending is not None:
            if pending in STATE_KEYS:
                state[STATE_KEYS[pending]] = w
            pending = None
            continue
        if w == "--" and command:
            dashdash = True
            continue
        if w.startswith("-") and w != "-" and not dashdash:
            name, eq, value = w.partition("=")
            if name in STATE_KEYS and eq:
                state[STATE_KEYS[name]] = value
            if not eq and name in opts and opts[name][0] is not None:
                pending = name
            continue
        if command is None:
            command = w
            spec = command_spec(command)
            opts = {**{k: tuple(v) for k, v in spec[2].items()}, **COMMON} if spec else {}
        else:
            positionals.append(w)
    spec = command_spec(command) if command else None
    if spec and positionals and spec[1][:1] in (["target"], ["target-ps"]):
        state["target"] = positionals[0]

    if pending is not None:
        return _filtered(*complete_value(opts[pending][0], cur, state), cur)
    if cur.startswith("-") and not dashdash:
        name, eq, value = cur.partition("=")
        if eq:
            if name in opts and opts[name][0] is not None:
                cands, directive = complete_value(opts[name][0], value, state)
                return _filtered([(name + "=" + v, d) for v, d in cands], directive, cur)
            return [], NO_FILE
        return _filtered(_described(opts), NO_FILE, cur)
    if command is None:
        return _filtered([(c, d) for c, (d, _, _) in table().items()], NO_FILE, cur)
    if not spec:
        return [], DEFAULT
    kinds = spec[1]
    if len(positionals) >= len(kinds):
        return [], NO_FILE
    kind = kinds[len(positionals)]
    if kind not in ("target", "target-ps"):
        return _filtered(*complete_value(kind, cur, state), cur)
    cands, directive = complete_target(cur, state, allow_local=kind == "target-ps")
    return _filtered(cands, directive, cur)


def _filtered(cands, directive, cur):
    seen = set()
    out = []
    for value, desc in cands:
        if value.startswith(cur) and value not in seen:
            seen.add(value)
            out.append((value, desc))
    return out, directive


def render(cands, directive):
    from kubectl_wand.safe_text import safe

    lines = []
    for value, desc in cands:
        # names and command lines of other processes reach the shell's menu: no controls
        value = safe(value.replace("\n", " ").replace("\t", " "), 253)
        lines.append(value + ("\t" + safe(" ".join(desc.split()), 200) if desc else ""))
    lines.append(f":{directive}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """``kubectl_complete-wand WORD… CURRENT`` (kubectl's plugin completion protocol)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    words, cur = (argv[:-1], argv[-1]) if argv else ([], "")
    try:
        cands, directive = complete(words, cur)
    except Exception:  # never a traceback under the user's cursor
        cands, directive = [], NO_FILE
    sys.stdout.write(render(cands, directive))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
