"""The house's shape, checked from the code's own imports (every `import`, also those inside
functions): cli → engine → backends → payload, leaves usable from anywhere, no import running
back up, no circle between modules, payload stdlib-only, no source file over ~600 lines."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "kubectl_wand"
# Higher imports lower, never the reverse. Top-level modules are leaves (0) unless named.
RANK = {"__main__": 6, "cli": 5, "completion": 5, "engine": 4, "backends": 3, "payload": 1}
MAX_LINES = 620


def modules():
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name, path, known):
    """kubectl_wand modules that ``name`` imports (a from-import of a submodule counts as
    that submodule)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")
                base = ".".join(up[:len(up) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "kubectl_wand":
                found.add(t)
    return found


def room(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "kubectl_wand"


def rank(name):
    return RANK.get(room(name), 0)


def graph():
    known = modules()
    return {n: imports(n, p, known) for n, p in known.items()}


def test_no_import_runs_back_up_and_payload_is_stdlib_only():
    bad = []
    for src, dests in graph().items():
        for d in dests:
            if rank(d) > rank(src):
                bad.append(f"{src} -> {d}")
            if room(src) == "payload" and room(d) != "payload":
                bad.append(f"{src} -> {d} (payload imports nothing of the CLI)")
    assert not bad, "imports that run back up:\n" + "\n".join(sorted(bad))


def test_no_circle_between_modules():
    g = graph()
    state, stack, circles = {}, [], []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for d in sorted(g.get(n, ())):
            if state.get(d) == "open":
                circles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = "done"

    for n in sorted(g):
        if n not in state:
            visit(n)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_no_source_file_over_the_limit():
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_check_sees_a_back_arrow_and_a_circle(tmp_path):
    """The checks above can fail: a planted upward import and circle are found."""
    pkg = tmp_path / "kubectl_wand"
    for d in ("cli", "engine"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "engine" / "a.py").write_text("from kubectl_wand.cli import b\n")
    (pkg / "cli" / "b.py").write_text("def f():\n    from ..engine import a\n")
    global ROOT
    saved, ROOT = ROOT, pkg
    try:
        g = graph()
        assert g["kubectl_wand.engine.a"] == {"kubectl_wand.cli.b"}
        assert g["kubectl_wand.cli.b"] == {"kubectl_wand.engine.a"}
        with pytest.raises(AssertionError, match="engine.a -> kubectl_wand.cli.b"):
            test_no_import_runs_back_up_and_payload_is_stdlib_only()
        with pytest.raises(AssertionError, match="import circles"):
            test_no_circle_between_modules()
    finally:
        ROOT = saved
