"""Check a kubectl argv against the REAL kubectl client's flags.

    from argv_check import check_argv
    assert check_argv(["debug", "mypod", "--profile=general", "-i", "--", "python3"]) == []

Every flag before `--` must exist for that (sub)command in `kubectl <cmd...> --help` or among the global
options (`kubectl options`); value flags must get a value, boolean ones a boolean. Words after `--` belong
to the container command and are not checked. Help output is parsed once per (sub)command and cached.
The real client is $WAND_REAL_KUBECTL, default /usr/bin/kubectl.
"""
import os
import re
import subprocess

REAL_KUBECTL = os.environ.get("WAND_REAL_KUBECTL", "/usr/bin/kubectl")
_FLAG_LINE = re.compile(r"^\s+(?:-(?P<short>\w), )?--(?P<long>[\w-]+)=(?P<default>.*):\s*$")
_cache = {}


class FlagSet:
    def __init__(self):
        self.long = {}   # name -> is_bool
        self.short = {}  # char -> long name
        self.subcommands = set()


def _run_help(words):
    env = dict(os.environ)
    env.setdefault("KUBECONFIG", os.devnull)
    p = subprocess.run([REAL_KUBECTL] + list(words), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       timeout=30)
    return p.stdout.decode(errors="replace")


def _parse(text, fs):
    in_cmds = False
    for line in text.splitlines():
        m = _FLAG_LINE.match(line)
        if m:
            fs.long[m.group("long")] = m.group("default") in ("true", "false")
            if m.group("short"):
                fs.short[m.group("short")] = m.group("long")
            continue
        if re.match(r"^\S.*Commands.*:\s*$", line) or line.strip() == "Available Commands:":
            in_cmds = True
            continue
        if in_cmds:
            m2 = re.match(r"^  ([a-z][\w-]*)\s{2,}", line)
            if m2:
                fs.subcommands.add(m2.group(1))
            elif line.strip() == "":
                continue
            elif not line.startswith(" "):
                in_cmds = False


def global_flags():
    if "__global__" not in _cache:
        fs = FlagSet()
        _parse(_run_help(["options"]), fs)
        _cache["__global__"] = fs
    return _cache["__global__"]


def command_flags(path):
    """FlagSet for a command path like ("debug",) or ("config", "view")."""
    key = tuple(path)
    if key not in _cache:
        fs = FlagSet()
        _parse(_run_help(list(path) + ["--help"]), fs)
        _cache[key] = fs
    return _cache[key]


def top_level_commands():
    return command_flags(()).subcommands


def _bool_ok(v):
    return v.lower() in ("true", "false", "1", "0", "t", "f")


def check_argv(argv):
    """Problems (strings) with a kubectl argv (argv[0] may be "kubectl" or a path to it); [] if fine."""
    argv = [str(a) for a in argv]
    if argv and os.path.basename(argv[0]) == "kubectl":
        argv = argv[1:]
    g = global_flags()
    problems = []
    # 1. global flags before the command, then the command words
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        tok = argv[i]
        consumed, prob = _check_flag(tok, argv[i + 1] if i + 1 < len(argv) else None, g, None, "kubectl")
        if prob:
            problems.append(prob)
        i += 1 + consumed
    if i >= len(argv) or argv[i] == "--":
        problems.append("no kubectl command in %r" % (argv,))
        return problems
    cmds = top_level_commands()
    if argv[i] not in cmds:
        problems.append("unknown kubectl command %r" % argv[i])
        return problems
    path = [argv[i]]
    i += 1
    rest = argv[i:]
    fs = command_flags(path)
    # descend into sub-commands (config view, auth can-i, rollout status ...): first positional word
    while fs.subcommands:
        j, sub = 0, None
        while j < len(rest):
            t = rest[j]
            if t == "--":
                break
            if t.startswith("-"):
                flag = t.lstrip("-").split("=", 1)[0]
                is_bool = fs.long.get(flag, g.long.get(flag))
                if len(t) > 1 and t[1] != "-" and len(t) == 2:
                    name = fs.short.get(t[1]) or g.short.get(t[1])
                    is_bool = fs.long.get(name, g.long.get(name)) if name else True
                j += 1 if ("=" in t or is_bool is not False) else 2
                continue
            sub = t
            break
        if sub is None or sub not in fs.subcommands:
            break
        path.append(sub)
        rest = rest[:j] + rest[j + 1:]
        fs = command_flags(path)
    where = "kubectl " + " ".join(path)
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok == "--":
            break
        if tok.startswith("-") and tok != "-":
            consumed, prob = _check_flag(tok, rest[i + 1] if i + 1 < len(rest) else None, g, fs, where)
            if prob:
                problems.append(prob)
            i += 1 + consumed
        else:
            i += 1
    return problems


def _check_flag(tok, nxt, g, fs, where):
    """-> (extra tokens consumed, problem or None)."""
    local_long = fs.long if fs else {}
    local_short = fs.short if fs else {}
    if tok.startswith("--"):
        name, eq, val = tok[2:].partition("=")
        if name in local_long:
            is_bool = local_long[name]
        elif name in g.long:
            is_bool = g.long[name]
        else:
            return 0, "%s: unknown flag --%s" % (where, name)
        if is_bool:
            if eq and not _bool_ok(val):
                return 0, "%s: --%s is boolean, got %r" % (where, name, val)
            return 0, None
        if eq:
            return 0, None
        if nxt is None:
            return 0, "%s: --%s needs a value" % (where, name)
        return 1, None
    chars = tok[1:]
    k = 0
    while k < len(chars):
        ch = chars[k]
        name = local_short.get(ch) or g.short.get(ch)
        if name is None:
            return 0, "%s: unknown shorthand flag -%s in %s" % (where, ch, tok)
        is_bool = local_long.get(name, g.long.get(name, True))
        if is_bool:
            if chars[k + 1:k + 2] == "=":
                return 0, (None if _bool_ok(chars[k + 2:]) else "%s: -%s is boolean, got %r" % (where, ch, chars[k + 2:]))
            k += 1
            continue
        if chars[k + 1:]:
            return 0, None
        if nxt is None:
            return 0, "%s: -%s needs a value" % (where, ch)
        return 1, None
    return 0, None
