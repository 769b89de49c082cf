"""Editor hand-off: an nvim-dap snippet, and merging an entry into VS Code's launch.json.

VS Code's launch.json is JSONC (comments, trailing commas). The merge never re-serialises the
file: it finds the ``configurations`` array with a small JSONC scanner and splices the new
entry's text in (or over the entry of the same name), so every other byte — other entries,
comments, trailing commas, indentation — stays as it was.
"""

import json
import os
import re
from pathlib import Path
from typing import List, Optional, Tuple

from kubectl_wand.errors import UsageError

DEFAULT_PATH = os.path.join(".vscode", "launch.json")


# ------------------------------------------------------------------ untrusted values

# VS Code substitutes ${env:…}, ${command:…}, ${input:…} in launch.json strings on the
# operator's machine; the source folder comes from the target (its cwd and argv), so a value
# from there must not carry one, nor anything that could break out of a string or mislead.
OURS = {"localRoot": "${workspaceFolder}"}  # the one substitution we write on purpose
MAX_VALUE = 1024
_BAD_CHARS = re.compile(r'["\'\\`]')


def value_problem(value, path: bool = False) -> Optional[str]:
    """Why ``value`` (from the target) may not go into an editor config, or None."""
    from kubectl_wand.safe_text import _UNSAFE

    if not isinstance(value, str):
        return "it is not text"
    if "${" in value:
        return "it holds '${', which the editor would expand (e.g. ${command:…})"
    if _UNSAFE.search(value):
        return "it holds control or invisible characters"
    if len(value) > MAX_VALUE:
        return f"it is longer than {MAX_VALUE} characters"
    if path:
        if not value.startswith("/"):
            return "it is not an absolute path"
        if _BAD_CHARS.search(value):
            return "it holds quotes or backslashes"
    return None


def safe_config(cfg: dict, fallbacks=("/",)) -> Tuple[dict, List[str]]:
    """(a copy of ``cfg`` fit to write into an editor config, warnings). A remoteRoot that
    fails ``value_problem`` becomes the first fallback that passes (``/`` last); any other
    string that fails becomes a neutral one."""
    from kubectl_wand.safe_text import safe

    out, warnings = json.loads(json.dumps(cfg)), []
    for m in out.get("pathMappings", []):
        why = value_problem(m.get("remoteRoot"), path=True)
        if why:
            pick = next((f for f in list(fallbacks) + ["/"]
                         if value_problem(f, path=True) is None), "/")
            warnings.append(f"the target's source folder {safe(m.get('remoteRoot'), 200)!s} "
                            f"is not written into the editor config: {why}; using {pick} "
                            "instead (set remoteRoot in pathMappings by hand if needed)")
            m["remoteRoot"] = pick
        if m.get("localRoot") != OURS["localRoot"] and value_problem(m.get("localRoot")):
            m["localRoot"] = OURS["localRoot"]
    why = value_problem(out.get("name"))
    if why:
        warnings.append(f"the configuration name {safe(out.get('name'), 200)} is not used: "
                        f"{why}; using 'kubectl-wand' instead")
        out["name"] = "kubectl-wand"
    return out, warnings


# ------------------------------------------------------------------ nvim-dap

def _lua_str(s):
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c.isprintable():
            out.append(c)
        else:
            out.append("".join("\\%03d" % b for b in c.encode("utf-8")))
    return '"' + "".join(out) + '"'


def _lua(value, indent=""):
    """A Python value (from JSON) as Lua source."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _lua_str(value)
    inner = indent + "  "
    if isinstance(value, list):
        if not value:
            return "{}"
        return "{\n" + "".join(f"{inner}{_lua(v, inner)},\n" for v in value) + indent + "}"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            key = k if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) else f"[{_lua(k)}]"
            parts.append(f"{inner}{key} = {_lua(v, inner)},\n")
        return "{\n" + "".join(parts) + indent + "}"
    raise TypeError(type(value))


def nvim_dap_snippet(cfg: dict) -> str:
    """Lua that attaches nvim-dap (with nvim-dap-python's `python` adapter) to the port."""
    lua_cfg = {"type": "python", "request": "attach", "name": cfg["name"],
               "connect": cfg["connect"],
               "pathMappings": [{"localRoot": "__CWD__", "remoteRoot": m["remoteRoot"]}
                                for m in cfg.get("pathMappings", [])],
               "justMyCode": cfg.get("justMyCode", False)}
    text = _lua(lua_cfg).replace('"__CWD__"', "vim.fn.getcwd()")
    return "require('dap').run(" + text + ")\n"


# ------------------------------------------------------------------ JSONC scanning

class JSONCError(ValueError):
    def __init__(self, message, text, pos):
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        super().__init__(f"{message} at line {line} column {col}")


_WS = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.S)
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_LITERAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


class Node:
    """A parsed JSONC value with its span in the text (and, for containers, its items)."""

    def __init__(self, kind, start):
        self.kind, self.start, self.end = kind, start, start
        self.items: List[Tuple[Optional[str], int, "Node"]] = []  # (key, item start, value)
        self.commas: List[int] = []  # end offset of each ',' after an item
        self.value = None


class _Parser:
    def __init__(self, text):
        self.text, self.pos = text, 0

    def ws(self):
        m = _WS.match(self.text, self.pos)
        if self.text.startswith("/*", m.end()):
            raise JSONCError("unterminated comment", self.text, m.end())
        self.pos = m.end()

    def peek(self):
        self.ws()
        return self.text[self.pos:self.pos + 1]

    def fail(self, what):
        raise JSONCError(what, self.text, self.pos)

    def value(self) -> Node:
        c = self.peek()
        if c == "{":
            return self.container("{", "}")
        if c == "[":
            return self.container("[", "]")
        node = Node("scalar", self.pos)
        m = _STRING.match(self.text, self.pos) if c == '"' else _LITERAL.match(self.text, self.pos)
        if not m:
            self.fail("expected a value")
        node.value = json.loads(m.group())
        self.pos = node.end = m.end()
        return node

    def container(self, open_, close):
        node = Node("object" if open_ == "{" else "array", self.pos)
        self.pos += 1
        node.value = {} if open_ == "{" else []
        while True:
            c = self.peek()
            if c == close:
                self.pos += 1
                node.end = self.pos
                return node
            if node.items and not (node.commas and len(node.commas) == len(node.items)):
                self.fail(f"expected ',' or '{close}'")
            item_start = self.pos
            key = None
            if open_ == "{":
                m = _STRING.match(self.text, self.pos)
                if not m:
                    self.fail("expected a property name")
                key = json.loads(m.group())
                self.pos = m.end()
                if self.peek() != ":":
                    self.fail("expected ':'")
                self.pos += 1
            child = self.value()
            node.items.append((key, item_start, child))
            if open_ == "{":
                node.value[key] = child.value
            else:
                node.value.append(child.value)
            if self.peek() == ",":
                self.pos += 1
                node.commas.append(self.pos)


def parse_jsonc(text: str) -> Node:
    p = _Parser(text)
    root = p.value()
    if p.peek():
        p.fail("unexpected text after the end")
    return root


# ------------------------------------------------------------------ splicing

def _line_start(text, pos):
    return text.rfind("\n", 0, pos) + 1


def _indent_at(text, pos):
    """Leading whitespace of the line holding pos."""
    start = _line_start(text, pos)
    m = re.match(r"[ \t]*", text[start:])
    return m.group()


def _unit(text):
    """The file's indentation step (first indented line), default four spaces."""
    m = re.search(r"\n([ \t]+)\S", text)
    if not m:
        return "    "
    return "\t" if m.group(1).startswith("\t") else " " * min(len(m.group(1)), 8)


def _render(value, indent, unit):
    body = json.dumps(value, indent=unit if unit != "\t" else "\t", ensure_ascii=False)
    return body.replace("\n", "\n" + indent)


def _rest_of_line_is_comment(text, pos):
    m = re.match(r"[ \t]*(//[^\n]*)?(?=\n|$)", text[pos:])
    return m.end() if m and m.group(1) else 0


def _append(text, node, item_text, item_indent):
    """Text with item_text added as the last item of container ``node``."""
    close = node.end - 1
    if node.items:
        last = node.items[-1][2]
        if len(node.commas) == len(node.items):  # a trailing comma: keep the style
            at = node.commas[-1]
            skip = _rest_of_line_is_comment(text, at)
            return text[:at + skip] + "\n" + item_indent + item_text + "," + text[at + skip:]
        at = last.end
        skip = _rest_of_line_is_comment(text, at)
        if skip:
            return (text[:at] + "," + text[at:at + skip] + "\n" + item_indent + item_text
                    + text[at + skip:])
        return text[:at] + ",\n" + item_indent + item_text + text[at:]
    inner = text[node.start + 1:close]
    base = _indent_at(text, node.start)
    if not inner.strip():
        return (text[:node.start + 1] + "\n" + item_indent + item_text + "\n" + base
                + text[close:])
    # only comments inside: put the item after them
    return text[:close].rstrip() + "\n" + item_indent + item_text + "\n" + base + text[close:]


def merge_launch_json(text: Optional[str], cfg: dict) -> Tuple[str, str]:
    """(new text, what happened: created | added | replaced) for launch.json ``text``."""
    if text is None or not text.strip():
        doc = {"version": "0.2.0", "configurations": [cfg]}
        return json.dumps(doc, indent=4, ensure_ascii=False) + "\n", "created"
    root = parse_jsonc(text)
    if root.kind != "object":
        raise JSONCError("launch.json must hold an object", text, root.start)
    unit = _unit(text)
    confs = next((v for k, _, v in root.items if k == "configurations"), None)
    if confs is None:
        key_indent = (_indent_at(text, root.items[0][1]) if root.items
                      else _indent_at(text, root.start) + unit)
        member = ('"configurations": [\n' + key_indent + unit
                  + _render(cfg, key_indent + unit, unit) + "\n" + key_indent + "]")
        return _append(text, root, member, key_indent), "added"
    if confs.kind != "array":
        raise JSONCError('"configurations" must be an array', text, confs.start)
    for _, start, item in confs.items:
        if item.kind == "object" and isinstance(item.value, dict) and \
                item.value.get("name") == cfg["name"]:
            indent = _indent_at(text, item.start)
            if text[_line_start(text, item.start):item.start].strip():
                indent = _indent_at(text, confs.start) + unit
            return text[:item.start] + _render(cfg, indent, unit) + text[item.end:], "replaced"
    if confs.items:
        first = confs.items[0][2]
        indent = _indent_at(text, first.start)
        if text[_line_start(text, first.start):first.start].strip():
            indent = _indent_at(text, confs.start) + unit
    else:
        indent = _indent_at(text, confs.start) + unit
    return _append(text, confs, _render(cfg, indent, unit), indent), "added"


def launch_json_path(path: Optional[str]) -> Path:
    """Where --write-launch-json writes: a file, or FOLDER/.vscode/launch.json."""
    p = Path(path or DEFAULT_PATH).expanduser()
    if p.is_dir():
        return p / "launch.json" if p.name == ".vscode" else p / ".vscode" / "launch.json"
    return p


def read_launch_json(path: Path) -> Optional[str]:
    """The file's text (None if absent), refusing early what merge could not handle."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}",
                         code="launch-json")
    try:
        merge_launch_json(text, {"name": "\0probe"})
    except JSONCError as e:
        raise UsageError(f"{path} is not valid JSON with comments: {e}",
                         "fix it, or pass another path to --write-launch-json",
                         code="launch-json")
    return text


def write_launch_json(path: Path, cfg: dict) -> str:
    """Merge ``cfg`` into the file at ``path`` atomically; returns created/added/replaced."""
    import tempfile

    text = read_launch_json(path)
    new, what = merge_launch_json(text, cfg)
    check = parse_jsonc(new).value
    assert any(c == cfg for c in check.get("configurations", [])), "merge lost the entry"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=".launch.json.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(new)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return what
